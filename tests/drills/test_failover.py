"""The CI-sized failover drill: a Redis Cluster master SIGKILLed mid-run, its replica promoted
(see tests/drills/failover.py for the full-size run and docs/reliability.md for its figures)."""

from __future__ import annotations

import pytest

from tests.drills import failover


@pytest.mark.slow
def test_a_master_killed_mid_run_is_ridden_through_and_every_customer_is_accounted_for() -> None:
    """600 customers on a three-message journey (and 15 more tracked over HTTP while the master
    dies): the worker group, the scheduler and ``serve`` keep their processes and recover on their
    own; every HTTP track is accepted in the end; every customer gets exactly the journey's messages
    unless its keys lived on the killed master while the replication window held unacknowledged
    writes (then it is reported, never silently dropped); and every enrollment finishes."""
    result = failover.run(600, http_customers=15, node_timeout_ms=1000, wait="1s", timeout=120.0, log=lambda _: None)
    text = failover.report(result)
    assert result.timed_out == "", text
    assert result.ridden_through, text  # alive, same worker processes: no crash loop
    assert all(proc.errors <= 3 for proc in result.survivors), text  # outages retried, not tracebacks in a loop
    assert result.promoted_after < 15, text
    assert result.http_accepted == result.http_customers, text
    assert result.unexpected == 0 and result.live_left == 0, text
    assert result.off_elsewhere == [], text  # a customer off its journey on a surviving master: not explained
    if result.window.empty:
        assert (result.lost, result.duplicated) == (0, 0), text
    assert len(result.off_on_killed) <= result.customers // 100, text  # a window of milliseconds, not a collapse
