"""``loyaloop simulate``: output files, determinism, bad input (file:line, no traceback, exit 1
only when nothing sensible can be simulated), CSV histories and ``--compare``."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from orchestrator.cli import main
from tests.simulate.make_history import history, lines_text

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def small_history(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("history") / "history.jsonl"
    path.write_text("".join(lines_text(history(25, 70, 3, seed=11))), encoding="utf-8")
    return path


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        main(["simulate", "--quiet", *argv])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    output = captured.out + captured.err
    assert "Traceback" not in output
    return code, output


@pytest.mark.slow
def test_same_log_journeys_and_seed_give_byte_identical_files(
    small_history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    one, two = tmp_path / "one", tmp_path / "two"
    assert _run([str(small_history), "--out", str(one), "--seed", "3"], capsys)[0] == 0
    assert _run([str(small_history), "--out", str(two), "--seed", "3", "--backend", "fakeredis"], capsys)[0] == 0
    messages = (one / "messages.jsonl").read_bytes()
    assert messages.count(b"\n") > 20
    assert messages == (two / "messages.jsonl").read_bytes()
    assert (one / "decisions.jsonl").read_bytes() == (two / "decisions.jsonl").read_bytes()
    first = json.loads(messages.splitlines()[0])
    assert set(first) == {
        "at",
        "customer_id",
        "journey_id",
        "step_id",
        "channel",
        "template",
        "locale",
        "subject",
        "first_line",
    }
    calendar = json.loads((one / "calendar.json").read_text())
    assert calendar["messages"] == messages.count(b"\n")
    assert sum(int(k) * v for k, v in calendar["per_customer_week"].items()) == calendar["messages"]


def test_a_malformed_line_and_an_unknown_event_warn_and_the_rest_is_simulated(
    small_history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "h.jsonl"
    lines = small_history.read_text().splitlines()
    extra = [
        json.dumps(
            {"customer_id": "c000001", "event": "cart.abandoned", "timestamp": json.loads(lines[3])["timestamp"]}
        )
        for _ in range(3)
    ]
    path.write_text("\n".join([*lines[:4], "{oops", *extra, *lines[4:]]) + "\n")
    code, output = _run([str(path), "--out", str(tmp_path / "out")], capsys)
    assert code == 0, output
    assert f"{path}:5: not JSON" in output.replace("\n", "")
    assert output.count("'cart.abandoned'") == 1 and "(3 lines)" in output
    assert (tmp_path / "out" / "messages.jsonl").read_text().count("\n") > 20


@pytest.mark.parametrize(
    ("content", "argv", "expected"),
    [
        ("", [], "the file is empty"),
        ("cust,type,ts\n", ["--map", "customer_id=cust,event=type,timestamp=when"], ":1: --map timestamp=when names"),
        ("{oops\n[]\n", [], "none of its 2 lines could be used"),
    ],
)
def test_input_that_cannot_be_simulated_is_one_clear_error_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, argv: list[str], expected: str
) -> None:
    path = tmp_path / ("h.csv" if "--map" in argv else "h.jsonl")
    path.write_text(content)
    code, output = _run([str(path), "--out", str(tmp_path / "out"), *argv], capsys)
    assert code == 1
    assert output.startswith("error: ") and expected in output.replace("\n", "")


def test_an_order_export_in_csv_with_profiles_apart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profiles = tmp_path / "profiles.jsonl"
    profiles.write_text(
        json.dumps(
            {
                "customer_id": "c1",
                "attributes": {"email": "c1@example.com", "consent": {"email": True}, "timezone": "Europe/Amsterdam"},
            }
        )
        + "\n"
    )
    orders = tmp_path / "orders.csv"
    orders.write_text(
        "cust,type,ts,amount\nc1,order.placed,2026-03-02T10:00:00Z,30\nc1,order.placed,2026-06-20T10:00:00Z,20\n"
    )
    code, output = _run(
        [
            str(orders),
            "--map",
            "customer_id=cust,event=type,timestamp=ts,properties.total=amount",
            "--profiles",
            str(profiles),
            "--out",
            str(tmp_path / "out"),
        ],
        capsys,
    )
    assert code == 0, output
    sent = [json.loads(line) for line in (tmp_path / "out" / "messages.jsonl").read_text().splitlines()]
    assert ("winback", "miss_you_email") in {(row["journey_id"], row["step_id"]) for row in sent}


@pytest.mark.slow
def test_compare_two_versions_of_the_settings(
    small_history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A stricter e-mail cap in the other folder: fewer e-mails, more cap hits, customers listed."""
    other = tmp_path / "journeys"
    shutil.copytree(ROOT / "journeys", other)
    settings = (other / "settings.yaml").read_text()
    (other / "settings.yaml").write_text(
        settings.replace("{channel: email, window: 24h, max: 1", "{channel: email, window: 7d, max: 1")
    )
    code, output = _run(
        [
            str(small_history),
            "--out",
            str(tmp_path / "out"),
            "--compare",
            str(other),
            "--templates",
            str(ROOT / "templates"),
        ],
        capsys,
    )
    assert code == 0, output
    diff = json.loads((tmp_path / "out" / "comparison.json").read_text())
    assert diff["messages"]["b"] < diff["messages"]["a"]
    assert sum(v["b"] for v in diff["cap_hits"].values()) > sum(v["a"] for v in diff["cap_hits"].values())
    assert diff["most_changed"] and diff["most_changed"][0]["messages_b"] != diff["most_changed"][0]["messages_a"]
    assert (tmp_path / "out" / "compare" / "messages.jsonl").exists()


