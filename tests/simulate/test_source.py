"""Reading a history: each kind of bad input is named with file:line, and only input from which
nothing sensible can be simulated stops the run."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.errors import InputError
from orchestrator.simulate.source import parse_mapping, read_history, read_profiles, unknown_events


def _write(path: Path, *lines: object) -> Path:
    path.write_text("".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines))
    return path


def _track(cid: str, at: str, event: str = "order.placed", **extra: object) -> dict[str, object]:
    return {"customer_id": cid, "event": event, "timestamp": at, "properties": {"total": 10}, **extra}


def test_a_malformed_line_is_skipped_with_its_file_and_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "h.jsonl", _track("a", "2026-01-01T10:00:00Z"), "{not json", _track("b", "2026-01-01T11:00Z")
    )
    history = read_history(path)
    assert [line.customer_id for line in history.lines] == ["a", "b"]
    assert len(history.warnings) == 1
    assert history.warnings[0].startswith(f"{path}:2: not JSON")


def test_an_unparseable_or_missing_timestamp_is_skipped_with_its_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "h.jsonl",
        _track("a", "2026-01-01T10:00:00Z"),
        _track("b", "yesterday at noon"),
        {"customer_id": "c", "event": "order.placed"},
        _track("d", "2026-01-01T10:00:00"),  # no zone
    )
    history = read_history(path)
    assert [line.customer_id for line in history.lines] == ["a"]
    assert [warning.split(": ")[0] for warning in history.warnings] == [f"{path}:2", f"{path}:3", f"{path}:4"]
    assert "'yesterday at noon'" in history.warnings[0] and "ISO 8601" in history.warnings[0]
    assert "without a zone" in history.warnings[2]


def test_lines_slightly_out_of_order_are_sorted_worse_is_an_error_with_the_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "h.jsonl",
        _track("a", "2026-01-01T10:00:00Z"),
        _track("b", "2026-01-01T10:30:00Z"),
        _track("c", "2026-01-01T10:10:00Z"),
    )
    assert [line.customer_id for line in read_history(path).lines] == ["a", "c", "b"]
    with pytest.raises(InputError, match=rf"^{path}:3: the line's time .* before line 2's .*tolerance of 0:05:00"):
        read_history(path, tolerance=timedelta(minutes=5))


def test_an_empty_file_or_one_without_a_usable_line_is_an_error(tmp_path: Path) -> None:
    empty = _write(tmp_path / "empty.jsonl")
    with pytest.raises(InputError, match="the file is empty"):
        read_history(empty)
    useless = _write(tmp_path / "useless.jsonl", "[1]", "nope")
    with pytest.raises(InputError, match="none of its 2 lines could be used"):
        read_history(useless)


def test_identify_lines_without_a_time_describe_the_customer_from_the_start(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "h.jsonl",
        _track("a", "2026-01-02T10:00:00Z"),
        {"type": "identify", "customer_id": "a", "attributes": {"email": "a@example.com"}},
    )
    lines = read_history(path).lines
    assert [(line.kind, line.at.isoformat()) for line in lines] == [
        ("identify", "2026-01-02T10:00:00+00:00"),
        ("track", "2026-01-02T10:00:00+00:00"),
    ]


def test_event_ids_left_out_are_made_from_the_seed_and_line(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "h.jsonl", _track("a", "2026-01-01T10:00Z"), _track("a", "2026-01-01T11:00Z", event_id="x1")
    )
    assert [line.event_id for line in read_history(path, seed=9).lines] == ["sim9-1", "x1"]


def test_unknown_events_are_counted_per_name(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "h.jsonl",
        _track("a", "2026-01-01T10:00Z", event="cart.abandoned"),
        _track("b", "2026-01-01T10:01Z", event="cart.abandoned"),
        _track("c", "2026-01-01T10:02Z"),
    )
    assert unknown_events(read_history(path).lines, {"order.placed"}) == {"cart.abandoned": 2}


def test_a_csv_history_is_read_through_the_mapping(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(
        "cust,type,ts,value,note\nc1,order.placed,2026-03-01T09:00:00Z,42.5,first\n\nc2,order.placed,bad,1,x\n"
    )
    mapping = parse_mapping("customer_id=cust,event=type,timestamp=ts,properties.total=value,properties.note=note")
    history = read_history(path, mapping=mapping)
    assert [(line.customer_id, line.properties) for line in history.lines] == [("c1", {"total": 42.5, "note": "first"})]
    assert history.warnings[0].startswith(f"{path}:4: 'timestamp' is 'bad'")


def test_a_csv_mapping_naming_a_missing_column_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text("cust,type,ts\nc1,order.placed,2026-03-01T09:00:00Z\n")
    with pytest.raises(InputError, match=rf"^{path}:1: --map properties.total=amount names column 'amount'.*'cust'"):
        read_history(path, mapping=parse_mapping("customer_id=cust,event=type,timestamp=ts,properties.total=amount"))
    with pytest.raises(InputError, match="must say which column holds 'timestamp'"):
        parse_mapping("customer_id=cust,event=type")
    with pytest.raises(InputError, match="a CSV history needs --map"):
        read_history(path)


def test_a_bad_profiles_line_is_an_error_with_its_line(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.jsonl", {"customer_id": "a", "attributes": {}}, {"customer_id": "{bad}"})
    with pytest.raises(InputError, match=rf"^{path}:2: "):
        read_profiles(path, read_history(_write(tmp_path / "h.jsonl", _track("a", "2026-01-01T10:00Z"))).lines[0].at)
