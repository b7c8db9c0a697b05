"""How many event drains a worker process runs at once, and letting a slot go while a drain waits
on something other than CPU.

A drain is Python CPU under one GIL: two keep a process busy (one computes while the other waits
on Redis); more only make the threads take turns at the GIL.  And while the other shards wait for
a slot their lists fill, so each drain takes a bigger batch as the load grows.  A drain waiting on
slow providers computes nothing, so it gives its slot back for the wait (:meth:`DrainSlots.waiting`).

The slots belong to the runtime (``Runtime.slots``, sized by ``Settings.batch_slots``, i.e.
``LOYALOOP_BATCH_SLOTS``, in :mod:`orchestrator.runtime.compose`), not to the module: importing
this reads no environment, and two runtimes in one process (tests) do not share a limit.

Cohort chunks do not take slots: a chunk is already 500 customers, and measured with and without
a slot, more chunks at once overlapped Redis' work on them better than two did.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager


class DrainSlots:
    """A runtime's drain slots: a semaphore, and per thread how many of them it holds."""

    def __init__(self, count: int) -> None:
        if count < 1:
            raise ValueError(f"drain slots must be at least 1, not {count!r}")
        #: Event drains that may run at once.
        self.count = count
        self._free = threading.Semaphore(count)
        self._held = threading.local()

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold one of the drain slots (blocking until one is free)."""
        self._free.acquire()
        held = self._held
        held.depth = getattr(held, "depth", 0) + 1
        try:
            yield
        finally:
            held.depth -= 1
            self._free.release()

    @contextmanager
    def waiting(self) -> Iterator[None]:
        """Give this thread's slot back while it waits on something other than CPU (no-op without one)."""
        if not getattr(self._held, "depth", 0):
            yield
            return
        self._free.release()
        try:
            yield
        finally:
            self._free.acquire()
