"""Waiting customers survive a Redis restart (AOF everysec); a lost second is re-driven idempotently."""

from __future__ import annotations

from tests.drills import redis_restart


def test_timers_and_enrollments_survive_a_redis_crash() -> None:
    """redis-server SIGKILLed while 300 customers wait between two sends and restarted on its AOF:
    the same number of timers and live enrollments, no acknowledged write lost, and the run ends
    with exactly three messages per customer."""
    result = redis_restart.run(300, mode="crash", wait="5s", lease=5.0, timeout=60.0, log=lambda _: None)
    text = redis_restart.report(result)
    assert result.timers_before == result.timers_after == 300, text
    assert result.live_before == result.live_after == 300, text
    assert result.writes_lost == 0, text
    assert result.writes_unacknowledged <= 1, text  # only the INCR in flight at the kill
    assert (result.received, result.lost, result.duplicated, result.timed_out) == (900, 0, 0, ""), text


def test_a_lost_second_of_writes_is_re_driven_without_duplicates() -> None:
    """The AOF rolled back by one everysec window (a simulated power loss): acknowledged writes are
    lost, the producer replays its events with the same ids, and the outbox still holds exactly three
    messages per customer — none lost, none twice."""
    result = redis_restart.run(
        300,
        mode="power-loss",
        wait="2s",
        lease=5.0,
        timeout=60.0,
        log=lambda _: None,
    )
    text = redis_restart.report(result)
    assert result.writes_lost > 0, text  # the simulation did roll back acknowledged writes
    assert result.replayed == 300, text
    assert (result.received, result.lost, result.duplicated, result.timed_out) == (900, 0, 0, ""), text
