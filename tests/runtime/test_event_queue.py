"""The event shards on a real Redis: pushing, taking under a lease, handing over, re-driving, keeping aside."""

from __future__ import annotations

import json
import logging
import time
from datetime import UTC, datetime

import pytest
import redis

from orchestrator.errors import InputError
from orchestrator.runtime.event_queue import (
    BUG,
    INPUT,
    KEPT_ASIDE,
    KEPT_ASIDE_DROPPED,
    EventQueue,
    decode,
    encode,
)
from orchestrator.store import keys

MOMENT = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


def record(customer_id: str, n: int) -> str:
    return encode(customer_id, "signup", {"n": n}, f"e-{customer_id}-{n}", MOMENT)


def test_a_record_round_trips_and_a_malformed_one_is_refused_with_its_reason() -> None:
    """encode/decode keep every part; garbage, a bad customer id or a naive timestamp is an InputError."""
    event = decode(encode("c-1", "order.placed", {"total": 12.5}, "ev-1", MOMENT))
    assert (event.customer_id, event.name, event.properties, event.event_id, event.timestamp) == (
        "c-1",
        "order.placed",
        {"total": 12.5},
        "ev-1",
        MOMENT,
    )
    for bad, field in (
        ("not json", "event"),
        (json.dumps(["c", "signup", {}, "e"]), "event"),
        (json.dumps(["{c}", "signup", {}, "e", MOMENT.isoformat()]), "customer_id"),
        (json.dumps(["c", "Sign Up", {}, "e", MOMENT.isoformat()]), "event"),
        (json.dumps(["c", "signup", {}, "e", "2026-03-02T10:00:00"]), "timestamp"),
        (json.dumps(["c", "signup", [], "e", MOMENT.isoformat()]), "event"),
    ):
        with pytest.raises(InputError) as caught:
            decode(bad)
        assert caught.value.field == field, bad


def test_the_first_push_asks_for_a_drain_and_later_ones_ride_on_it(redis_client: redis.Redis) -> None:
    """Only the push that finds no drain queued returns the shard to nudge; a customer always lands on one shard."""
    queue = EventQueue(redis_client)
    shard = queue.shard_of("c-1")
    assert queue.push("c-1", record("c-1", 1)) == shard
    assert queue.push("c-1", record("c-1", 2)) is None
    assert queue.depth() == 2 and queue.depths()[shard] == 2
    assert all(queue.shard_of("c-1") == shard for _ in range(3))


def test_a_shard_is_drained_in_order_by_one_holder_at_a_time(redis_client: redis.Redis) -> None:
    """take hands out the oldest batch under a lease; a second drainer is refused; done drops what was
    handled and returns the next batch; the last done frees the shard so the next push nudges again."""
    queue = EventQueue(redis_client, batch=2)
    shard = queue.shard_of("c-1")
    for n in range(3):
        queue.push("c-1", record("c-1", n))
    first = queue.take(shard, "a")
    assert [decode(r).properties["n"] for r in first or []] == [0, 1]
    assert queue.take(shard, "b") is None
    assert queue.done(shard, "a", 2) == (1, [record("c-1", 2)])
    assert queue.done(shard, "a", 1) == (0, [])
    assert redis_client.exists(keys.event_drain(shard)) == 0
    assert queue.push("c-1", record("c-1", 9)) == shard


def test_a_drainer_that_lost_its_lease_drops_nothing(redis_client: redis.Redis) -> None:
    """After the lease ran out and another drainer took the shard, the first one's done is refused and
    the events stay for the new holder."""
    queue = EventQueue(redis_client, lease=0.05)
    shard = queue.shard_of("c-1")
    queue.push("c-1", record("c-1", 1))
    assert queue.take(shard, "a") == [record("c-1", 1)]
    time.sleep(0.1)
    assert queue.take(shard, "b") == [record("c-1", 1)]
    assert queue.done(shard, "a", 1) is None
    assert queue.depth() == 1


def test_handing_over_and_releasing_leave_the_shard_to_whoever_comes_next(redis_client: redis.Redis) -> None:
    """A handover keeps the rest queued with the lease `queued`; a failed drainer's release does the same."""
    queue = EventQueue(redis_client, batch=1)
    shard = queue.shard_of("c-1")
    for n in range(3):
        queue.push("c-1", record("c-1", n))
    queue.take(shard, "a")
    assert queue.done(shard, "a", 1, handover=True) == (2, [])
    assert redis_client.get(keys.event_drain(shard)) == "queued"
    assert queue.take(shard, "b") == [record("c-1", 1)]
    queue.release(shard, "b")
    assert redis_client.get(keys.event_drain(shard)) == "queued"
    assert queue.take(shard, "c") == [record("c-1", 1)]


