"""``loyaloop explain``: a customer's timeline from a simulation's files, and what production's Redis
holds for them now (never their addresses)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.simulate.driver import Driver, WorkerPump
from orchestrator.simulate.simulation import load_setup
from orchestrator.simulate.source import Line
from orchestrator.workers.embedded import Embedded, SimClock

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples"
MAP = "customer_id=customer,event=kind,timestamp=placed_at,properties.total=amount"


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        main(argv)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


def test_explain_a_simulated_customer_step_by_step(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The worked example of docs/simulate.md: Anna's orders, her entries, the SMS deferred by
    quiet hours until 08:00 her time, and the text sent then."""
    out = tmp_path / "sim"
    argv = ["simulate", "--quiet", str(EXAMPLE / "orders.csv"), "--map", MAP]
    code, output = _run(
        [*argv, "--profiles", str(EXAMPLE / "profiles.jsonl"), "--until", "2026-06-30", "--out", str(out)], capsys
    )
    assert code == 0, output
    code, output = _run(
        ["explain", "anna", "--simulation", str(out), "--events", str(EXAMPLE / "orders.csv"), "--map", MAP], capsys
    )
    assert code == 0, output
    rows = [line for line in output.splitlines() if line.startswith("│ 2026")]
    kinds = [row.split("│")[2].strip() for row in rows]
    # The second order is the win-back's goal and its restart: the first run converts, a new one starts.
    assert kinds == [
        *("event", "entered", "event", "entered", "converted"),
        *("sent", "deferred", "sent", "sent", "completed"),
    ]
    assert "run winback-1c54405f596e697b (goal)" in output
    deferred = output[output.index("deferred") :]
    assert "quiet hours 21:00-08:00 on sms in Europe/Amsterdam" in deferred.replace("│", "").replace("\n", "")
    assert "2026-04-11 06:00:00 │ sent" in output
    assert "sem" not in output.lower().replace("semantic", "")


def test_explain_a_customer_that_is_not_in_the_simulation(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "missing"
    code, output = _run(["explain", "nobody", "--simulation", str(out)], capsys)
    assert (
        code == 1 and output.startswith("error: ") and "messages.jsonl does not exist" not in output
    ) or "does not exist" in output


@pytest.mark.usefixtures("shop_ledger")  # workers on the shipped journeys need the ledger endpoint's URL
def test_explain_a_production_customer_shows_live_runs_and_consent_not_addresses(
    tmp_path: Path, redis_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    setup = load_setup(None, None, 0)
    start = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
    clock = SimClock(start)
    settings = setup.settings.model_copy(update={"redis_url": redis_url})
    lines = [
        Line(
            1,
            start,
            "identify",
            "anna",
            attributes={"email": "anna@example.com", "consent": {"email": True, "sms": False}},
        ),
        Line(2, start, "track", "anna", "order.placed", {"total": 30}, "o1"),
    ]
    with Embedded(settings, journeys=setup.journeys, clock=clock, threads=2) as system:
        Driver(WorkerPump(system), clock, setup.journeys).run(lines, until=start)
    monkeypatch.setenv("REDIS_URL", redis_url)
    code, output = _run(["explain", "anna"], capsys)
    assert code == 0, output
    run = next(line for line in output.splitlines() if line.startswith("│ winback"))
    assert "waiting" in run and "sixty_days" in run and "2026-05-01 10:00" in run  # the 60-day wait's timer
    assert "addresses: email yes, sms none, push none" in output
    assert "consent: email yes, sms no" in output
    assert "anna@example.com" not in output
    timeline = output[output.index("anna: timeline") :]
    entered = [line for line in timeline.splitlines() if "│ entered" in line]
    assert len(entered) == 1 and "winback" in entered[0]  # the journal's entry, as the console shows it
