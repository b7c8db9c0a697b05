"""What a channel is handed and what it hands back: the contract between engine and plugins."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable


@dataclass(frozen=True)
class Message:
    """One rendered message for one customer on one channel.

    ``idempotency_key`` is ``{run_id}:{step_id}`` (plus the channel for fallbacks); channels pass it
    to the provider where the provider supports it and the outbox uses it to refuse duplicates.
    """

    idempotency_key: str
    channel: str
    customer_id: str
    journey_id: str
    step_id: str
    run_id: str
    category: str
    locale: str
    to: str
    body: str
    subject: str | None = None
    html: str | None = None
    title: str | None = None
    data: dict[str, str] = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    metadata: dict[str, str] = field(default_factory=dict)
    categories: tuple[str, ...] = ()


@dataclass(frozen=True)
class Receipt:
    """Proof of hand-off: the provider's message id and anything worth reporting (SMS segments)."""

    channel: str
    provider: str
    provider_message_id: str
    details: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Channel(Protocol):
    """A delivery channel.  Register one with the ``loyaloop_register_channels`` hook.

    ``address_field`` names the profile field it sends to (``email``, ``phone``, ``push_token``);
    ``consent_key`` names the consent entry that must be true for marketing messages.  ``send``
    returns a :class:`Receipt` or raises ``TransientError`` / ``PermanentError``; it never
    returns a failure value.
    """

    name: str
    address_field: str
    consent_key: str

    def send(self, message: Message) -> Receipt: ...
