"""A scheduler killed between claiming timers and handing them out loses none and fires none twice."""

from __future__ import annotations

from tests.drills import scheduler_kill


def test_leased_timers_of_a_killed_scheduler_fire_once_after_the_lease() -> None:
    """500 due timers claimed by a scheduler that is then SIGKILLed: all 500 stay leased, none is sent
    before the 3 s lease expires, and after it a second scheduler re-drives each one exactly once."""
    result = scheduler_kill.run(500, lease=3.0, timeout=90.0)
    assert result.claimed == 500 and result.leased_after_kill == 500, scheduler_kill.report(result)
    assert result.sent_before_lease == 0, scheduler_kill.report(result)
    assert (result.received, result.lost, result.duplicated) == (500, 0, 0), scheduler_kill.report(result)
