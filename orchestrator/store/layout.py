"""The key layout of one deployment: the namespace every key starts with and the shard counts.

A process serves one deployment, so the layout is process-wide: :func:`use` sets it once at start-up
(:func:`orchestrator.store.connect.connect` does, from the settings) and every key name
(:mod:`orchestrator.store.keys`) and every event or timer shard list follows it.  Two deployments
(staging and production, two brands) share one Redis by running under two namespaces.

Shard counts.  Each event shard and each timer shard is one key (one hash slot), so on a Redis
Cluster the counts decide how evenly the queue and the timer wheel spread over the primaries: 16
shards on three primaries split about 8/4/4, 64 split 21/22/21 (events) and 26/18/20 (timers).
The default is 16 on one Redis (as it always was; more shards there only cost the scheduler a
longer loop) and 64 on a cluster.  A customer's shard is ``crc32(id) % count``, so the count may
be changed only on a quiet system: stop intake and let the event shards drain and the scheduler
catch up (``loyaloop status`` shows both at zero) before restarting every process with the new
count; a timer already waiting in
a shard the new count no longer maps its customer to is still claimed (every shard below the count
is scanned) but only if the count grew, so never shrink it while timers wait.
"""

from __future__ import annotations

from dataclasses import dataclass

from orchestrator.settings import Settings
from orchestrator.store import keys

#: Shards of each kind when the settings leave the count unset.
SINGLE_SHARDS = 16
CLUSTER_SHARDS = 64


@dataclass(frozen=True)
class Layout:
    """Namespace (key prefix) and shard counts; the defaults are a single Redis's."""

    namespace: str = keys.PREFIX
    event_shards: int = SINGLE_SHARDS
    timer_shards: int = SINGLE_SHARDS

    @classmethod
    def from_settings(cls, settings: Settings) -> Layout:
        default = CLUSTER_SHARDS if settings.redis_cluster else SINGLE_SHARDS
        return cls(
            namespace=settings.namespace,
            event_shards=settings.event_shards or default,
            timer_shards=settings.timer_shards or default,
        )


_current = Layout()


def use(layout: Layout) -> None:
    """Make ``layout`` this process's key layout (before any key is named)."""
    global _current
    _current = layout
    keys.PREFIX = layout.namespace


def current() -> Layout:
    return _current
