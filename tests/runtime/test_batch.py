"""A drained batch handled by the real runtime on a real Redis: the same outcomes as one event at a time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator.runtime.batch import rounds
from orchestrator.runtime.event_queue import QueuedEvent
from orchestrator.store import keys
from tests.runtime.harness import START, Harness, journey

WELCOME = journey(
    {
        "id": "welcome",
        "name": "Welcome",
        "trigger": {"event": "signup"},
        "re_entry": "never",
        "steps": [
            {"id": "hello", "send": "email", "template": "hello"},
            {"id": "pause", "wait": "2d"},
            {"id": "tips", "send": "email", "template": "tips"},
        ],
    }
)
CART = journey(
    {
        "id": "cart",
        "name": "Cart",
        "trigger": {"event": "cart.abandoned"},
        "goals": [{"event": "order.placed"}],
        "steps": [{"id": "wait", "wait": "1h"}, {"id": "nudge", "send": "email", "template": "hello"}],
    }
)
PROMO = journey(
    {
        "id": "promo",
        "name": "Promo",
        "priority": 90,
        "trigger": {"event": "signup"},
        "steps": [{"id": "offer", "send": "email", "template": "tips"}],
    }
)


def event(customer_id: str, name: str, n: int, **properties: Any) -> QueuedEvent:
    return QueuedEvent(customer_id, name, properties, f"{customer_id}-{name}-{n}", START + timedelta(seconds=n))


@pytest.fixture
def h(redis_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Harness]:
    journeys, settings = getattr(request, "param", ([WELCOME, CART], None))
    harness = Harness(redis_url, tmp_path, journeys, settings=settings)
    yield harness
    harness.stop()


def known(h: Harness, *ids: str) -> None:
    for cid in ids:
        h.api.identify(cid, {"email": f"{cid}@example.com", "consent": {"email": True}, "first_name": cid})


def test_rounds_hold_each_customer_once_and_keep_their_order() -> None:
    """a1 b1 a2 c1 a3 b2 → [a1 b1 c1] [a2 b2] [a3]: every customer's events in their tracking order."""
    batch = [event(c, "signup", n) for c, n in (("a", 1), ("b", 1), ("a", 2), ("c", 1), ("a", 3), ("b", 2))]
    assert [[(e.customer_id, e.timestamp.second) for e in r] for r in rounds(batch)] == [
        [("a", 1), ("b", 1), ("c", 1)],
        [("a", 2), ("b", 2)],
        [("a", 3)],
    ]


def test_a_batch_enters_and_sends_for_every_customer_and_counts_a_repeated_event_once(h: Harness) -> None:
    """Forty customers sign up in one batch (one event repeated): forty welcome e-mails, forty waits,
    one duplicate counted, and each customer's profile greeting rendered."""
    ids = [f"c{n}" for n in range(40)]
    known(h, *ids)
    batch = [event(cid, "signup", 0) for cid in ids] + [event("c7", "signup", 0)]
    assert h.runtime.handle_events(batch) == 40
    sent = h.outbox()
    assert sorted(m["customer_id"] for m in sent) == sorted(ids)
    assert all(m["step_id"] == "hello" and m["customer_id"] in m["body"] for m in sent)
    assert h.stats("welcome")["_journey:entered"] == 40 and h.stats("welcome")["hello:sent:email"] == 40
    assert h.runtime.timers.pending() == 40
    counters = h.runtime.store.counters()
    assert counters["events_handled"] == 40 and counters["events_duplicate"] == 1


def test_a_batch_replayed_changes_nothing(h: Harness) -> None:
    """The same batch handled twice (a drainer died before dropping it): no second message, no second entry."""
    known(h, "a", "b")
    batch = [event("a", "signup", 0), event("b", "signup", 0)]
    h.runtime.handle_events(batch)
    assert h.runtime.handle_events(batch) == 0
    assert len(h.outbox()) == 2 and h.stats("welcome")["_journey:entered"] == 2


def test_a_later_event_of_the_same_customer_sees_what_the_earlier_one_did(h: Harness) -> None:
    """cart.abandoned then order.placed in one batch: the cart run starts, then the order (its goal)
    ends it as converted — the nudge is never sent; a second signup does not re-enter (re_entry: never)."""
    known(h, "a")
    batch = [event("a", "signup", 0), event("a", "cart.abandoned", 1), event("a", "order.placed", 2, total=30)]
    batch.append(event("a", "signup", 3))
    h.runtime.handle_events(batch)
    assert [m["step_id"] for m in h.outbox()] == ["hello"]
    assert h.stats("cart").get("_journey:converted") == 1
    assert h.stats("welcome")["_journey:entered"] == 1
    profile = h.runtime.store.get_profile("a")
    assert profile is not None and profile.orders_count == 1 and profile.total_spent == 30


def test_an_unknown_customer_gets_a_profile_from_a_batched_event(h: Harness) -> None:
    """A first event of a customer never identified creates the profile (no address: nothing sent)."""
    h.runtime.handle_events([event("stranger", "signup", 0)])
    profile = h.runtime.store.get_profile("stranger")
    assert profile is not None and profile.created_at == START
    assert h.outbox() == [] and h.stats("welcome")["hello:no_address:email"] == 1


