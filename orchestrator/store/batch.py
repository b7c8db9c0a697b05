"""The hiredis-packed pipeline the store runs its scripts through, and its asyncio twin.

redis-py's Pipeline costs ~100 µs of Python per execute, more than the hot paths' own work, so on a
real server a batch of commands is written in one go on a pooled connection and read straight back.
The HTTP front door does the same on its event loop with :class:`AsyncBatch`: redis-py's asyncio
command path costs ~45 µs of Python a command (measured), about twice the synchronous one.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import redis
import redis.asyncio
from redis.commands.core import CoreCommands

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:  # redis-py packs with hiredis when it is installed (a dependency); kept optional here too
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover
    _hiredis_pack = None


def streams(pool: Any) -> bool:
    """Whether ``pool`` hands out redis-py socket connections to a real server (not fakeredis's)."""
    if pool is None:
        return False
    connection_class = pool.connection_class
    if connection_class.__module__.startswith("fakeredis"):
        return False
    return issubclass(connection_class, redis.connection.AbstractConnection)


class Batch(CoreCommands):
    """A non-transactional pipeline without redis-py's Pipeline machinery: commands are queued by
    the usual command methods, written in one go on a pooled connection, and the replies read back
    (error replies raised after all are read, the first one first, like ``Pipeline.execute``).

    On a connection error the batch is sent once more on a fresh connection, as redis-py's
    pipeline retries; anything else leaves the connection closed (replies may be in flight).
    """

    _event_dispatcher: Any = None  # CoreCommands declares it; nothing here emits events

    def __init__(self, client: Any) -> None:
        self._client = client
        self._commands: list[tuple[Any, ...]] = []

    def execute_command(self, *args: Any, **options: Any) -> None:
        self._commands.append(args)

    def __len__(self) -> int:
        return len(self._commands)

    def __bool__(self) -> bool:
        return True  # an empty batch is still a pipeline: ``pipe or client`` must pick it

    def execute(self) -> list[Any]:
        if not self._commands:
            return []
        for attempt in range(2):
            try:
                return self._send()
            except redis.exceptions.ConnectionError:
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self) -> list[Any]:
        pool = self._client.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_packed_command(_packed(connection, self._commands))
            replies: list[Any] = []
            error: redis.exceptions.ResponseError | None = None
            for command in self._commands:
                try:
                    reply = connection.read_response()
                except redis.exceptions.ResponseError as exc:
                    error = error or exc
                    reply = exc
                if command[0] == "HGETALL" and isinstance(reply, list):
                    reply = dict(zip(reply[0::2], reply[1::2], strict=True))
                replies.append(reply)
        except BaseException:
            connection.disconnect()
            raise
        finally:
            pool.release(connection)
        if error is not None:
            raise error
        return replies


def _packed(connection: Any, commands: list[tuple[Any, ...]]) -> Any:
    """RESP bytes for a batch: hiredis's C packer when present (redis-py's packer walks every
    argument in Python first, which a cohort chunk's ~10,000 script arguments feel), else redis-py's."""
    if _hiredis_pack is None or any(" " in command[0] for command in commands):
        return connection.pack_commands(commands)
    return [b"".join([_hiredis_pack(command) for command in commands])]


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

    async def execute(self) -> list[Any]:
        if not self._commands:
            return []
        try:
            return await self._send()
        except redis.exceptions.NoScriptError:
            if not self._scripts:
                raise
        for source in self._scripts:
            await self._client.script_load(source)
        return await self._send()

    async def _send(self) -> list[Any]:
        pool: Any = self._client.connection_pool
        connection = await pool.get_connection()  # a pool that is out of connections is not retried
        try:
            try:
                return await self._exchange(connection)
            except redis.exceptions.ConnectionError:
                return await self._exchange(connection)  # it reconnects: the first was a stale socket
        finally:
            await pool.release(connection)

    async def _exchange(self, connection: Any) -> list[Any]:
        replies: list[Any] = []
        error: redis.exceptions.ResponseError | None = None
        try:
            await connection.send_packed_command(_packed(connection, self._commands), check_health=False)
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
