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


# --- SMS segments -------------------------------------------------------------------------------

GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENSION = frozenset("\f^{}\\[~]|€")


def sms_segments(text: str) -> tuple[str, int]:
    """``("GSM-7" | "UCS-2", segments)`` as carriers count them.

    GSM-7 fits 160 septets in one SMS and 153 per part when split (extension characters such as
    ``€`` take two septets and are never split across parts); one character outside GSM-7 turns
    the whole message into UCS-2: 70 UTF-16 units in one SMS, 67 per part.
    """
    if not text:
        return ("GSM-7", 0)
    if all(char in GSM7_BASIC or char in GSM7_EXTENSION for char in text):
        sizes = [2 if char in GSM7_EXTENSION else 1 for char in text]
        return ("GSM-7", _pack(sizes, single=160, multi=153))
    sizes = [len(char.encode("utf-16-le")) // 2 for char in text]
    return ("UCS-2", _pack(sizes, single=70, multi=67))


def _pack(sizes: list[int], *, single: int, multi: int) -> int:
    if sum(sizes) <= single:
        return 1
    segments, used = 1, 0
    for size in sizes:
        if used + size > multi:
            segments += 1
            used = 0
        used += size
    return segments


@dataclass(frozen=True)
class ActionCall:
    """What an ``action`` step asks of one of the shop's endpoints.

    ``idempotency_key`` is the run and step (stable across retries and workers): an endpoint that
    honours it credits a reward once however often the call is repeated.  ``body`` is the
    rendered JSON object.
    """

    endpoint: str
    idempotency_key: str
    customer_id: str
    journey_id: str
    step_id: str
    run_id: str
    body: dict[str, Any]


@dataclass(frozen=True)
class ActionReply:
    """The endpoint's answer: its HTTP-like ``status`` and, when it sent JSON, the decoded ``data``
    (kept on the run when the step says ``save_as``)."""

    status: int
    data: Any = None


@runtime_checkable
class ActionKind(Protocol):
    """How one ``kind`` of endpoint is called (``webhook`` is built in).  Register one with the
    ``loyaloop_register_action_kinds`` hook.  ``call`` returns an :class:`ActionReply` for a
    success or raises ``TransientError`` (retried with back-off, honouring ``retry_after``) /
    ``PermanentError`` (recorded as failed).  ``config`` is the endpoint's entry in settings
    (``kind``, ``url_env``, ``secret_env``, ``timeout``, … and any field the kind documents)."""

    name: str

    def call(self, call: ActionCall, config: dict[str, Any]) -> ActionReply: ...
