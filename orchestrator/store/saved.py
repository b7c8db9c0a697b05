"""What ``action`` steps keep for a run (``save_as``): the endpoint's JSON answer, read by later templates.

Kept beside the run rather than in it (the run's compact record stays small for the millions of
waiting customers), in the customer's own hash-tagged key, and dropped a while after the last
write: a run that ended has no later template to serve.
"""

from __future__ import annotations

import json
from typing import Any

import redis

from orchestrator.store import keys

#: Seconds a customer's saved answers outlive their last write (longer than any journey's waits).
SAVED_TTL = 400 * 86_400


class SavedResponses:
    def __init__(self, client: redis.Redis) -> None:
        self.redis: Any = client

    def save(self, customer_id: str, run_id: str, name: str, data: Any, pipe: Any = None) -> None:
        target = pipe if pipe is not None else self.redis.pipeline(transaction=False)
        target.hset(keys.saved_responses(customer_id), f"{run_id}:{name}", json.dumps(data, separators=(",", ":")))
        target.expire(keys.saved_responses(customer_id), SAVED_TTL)
        if pipe is None:
            target.execute()

    def for_run(self, customer_id: str, run_id: str) -> dict[str, Any]:
        """The run's saved answers by name."""
        prefix = f"{run_id}:"
        return {
            field[len(prefix) :]: json.loads(value)
            for field, value in self.redis.hgetall(keys.saved_responses(customer_id)).items()
            if field.startswith(prefix)
        }
