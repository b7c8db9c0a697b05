"""The fatigue gate inside the running system: a journey's own cap rules, and journey priority
deciding which of one customer's simultaneous sends takes the last free slot."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.journey import Journey
from tests.orchestrator.harness import Harness, journey, running


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
