"""The one pipeline packer: the store, the gate and the event queue all write their commands here.

redis-py's Pipeline costs ~100 µs of Python per execute, more than the hot paths' own work, so the
commands are packed by hiredis, written on a pooled connection in chunks of :data:`CHUNK` and the
replies read straight back; the replies to one chunk are read while Redis works on the next, so
Python and Redis overlap instead of taking turns (still one round trip of latency).

Every client with a redis-py connection pool goes this way, the embedded demo's fakeredis too, so
the demo and production share one path from command to reply: the reply is what the connection
reads (no redis-py response callbacks, which differ between redis-py versions), except that an
``HGETALL`` queued on a :class:`Batch` is always a dict (RESP2 sends a flat list, RESP3 and
fakeredis a map).  A Redis Cluster client of :mod:`orchestrator.store.cluster` routes the commands
by slot and packs each node's share the same way (``route_commands``); any other cluster client
gets redis-py's pipeline.

A script (:class:`Script`) is sent by ``EVALSHA``; when Redis has forgotten it (a restart, ``SCRIPT
FLUSH``) the packer loads it and sends again only the commands that were refused, so nothing in
the pipeline runs twice.  A connection found dead before any reply arrived (a pooled connection
to a server that restarted) is replaced once and the pipeline written again; any other failure
leaves the connection closed (replies may be in flight) and is raised.

A write that must survive a failover asks for ``wait`` (:mod:`orchestrator.store.replication`): a
``WAIT`` goes at the end of what each connection wrote -- the one connection on a single Redis,
each node's on a cluster, and again after scripts sent once more after NOSCRIPT -- and the replies
are checked once every command's reply is read.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain, islice
from typing import Any

import redis
import redis.asyncio
from hiredis import pack_command as _pack
from redis.commands.core import CoreCommands
from redis.connection import AbstractConnection

from orchestrator.errors import ConfigurationError
from orchestrator.store.replication import ReplicaWait

#: Commands packed and written per socket write.
CHUNK = 128

#: Script source by SHA1, for every :class:`Script` built in this process: what NOSCRIPT reloads.
_SOURCES: dict[str, str] = {}


def _needs_command_name() -> bool:
    """redis-py before 5.3 requires a command name in ``ConnectionPool.get_connection``; from 5.3 on
    passing one is deprecated (a warning per call).  Decided once, from the signature."""
    parameter = inspect.signature(redis.ConnectionPool.get_connection).parameters.get("command_name")
    return parameter is not None and parameter.default is inspect.Parameter.empty


_NAMED = _needs_command_name()


class Script:
    """A Lua script run by ``EVALSHA``; its SHA1 is computed here, so using it costs no round trip,
    and the packer loads it into Redis whenever Redis answers NOSCRIPT."""

    __slots__ = ("sha", "source")

    def __init__(self, source: str) -> None:
        self.source = source
        self.sha = hashlib.sha1(source.encode("utf-8")).hexdigest()
        _SOURCES[self.sha] = source

    def __repr__(self) -> str:
        return f"Script(sha={self.sha!r})"


def script_source(sha: str) -> str | None:
    """The source of a :class:`Script` built in this process, by SHA1 (None when unknown)."""
    return _SOURCES.get(sha)


def streams(client: Any) -> bool:
    """Whether the packer writes ``client``'s commands itself: a redis-py client on a connection
    pool (a real server or fakeredis), not a Redis Cluster client."""
    pool = getattr(client, "connection_pool", None)
    return pool is not None and issubclass(pool.connection_class, AbstractConnection)


def pipeline(client: Any, commands: Iterable[tuple[Any, ...]], *, wait: ReplicaWait | None = None) -> list[Any]:
    """Run every command (a one-word name first, then its arguments) as one non-transactional
    pipeline; the replies in order, error replies in place as exceptions.

    ``commands`` may be a lazy iterator: on a real server each chunk is written as soon as it is
    produced, so the caller prepares the next commands while Redis runs the first ones.  With
    ``wait``, raises :class:`~orchestrator.errors.NotReplicated` when too few replicas confirmed.
    """
    confirmed: list[Any] = []
    replies = _exchange(client, commands, wait=wait, confirmed=confirmed)[0]
    if wait is not None:
        wait.check(confirmed, replies)
    return replies


def _exchange(
    client: Any,
    commands: Iterable[tuple[Any, ...]],
    *,
    reload: bool = True,
    wait: ReplicaWait | None = None,
    confirmed: list[Any] | None = None,
) -> tuple[list[Any], list[int]]:
    """:func:`pipeline`, with the positions of the error replies (so no caller scans the replies);
    ``reload=False`` leaves NOSCRIPT errors as they are (the commands sent again after a reload).
    With ``wait``, the reply to each connection's ``WAIT`` is appended to ``confirmed``."""
    pool = getattr(client, "connection_pool", None)
    if pool is not None and issubclass(pool.connection_class, AbstractConnection):  # streams(client)
        if wait is not None:
            commands = [*commands, wait.command()] if isinstance(commands, list) else chain(commands, [wait.command()])
        replies, errors, sent = _stream(pool, commands)
        if wait is not None:
            _take_last(replies, errors, confirmed)
    elif (route := getattr(client, "route_commands", None)) is not None:  # orchestrator.store.cluster
        sent = [list(commands)]
        replies, errors = route(sent[0], wait=wait, confirmed=confirmed) if wait is not None else route(sent[0])
    else:
        if wait is not None:
            raise ConfigurationError(
                "LOYALOOP_INTAKE_REPLICAS needs the store's own cluster client (orchestrator.store.connect)"
            )
        sent = [list(commands)]
        replies, errors = _redis_py_pipeline(client, sent[0])
    if errors and reload:
        missing = [i for i in errors if isinstance(replies[i], redis.exceptions.NoScriptError)]
        if missing:
            _reload(client, replies, errors, sent, missing, wait, confirmed)
    return replies, errors


