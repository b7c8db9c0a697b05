"""Draining a shard into the real runtime on a real Redis: order, budget, bad records, failures, outages."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator.errors import InputError
from orchestrator.runtime.event_drain import drain
from orchestrator.runtime.event_queue import BUG, INPUT, KEPT_ASIDE, EventQueue, encode
from orchestrator.store import keys
from tests.runtime.harness import START, Harness, journey

PING = journey(
    {
        "id": "ping",
        "name": "Ping",
        "trigger": {"event": "ping.sent"},
        "re_entry": "always",
        "category": "transactional",
        "steps": [{"id": "hello", "send": "email", "template": "hello"}],
    }
)


@pytest.fixture
def h(redis_url: str, tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(redis_url, tmp_path, [PING])
    yield harness
    harness.stop()


def queue_events(h: Harness, queue: EventQueue, customer_id: str, count: int) -> int:
    h.api.identify(customer_id, {"email": f"{customer_id}@example.com"})
    for n in range(count):
        queue.push(customer_id, encode(customer_id, "ping.sent", {"n": n}, f"{customer_id}-{n}", START))
    return queue.shard_of(customer_id)


def sent_numbers(h: Harness, customer_id: str) -> list[str]:
    return [m["idempotency_key"] for m in h.outbox() if m["customer_id"] == customer_id]


def test_a_drain_handles_every_event_of_its_shard_in_order_and_frees_it(h: Harness) -> None:
    """Five events of one customer over batches of two: five messages in tracking order, an empty shard, no lease."""
    queue = EventQueue(h.client, batch=2)
    shard = queue_events(h, queue, "c-1", 5)
    assert drain(h.runtime, queue, shard, lambda s: None) == 5
    runs = [m["run_id"] for m in h.outbox()]
    assert len(runs) == 5 == len(set(runs))
    assert queue.depth() == 0 and h.client.exists(keys.event_drain(shard)) == 0


def test_a_spent_budget_hands_the_shard_to_a_fresh_message(h: Harness) -> None:
    """With no time left after the first batch, the drain nudges its shard and stops; the rest stays queued."""
    queue = EventQueue(h.client, batch=2)
    shard = queue_events(h, queue, "c-1", 5)
    nudged: list[int] = []
    assert drain(h.runtime, queue, shard, nudged.append, budget=0.0) == 2
    assert nudged == [shard] and queue.depth() == 3
    assert drain(h.runtime, queue, shard, nudged.append) == 3
    assert len(h.outbox()) == 5


def test_a_second_drainer_leaves_a_held_shard_alone(h: Harness) -> None:
    """A drain message for a shard another drainer holds does nothing (that drainer empties it)."""
    queue = EventQueue(h.client)
    shard = queue_events(h, queue, "c-1", 2)
    queue.take(shard, "someone-else")
    assert drain(h.runtime, queue, shard, lambda s: None) == 0
    assert queue.depth() == 2 and h.outbox() == []


def test_a_malformed_record_is_kept_aside_and_counted_and_the_rest_are_handled(h: Harness) -> None:
    """A record written past track (bad customer id) never reaches the runtime; its neighbours do."""
    queue = EventQueue(h.client)
    shard = queue_events(h, queue, "c-1", 1)
    h.client.rpush(keys.event_queue(shard), json.dumps(["{bad}", "ping.sent", {}, "x-1", START.isoformat()]))
    queue.push("c-1", encode("c-1", "ping.sent", {}, "c-1-late", START))
    assert drain(h.runtime, queue, shard, lambda s: None) == 3
    assert len(h.outbox()) == 2
    assert h.runtime.store.refused_counts() == {"message:event:InputError": 1}
    assert h.runtime.store.counters()[KEPT_ASIDE[INPUT]] == 1 and KEPT_ASIDE[BUG] not in h.runtime.store.counters()
    kept = json.loads(h.client.lrange(keys.dead_events(), 0, -1)[0])
    assert kept["reason"] == "InputError" and kept["kind"] == "input" and "{bad}" in kept["record"]


def fail_one(h: Harness, monkeypatch: pytest.MonkeyPatch, error: Exception) -> None:
    """The runtime fails every batch, and alone the event numbered 1 with ``error``."""
    original = h.runtime.handle_event

    def batch_fails(events: Any) -> int:
        raise KeyError("batch path")

    def second_fails(customer_id: str, name: str, properties: dict[str, Any], *rest: Any) -> str:
        if properties["n"] == 1:
            raise error
        return original(customer_id, name, properties, *rest)

    monkeypatch.setattr(h.runtime, "handle_events", batch_fails)
    monkeypatch.setattr(h.runtime, "handle_event", second_fails)


def test_an_event_that_fails_from_a_bug_is_kept_aside_as_a_bug_without_holding_up_the_batch(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When a batch fails, its events are handled one at a time; the one that still fails with a bug
    (not an InputError) is kept aside as a bug: counted apart from refused input, which stays empty."""
    queue = EventQueue(h.client)
    shard = queue_events(h, queue, "c-1", 3)
    fail_one(h, monkeypatch, KeyError("boom"))
    assert drain(h.runtime, queue, shard, lambda s: None) == 3
    assert len(h.outbox()) == 2 and queue.depth() == 0
    assert h.runtime.store.refused_counts() == {}
    assert h.runtime.store.counters()[KEPT_ASIDE[BUG]] == 1 and KEPT_ASIDE[INPUT] not in h.runtime.store.counters()
    kept = json.loads(h.client.lrange(keys.dead_events(), 0, -1)[0])
    assert (kept["reason"], kept["kind"]) == ("KeyError", "bug") and json.loads(kept["record"])[2] == {"n": 1}


