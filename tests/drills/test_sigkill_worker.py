"""SIGKILLed worker processes lose and duplicate nothing, messages or ledger credits (the CI-sized
run of the sigkill drill)."""

from __future__ import annotations

from tests.drills import sigkill_worker


def test_three_sigkills_lose_and_duplicate_nothing() -> None:
    """1,000 customers through a journey of three messages and a ledger call (an ``action`` step)
    while the ``dramatiq orchestrator.worker`` group is SIGKILLed three times: the outbox holds
    exactly three messages per customer and every enrollment finished; the ledger's reference
    receiver got every customer's call, signed, and applied it once under one Idempotency-Key
    (repeats after a kill answered with the first answer), and each second message shows the code it
    answered; the exact measurement record counts every entry, step, send, call and order once.

    Leases are 5 s and the heartbeat 3 s so recovery fits in CI; Dramatiq's own maintenance chance is
    left at its default, so the events a killed worker held come back through the scheduler's sweep.
    ``python -m tests.drills.sigkill_worker`` runs the production settings and reports their recovery time."""
    result = sigkill_worker.run(
        1_000,
        kills=3,
        wait="1s",
        heartbeat_ms=3000,
        send_lease=5.0,
        timer_lease=5.0,
        timeout=90.0,
        log=lambda _line: None,
    )
    text = sigkill_worker.report(result)
    assert len(result.kills) == 3, text
    assert (result.lost, result.duplicated, result.unexpected, result.timed_out) == (0, 0, 0, ""), text
    assert result.received == 3_000, text
    assert result.live_left == 0, text
    assert result.miscounted == {}, text
    assert result.actions is not None, text
    assert (result.actions.missing, result.actions.applied_twice, result.actions.refused) == ([], [], 0), text
    assert (result.actions.wrong_body, result.actions.answer_not_shown) == ([], []), text
    assert result.actions.applied == result.actions.keys == 1_000, text