def _take_last(replies: list[Any], errors: list[int], confirmed: list[Any] | None) -> None:
    """Move the last reply (a ``WAIT``'s) from ``replies`` to ``confirmed``."""
    if errors and errors[-1] == len(replies) - 1:
        errors.pop()
    reply = replies.pop()
    if confirmed is not None:
        confirmed.append(reply)


def _stream(pool: Any, commands: Iterable[tuple[Any, ...]]) -> tuple[list[Any], list[int], list[list[tuple[Any, ...]]]]:
    """Write the commands chunk by chunk on one pooled connection and read their replies, the
    replies to a chunk once the next one is on its way; returns the replies, the positions of the
    error replies and the chunks written."""
    sent: list[list[tuple[Any, ...]]] = []
    source: Iterator[tuple[Any, ...]] | None = None
    if isinstance(commands, list) and len(commands) <= CHUNK:  # most batches: one write
        sent.append(commands)
    else:
        source = iter(commands)
    for attempt in range(2):
        connection = pool.get_connection("EVALSHA") if _NAMED else pool.get_connection()
        replies: list[Any] = []
        errors: list[int] = []
        try:
            if source is None:
                connection.send_packed_command(_packed(sent[0]))
                _read(connection, replies, errors, len(sent[0]))
                return replies, errors, sent
            written = 0
            for chunk in sent[:]:  # what a connection found dead had taken already
                connection.send_packed_command(_packed(chunk), check_health=not written)
                written += len(chunk)
            while chunk := list(islice(source, CHUNK)):
                sent.append(chunk)
                connection.send_packed_command(_packed(chunk), check_health=not written)
                _read(connection, replies, errors, written)  # the chunk before this one
                written += len(chunk)
            _read(connection, replies, errors, written)
            return replies, errors, sent
        except redis.exceptions.ConnectionError:
            connection.disconnect()
            if attempt or replies:  # Redis may have run some of it: sending it again could run it twice
                raise
        except BaseException:
            connection.disconnect()  # replies may still be in flight: this connection cannot be reused
            raise
        finally:
            pool.release(connection)
    raise AssertionError("unreachable")  # pragma: no cover


def write_to_pool(pool: Any, commands: list[tuple[Any, ...]]) -> Any:
    """Write ``commands`` packed on a pooled connection, reading nothing yet (a cluster writes every
    node's share before it reads any reply: see orchestrator.store.cluster); the connection, to
    give to :func:`read_from_pool`.  A connection found dead is replaced once."""
    for attempt in range(2):
        connection = pool.get_connection("EVALSHA") if _NAMED else pool.get_connection()
        try:
            connection.send_packed_command(_packed(commands))
            return connection
        except redis.exceptions.ConnectionError:
            connection.disconnect()
            pool.release(connection)
            if attempt:
                raise
        except BaseException:
            connection.disconnect()
            pool.release(connection)
            raise
    raise AssertionError("unreachable")  # pragma: no cover


