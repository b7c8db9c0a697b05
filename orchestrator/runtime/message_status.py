"""Delivery status of sent messages, as providers report it through webhooks.

Providers report out of order and more than once (an ``open`` may arrive before its
``delivered``), so the status only moves forward: a later report of a lower rank is kept as its own
``<status>_at`` time but does not overwrite a higher status.  One Lua call per report keeps that
true however many HTTP workers receive webhooks at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import redis

from orchestrator.store import Store, keys, lua

#: Normalised statuses and their rank: a status only replaces one of lower or equal rank.
RANKS: dict[str, int] = {
    "accepted": 1,
    "sent": 1,
    "deferred": 2,
    "delivered": 3,
    "read": 4,
    "opened": 4,
    "clicked": 5,
    "undelivered": 6,
    "failed": 6,
    "dropped": 6,
    "bounced": 6,
    "spam_reported": 7,
    "unsubscribed": 7,
}
#: Status hashes are kept as long as the runtime keeps the provider id mapping.
STATUS_TTL = 30 * 86400

#: ``message_status.record.lua``: one report, recorded so the status only moves forward.
_RECORD = lua.source(__name__, "record")


@dataclass(frozen=True)
class MessageRef:
    """Whose message a provider is reporting on."""

    customer_id: str
    run_id: str
    step_id: str
    channel: str
    idempotency_key: str


class StatusBook:
    """Reads the provider-id index and writes message statuses."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._store = Store(client)
        self._record = client.register_script(_RECORD)

    def lookup(self, provider_message_id: str) -> MessageRef | None:
        """The message the runtime recorded under a provider's id, or None if unknown or expired."""
        found = self._store.lookup_provider_message(provider_message_id)
        if not found or not found.get("customer_id"):
            return None
        run_id, step_id = found.get("run_id", ""), found.get("step_id", "")
        key = found.get("idempotency_key") or f"{run_id}:{step_id}"
        return MessageRef(found["customer_id"], run_id, step_id, found.get("channel", ""), key)

    def record(self, idempotency_key: str, status: str, at: float) -> str:
        """Note ``status`` at epoch ``at``; returns the message's status afterwards."""
        rank = RANKS[status]
        result = self._record(keys=[keys.message_status(idempotency_key)], args=[status, rank, f"{at:.3f}", STATUS_TTL])
        return result.decode() if isinstance(result, bytes) else str(result)

    def status(self, idempotency_key: str) -> dict[str, str]:
        """Everything recorded for a message (``status`` and each ``<status>_at``)."""
        raw = self._client.hgetall(keys.message_status(idempotency_key))
        return {
            (k.decode() if isinstance(k, bytes) else str(k)): (v.decode() if isinstance(v, bytes) else str(v))
            for k, v in raw.items()
        }
