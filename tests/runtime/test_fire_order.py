"""Firing a batch of due timers: each customer's timers in (due, priority, journey, step) order,
read with one pipelined round trip, and a malformed member never holds up the rest."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.engine.run_ids import date_timer_run
from orchestrator.language.journey import Journey
from orchestrator.runtime.fire_order import due_order, fresh_profile
from orchestrator.workers.actors import fire_claimed
from tests.runtime.harness import journey, running


def _waiter(journey_id: str, priority: int, wait: str) -> Journey:
    return journey(
        {"id": journey_id, "name": journey_id, "trigger": {"event": "signup"}, "priority": priority,
         "steps": [{"id": "pause", "wait": wait}, {"id": "offer", "send": "email", "template": "hello"}]}
    )  # fmt: skip


def test_due_order_sorts_each_customer_by_due_then_priority_then_journey(redis_url: str, tmp_path: Path) -> None:
    """Customers keep their first-seen order; within one, the earlier due time comes first, then the
    higher priority, then the journey id; a date-entry pseudo run (no enrollment) comes last."""
    flows = [
        _waiter("alpha", 10, "1h"),
        _waiter("beta", 90, "1h"),
        _waiter("gamma", 10, "1h"),
        _waiter("early", 0, "30m"),
    ]
    with running(redis_url, tmp_path, flows) as h:
        for cid in ("c1", "c2"):
            h.api.identify(cid, {"email": f"{cid}@example.com", "consent": {"email": True}})
            h.api.track(cid, "signup")
        h.settle()
        h.clock.advance(hours=2)
        claimed = h.runtime.timers.claim_due(h.clock().timestamp())
        pseudo = ("c1", date_timer_run("alpha", 2026), 0)
        batch = [pseudo, *reversed([(t.customer_id, t.run_id, t.revision) for t in claimed])]
        ordered = due_order(h.runtime, batch)
    assert [(t.customer_id, t.journey_id) for t in ordered] == [
        ("c1", "early"), ("c1", "beta"), ("c1", "alpha"), ("c1", "gamma"), ("c1", "alpha"),
        ("c2", "early"), ("c2", "beta"), ("c2", "alpha"), ("c2", "gamma"),
    ]  # fmt: skip
    assert ordered[4].run_id == pseudo[1] and ordered[0].step_id == "pause"


def test_a_malformed_member_is_counted_and_the_rest_of_the_batch_fires(redis_url: str, tmp_path: Path) -> None:
    """A fire_timers message with one unreadable member still fires and acknowledges the others;
    the message is counted as malformed once."""
    with running(redis_url, tmp_path, [_waiter("alpha", 50, "1h")]) as h:
        h.api.identify("c1", {"email": "c1@example.com", "consent": {"email": True}})
        h.api.track("c1", "signup")
        h.settle()
        h.clock.advance(hours=1, minutes=1)
        members = [t.member for t in h.runtime.timers.claim_due(h.clock().timestamp())]
        h.actors.fire_timers.send(["no separators", *members])
        h.settle()
        assert [m["journey_id"] for m in h.outbox()] == ["alpha"]
        assert h.runtime.store.refused_counts() == {"message:timers:InputError": 1}
        assert h.runtime.timers.leased() == 0


def test_a_run_read_before_it_moved_fires_nothing_twice(redis_url: str, tmp_path: Path) -> None:
    """A fired timer reuses the run its batch read; when that read is out of date (the run moved
    since), the compare-and-set finds out and the timer is stale: no second message."""
    with running(redis_url, tmp_path, [_waiter("alpha", 50, "1h")]) as h:
        h.api.identify("c1", {"email": "c1@example.com", "consent": {"email": True}})
        h.api.track("c1", "signup")
        h.settle()
        h.clock.advance(hours=1, minutes=1)
        (timer,) = h.runtime.timers.claim_due(h.clock().timestamp())
        read = h.runtime.store.get_enrollment("c1", timer.run_id)
        assert read is not None and read.enrollment.revision == timer.revision
        assert h.runtime.fire_timer("c1", timer.run_id, timer.revision, read=read) == "advanced"
        assert h.runtime.fire_timer("c1", timer.run_id, timer.revision, read=read) == "stale"
        h.settle()
        assert [m["journey_id"] for m in h.outbox()] == ["alpha"]


def test_a_batch_decides_on_the_profiles_it_read_until_one_is_written(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's one read brings the profiles too: a customer's first timer decides on it without
    reading it again; their next timer, after a decision that updated the profile, reads it afresh
    (the branch sees ``tier`` the first journey just set)."""
    promote = journey(
        {"id": "promote", "name": "promote", "trigger": {"event": "signup"}, "priority": 90,
         "steps": [{"id": "pause", "wait": "1h"}, {"id": "gold", "update": {"set": {"tier": "gold"}}}]}
    )  # fmt: skip
    greet = journey(
        {"id": "greet", "name": "greet", "trigger": {"event": "signup"}, "priority": 10,
         "steps": [{"id": "pause", "wait": "1h"},
                   {"id": "which", "branch": [{"if": "profile.tier == 'gold'", "goto": "vip"}], "else": "plain"},
                   {"id": "vip", "send": "email", "template": "tips"}, {"id": "stop", "exit": True},
                   {"id": "plain", "send": "email", "template": "hello"}]}
    )  # fmt: skip
    with running(redis_url, tmp_path, [promote, greet, _waiter("alpha", 50, "1h")]) as h:
        for cid in ("c1", "c2"):
            h.api.identify(cid, {"email": f"{cid}@example.com", "consent": {"email": True}})
        h.api.track("c1", "signup")
        h.api.track("c2", "signup")
        h.settle()
        h.clock.advance(hours=1, minutes=1)
        reads: list[str] = []
        real = h.runtime.store.get_profile
        monkeypatch.setattr(h.runtime.store, "get_profile", lambda cid: reads.append(cid) or real(cid))
        claimed = [(t.customer_id, t.run_id, t.revision) for t in h.runtime.timers.claim_due(h.clock().timestamp())]
        c1 = [member for member in claimed if member[0] == "c1"]
        ordered = due_order(h.runtime, c1)
        assert [t.journey_id for t in ordered] == ["promote", "alpha", "greet"]
        assert all(t.profile is not None and t.profile.id == "c1" for t in ordered)
        fire_claimed(h.runtime, c1)
        h.settle()
        # promote fired on the profile the batch read; alpha and greet came after it: read again.
        assert reads.count("c1") == 2
        sent = {(m["journey_id"], m["step_id"]) for m in h.outbox() if m["customer_id"] == "c1"}
        assert sent == {("alpha", "offer"), ("greet", "vip")}
        # c2: its first timer may reuse the read profile, until anything writes a profile.
        first = due_order(h.runtime, [member for member in claimed if member[0] == "c2"])[0]
        assert fresh_profile(h.runtime, first, set()) is first.profile is not None
        assert fresh_profile(h.runtime, first, {"c2"}) is None
        h.runtime.store.update_profile("c1", {"seen": True}, {})
        assert fresh_profile(h.runtime, first, set()) is None
