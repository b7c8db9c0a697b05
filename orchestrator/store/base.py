"""The store's connection to Redis: scripts loaded once and run by EVALSHA in one-round-trip pipelines."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import redis
from redis.crc import key_slot

from orchestrator.store import keys
from orchestrator.store.batch import Batch, streams
from orchestrator.store.scripts import SCRIPTS


class StoreBase:
    """The connection the per-concern parts of :class:`orchestrator.store.Store` share.

    Scripts run by EVALSHA (loaded once), also inside pipelines, so a pipeline costs exactly one
    round trip; after a Redis restart (scripts gone) the pipeline is rebuilt once after reloading.
    """

    def __init__(self, client: redis.Redis) -> None:
        #: Typed loosely: redis-py's stubs cannot express ``decode_responses=True`` (str replies).
        self.redis: Any = client
        #: On a Redis Cluster a script may only touch keys of one hash slot (see slot_groups).
        self.cluster = isinstance(client, redis.RedisCluster)
        self._raw = not self.cluster and streams(getattr(client, "connection_pool", None))
        self._shas: dict[str, str] = {}
        self._load_scripts()

    def _load_scripts(self) -> None:
        self._shas = {name: str(self.redis.script_load(source)) for name, source in SCRIPTS.items()}

    def evalsha(self, pipe: Any, name: str, keys_: list[str], args: list[Any]) -> None:
        """Queue script ``name`` on a pipeline built for :meth:`run`."""
        pipe.evalsha(self._shas[name], len(keys_), *keys_, *args)

    def run(self, build: Callable[[Any], object]) -> list[Any]:
        """Build and execute one non-transactional pipeline (one round trip), reloading scripts once.

        On a real server the commands go out as one write on a pooled connection and the replies
        are read straight back (:class:`Batch`): redis-py's Pipeline costs ~100 µs of Python per
        execute, more than the hot paths' own work.  fakeredis gets an ordinary pipeline.
        """
        for attempt in range(2):
            pipe = Batch(self.redis) if self._raw else self.redis.pipeline(transaction=False)
            build(pipe)
            try:
                return list(pipe.execute())
            except redis.exceptions.NoScriptError:
                if attempt:
                    raise
                self._load_scripts()
        raise AssertionError("unreachable")  # pragma: no cover

    def _script(self, name: str, keys_: list[str], args: list[Any]) -> Any:
        return self.run(lambda pipe: self.evalsha(pipe, name, keys_, args))[0]

    def slot_groups(self, customer_ids: Iterable[str]) -> list[list[str]]:
        """Customers whose keys one script may touch together: all of them on a single Redis, those
        of one hash slot on a Redis Cluster (every per-customer key carries the ``{id}`` tag)."""
        ids = list(customer_ids)
        if not self.cluster:
            return [ids] if ids else []
        groups: dict[int, list[str]] = {}
        for customer_id in ids:
            groups.setdefault(key_slot(keys.profile(customer_id).encode()), []).append(customer_id)
        return list(groups.values())
