"""The intake API refuses malformed input with the field named, counts it, and imports JSONL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from orchestrator.errors import InputError
from orchestrator.runtime.event_queue import decode
from tests.runtime.harness import Harness


@pytest.fixture
def harness(redis_url: str, tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(redis_url, tmp_path, [])
    yield harness
    harness.stop()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (("bad id", "signup"), "customer_id"),
        (("c|1", "signup"), "customer_id"),
        (("c1", "Sign Up"), "event"),
        (("c1", "signup", {"x": float("nan")}), "properties"),
        (("c1", "signup", ["not", "a", "dict"]), "properties"),
    ],
)
def test_malformed_events_are_refused_and_counted(harness: Harness, args: tuple, field: str) -> None:  # type: ignore[type-arg]
    """Each malformed event raises InputError naming the field and is counted as refused."""
    with pytest.raises(InputError) as caught:
        harness.api.track(*args)
    assert caught.value.field == field
    assert harness.runtime.store.refused_counts() == {f"input:{field}": 1}


def test_timestamps_need_a_zone_and_must_not_be_in_the_future(harness: Harness) -> None:
    """A naive timestamp and one two days ahead are refused; an ISO string with Z is accepted."""
    for bad in ("2026-03-01T10:00:00", "2026-03-05T10:00:00Z", "yesterday"):
        with pytest.raises(InputError):
            harness.api.track("c1", "signup", timestamp=bad)
    assert harness.api.track("c1", "signup", timestamp="2026-03-01T10:00:00Z", event_id="e-1") == "e-1"


def test_identify_refuses_derived_fields_and_bad_zones(harness: Harness) -> None:
    """orders_count belongs to events; a zone must be an IANA name."""
    with pytest.raises(InputError):
        harness.api.identify("c1", {"orders_count": 10})
    with pytest.raises(InputError):
        harness.api.identify("c1", {"timezone": "CET"})
    profile = harness.api.identify("c1", {"email": "a@example.com", "tier": "gold", "consent": {"email": True}})
    assert profile.attributes["tier"] == "gold" and profile.consent == {"email": True}


def test_import_takes_good_lines_and_reports_bad_ones_by_line_number(harness: Harness, tmp_path: Path) -> None:
    """Line 2 is not JSON and line 4 has a bad event name; the other lines are imported."""
    lines = [
        json.dumps({"type": "identify", "customer_id": "c1", "attributes": {"email": "c1@example.com"}}),
        "{not json",
        json.dumps({"customer_id": "c1", "event": "signup"}),
        json.dumps({"customer_id": "c1", "event": "BAD"}),
    ]
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = harness.api.import_file(path, progress=False)
    assert report.imported == 2 and [line for line, _ in report.refused] == [2, 4]


def test_an_import_queues_events_in_chunks_in_file_order(harness: Harness, tmp_path: Path) -> None:
    """1,200 events over two customers, an identify in the middle and one bad line: every good event
    is queued once, each customer's in the file's order, in a few round trips (chunks of 500)."""
    from orchestrator.runtime import event_queue
    from orchestrator.store import keys

    lines = []
    for n in range(1200):
        if n == 700:
            lines.append(json.dumps({"type": "identify", "customer_id": "c2", "attributes": {"tier": "gold"}}))
        lines.append(json.dumps({"customer_id": f"c{n % 2}", "event": "page.viewed", "event_id": f"e{n}"}))
    lines.insert(10, json.dumps({"customer_id": "c1", "event": "Not An Event"}))
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    pushes: list[int] = []
    original = harness.api.events.push_many

    def counted(items: list[tuple[str, str]], **options: Any) -> list[int]:
        pushes.append(len(items))
        return original(items, **options)

    harness.api.events.push_many = counted  # type: ignore[method-assign,assignment]
    report = harness.api.import_file(path, progress=False)
    assert report.imported == 1201 and [line for line, _ in report.refused] == [11]
    assert harness.api.events.depth() == 1200
    for customer in ("c0", "c1"):
        shard = harness.api.events.shard_of(customer)
        queued = [event_queue.decode(r) for r in harness.client.lrange(keys.event_queue(shard), 0, -1)]
        ids = [int(e.event_id[1:]) for e in queued if e.customer_id == customer]
        assert ids == sorted(ids) and len(ids) == 600
    assert pushes == [500, 200, 500]  # the identify at line 701 queued what came before it


def test_prepare_validates_and_encodes_without_touching_redis(harness: Harness) -> None:
    """``prepare`` (for callers that queue the record themselves) gives the id and the very record
    ``track`` queues; a refusal is raised with its field and left for the caller to count."""
    ident, record = harness.api.prepare("c1", "signup", {"plan": "gold"}, event_id="e-7")
    assert ident == "e-7"
    queued = decode(record)
    assert (queued.customer_id, queued.name, queued.properties) == ("c1", "signup", {"plan": "gold"})
    with pytest.raises(InputError) as caught:
        harness.api.prepare("bad id", "signup")
    assert caught.value.field == "customer_id"
    assert harness.runtime.store.refused_counts() == {}
    harness.api.count_refusal(caught.value)
    assert harness.runtime.store.refused_counts() == {"input:customer_id": 1}
    assert harness.api.events.depth() == 0