def test_from_and_until_bound_the_run_and_earlier_profiles_still_count(
    small_history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "window"
    code, output = _run(
        [str(small_history), "--from", "2025-01-20", "--until", "2025-03-01", "--out", str(out)], capsys
    )
    assert code == 0, output
    rows = [json.loads(line) for line in (out / "messages.jsonl").read_text().splitlines()]
    assert rows and all("2025-01-20" <= row["at"] <= "2025-03-01T00:00:00+00:00" for row in rows)
    # Customers who signed up before --from keep their profiles: their e-mail can still be sent.
    early = {json.loads(line)["customer_id"] for line in small_history.read_text().splitlines()[:10]}
    assert early & {row["customer_id"] for row in rows if row["channel"] == "email"}
    code, output = _run([str(small_history), "--from", "2031-01-01", "--out", str(out)], capsys)
    assert code == 1 and "no event falls between --from and --until" in output


def test_the_output_holds_the_proof_of_effect_report_of_the_simulated_period(
    small_history: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``report.txt``, ``report.json`` and ``report.html`` come from the measurement record the
    runtime kept during the simulation: each journey's entrants (all arms) equal its entries in
    ``runs.jsonl`` (``entered``; a held-out entry also has an ``entered_holdout`` row), and its
    holdout arm's entrants its held-out entries."""
    out = tmp_path / "out"
    code, output = _run([str(small_history), "--out", str(out), "--seed", "3"], capsys)
    assert code == 0 and "report.html" in output
    entered: dict[str, int] = {}
    held: dict[str, int] = {}
    for line in (out / "runs.jsonl").read_text().splitlines():
        row = json.loads(line)
        if row["what"] == "entered":
            entered[row["journey_id"]] = entered.get(row["journey_id"], 0) + 1
        if row["what"] == "entered_holdout":
            held[row["journey_id"]] = held.get(row["journey_id"], 0) + 1
    report = json.loads((out / "report.json").read_text())
    reported = {v["journey_id"]: v["entrants"] for v in report["versions"] if v["entrants"]}
    holdouts = {
        v["journey_id"]: arm["counts"]["entrants"]
        for v in report["versions"]
        for arm in v["arms"]
        if arm["arm"] == "holdout"
    }
    assert entered and reported == entered
    assert {j: n for j, n in holdouts.items() if n} == held
    assert "Proof of effect" in (out / "report.txt").read_text()
    page = (out / "report.html").read_text()
    assert page.startswith("<!DOCTYPE html>") or page.lstrip().lower().startswith("<!doctype html>")
    assert all(journey_id in page for journey_id in entered)
