"""SIGKILLed worker processes lose and duplicate nothing (the CI-sized run of the sigkill drill)."""

from __future__ import annotations

from tests.drills import sigkill_worker


def test_three_sigkills_lose_and_duplicate_nothing() -> None:
    """1,000 customers through a three-step journey while the worker group is SIGKILLed three times:
    the outbox holds exactly three messages per customer and every enrollment finished.

    Uses the production worker with 5 s leases (``tests.drills.lease_worker``) so recovery fits in CI;
    ``python -m tests.drills.sigkill_worker`` runs the same drill on ``orchestrator.worker`` itself."""
    result = sigkill_worker.run(
        1_000,
        kills=3,
        wait="1s",
        heartbeat_ms=3000,
        module="tests.drills.lease_worker",
        send_lease=5.0,
        timer_lease=5.0,
        timeout=90.0,
        log=lambda _line: None,
    )
    assert len(result.kills) == 3
    assert (result.lost, result.duplicated, result.unexpected) == (0, 0, 0), sigkill_worker.report(result)
    assert result.received == 3_000
    assert result.live_left == 0
