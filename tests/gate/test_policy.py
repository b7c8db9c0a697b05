"""The gate as the runtime uses it: the order of checks, deferral bounds, and one round trip."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis

from orchestrator.gate import caps
from orchestrator.gate.consent import set_consent, suppress
from orchestrator.gate.policy import Gate, GateDecision, SendRequest
from orchestrator.language.journey import QuietWindow
from orchestrator.settings import CapRule, Settings

#: 23:00 in Amsterdam in winter: inside the SMS quiet hours below.
NIGHT = datetime(2026, 1, 10, 22, 0, tzinfo=UTC)
DAY = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
SETTINGS = Settings(caps=[CapRule(window="1d", max=1)], quiet_hours={"sms": QuietWindow.model_validate("21:00-08:00")})


def sms(key: str, **changes: Any) -> SendRequest:
    base = SendRequest(
        customer_id="ann",
        channel="sms",
        category="marketing",
        journey_id="j",
        journey_tags=(),
        priority=50,
        idempotency_key=key,
        address="+31612345678",
        consent={"sms": True},
        timezone="Europe/Amsterdam",
    )
    return replace(base, **changes)


def test_order_address_suppression_consent_quiet_caps(redis_client: redis.Redis) -> None:
    """Each check only speaks when the earlier ones passed: no address, then suppression, then
    consent, then quiet hours, then caps."""
    gate = Gate(redis_client, SETTINGS)
    assert gate.check(sms("fill"), now=DAY).allowed  # the 1-per-day cap is now full
    assert gate.check(sms("a", address=None), now=NIGHT).outcome == "no_address"
    assert gate.check(sms("b", consent={}), now=NIGHT).outcome == "no_consent"
    assert gate.check(sms("c"), now=NIGHT).outcome == "quiet"
    assert gate.check(sms("d"), now=DAY).outcome == "capped"
    suppress(redis_client, "+31 6 1234 5678", "carrier_block")
    assert gate.check(sms("e", consent={}), now=NIGHT).outcome == "suppressed"


def test_no_address_needs_no_redis() -> None:
    """A profile without an address is decided locally (the client here points at nothing)."""
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2)
    decision = Gate(dead, SETTINGS).check(sms("a", address=""), now=DAY)
    assert decision == GateDecision("no_address", reason="no sms address on the profile")


def test_defer_until_respects_defer_max_for_caps(redis_client: redis.Redis) -> None:
    """A capped send may wait for its slot only up to ``defer_max``; after that it is skipped."""
    gate = Gate(redis_client, SETTINGS)
    assert gate.check(sms("fill"), now=DAY).allowed
    later = DAY + timedelta(hours=2)
    capped = gate.check(sms("x"), now=later)
    assert capped.retry_at == DAY + timedelta(days=1)
    assert gate.defer_until(capped, sms("x"), later, timedelta(days=1)) == DAY + timedelta(days=1)
    assert gate.defer_until(capped, sms("x"), later, timedelta(hours=21)) is None
    assert gate.defer_until(gate.check(sms("y", consent={}), now=DAY), sms("y"), DAY, timedelta(days=9)) is None


class CountingConnection(redis.connection.Connection):
    """A connection that logs writes and reads, so a test can count round trips (write → read turns)."""

    events: list[str] = []

    def send_packed_command(self, command: Any, check_health: bool = True) -> None:
        self.events.append("w")
        super().send_packed_command(command, check_health)

    def read_response(self, *args: Any, **kwargs: Any) -> Any:
        self.events.append("r")
        return super().read_response(*args, **kwargs)


def test_check_many_pipelines_a_batch(redis_url: str) -> None:
    """A batch of 500 sends for many customers is written in a handful of chunks and never waits
    for a reply before the next chunk is on its way (replies to one chunk are read while Redis runs
    the next), so the batch costs one round trip of latency; a single check is one write, two reads
    (the suppression-list ``HMGET`` and the script).  Each chunk of sends carries one ``HMGET``."""
    pool = redis.ConnectionPool.from_url(redis_url, connection_class=CountingConnection)
    client = redis.Redis(connection_pool=pool)
    gate = Gate(client, Settings(caps=[CapRule(window="1d", max=2)]))
    gate.check(sms("warm"), now=DAY)
    CountingConnection.events = []
    decisions = gate.check_many([sms(f"k{i}", customer_id=f"c{i % 7}") for i in range(500)], now=DAY)
    events = CountingConnection.events
    commands = 500 + -(-500 // caps.CHUNK)  # the scripts and one HMGET per chunk of sends
    chunks = -(-commands // caps.CHUNK)
    assert events.count("w") == chunks and events.count("r") == commands
    # replies to chunk k are only read once chunk k + 1 has been sent (or everything has)
    for position, event in enumerate(events):
        if event == "r":
            replies_before = events[:position].count("r")
            chunk_of_reply = replies_before // caps.CHUNK
            assert events[:position].count("w") >= min(chunks, chunk_of_reply + 2)
    assert [d.outcome for d in decisions].count("allowed") == 14
    CountingConnection.events = []
    assert gate.check(sms("one", customer_id="z"), now=DAY).allowed
    assert CountingConnection.events == ["w", "r", "r"]
    client.close()
    pool.disconnect()


def test_gate_works_on_the_embedded_fakeredis() -> None:
    """The embedded demo's in-process Redis (fakeredis with Lua) gives the same decisions."""
    import fakeredis

    gate = Gate(fakeredis.FakeRedis(decode_responses=True), SETTINGS)
    assert gate.check(sms("a"), now=DAY).allowed
    assert gate.check(sms("a"), now=DAY).duplicate
    capped = gate.check(sms("b"), now=DAY + timedelta(hours=1))
    assert capped.outcome == "capped" and capped.retry_at == DAY + timedelta(days=1)
    assert gate.check(sms("c"), now=NIGHT + timedelta(days=1)).outcome == "quiet"
    assert [d.outcome for d in gate.check_many([sms("d"), sms("e", customer_id="bob")], now=DAY)] == [
        "capped",
        "allowed",
    ]
    assert gate.release("ann", "a") is True


def test_consent_key_may_differ_from_channel(redis_client: redis.Redis) -> None:
    """A channel whose consent entry has another name (``whatsapp`` under ``sms``) is checked there."""
    gate = Gate(redis_client, Settings())
    request = sms("w", channel="whatsapp", consent={"sms": True}, consent_key="sms")
    assert gate.check(request, now=DAY).allowed
    set_consent(redis_client, "ann", "sms", False, source="api")
    assert gate.check(replace(request, idempotency_key="w2"), now=DAY).outcome == "no_consent"


def test_error_reply_is_raised_and_the_connection_stays_usable(redis_client: redis.Redis) -> None:
    """A corrupted send log (wrong type) fails loudly, and later decisions on the same pool still work."""
    from orchestrator.store import keys

    gate = Gate(redis_client, SETTINGS)
    redis_client.set(keys.send_log("ann"), "not a sorted set")
    batch = [sms("a"), sms("b", customer_id="bob")]
    with pytest.raises(redis.exceptions.ResponseError, match="WRONGTYPE"):
        gate.check_many(batch, now=DAY)
    assert gate.check(sms("c", customer_id="carl"), now=DAY).allowed
    assert redis_client.ping()


def test_unreachable_redis_raises_connection_error() -> None:
    """No Redis, no decision: the caller gets redis's ConnectionError to retry, never a guess."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.exceptions.ConnectionError):
        Gate(dead, SETTINGS).check(sms("a"), now=DAY)
