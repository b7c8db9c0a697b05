"""The runtime end to end on a real Redis with real Dramatiq worker threads and the outbox channel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.runtime.harness import Harness, journey, running

WELCOME = journey(
    {
        "id": "welcome",
        "name": "Welcome",
        "trigger": {"event": "signup"},
        "steps": [
            {"id": "hello", "send": "email", "template": "hello"},
            {"id": "pause", "wait": "2d"},
            {"id": "tips", "send": "email", "template": "tips"},
        ],
    }
)


def customer(h: Harness, cid: str, **extra: Any) -> None:
    attrs: dict[str, Any] = {
        "email": f"{cid}@example.com",
        "consent": {"email": True, "sms": True},
        "timezone": "Europe/Amsterdam",
    }
    attrs.update(extra)
    h.api.identify(cid, attrs)


def test_event_enrolls_sends_waits_on_a_durable_timer_and_sends_again(redis_url: str, tmp_path: Path) -> None:
    """signup → welcome e-mail in the outbox at once; the second e-mail only after the 2-day timer fires."""
    with running(redis_url, tmp_path, [WELCOME]) as h:
        customer(h, "c1", first_name="Ada")
        h.api.track("c1", "signup", {"plan": "free"})
        h.settle()
        sent = h.outbox()
        assert [(m["customer_id"], m["step_id"]) for m in sent] == [("c1", "hello")]
        assert "Ada" in sent[0]["body"]
        assert sent[0]["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        h.tick(days=1)
        assert len(h.outbox()) == 1
        h.tick(days=1, minutes=1)
        assert [m["step_id"] for m in h.outbox()] == ["hello", "tips"]
        stats = h.stats("welcome")
        assert stats["_journey:entered"] == 1 and stats["hello:sent:email"] == 1 and stats["tips:sent:email"] == 1
        assert stats["_journey:completed"] == 1
        assert h.runtime.store.live_runs("c1") == {}


CART = journey(
    {
        "id": "cart",
        "name": "Cart",
        "trigger": {"event": "cart.abandoned"},
        "goals": [{"event": "order.placed"}],
        "re_entry": "never",
        "steps": [
            {"id": "pause", "wait": "1d"},
            {"id": "nudge", "send": "email", "template": "hello"},
        ],
    }
)


def test_a_goal_ends_the_run_and_removes_its_timer(redis_url: str, tmp_path: Path) -> None:
    """An order during the wait converts the run, cancels the timer, and nothing is sent later."""
    with running(redis_url, tmp_path, [CART]) as h:
        customer(h, "c1")
        h.api.track("c1", "cart.abandoned")
        h.settle()
        assert h.runtime.timers.pending() == 1
        h.tick(hours=2)
        h.api.track("c1", "order.placed", {"total": 30.0})
        h.settle()
        assert h.runtime.timers.pending() == 0
        h.tick(days=2)
        assert h.outbox() == []
        assert h.stats("cart")["_journey:converted"] == 1
        profile = h.runtime.store.get_profile("c1")
        assert profile is not None and profile.orders_count == 1 and profile.total_spent == 30.0


def test_duplicate_event_ids_are_applied_once(redis_url: str, tmp_path: Path) -> None:
    """The same event id tracked three times counts one order and enters once."""
    with running(redis_url, tmp_path, [WELCOME]) as h:
        customer(h, "c1")
        for _ in range(3):
            h.api.track("c1", "order.placed", {"total": 10}, event_id="ord-1")
            h.api.track("c1", "signup", event_id="sig-1")
        h.settle()
        profile = h.runtime.store.get_profile("c1")
        assert profile is not None and profile.orders_count == 1
        assert len(h.outbox()) == 1 and h.stats("welcome")["_journey:entered"] == 1
        counters = h.runtime.store.counters()
        assert counters["events_duplicate"] + counters["events_handled"] == 6 and counters["events_duplicate"] >= 1


def test_re_entry_never_refuses_a_second_run(redis_url: str, tmp_path: Path) -> None:
    """A second signup (new event id) does not enter a `re_entry: never` journey again."""
    with running(redis_url, tmp_path, [WELCOME]) as h:
        customer(h, "c1")
        h.api.track("c1", "signup")
        h.settle()
        h.tick(days=3)
        h.api.track("c1", "signup")
        h.settle()
        assert h.stats("welcome")["_journey:entered"] == 1 and len(h.outbox()) == 2


def test_holdout_members_are_counted_but_never_messaged(redis_url: str, tmp_path: Path) -> None:
    """With a 100% holdout every customer enters and is counted, and the outbox stays empty."""
    held = journey({**WELCOME.model_dump(by_alias=True, exclude={"version"}), "id": "held", "holdout": 100})
    with running(redis_url, tmp_path, [held]) as h:
        for n in range(5):
            customer(h, f"c{n}")
            h.api.track(f"c{n}", "signup")
        h.settle()
        h.tick(days=3)
        stats = h.stats("held")
        assert stats["_journey:entered"] == 5 and stats["_journey:holdout"] == 5 and stats["hello:holdout"] == 5
        assert h.outbox() == []


def test_a_redelivered_deliver_message_does_not_send_twice(redis_url: str, tmp_path: Path) -> None:
    """Replaying the deliver nudge (and a stale timer) after the send leaves one message in the outbox."""
    with running(redis_url, tmp_path, [WELCOME]) as h:
        customer(h, "c1")
        h.api.track("c1", "signup")
        h.settle()
        (run_id,) = h.runtime.store.live_runs("c1")
        stored = h.runtime.store.get_enrollment("c1", run_id)
        assert stored is not None
        for revision in range(0, stored.enrollment.revision + 1):
            h.actors.deliver.send("c1", run_id, revision)
            if revision < stored.enrollment.revision:  # the current one is the real 2-day wait
                h.actors.fire_timers.send([f"c1|{run_id}|{revision}"])
        h.settle()
        assert len(h.outbox()) == 1


def test_a_send_claimed_by_a_dead_worker_is_re_driven_by_its_lease_timer(redis_url: str, tmp_path: Path) -> None:
    """A run left in `sending` with no deliver message is finished by the send-lease timer."""
    with running(redis_url, tmp_path, [WELCOME]) as h:
        customer(h, "c1")
        h.runtime.dispatcher = None  # deliver inline…
        h.runtime.deliver = lambda *args: "lost"  # type: ignore[method-assign]  # …and lose it, like a SIGKILL
        h.runtime.deliver_many = lambda items: None  # type: ignore[method-assign]  # (a drained batch's sends too)
        h.api.track("c1", "signup")
        h.settle()
        assert h.outbox() == []
        del h.runtime.deliver, h.runtime.deliver_many
        h.tick(seconds=h.runtime.send_lease + 1)
        assert [m["step_id"] for m in h.outbox()] == ["hello"]


def test_editing_a_journey_lets_in_flight_runs_finish_on_their_version(redis_url: str, tmp_path: Path) -> None:
    """A run that entered on v1 keeps v1's steps after v2 (which drops the second e-mail) goes live."""
    with running(redis_url, tmp_path, [WELCOME]) as h:
        customer(h, "old")
        h.api.track("old", "signup")
        h.settle()
        edited = journey(
            {
                **WELCOME.model_dump(by_alias=True, exclude={"version"}),
                "steps": WELCOME.model_dump(by_alias=True)["steps"][:1],
            }
        )
        assert edited.version != WELCOME.version
        from orchestrator.runtime.journey_book import JourneyBook

        h.runtime.journeys = JourneyBook(h.runtime.store, {"welcome": edited})
        customer(h, "new")
        h.api.track("new", "signup")
        h.settle()
        h.tick(days=3)
        assert sorted((m["customer_id"], m["step_id"]) for m in h.outbox()) == [
            ("new", "hello"),
            ("old", "hello"),
            ("old", "tips"),
        ]


