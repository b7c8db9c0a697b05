"""The Redis Cluster client: the store's packer routed by slot, pipelines that survive ``NOSCRIPT``.

redis-py's ``ClusterPipeline`` sends ``EVALSHA`` to the node of each command's slot but never loads a
script there (a plain ``Pipeline`` loads its scripts before it runs), so a script first used inside
a cluster pipeline fails with ``NoScriptError`` on every node that has not run it yet — and on a
promoted replica after a failover, whose script cache starts empty.  Here a pipeline runs with its
errors in place, the scripts refused are loaded on every primary, and only the commands that were
refused are sent once more: a refused ``EVALSHA`` did not run, so nothing runs twice (sending the
whole pipeline again would push events twice).

The store's own packer (:mod:`orchestrator.store.batch`) does not go through redis-py's cluster
pipeline at all: :meth:`ScriptingCluster.route_commands` sends each command to its slot's primary and
packs each node's share as on a single Redis (measured below and in docs/scaling.md).

Scripts are known by source from :class:`~orchestrator.store.batch.Script` (the packer's registry)
and from every ``register_script`` on this client.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import redis
from redis.cluster import ClusterPipeline
from redis.commands.core import Script as RedisScript

from orchestrator.store import keys
from orchestrator.store.batch import read_from_pool, script_source, write_to_pool
from orchestrator.store.replication import ReplicaWait

#: Replies that mean "this command did not run on that node; ask the cluster again".
REDIRECTED = (redis.exceptions.MovedError, redis.exceptions.AskError, redis.exceptions.TryAgainError)

#: A node that cannot be reached: it may have died and its replica taken over its slots.
UNREACHABLE = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)

#: Fewest seconds between two slot-map refreshes asked for by unreachable nodes (every thread of a
#: worker meets the dead node at once; one refresh answers them all).
REFRESH_EVERY = 0.25

log = logging.getLogger(__name__)

#: Commands whose first argument is not a key (they go through redis-py's routing).
_KEYLESS = frozenset({"SCRIPT", "TIME", "INFO", "PING", "CLUSTER", "FLUSHALL", "FLUSHDB", "DBSIZE", "KEYS", "SCAN"})


def _abandon(written: list[tuple[Any, Any, list[tuple[Any, ...]], list[int]]]) -> None:
    """Close the connections whose replies will not be read (they cannot be reused)."""
    for pool, connection, _share, _positions in written:
        connection.disconnect()
        pool.release(connection)


def _schedules_timer(command: tuple[Any, ...]) -> bool:
    """A ``ZADD`` to a timer shard (:func:`orchestrator.store.keys.timers`)."""
    return str(command[0]).upper() == "ZADD" and str(command[1]).startswith(f"{keys.PREFIX}:timers:{{")


def _first_key(command: tuple[Any, ...]) -> Any:
    name = str(command[0]).upper()
    if name in ("EVALSHA", "EVAL"):
        return command[3] if len(command) > 3 and int(command[2]) > 0 else None
    if name in _KEYLESS or len(command) < 2:
        return None
    return command[1]


class ScriptingCluster(redis.RedisCluster):
    """``RedisCluster`` with NOSCRIPT-safe pipelines (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.sources: dict[str, str] = {}
        self._refresh_lock = threading.Lock()
        self._refreshed_at = 0.0

    def register_script(self, script: Any) -> RedisScript:
        registered = super().register_script(script)
        self.sources[registered.sha] = script if isinstance(script, str) else script.decode()
        return registered

    def pipeline(self, transaction: Any = None, shard_hint: Any = None) -> Any:
        pipe: Any = super().pipeline(transaction, shard_hint)  # type: ignore[no-untyped-call]
        if not transaction:  # a MULTI block runs whole or not at all: redis-py's own handling stands
            pipe.__class__ = ScriptingPipeline
            pipe_any: Any = pipe
            pipe_any.owner = self
            pipe_any.sent = []
        return pipe

    def source_of(self, sha: str) -> str | None:
        return self.sources.get(sha) or script_source(sha)

    def refresh_slots(self) -> None:
        """Read the slot map again, at most every :data:`REFRESH_EVERY` seconds: the packer reaches
        nodes from the map redis-py keeps, and only redis-py's own commands refresh it on an error,
        so after a master died every batch would go on knocking at its port (the failover drill
        saw the scheduler fail every pass for minutes).  A refresh that reaches no node is logged;
        the caller's retry asks again."""
        with self._refresh_lock:
            if time.monotonic() - self._refreshed_at < REFRESH_EVERY:
                return
            self._refreshed_at = time.monotonic()
            try:
                self.nodes_manager.initialize()
            except (redis.exceptions.RedisError, redis.exceptions.RedisClusterException) as exc:
                log.warning("could not read the cluster's slot map again (%s); the next retry asks again", exc)

    def route_commands(
        self,
        commands: list[tuple[Any, ...]],
        *,
        wait: ReplicaWait | None = None,
        confirmed: list[Any] | None = None,
    ) -> tuple[list[Any], list[int]]:
        """:meth:`route_stage` in two stages when the pipeline schedules timers among other writes.

        The runtime queues a run's timer before its compare-and-set ("timers first": a timer
        without its state is stale and harmless, state without its timer strands the run).  One
        Redis runs a pipeline in order; a cluster runs each node's share on its own, and a worker
        killed while a large share is still being written (a slow node under load) could leave a
        run's state written on one node and its timer unwritten on another -- the CI SIGKILL drill
        lost a few runs of 3,000 that way.  So the timer ``ZADD``s go first, acknowledged, and the
        rest after them: one more round trip, only for pipelines that schedule timers.

        ``wait`` (:mod:`orchestrator.store.replication`) ends every node's share with a ``WAIT``,
        whose replies go to ``confirmed``.
        """
        first = [i for i, command in enumerate(commands) if _schedules_timer(command)]
        if not first or len(first) == len(commands):
            return self.route_stage(commands, wait=wait, confirmed=confirmed)
        chosen = set(first)
        rest = [i for i in range(len(commands)) if i not in chosen]
        replies: list[Any] = [None] * len(commands)
        for stage in (first, rest):
            stage_replies, _errors = self.route_stage([commands[i] for i in stage], wait=wait, confirmed=confirmed)
            for i, reply in zip(stage, stage_replies, strict=True):
                replies[i] = reply
        return replies, [i for i, reply in enumerate(replies) if isinstance(reply, Exception)]

    def route_stage(
        self,
        commands: list[tuple[Any, ...]],
        *,
        wait: ReplicaWait | None = None,
        confirmed: list[Any] | None = None,
    ) -> tuple[list[Any], list[int]]:
        """:meth:`pack_stage`, with the slot map read again when a node cannot be reached (its
        replica may be taking over); the error goes on to the caller, whose retry (Dramatiq's, the
        scheduler's next pass) finds the new master.  Nothing is resent here: a node that dropped
        the connection may have run part of its share."""
        try:
            return self.pack_stage(commands, wait=wait, confirmed=confirmed)
        except UNREACHABLE:
            self.refresh_slots()
            raise

    def pack_stage(
        self,
        commands: list[tuple[Any, ...]],
        *,
        wait: ReplicaWait | None = None,
        confirmed: list[Any] | None = None,
    ) -> tuple[list[Any], list[int]]:
        """The store's packer on a cluster (:func:`orchestrator.store.batch.pipeline` calls it): each
        command goes to the primary of its key's slot, each node's share packed and written as on a
        single Redis.  Measured on three local masters with 300 single-key scripts: 1.06 ms a batch,
        against 2.8 ms through redis-py's cluster pipeline (docs/scaling.md).  Commands a node redirects
        (``MOVED``/``ASK`` after a resharding or failover: they did not run) are sent again through
        redis-py's pipeline, which follows the redirection and refreshes the slot map; so is a command
        whose key cannot be read here.  Replies are Redis' own, as on a single Redis.

        With ``wait``, each node's share ends with a ``WAIT`` on the connection that wrote it, and
        its reply goes to ``confirmed``.  A command sent through redis-py's pipeline instead cannot
        be waited for on its own connection: it counts as confirmed by no replica (0), so the caller
        hears "not confirmed" and resends -- rare (a resharding, a failover) and safe by event id."""
        by_node: dict[str, tuple[Any, list[tuple[Any, ...]], list[int]]] = {}
        elsewhere: list[int] = []
        for i, command in enumerate(commands):
            key = _first_key(command)
            if key is None:
                elsewhere.append(i)
                continue
            node = self.get_node_from_key(key)  # type: ignore[no-untyped-call]
            entry = by_node.get(node.name)
            if entry is None:
                entry = by_node[node.name] = (node, [], [])
            entry[1].append(command)
            entry[2].append(i)
        replies: list[Any] = [None] * len(commands)
        # Every node's share is written before any reply is read: once written, a node runs it even
        # if this process dies, so the window in which a kill leaves one node's writes without
        # another's (a run's state without its timer, though written "timers first") is the time
        # between two socket writes, as between the chunks of a long pipeline on one Redis, and not
        # a round trip.
        written: list[tuple[Any, Any, list[tuple[Any, ...]], list[int]]] = []
        try:
            for node, share, positions in by_node.values():
                pool = self.get_redis_connection(node).connection_pool
                packed = share if wait is None else [*share, wait.command()]
                written.append((pool, write_to_pool(pool, packed), share, positions))
        except BaseException:
            _abandon(written)
            raise
        for index, (pool, connection, share, positions) in enumerate(written):
            try:
                node_replies, _errors = read_from_pool(pool, connection, len(share) + (wait is not None))
            except BaseException:
                _abandon(written[index + 1 :])
                raise
            if wait is not None:
                (confirmed if confirmed is not None else []).append(node_replies.pop())
            for i, reply in zip(positions, node_replies, strict=True):
                replies[i] = reply
                if isinstance(reply, REDIRECTED):
                    elsewhere.append(i)
        if elsewhere:
            elsewhere.sort()
            pipe: Any = self.pipeline(transaction=False)
            for i in elsewhere:
                pipe.execute_command(*commands[i])
            for i, reply in zip(elsewhere, pipe.execute(raise_on_error=False), strict=True):
                replies[i] = reply
            if wait is not None and confirmed is not None:
                confirmed.append(0)
        return replies, [i for i, reply in enumerate(replies) if isinstance(reply, Exception)]


class ScriptingPipeline(ClusterPipeline):
    """What :meth:`ScriptingCluster.pipeline` hands out: it remembers what it queued."""

    owner: ScriptingCluster
    sent: list[tuple[tuple[Any, ...], dict[str, Any]]]

    def execute_command(self, *args: Any, **kwargs: Any) -> Any:
        self.sent.append((args, kwargs))
        return super().execute_command(*args, **kwargs)  # type: ignore[no-untyped-call]

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        sent, self.sent = self.sent, []
        replies = list(super().execute(raise_on_error=False))
        refused = [
            i
            for i, reply in enumerate(replies)
            if isinstance(reply, redis.exceptions.NoScriptError)
            and str(sent[i][0][0]).upper() == "EVALSHA"
            and self.owner.source_of(str(sent[i][0][1])) is not None
        ]
        if refused:
            for sha in dict.fromkeys(str(sent[i][0][1]) for i in refused):
                source = self.owner.source_of(sha)
                assert source is not None
                self.owner.script_load(source)  # every primary (redis-py's routing of SCRIPT LOAD)
            again: Any = self.owner.pipeline(transaction=False)
            for i in refused:
                args, kwargs = sent[i]
                again.execute_command(*args, **kwargs)
            for i, reply in zip(refused, again.execute(raise_on_error=False), strict=True):
                replies[i] = reply
        if raise_on_error:
            for reply in replies:
                if isinstance(reply, Exception):
                    raise reply
        return replies
