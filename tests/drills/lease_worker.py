"""``dramatiq tests.drills.lease_worker``: the production worker with short leases, for drills in CI.

Identical to :mod:`orchestrator.worker` (same broker, actors and runtime builder) except that the
send lease and timer lease come from ``LOYALOOP_SEND_LEASE`` / ``LOYALOOP_TIMER_LEASE`` (seconds),
so a drill that kills workers recovers in seconds instead of the production 60 s lease.  The
stand-alone drills use ``orchestrator.worker`` itself and report the production recovery times.
"""

from __future__ import annotations

import os

import dramatiq
import redis

from orchestrator.actors import ActorDispatcher, Actors
from orchestrator.runtime import SEND_LEASE, Runtime, build_runtime
from orchestrator.settings import load_settings
from orchestrator.worker import build_broker

settings = load_settings()
broker = build_broker(settings)
dramatiq.set_broker(broker)
SEND = float(os.environ.get("LOYALOOP_SEND_LEASE", SEND_LEASE))
TIMER = float(os.environ.get("LOYALOOP_TIMER_LEASE", "30"))


def _build(actors: Actors) -> Runtime:
    client = redis.Redis.from_url(settings.redis_url or "redis://127.0.0.1:6379/0", decode_responses=True)
    return build_runtime(settings, client, dispatcher=ActorDispatcher(actors), send_lease=SEND, timer_lease=TIMER)


actors = Actors(broker, _build)