def test_a_short_wait_fires_on_time_while_thousands_of_long_waits_are_pending(redis_url: str, tmp_path: Path) -> None:
    """3,000 customers wait 60 days; one waits a day: it is sent after a day, the others are untouched."""
    with running(redis_url, tmp_path, [CART]) as h:
        long_wait = h.clock() + __import__("datetime").timedelta(days=60)
        h.runtime.timers.schedule_many((f"x{i}", f"r{i}", 1, long_wait.timestamp()) for i in range(3000))
        customer(h, "c1")
        h.api.track("c1", "cart.abandoned")
        h.settle()
        h.tick(days=1, seconds=1)
        assert [m["customer_id"] for m in h.outbox()] == ["c1"]
        assert h.runtime.timers.pending() == 3000


def test_metrics_count_events_entries_and_sends_without_personal_labels(redis_url: str, tmp_path: Path) -> None:
    """Prometheus counters move with the work; their labels name journeys and channels, never people."""
    from prometheus_client import REGISTRY

    def value(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (
        value("loyaloop_events_total", outcome="handled"),
        value("loyaloop_enrollments_total", journey="welcome"),
        value("loyaloop_sends_total", journey="welcome", channel="email", outcome="sent"),
    )
    with running(redis_url, tmp_path, [WELCOME]) as h:
        customer(h, "c1")
        h.api.track("c1", "signup")
        h.settle()
    after = (
        value("loyaloop_events_total", outcome="handled"),
        value("loyaloop_enrollments_total", journey="welcome"),
        value("loyaloop_sends_total", journey="welcome", channel="email", outcome="sent"),
    )
    assert [b - a for a, b in zip(before, after, strict=True)] == [1, 1, 1]
    exposed = "".join(
        f"{sample.labels}"
        for metric in REGISTRY.collect()
        if metric.name.startswith("loyaloop")
        for sample in metric.samples
    )
    assert "c1" not in exposed and "@" not in exposed


def test_a_malformed_message_is_counted_and_the_worker_keeps_going(redis_url: str, tmp_path: Path) -> None:
    """A handle_event message with a broken timestamp is refused and counted; the next one works."""
    with running(redis_url, tmp_path, [WELCOME]) as h:
        customer(h, "c1")
        h.actors.handle_event.send("c1", "signup", {}, "bad-1", "not a time")
        h.api.track("c1", "signup")
        h.settle()
        assert h.runtime.store.refused_counts() == {"message:event:InputError": 1}
        assert [m["step_id"] for m in h.outbox()] == ["hello"]


VIP = journey(
    {
        "id": "vip_wait",
        "name": "VIP wait",
        "trigger": {"event": "signup"},
        "goals": [{"if": "profile.tier | default('') == 'gold'"}],
        "steps": [{"id": "pause", "wait": "3d"}, {"id": "nudge", "send": "email", "template": "hello"}],
    }
)


def test_identify_can_reach_a_profile_goal_and_end_the_wait(redis_url: str, tmp_path: Path) -> None:
    """A profile-condition goal converts the run as soon as identify makes it true."""
    with running(redis_url, tmp_path, [VIP]) as h:
        customer(h, "c1")
        h.api.track("c1", "signup")
        h.settle()
        h.api.identify("c1", {"tier": "gold"})
        h.settle()
        assert h.stats("vip_wait")["_journey:converted"] == 1 and h.runtime.timers.pending() == 0
        h.tick(days=4)
        assert h.outbox() == []
