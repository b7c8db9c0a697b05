"""The yardstick: ``dramatiq tests.benchmarks.noop_worker`` runs an actor that does nothing.

Same broker class, same Redis, same process and thread counts as ``orchestrator.worker`` in the
same run, so "x times the bare per-message rate" compares Loyaloop with Dramatiq's own floor.
"""

from __future__ import annotations

import os

import dramatiq
from dramatiq.brokers.redis import RedisBroker

NAMESPACE = "loyaloop-noop"
QUEUE = "noop"

broker = RedisBroker(url=os.environ["REDIS_URL"], namespace=NAMESPACE)  # type: ignore[no-untyped-call]
dramatiq.set_broker(broker)


@dramatiq.actor(queue_name=QUEUE, max_retries=0)
def noop(index: int) -> None:
    """Nothing at all: the cost measured is Dramatiq's fetch, decode, dispatch and ack."""
