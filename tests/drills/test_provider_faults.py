"""A provider failing 30% of calls still gets every message exactly once, paced and backed off."""

from __future__ import annotations

from tests.drills import provider_faults


def test_faulty_provider_gets_every_message_once_within_the_rate_limit() -> None:
    """60 messages through real workers and the SendGrid SDK to a loopback provider answering 30% of
    calls with 429 (Retry-After: 1), 500 or a hang past the read timeout: each message is accepted
    exactly once, no retry comes sooner than Retry-After, and no 5-second window holds more calls
    than the 20/s email rate limit (plus its burst) allows."""
    result = provider_faults.run(60, rate=20.0, threads=16, timeout=90.0)
    text = provider_faults.report(result)
    assert sum(result.calls.values()) > 60, text  # faults happened and were retried
    assert (result.accepted_once, result.accepted_twice, result.never_accepted) == (60, 0, 0), text
    assert result.retry_after_violations == 0, text
    assert result.max_calls_per_5s <= result.allowed_per_5s, text
