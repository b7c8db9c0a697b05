"""A bounded hand-off of blocking work (synchronous Redis calls) from the event loop to threads.

What cannot run on the event loop without blocking it -- an ``identify`` (a compare-and-set on
the profile), a batch, the Dramatiq message that wakes a drain -- runs here.  The pool is small and
its queue bounded: when a Redis that stopped answering holds every thread, a new request is refused
at once (:class:`~orchestrator.errors.ServiceUnavailable`, answered 503) instead of queueing behind
the stuck ones, so the wait of every request stays bounded by the Redis timeout.

Starlette's ``run_in_threadpool`` is not used for this: its pool is shared with everything else and
its queue has no bound.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from prometheus_client import Counter

from orchestrator.errors import ServiceUnavailable

T = TypeVar("T")

#: Threads per server process: blocking work is a few Redis round trips, mostly waiting.
THREADS = 8
#: Calls that may wait for a thread; past them a call is refused at once.
BACKLOG = 16

SATURATED = Counter("loyaloop_http_offload_refused_total", "Blocking calls refused because every thread was busy")


class Offload:
    """``await offload.run(fn, *args)`` runs ``fn`` in a thread of a small pool, or raises
    :class:`~orchestrator.errors.ServiceUnavailable` at once when ``threads + backlog`` calls are
    already running or waiting."""

    def __init__(self, *, threads: int = THREADS, backlog: int = BACKLOG) -> None:
        self._executor = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="loyaloop-http")
        # Released by the thread when the call ends, not by the awaiting request: a request that is
        # cancelled (its client went away) must not free a slot whose thread still waits on Redis.
        self._slots = threading.BoundedSemaphore(threads + backlog)

    def _call(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            return fn(*args)
        finally:
            self._slots.release()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if not self._slots.acquire(blocking=False):
            SATURATED.inc()
            raise ServiceUnavailable("every worker thread is busy (is Redis answering?)")
        try:
            future = self._executor.submit(self._call, fn, args)
        except BaseException:
            self._slots.release()
            raise
        return await asyncio.wrap_future(future)

    def close(self) -> None:
        """Stop taking calls; running ones finish in their threads (bounded by the Redis timeout)."""
        self._executor.shutdown(wait=False, cancel_futures=True)
