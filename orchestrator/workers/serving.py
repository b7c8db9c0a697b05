"""Which journey versions each live process serves, for ``loyaloop status``.

Every worker process and scheduler loads its journeys once, at start-up (docs/runtime.md,
"Deploying a journey change"); during a rolling restart old and new processes serve different
versions side by side.  Each announces ``id@version, …`` under ``lp:serving:<host>:<pid>``, renewed
every :data:`RENEW` seconds and expiring after :data:`TTL`, so a stopped or killed process drops off
the list by itself.
"""

from __future__ import annotations

import logging
import os
import socket
import threading

import redis

from orchestrator.store import keys

log = logging.getLogger(__name__)

RENEW, TTL = 30.0, 90


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def announce(client: redis.Redis, loaded: str, *, process: str | None = None) -> None:
    """Say once what this process serves (expires after :data:`TTL` seconds)."""
    client.set(keys.serving(process or process_name()), loaded, ex=TTL)


def keep_announcing(url: str, loaded: str) -> threading.Thread:
    """A daemon thread renewing :func:`announce` while the process lives; Redis errors are logged
    and retried at the next turn (the announcement is for people, never a reason to stop work)."""
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)
    process = process_name()

    def run() -> None:
        while True:
            try:
                announce(client, loaded, process=process)
            except redis.RedisError as exc:
                log.warning("could not announce the journeys served (%s); retrying", type(exc).__name__)
            threading.Event().wait(RENEW)

    thread = threading.Thread(target=run, name="loyaloop-serving", daemon=True)
    thread.start()
    return thread


def serving(client: redis.Redis) -> dict[str, str]:
    """Live process (``host:pid``) → the ``id@version, …`` it serves."""
    prefix = keys.serving("")
    found: dict[str, str] = {}
    for key in client.scan_iter(match=f"{prefix}*", count=500):
        name = key.decode() if isinstance(key, bytes) else str(key)
        value = client.get(name)
        if value is not None:
            found[name[len(prefix) :]] = value.decode() if isinstance(value, bytes) else str(value)
    return found
