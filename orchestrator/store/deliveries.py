"""Delivery claims and provider message ids: a send is claimed with a lease before a channel is called."""

from __future__ import annotations

from typing import Any

from orchestrator.engine.enrollment import DeliveryOutcomeName
from orchestrator.store import keys
from orchestrator.store.base import StoreBase
from orchestrator.store.codec import Claim
from orchestrator.store.scripts import PROVIDER_ID_TTL


class DeliveryStore(StoreBase):
    """Claims, outcomes and attempts of sends, and the provider ids that point back at them."""

    def claim_delivery(self, customer_id: str, idempotency_key: str, *, now: float, lease: float) -> Claim:
        """Claim a send before calling the channel.  ``done`` carries the earlier outcome; ``busy``
        the lease expiry of another worker's claim.  An expired claim is taken over (the worker
        holding it died); channels pass the idempotency key on so the provider drops a repeat."""
        result = str(self._script("claim", [keys.delivered(customer_id)], [idempotency_key, repr(now), repr(lease)]))
        if result == "claimed":
            return "claimed", ""
        kind, _, rest = result.partition(":")
        return ("done", rest) if kind == "done" else ("busy", rest)

    def finish_delivery(
        self, customer_id: str, idempotency_key: str, outcome: DeliveryOutcomeName, pipe: Any = None
    ) -> None:
        (pipe or self.redis).hset(keys.delivered(customer_id), idempotency_key, f"done:{outcome}")

    def release_delivery(self, customer_id: str, idempotency_key: str) -> None:
        """Give a claim back without sending (quiet hours, retry later)."""
        self.redis.hdel(keys.delivered(customer_id), idempotency_key)

    def delivery_attempt(self, customer_id: str, idempotency_key: str) -> int:
        """Count one more transient failure of this send; returns the count so far."""
        return int(self.redis.hincrby(keys.delivered(customer_id), f"{idempotency_key}#attempts", 1))

    def remember_provider_message(
        self,
        provider_message_id: str,
        *,
        customer_id: str,
        run_id: str,
        step_id: str,
        channel: str,
        key: str,
        pipe: Any = None,
    ) -> None:
        """Map a provider's message id back to the send, for status webhooks."""
        mapping = {"customer_id": customer_id, "run_id": run_id, "step_id": step_id, "channel": channel}
        mapping["idempotency_key"] = key
        target = pipe if pipe is not None else self.redis.pipeline(transaction=False)
        target.hset(keys.message(provider_message_id), mapping=mapping)
        target.expire(keys.message(provider_message_id), PROVIDER_ID_TTL)
        if pipe is None:
            target.execute()

    def lookup_provider_message(self, provider_message_id: str) -> dict[str, str] | None:
        """Customer, run, step, channel and idempotency key of a provider's message id."""
        found = self.redis.hgetall(keys.message(provider_message_id))
        return dict(found) if found else None
