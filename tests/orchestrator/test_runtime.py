"""The runtime end to end on a real Redis with real Dramatiq worker threads and the outbox channel."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.orchestrator.harness import Harness, journey, running

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
