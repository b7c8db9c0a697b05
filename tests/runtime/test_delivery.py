"""Sends through the gate and channels on a real Redis: retries, permanent failures, fallbacks,
quiet hours and caps, each ending in one clear outcome per step."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from orchestrator.engine.enrollment import Delivered
from orchestrator.errors import PermanentError, TransientError
from orchestrator.gate import consent
from orchestrator.message import Message, Receipt
from orchestrator.runtime.attempts import AttemptResult
from tests.runtime.harness import START, Harness, journey, running

SMS_THEN_EMAIL = journey(
    {
        "id": "nudge",
        "name": "Nudge",
        "trigger": {"event": "signup"},
        "steps": [{"id": "text", "send": "sms", "template": "hello", "fallback": ["email"]}],
    }
)


@dataclass
class Scripted:
    """A channel that fails as told, then accepts (records what it accepted)."""

    name: str
    failures: list[Exception]
    address_field: str = "phone"
    consent_key: str = "sms"
    accepted: list[Message] = field(default_factory=list)

    def send(self, message: Message) -> Receipt:
        if self.failures:
            raise self.failures.pop(0)
        self.accepted.append(message)
        return Receipt(channel=self.name, provider="scripted", provider_message_id=f"m-{len(self.accepted)}")


def _customer(h: Harness, cid: str = "c1", **extra: Any) -> None:
    attrs: dict[str, Any] = {
        "email": f"{cid}@example.com",
        "phone": "+31612345678",
        "timezone": "Europe/Amsterdam",
        "consent": {"email": True, "sms": True},
    }
    attrs.update(extra)
    h.api.identify(cid, attrs)


def test_a_transient_failure_is_retried_on_a_timer_and_sent_once(redis_url: str, tmp_path: Path) -> None:
    """Two 429s, then success: one message, two retries counted, the run completes."""
    with running(redis_url, tmp_path, [SMS_THEN_EMAIL]) as h:
        sms = Scripted("sms", [TransientError("429", retry_after=30), TransientError("503")])
        h.runtime.delivery.channels["sms"] = sms
        _customer(h)
        h.api.track("c1", "signup")
        h.settle()
        assert sms.accepted == []
        for _ in range(4):
            h.tick(minutes=10)
        assert len(sms.accepted) == 1
        stats = h.stats("nudge")
        assert stats["text:retry:sms"] == 2 and stats["text:sent:sms"] == 1 and stats["_journey:completed"] == 1
        assert h.runtime.store.lookup_provider_message("m-1") is not None


def test_a_permanent_failure_withdraws_consent_and_falls_back_to_email(redis_url: str, tmp_path: Path) -> None:
    """Twilio 21610 (customer replied STOP): SMS consent withdrawn, the e-mail fallback goes out."""
    with running(redis_url, tmp_path, [SMS_THEN_EMAIL]) as h:
        sms = Scripted("sms", [PermanentError("unsubscribed", withdraw_consent=True, code="21610")])
        h.runtime.delivery.channels["sms"] = sms
        _customer(h)
        h.api.track("c1", "signup")
        h.settle()
        assert [m["channel"] for m in h.outbox()] == ["email"]
        profile = h.runtime.store.get_profile("c1")
        assert profile is not None and profile.consent["sms"] is False
        assert consent.consent_history(h.client, "c1")[-1] | {"at": ""} == {
            "channel": "sms",
            "granted": "0",
            "source": "provider",
            "at": "",
        }
        assert h.stats("nudge")["text:failed:sms"] == 1


def test_no_address_on_any_channel_records_undeliverable_and_the_journey_goes_on(
    redis_url: str, tmp_path: Path
) -> None:
    """Neither a phone nor an e-mail: the step is undeliverable and the run completes."""
    with running(redis_url, tmp_path, [SMS_THEN_EMAIL]) as h:
        h.api.identify("c1", {"consent": {"email": True, "sms": True}})
        h.api.track("c1", "signup")
        h.settle()
        stats = h.stats("nudge")
        assert h.outbox() == [] and stats["text:undeliverable"] == 1 and stats["_journey:completed"] == 1


def test_quiet_hours_defer_a_text_to_the_morning_in_the_customers_zone(redis_url: str, tmp_path: Path) -> None:
    """A text due at 22:00 Amsterdam time waits until 08:00 there, then goes out once."""
    only_sms = journey({**SMS_THEN_EMAIL.model_dump(by_alias=True, exclude={"version"}), "id": "late"})
    only_sms = journey(
        {
            **only_sms.model_dump(by_alias=True, exclude={"version"}),
            "steps": [{"id": "text", "send": "sms", "template": "hello"}],
        }
    )
    with running(redis_url, tmp_path, [only_sms], settings={"quiet_hours": {"sms": "21:00-08:00"}}) as h:
        h.clock.advance(hours=11)  # 21:00 UTC = 22:00 in Amsterdam
        _customer(h)
        h.api.track("c1", "signup")
        h.settle()
        assert h.outbox() == [] and h.stats("late")["text:deferred"] == 1
        h.tick(hours=9)  # 06:00 UTC = 07:00 Amsterdam: still quiet
        assert h.outbox() == []
        h.tick(hours=1, minutes=1)  # 08:01 in Amsterdam
        sent = h.outbox()
        assert [m["channel"] for m in sent] == ["sms"]


def test_a_capped_send_is_skipped_and_recorded(redis_url: str, tmp_path: Path) -> None:
    """One marketing e-mail a day: the second journey's e-mail the same day is capped, not sent."""
    first = journey(
        {"id": "first", "name": "First", "trigger": {"event": "signup"}, "priority": 90,
         "steps": [{"id": "mail", "send": "email", "template": "hello"}]}
    )  # fmt: skip
    second = journey(
        {"id": "second", "name": "Second", "trigger": {"event": "app.opened"},
         "steps": [{"id": "mail", "send": "email", "template": "tips"}]}
    )  # fmt: skip
    caps = {"caps": [{"channel": "email", "window": "24h", "max": 1}]}
    with running(redis_url, tmp_path, [first, second], settings=caps) as h:
        _customer(h)
        h.api.track("c1", "signup")
        h.settle()
        h.clock.advance(hours=1)
        h.api.track("c1", "app.opened")
        h.settle()
        assert [m["journey_id"] for m in h.outbox()] == ["first"]
        assert h.stats("second")["mail:capped:email"] == 1
        h.clock.advance(days=1, hours=1)
        h.api.track("c1", "app.opened")  # a new event id: re-entry "never" keeps the second one out
        h.settle()
        assert len(h.outbox()) == 1
        assert h.runtime.store.stats("second")["_journey:entered"] == 1


def test_only_a_decided_attempt_becomes_the_engines_signal() -> None:
    """A final outcome becomes ``Delivered``; one still to be retried (``retry``, ``busy``,
    ``rate_limited``, a deferral with its time) is refused, naming the outcome."""
    assert AttemptResult("sent", "email").delivered("hello") == Delivered("hello", "sent", "email")
    assert AttemptResult("undeliverable").delivered("hello") == Delivered("hello", "undeliverable", None)
    for waiting in ("retry", "busy", "rate_limited", "deferred"):
        with pytest.raises(ValueError, match=repr(waiting)):
            AttemptResult(waiting, "sms", retry_at=START).delivered("hello")