@pytest.mark.parametrize(
    "h",
    [([WELCOME, PROMO], {"caps": [{"channel": "email", "max": 1, "window": "1d"}]})],
    indirect=True,
)
def test_the_batch_gate_lets_the_higher_priority_send_take_the_last_slot(h: Harness) -> None:
    """One signup starts two journeys with a cap of one e-mail a day: the higher-priority promo is sent,
    the welcome e-mail is capped — for every customer in the batch alike."""
    known(h, "a", "b", "c")
    h.runtime.handle_events([event(cid, "signup", 0) for cid in ("a", "b", "c")])
    sent = h.outbox()
    assert sorted((m["customer_id"], m["journey_id"]) for m in sent) == [("a", "promo"), ("b", "promo"), ("c", "promo")]
    assert h.stats("welcome")["hello:capped:email"] == 3


def test_a_waiting_customer_in_a_batch_still_fires_on_the_timer(h: Harness) -> None:
    """Runs entered by a batch wait on durable timers like any other: two days on, the second e-mail goes."""
    known(h, "a", "b")
    h.runtime.handle_events([event("a", "signup", 0), event("b", "signup", 0)])
    h.clock.advance(days=2, minutes=1)
    for timer in h.runtime.timers.claim_due(h.clock().timestamp(), 100):
        h.runtime.fire_timer(timer.customer_id, timer.run_id, timer.revision)
    assert sorted((m["customer_id"], m["step_id"]) for m in h.outbox()) == [
        ("a", "hello"),
        ("a", "tips"),
        ("b", "hello"),
        ("b", "tips"),
    ]


def test_quick_sends_run_in_turn_and_slow_channels_on_sender_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """The outbox-like channel runs on the calling thread; a channel known to be slow runs on the
    sender threads it is given; results come back in the batch's order either way."""
    import threading

    from orchestrator.runtime import batch as runtime_batch
    from orchestrator.runtime.attempts import AttemptResult
    from orchestrator.runtime.drain_slots import DrainSlots

    monkeypatch.setattr(runtime_batch, "_took", {"sms": 5.0})

    def job(label: str) -> Any:
        return lambda: AttemptResult("sent", threading.current_thread().name + "|" + label)

    senders = runtime_batch.sender_pool()
    try:
        jobs = [("email", job("a")), ("sms", job("b")), ("email", job("c"))]
        results = runtime_batch._concurrently(senders, DrainSlots(1), jobs)
    finally:
        senders.shutdown(wait=True)
    where = [result.channel.split("|") for result in results if result.channel]
    assert [label for _, label in where] == ["a", "b", "c"]
    assert where[0][0] == where[2][0] == threading.current_thread().name
    assert where[1][0].startswith("loyaloop-send")


def test_a_batch_sends_on_its_own_runtimes_sender_threads_and_close_stops_them(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow channel's sends go to the runtime's own pool (no process-wide pool left running), and
    closing the runtime stops those threads: none named ``loyaloop-send`` is left afterwards."""
    import threading

    from orchestrator.runtime import batch as runtime_batch

    monkeypatch.setattr(runtime_batch, "_took", {"email": 5.0})
    known(h, "s1", "s2")
    before = set(threading.enumerate())
    h.runtime.handle_events([event("s1", "signup", 0), event("s2", "signup", 0)])
    assert sorted(m["customer_id"] for m in h.outbox()) == ["s1", "s2"]
    threads = [t for t in set(threading.enumerate()) - before if t.name.startswith("loyaloop-send")]
    assert threads and all(t.is_alive() for t in threads)
    h.runtime.close()
    assert not any(t.is_alive() for t in threads)
    h.runtime.close()  # a second close (the harness's own) is harmless


def test_profiles_without_a_first_seen_time_get_one_and_their_messages(h: Harness) -> None:
    """Customers stored without `created_at` (an import) get it from their first event, in one batch."""
    for cid in ("p", "q"):
        h.client.set(keys.profile(cid), f'{{"id": "{cid}", "email": "{cid}@example.com"}}')
        h.client.hset(keys.consent(cid), "email", "1")
    h.runtime.handle_events([event("p", "signup", 5), event("q", "signup", 6)])
    assert sorted(m["customer_id"] for m in h.outbox()) == ["p", "q"]
    created = [h.runtime.store.get_profile(cid) for cid in ("p", "q")]
    first_seen = [START + timedelta(seconds=5), START + timedelta(seconds=6)]
    assert [p.created_at if p else None for p in created] == first_seen


@pytest.mark.parametrize("h", [([PROMO], None)], indirect=True)
def test_a_cohort_chunk_sends_its_first_messages_together_and_once(h: Harness) -> None:
    """A chunk entering a journey that sends at once: one message per customer through the batch gate,
    each claimed by the compare-and-set that created its run; the same chunk handed out again sends nothing."""
    ids = [f"k{n}" for n in range(30)]
    known(h, *ids)
    assert h.runtime.enter_batch("promo", ids, "fire-1", {}) == 30
    assert h.runtime.enter_batch("promo", ids, "fire-1", {}) == 0
    sent = h.outbox()
    assert sorted(m["customer_id"] for m in sent) == sorted(ids)
    assert h.stats("promo")["offer:sent:email"] == 30 and h.stats("promo")["_journey:completed"] == 30