def read_from_pool(pool: Any, connection: Any, count: int) -> tuple[list[Any], list[int]]:
    """The ``count`` replies to what :func:`write_to_pool` wrote, and the positions of the errors."""
    replies: list[Any] = []
    errors: list[int] = []
    try:
        _read(connection, replies, errors, count)
    except BaseException:
        connection.disconnect()  # replies may still be in flight: this connection cannot be reused
        raise
    finally:
        pool.release(connection)
    return replies, errors


def _read(connection: Any, replies: list[Any], errors: list[int], upto: int) -> None:
    read = connection.read_response
    for _ in range(upto - len(replies)):
        try:
            replies.append(read())
        except redis.exceptions.ResponseError as error:
            errors.append(len(replies))
            replies.append(error)


def _packed(commands: list[tuple[Any, ...]]) -> list[bytes]:
    """RESP bytes for a chunk: hiredis's C packer (redis-py's packer walks every argument in Python
    first, which a cohort chunk's ~10,000 script arguments feel)."""
    return [b"".join([_pack(command) for command in commands])]


def _redis_py_pipeline(client: Any, commands: list[tuple[Any, ...]]) -> tuple[list[Any], list[int]]:
    """A Redis Cluster client's pipeline, which sends each command to the node of its slot."""
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    replies = list(pipe.execute(raise_on_error=False))
    return replies, [i for i, reply in enumerate(replies) if isinstance(reply, Exception)]


def _reload(
    client: Any,
    replies: list[Any],
    errors: list[int],
    sent: list[list[tuple[Any, ...]]],
    missing: list[int],
    wait: ReplicaWait | None = None,
    confirmed: list[Any] | None = None,
) -> None:
    """Load the scripts Redis answered NOSCRIPT for and send those commands once more, putting
    their replies in place (a script this process does not know keeps its error); with ``wait``,
    those commands are waited for again (they may have gone out on another connection)."""
    commands = [command for chunk in sent for command in chunk] if len(sent) > 1 else sent[0]
    again = [i for i in missing if commands[i][0] == "EVALSHA" and commands[i][1] in _SOURCES]
    if not again:
        return
    for sha in dict.fromkeys(commands[i][1] for i in again):
        client.script_load(_SOURCES[sha])
    retried, retried_errors = _exchange(
        client, [commands[i] for i in again], reload=False, wait=wait, confirmed=confirmed
    )
    for i, reply in zip(again, retried, strict=True):
        replies[i] = reply
    done = set(again).difference(again[j] for j in retried_errors)
    errors[:] = [i for i in errors if i not in done]


class Batch(CoreCommands):
    """A pipeline built with the usual command methods (``batch.hset(...)``, ``batch.evalsha(...)``)
    and run by :func:`pipeline`; ``execute`` raises the first error reply once every reply is read,
    like ``Pipeline.execute``."""

    _event_dispatcher: Any = None  # CoreCommands declares it; nothing here emits events

    def __init__(self, client: Any) -> None:
        self._client = client
        self._commands: list[tuple[Any, ...]] = []
        self._maps: list[int] = []

    def execute_command(self, *args: Any, **options: Any) -> None:
        if " " in args[0]:  # "SCRIPT LOAD": one RESP argument per word
            args = (*args[0].split(), *args[1:])
        self._commands.append(args)

    def hgetall(self, name: Any) -> Any:
        self._maps.append(len(self._commands))
        return self.execute_command("HGETALL", name)

    def script(self, script: Script, keys: list[str], args: Iterable[Any]) -> None:
        """Queue ``script`` on ``keys`` with ``args``."""
        self._commands.append(("EVALSHA", script.sha, len(keys), *keys, *args))

    def __len__(self) -> int:
        return len(self._commands)

    def __bool__(self) -> bool:
        return True  # an empty batch is still a pipeline: ``pipe or client`` must pick it

    def execute(self, *, wait: ReplicaWait | None = None) -> list[Any]:
        """The replies; with ``wait``, :class:`~orchestrator.errors.NotReplicated` when too few
        replicas confirmed the writes (raised after any error reply, which comes first)."""
        if not self._commands:
            return []
        confirmed: list[Any] = []
        replies, errors = _exchange(self._client, self._commands, wait=wait, confirmed=confirmed)
        for i in self._maps:
            reply = replies[i]
            if isinstance(reply, list):
                replies[i] = dict(zip(reply[0::2], reply[1::2], strict=True))
        if errors:
            raise replies[errors[0]]
        if wait is not None:
            wait.check(confirmed, replies)
        return replies


