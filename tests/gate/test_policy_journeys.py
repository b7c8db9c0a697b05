"""The fatigue gate inside the running system: a journey's own cap rules, and journey priority
deciding which of one customer's simultaneous sends takes the last free slot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from orchestrator.language.journey import Journey
from orchestrator.store.timers import Timer
from orchestrator.workers.scheduler import customer_chunks
from tests.runtime.harness import Harness, journey, running


def _customer(h: Harness, cid: str = "c1") -> None:
    h.api.identify(
        cid,
        {
            "email": f"{cid}@example.com",
            "phone": "+31612345678",
            "timezone": "Europe/Amsterdam",
            "consent": {"email": True, "sms": True},
        },
    )


def _mailer(journey_id: str, event: str, steps: int, **extra: Any) -> Journey:
    return journey(
        {
            "id": journey_id,
            "name": journey_id.title(),
            "trigger": {"event": event},
            "steps": [{"id": f"mail{n}", "send": "email", "template": "hello"} for n in range(1, steps + 1)],
            **extra,
        }
    )


def test_a_journeys_caps_replace_the_settings_caps_for_its_own_sends_only(redis_url: str, tmp_path: Path) -> None:
    """Settings allow one e-mail a day; a journey allowing three sends both its e-mails, and a plain
    journey's e-mail the same day is still capped by the settings' rule (the override does not leak),
    while a journey whose override is ``max: 0`` sends nothing even to a customer with an empty log."""
    generous = _mailer("generous", "signup", 2, caps=[{"channel": "email", "window": "24h", "max": 3}])
    plain = _mailer("plain", "app.opened", 1)
    silent = _mailer("silent", "signup", 1, caps=[{"channel": "any", "window": "7d", "max": 0}])
    settings = {"caps": [{"channel": "email", "window": "24h", "max": 1}]}
    with running(redis_url, tmp_path, [generous, plain, silent], settings=settings) as h:
        _customer(h, "c1")
        h.api.track("c1", "signup")
        h.settle()
        h.clock.advance(hours=1)
        h.api.track("c1", "app.opened")
        h.settle()
        sent = [(m["journey_id"], m["customer_id"]) for m in h.outbox()]
        assert sent.count(("generous", "c1")) == 2
        assert ("plain", "c1") not in sent and ("silent", "c1") not in sent
        assert h.stats("generous")["mail1:sent:email"] == 1 and h.stats("generous")["mail2:sent:email"] == 1
        assert h.stats("plain")["mail1:capped:email"] == 1
        assert h.stats("silent")["mail1:capped:email"] == 1
        # A fresh customer: the plain journey's first e-mail of the day goes out under the settings' rule.
        _customer(h, "c2")
        h.api.track("c2", "app.opened")
        h.settle()
        assert ("plain", "c2") in [(m["journey_id"], m["customer_id"]) for m in h.outbox()]


def _racer(journey_id: str, priority: int, channel: str, wait: bool) -> Journey:
    steps: list[dict[str, Any]] = [{"id": "pause", "wait": "1h"}] if wait else []
    steps.append({"id": "offer", "send": channel, "template": "hello"})
    return journey(
        {"id": journey_id, "name": journey_id.title(), "trigger": {"event": "signup"}, "priority": priority,
         "steps": steps}
    )  # fmt: skip


@pytest.mark.parametrize("high_first", [True, False], ids=["high-written-first", "low-written-first"])
@pytest.mark.parametrize(
    ("channel", "wait", "settings"),
    [
        ("email", True, {}),
        ("sms", False, {"quiet_hours": {"sms": "21:00-08:00"}}),
    ],
    ids=["waits-end-together", "quiet-hours-release-together"],
)
def test_the_higher_priority_journey_takes_the_one_free_slot_whatever_the_order(
    redis_url: str, tmp_path: Path, high_first: bool, channel: str, wait: bool, settings: dict[str, Any]
) -> None:
    """Two journeys' sends for one customer come due at the same moment (their waits end together,
    or quiet hours hold both until 08:00) and the cap allows one: the priority-90 journey's message
    goes out and the priority-10 one is capped, for every customer, whichever journey's timer was
    written first (the low one's id also sorts first, so only priority can decide)."""
    high = _racer("zeta", 90, channel, wait)
    low = _racer("alpha", 10, channel, wait)
    caps = {"caps": [{"channel": "any", "window": "24h", "max": 1}]}
    customers = [f"c{n}" for n in range(6)]
    with running(redis_url, tmp_path, [high, low] if high_first else [low, high], settings={**caps, **settings}) as h:
        if not wait:
            h.clock.advance(hours=11)  # 21:00 UTC = 22:00 in Amsterdam: quiet on sms
        for cid in customers:
            _customer(h, cid)
            h.api.track(cid, "signup")
        h.settle()
        assert h.outbox() == []
        h.tick(hours=1) if wait else h.tick(hours=10)  # 08:00 in Amsterdam
        sent = sorted((m["customer_id"], m["journey_id"]) for m in h.outbox())
        assert sent == [(cid, "zeta") for cid in customers]
        assert h.stats("alpha")[f"offer:capped:{channel}"] == len(customers)
        assert f"offer:capped:{channel}" not in h.stats("zeta")


def test_scheduler_chunks_never_split_one_customers_due_timers() -> None:
    """Chunks stay near the size asked for, but a customer's timers of a claim travel together
    (one worker fires them in priority order), in the order customers first came due."""
    due = [Timer(cid, f"r{n}", 1, 100.0 + n, 0) for n, cid in enumerate(["a", "b", "a", "c", "b", "c", "d"])]
    chunks = [[(t.customer_id, t.run_id) for t in chunk] for chunk in customer_chunks(due, 3)]
    assert chunks == [[("a", "r0"), ("a", "r2")], [("b", "r1"), ("b", "r4")], [("c", "r3"), ("c", "r5"), ("d", "r6")]]
    big = [Timer("a", f"r{n}", 1, 100.0, 0) for n in range(5)]
    assert [len(chunk) for chunk in customer_chunks(big, 2)] == [5]