def test_an_event_the_runtime_refuses_as_input_is_kept_aside_as_bad_input(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An InputError from handling one event is the event's fault: counted as refused input, kept aside as input."""
    queue = EventQueue(h.client)
    shard = queue_events(h, queue, "c-1", 3)
    fail_one(h, monkeypatch, InputError("no good", field="properties"))
    assert drain(h.runtime, queue, shard, lambda s: None) == 3
    assert h.runtime.store.refused_counts() == {"message:event:InputError": 1}
    assert h.runtime.store.counters()[KEPT_ASIDE[INPUT]] == 1 and KEPT_ASIDE[BUG] not in h.runtime.store.counters()
    assert json.loads(h.client.lrange(keys.dead_events(), 0, -1)[0])["kind"] == "input"


def test_a_bug_is_logged_with_its_traceback_and_without_addresses(
    h: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The failed batch and the event kept aside as a bug are logged with their tracebacks (where
    the bug is), with the e-mail address the exception quoted blanked, and never the record."""
    queue = EventQueue(h.client)
    shard = queue_events(h, queue, "c-1", 3)
    fail_one(h, monkeypatch, KeyError("ann@example.com"))
    with caplog.at_level(logging.WARNING, logger="orchestrator.runtime.event_drain"):
        drain(h.runtime, queue, shard, lambda s: None)
    text = "\n".join(record.getMessage() for record in caplog.records)
    assert "a batch of 3 events failed" in text and "batch path" in text
    bug = next(r.getMessage() for r in caplog.records if r.levelno == logging.ERROR)
    assert "KeyError" in bug and "Traceback (most recent call last)" in bug and "second_fails" in bug
    assert "KeyError: '<email>'" in bug
    assert "ann@example.com" not in caplog.text and "c-1@example.com" not in caplog.text
    assert all(record.exc_info is None for record in caplog.records)  # no handler prints it unredacted


def test_a_bug_failing_many_events_logs_its_traceback_once_per_batch(
    h: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Every event a bug fails is logged and kept aside; the traceback is logged with the first only."""
    queue = EventQueue(h.client)
    shard = queue_events(h, queue, "c-1", 3)

    def fails(*args: Any) -> Any:
        raise KeyError("boom")

    monkeypatch.setattr(h.runtime, "handle_events", fails)
    monkeypatch.setattr(h.runtime, "handle_event", fails)
    with caplog.at_level(logging.ERROR, logger="orchestrator.runtime.event_drain"):
        drain(h.runtime, queue, shard, lambda s: None)
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 3 and sum("Traceback" in message for message in errors) == 1
    assert queue.dead() == 3 and h.runtime.store.counters()[KEPT_ASIDE[BUG]] == 3


def test_a_redis_outage_is_raised_for_a_retry_and_loses_nothing(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A connection error is not the event's fault: the drain hands its shard back (`queued`) and raises,
    every event still queued, none kept aside."""
    queue = EventQueue(h.client)
    shard = queue_events(h, queue, "c-1", 2)

    def outage(events: Any) -> int:
        raise redis.exceptions.ConnectionError("gone")

    monkeypatch.setattr(h.runtime, "handle_events", outage)
    with pytest.raises(redis.exceptions.ConnectionError):
        drain(h.runtime, queue, shard, lambda s: None)
    assert queue.depth() == 2 and queue.dead() == 0
    assert h.client.get(keys.event_drain(shard)) == "queued"
    monkeypatch.undo()
    assert drain(h.runtime, queue, shard, lambda s: None) == 2
    assert len(h.outbox()) == 2


def test_a_drainer_killed_mid_batch_is_re_driven_after_its_lease_and_sends_once(h: Harness) -> None:
    """A drainer that took a batch, sent it and died before dropping it: once its lease runs out the
    scheduler's re-drive finds the shard, and the next drain finds the events done — no second message."""
    queue = EventQueue(h.client, lease=0.2)
    shard = queue_events(h, queue, "c-1", 3)
    batch = queue.take(shard, "dead-drainer")
    assert batch is not None
    from orchestrator.runtime.event_drain import handle_records

    handle_records(h.runtime, queue, batch)  # … and then SIGKILL: no done()
    assert len(h.outbox()) == 3
    time.sleep(0.3)
    assert EventQueue(h.client).stalled() == [shard]
    assert drain(h.runtime, EventQueue(h.client), shard, lambda s: None) == 3
    assert len(h.outbox()) == 3 and queue.depth() == 0
    assert h.runtime.store.counters()["events_duplicate"] == 3


def test_a_shard_number_out_of_range_is_refused(h: Harness) -> None:
    """A drain message with a shard that does not exist is malformed (ValueError), not a crash later."""
    with pytest.raises(ValueError, match="between 0 and 15"):
        drain(h.runtime, EventQueue(h.client), 99, lambda s: None)


def test_a_batch_that_outlasts_the_lease_keeps_its_shard(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The keeper renews a working drainer's lease: a second drain during a batch three leases long
    finds the shard held, and every event is handled once."""
    queue = EventQueue(h.client, lease=0.3)
    shard = queue_events(h, queue, "c-1", 2)
    original = h.runtime.handle_events

    def slow(events: Any) -> int:
        time.sleep(0.9)
        return original(events)

    monkeypatch.setattr(h.runtime, "handle_events", slow)
    import threading

    first = threading.Thread(target=drain, args=(h.runtime, queue, shard, lambda s: None))
    first.start()
    time.sleep(0.6)
    assert drain(h.runtime, queue, shard, lambda s: None) == 0
    first.join()
    assert len(h.outbox()) == 2 and queue.depth() == 0


def test_an_event_kept_aside_for_a_bug_after_its_profile_part_is_finished_by_a_replay_without_counting_twice(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worst partial state an event can leave: its order counted on the profile, then a bug in
    the journey part.  The event is kept aside (its id not blocked); once the bug is fixed,
    ``replay`` queues it again and the journeys see it, with the order still counted once."""
    queue = EventQueue(h.client)
    h.api.identify("c-1", {"email": "c-1@example.com"})
    queue.push("c-1", encode("c-1", "order.placed", {"amount": 30}, "order-1", START))
    queue.push("c-1", encode("c-1", "ping.sent", {"n": 0}, "ping-1", START))
    original = h.runtime._journeys_see

    def journeys_fail(*args: Any) -> None:
        raise KeyError("a bug in the journey part")

    monkeypatch.setattr(h.runtime, "handle_events", lambda events: (_ for _ in ()).throw(KeyError("batch path")))
    monkeypatch.setattr(h.runtime, "_journeys_see", journeys_fail)
    shard = queue.shard_of("c-1")
    assert drain(h.runtime, queue, shard, lambda s: None) == 2
    assert h.runtime.store.get_profile("c-1").orders_count == 1  # applied before the bug
    assert [e["kind"] for e in queue.kept_aside()] == ["bug", "bug"]

    monkeypatch.setattr(h.runtime, "_journeys_see", original)  # the bug is fixed
    nudged: list[int] = []
    assert queue.replay(frozenset({INPUT})) == (0, [])  # only the kinds asked for
    replayed, shards = queue.replay(frozenset({BUG}), limit=1)
    assert (replayed, shards) == (1, [shard]) and queue.dead() == 1
    assert drain(h.runtime, queue, shard, nudged.append) == 1
    assert queue.replay(frozenset({BUG})) == (1, [shard])
    assert drain(h.runtime, queue, shard, nudged.append) == 1
    assert queue.dead() == 0 and queue.depth() == 0
    assert h.runtime.store.get_profile("c-1").orders_count == 1
    assert len(h.outbox()) == 1  # the ping's journey ran once the event came back
    # Replaying the same record again (a crash between queueing and taking it off the list) is a no-op.
    queue.push("c-1", encode("c-1", "order.placed", {"amount": 30}, "order-1", START))
    assert drain(h.runtime, queue, shard, nudged.append) == 1
    assert h.runtime.store.get_profile("c-1").orders_count == 1 and len(h.outbox()) == 1