class AsyncBatch(CoreCommands):
    """:class:`Batch` on a ``redis.asyncio`` client: commands queued by the usual command methods,
    written in one go on a pooled connection and read back on the event loop.  Replies are Redis'
    own (no redis-py response callbacks: ``TIME`` is two strings, ``HGETALL`` a flat list).

    Every wait is bounded by the client's ``socket_timeout`` (a hung Redis raises
    ``redis.exceptions.TimeoutError``) and its pool's ``timeout`` when it is a blocking pool.  A
    connection error after the batch was written is retried once on a fresh connection, like
    :class:`Batch`; anything else leaves the connection closed (replies may be in flight).

    ``scripts`` are the sources of the scripts the batch runs with EVALSHA.  When Redis has lost
    them (a restart empties its script cache whole, so every EVALSHA of the batch failed and none
    ran) they are loaded and the batch is sent once more; its other commands then run twice, so
    they must be reads.

    ``execute(wait=...)`` appends a ``WAIT`` on the batch's connection (a single Redis only: on a
    cluster the intake that waits goes through the blocking packer, which routes a ``WAIT`` to each
    node it wrote to).
    """

    _event_dispatcher: Any = None  # CoreCommands declares it; nothing here emits events

    def __init__(self, client: redis.asyncio.Redis, *, scripts: Sequence[str] = ()) -> None:
        self._client = client
        self._scripts = tuple(scripts)
        self._commands: list[tuple[Any, ...]] = []

    def execute_command(self, *args: Any, **options: Any) -> None:
        self._commands.append(args)

    def __len__(self) -> int:
        return len(self._commands)

    def __bool__(self) -> bool:
        return True

    async def execute(self, *, wait: ReplicaWait | None = None) -> list[Any]:
        if not self._commands:
            return []
        try:
            return await self._confirmed(wait)
        except redis.exceptions.NoScriptError:
            if not self._scripts:
                raise
        for source in self._scripts:
            await self._client.script_load(source)
        return await self._confirmed(wait)

    async def _confirmed(self, wait: ReplicaWait | None) -> list[Any]:
        if wait is None:
            return await self._send()
        if isinstance(self._client, redis.asyncio.RedisCluster):
            raise ConfigurationError("an asyncio batch waits for replicas on a single Redis only")
        self._commands.append(wait.command())
        try:
            replies = await self._send()
        finally:
            self._commands.pop()
        confirmed = replies.pop()
        wait.check([confirmed], replies)
        return replies

    async def _send(self) -> list[Any]:
        if isinstance(self._client, redis.asyncio.RedisCluster):
            return await self._cluster()
        pool: Any = self._client.connection_pool
        connection = await pool.get_connection()  # a pool that is out of connections is not retried
        try:
            try:
                return await self._exchange(connection)
            except redis.exceptions.ConnectionError:
                return await self._exchange(connection)  # it reconnects: the first was a stale socket
        finally:
            await pool.release(connection)

    async def _cluster(self) -> list[Any]:
        """On a ``redis.asyncio.RedisCluster``: its pipeline sends each command to its slot's node.
        A node that lacks a script refuses only its own ``EVALSHA`` (the others ran), so only the
        refused commands are sent again, after loading the scripts on every primary."""
        client: Any = self._client
        pipe = client.pipeline()
        for command in self._commands:
            pipe.execute_command(*command)
        replies = list(await pipe.execute(raise_on_error=False))
        refused = [i for i, reply in enumerate(replies) if isinstance(reply, redis.exceptions.NoScriptError)]
        if refused and self._scripts:
            for source in self._scripts:
                await client.script_load(source)
            again = client.pipeline()
            for i in refused:
                again.execute_command(*self._commands[i])
            for i, reply in zip(refused, await again.execute(raise_on_error=False), strict=True):
                replies[i] = reply
        for reply in replies:
            if isinstance(reply, Exception):
                raise reply
        return replies

    async def _exchange(self, connection: Any) -> list[Any]:
        replies: list[Any] = []
        error: redis.exceptions.ResponseError | None = None
        try:
            await connection.send_packed_command(_packed(self._commands), check_health=False)
            for _ in self._commands:
                try:
                    replies.append(await connection.read_response())
                except redis.exceptions.ResponseError as exc:
                    error = error or exc
                    replies.append(exc)
        except BaseException:
            await connection.disconnect(nowait=True)
            raise
        if error is not None:
            raise error
        return replies
