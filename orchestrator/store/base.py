"""The store's connection to Redis: scripts run by EVALSHA in one-round-trip pipelines (the packer's)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal

import redis
from redis.crc import key_slot

from orchestrator.store import keys
from orchestrator.store.batch import Batch
from orchestrator.store.scripts import SCRIPTS

#: A stored journey version's name, category, holdout percentage and step ids, in order.
Outline = tuple[str, Literal["marketing", "transactional"], float, tuple[str, ...]]


class StoreBase:
    """The connection the per-concern parts of :class:`orchestrator.store.Store` share.

    Scripts run by EVALSHA (loaded when the store is built), also inside pipelines, so a pipeline
    costs exactly one round trip; after a Redis restart (scripts gone) the packer loads the scripts
    Redis refused and sends only those commands again.
    """

    def __init__(self, client: redis.Redis) -> None:
        #: Typed loosely: redis-py's stubs cannot express ``decode_responses=True`` (str replies).
        self.redis: Any = client
        #: A Redis Cluster client: its pipelines send each node its share apart.
        self.cluster = isinstance(client, redis.RedisCluster)
        #: Whether a script may only touch keys of one hash slot (see slot_groups): on a Redis
        #: Cluster, and on any server in cluster mode, even one node reached by a plain client.
        self.slotted = self.cluster or _cluster_mode(client)
        #: Figures shards this store listed in the index itself (a Cluster's, see ``index_figures``).
        self.listed_shards: set[str] = set()
        #: (journey, version) → what the measurement records show of that stored version (its name,
        #: category, holdout and step ids), read once: a stored version never changes (see ``figures``).
        self.outlines: dict[tuple[str, str], Outline] = {}
        #: Profile writes this store began (counted before each, see ``profile_index.join``): a
        #: profile this store read while the count stood still is still the one it last wrote.
        self.profile_writes = 0
        for script in SCRIPTS.values():
            self.redis.script_load(script.source)

    def evalsha(self, pipe: Any, name: str, keys_: list[str], args: list[Any]) -> None:
        """Queue script ``name`` on a pipeline built for :meth:`run`."""
        pipe.evalsha(SCRIPTS[name].sha, len(keys_), *keys_, *args)

    def run(self, build: Callable[[Any], object]) -> list[Any]:
        """Build and execute one non-transactional pipeline (one round trip) with the packer
        (:class:`~orchestrator.store.batch.Batch`): redis-py's Pipeline costs ~100 µs of Python per
        execute, more than the hot paths' own work.  The same path on a real server and on fakeredis.
        """
        pipe = Batch(self.redis)
        build(pipe)
        return pipe.execute()

    def _script(self, name: str, keys_: list[str], args: list[Any]) -> Any:
        return self.run(lambda pipe: self.evalsha(pipe, name, keys_, args))[0]

    def slot_groups(self, customer_ids: Iterable[str]) -> list[list[str]]:
        """Customers whose keys one script may touch together: all of them on a single Redis, those
        of one hash slot on a Redis Cluster or a server in cluster mode (every per-customer key
        carries the ``{id}`` tag).

        On a cluster that is usually one customer per group: a script may not cross slots.  The
        batching is then per node instead: the packer (:mod:`orchestrator.store.cluster`) writes each
        node's share of the groups' script calls in one go, every node before reading any reply, so a
        300-customer chunk still costs one round trip (to three nodes at once), not 300."""
        ids = list(customer_ids)
        if not self.slotted:
            return [ids] if ids else []
        groups: dict[int, list[str]] = {}
        for customer_id in ids:
            groups.setdefault(key_slot(keys.profile(customer_id).encode()), []).append(customer_id)
        return list(groups.values())


def _cluster_mode(client: Any) -> bool:
    """Whether the server runs in cluster mode (``INFO cluster``); False when it cannot say (the
    embedded demo's fakeredis has no ``INFO``)."""
    try:
        return bool(int(client.info("cluster").get("cluster_enabled", 0)))
    except redis.exceptions.ResponseError:
        return False