def test_stalled_shards_are_found_once_each(redis_client: redis.Redis) -> None:
    """A shard with events and no drain (its drainer died, its lease ran out) is reported once, then
    counts as queued; an empty shard or one being drained is not reported."""
    queue = EventQueue(redis_client, lease=0.05)
    busy, idle = queue.shard_of("c-1"), queue.shard_of("c-2")
    assert busy != idle
    queue.push("c-1", record("c-1", 1))
    queue.push("c-2", record("c-2", 1))
    queue.take(idle, "drainer")
    redis_client.pexpire(keys.event_drain(idle), 60_000)
    time.sleep(0.1)  # c-1's `queued` lease (its drain message was never sent) runs out
    assert queue.stalled() == [busy]
    assert queue.stalled() == []


def test_push_many_groups_events_by_shard_in_one_round_trip(redis_client: redis.Redis) -> None:
    """Every event is queued once, each customer's in order, and each shard is nudged once."""
    queue = EventQueue(redis_client)
    items = [(f"c-{n % 7}", record(f"c-{n % 7}", n)) for n in range(40)]
    nudged = queue.push_many(items)
    assert sorted(nudged) == sorted({queue.shard_of(c) for c, _ in items})
    assert queue.depth() == 40
    shard = queue.shard_of("c-3")
    held = [decode(r) for r in redis_client.lrange(keys.event_queue(shard), 0, -1)]
    assert [e.properties["n"] for e in held if e.customer_id == "c-3"] == [n for n in range(40) if n % 7 == 3]


def test_kept_aside_events_are_capped_and_say_why(redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    """bury keeps the record with the error's name and kind, newest last, and drops the oldest past the cap."""
    monkeypatch.setattr("orchestrator.runtime.event_queue.DEAD_KEPT", 3)
    queue = EventQueue(redis_client)
    for n in range(5):
        queue.bury(f"record-{n}", "KeyError", BUG)
    kept = [json.loads(item) for item in redis_client.lrange(keys.dead_events(), 0, -1)]
    assert [item["record"] for item in kept] == ["record-2", "record-3", "record-4"]
    assert {(item["reason"], item["kind"]) for item in kept} == {("KeyError", "bug")} and queue.dead() == 3


def test_every_event_kept_aside_is_counted_by_kind(redis_client: redis.Redis) -> None:
    """Bad input and bugs are counted apart, and the counts go on past the list's cap."""
    queue = EventQueue(redis_client, dead_kept=2)
    queue.bury("bad", "InputError", INPUT)
    for n in range(3):
        queue.bury(f"failed-{n}", "KeyError", BUG)
    counters = {name: int(value) for name, value in redis_client.hgetall(keys.metrics_counters()).items()}
    assert counters == {KEPT_ASIDE[INPUT]: 1, KEPT_ASIDE[BUG]: 3, KEPT_ASIDE_DROPPED: 2}
    assert queue.dead() == 2


def test_events_dropped_past_the_cap_are_counted_and_logged(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """A trim is never silent: bury returns and counts how many it dropped, and warns with the total
    so far, how to look at the list and how to raise the cap."""
    queue = EventQueue(redis_client, dead_kept=3)
    with caplog.at_level(logging.WARNING, logger="orchestrator.runtime.event_queue"):
        assert [queue.bury(f"record-{n}", "InputError") for n in range(5)] == [0, 0, 0, 1, 1]
    assert int(redis_client.hget(keys.metrics_counters(), KEPT_ASIDE_DROPPED) or 0) == 2
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert "dropped the 1 oldest" in warnings[-1] and "2 dropped in all" in warnings[-1]
    assert f"LRANGE {keys.dead_events()}" in warnings[-1] and "DEAD_KEPT" in warnings[-1]
    assert "record-" not in " ".join(warnings)  # records may carry personal data


def test_a_cap_below_one_is_refused(redis_client: redis.Redis) -> None:
    """LTRIM to -0 would keep everything, so a cap of 0 is an error, not a list that never trims."""
    with pytest.raises(ValueError, match="dead_kept is 0"):
        EventQueue(redis_client, dead_kept=0)


def test_a_push_after_the_scripts_were_flushed_loads_them_again(redis_client: redis.Redis) -> None:
    """After a Redis restart (SCRIPT FLUSH here) track's push reloads its script and queues the event once."""
    queue = EventQueue(redis_client)
    queue.push("c-1", record("c-1", 1))
    redis_client.script_flush()
    queue.push("c-1", record("c-1", 2))
    assert queue.depth() == 2
