"""Messages for channel tests: one valid message per channel, overridable field by field."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from orchestrator.message import Message

_BASE = Message(
    idempotency_key="run-1:welcome_email",
    channel="email",
    customer_id="cust-1",
    journey_id="welcome",
    step_id="welcome_email",
    run_id="run-1",
    category="marketing",
    locale="en",
    to="jane@example.com",
    body="Welcome aboard, Jane.",
    subject="Welcome to Loyaloop",
    html="<p>Welcome aboard, Jane.</p>",
)


def email(**changes: Any) -> Message:
    return replace(_BASE, **changes)


def sms(**changes: Any) -> Message:
    values: dict[str, Any] = {
        "channel": "sms",
        "to": "+31612345678",
        "subject": None,
        "html": None,
        "body": "Welcome aboard!",
        "idempotency_key": "run-1:welcome_sms",
        "step_id": "welcome_sms",
    }
    return replace(_BASE, **{**values, **changes})


def push(**changes: Any) -> Message:
    values: dict[str, Any] = {
        "channel": "push",
        "to": "device-token-abc123",
        "subject": None,
        "html": None,
        "title": "Welcome",
        "body": "Your first reward is waiting",
        "data": {"screen": "rewards"},
        "idempotency_key": "run-1:welcome_push",
        "step_id": "welcome_push",
    }
    return replace(_BASE, **{**values, **changes})
