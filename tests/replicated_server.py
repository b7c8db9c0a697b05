"""A real master and its replica (``redis-server --replicaof``) on loopback, for the tests of the
intake's ``WAIT`` (``LOYALOOP_INTAKE_REPLICAS``): cheaper than a cluster, and the same replication."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import redis

from tests.redis_server import RedisServer

#: Redis 7 waits 5 s for more replicas before a diskless full sync; one replica need not wait.
FAST_SYNC = ("--repl-diskless-sync-delay", "0")


class ReplicatedRedis:
    """A master and one replica; :meth:`frozen` stops the replica (SIGSTOP) so it confirms nothing
    until it is resumed -- deterministic, and resumed at once, without a resync."""

    def __init__(self) -> None:
        self.master = RedisServer(extra_args=FAST_SYNC)
        self.replica = RedisServer()

    @property
    def url(self) -> str:
        return self.master.url

    def start(self) -> ReplicatedRedis:
        try:
            self.master.start()
            self.replica.extra_args = ["--replicaof", "127.0.0.1", str(self.master.port)]
            self.replica.start()
            self.wait_linked()
        except BaseException:
            self.cleanup()
            raise
        return self

    def wait_linked(self, timeout: float = 15.0) -> None:
        """Until the master counts its replica online and the replica's link is up."""
        master = redis.Redis.from_url(self.master.url, decode_responses=True)
        replica = redis.Redis.from_url(self.replica.url, decode_responses=True)
        deadline = time.monotonic() + timeout
        try:
            while True:
                linked = replica.info("replication").get("master_link_status") == "up"
                online = master.info("replication").get("slave0", {}).get("state") == "online"
                if linked and online:  # (a replica still in its first sync counts as connected)
                    return
                if time.monotonic() > deadline:
                    raise RuntimeError("the replica did not link to its master in time")
                time.sleep(0.05)
        finally:
            master.close()
            replica.close()

    def flush(self) -> None:
        """Empty the master (the replica follows) and its command statistics."""
        master = redis.Redis.from_url(self.master.url)
        master.flushall()
        master.execute_command("WAIT", 1, 2000)  # the replica has the flush before the test starts
        master.config_resetstat()
        master.close()

    def waits(self) -> int:
        """``WAIT`` calls the master has run since the last :meth:`flush` (``INFO commandstats``)."""
        master = redis.Redis.from_url(self.master.url, decode_responses=True)
        stats: dict[str, Any] = master.info("commandstats")
        master.close()
        return int(stats.get("cmdstat_wait", {}).get("calls", 0))

    @contextmanager
    def frozen(self) -> Iterator[None]:
        """The replica stopped (SIGSTOP) for the length of the block, then resumed."""
        assert self.replica.process is not None
        os.kill(self.replica.process.pid, signal.SIGSTOP)
        try:
            yield
        finally:
            os.kill(self.replica.process.pid, signal.SIGCONT)

    def cleanup(self) -> None:
        if self.replica.process is not None:
            os.kill(self.replica.process.pid, signal.SIGCONT)  # a stopped process ignores SIGTERM
        self.replica.cleanup()
        self.master.cleanup()
