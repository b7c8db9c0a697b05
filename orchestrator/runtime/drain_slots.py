"""How many event drains a worker process runs at once, and letting a slot go while a drain waits
on something other than CPU.

A drain is Python CPU under one GIL: two keep a process busy (one computes while the other waits
on Redis); more only make the threads take turns at the GIL.  And while the other shards wait for
a slot their lists fill, so each drain takes a bigger batch as the load grows.  A drain waiting on
slow providers computes nothing, so it gives its slot back for the wait (:func:`waiting`).

Cohort chunks do not take slots: a chunk is already 500 customers, and measured with and without
a slot, more chunks at once overlapped Redis' work on them better than two did.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Event drains one worker process runs at once (``LOYALOOP_BATCH_SLOTS``).
SLOTS = int(os.environ.get("LOYALOOP_BATCH_SLOTS", "2"))
_slots = threading.Semaphore(SLOTS)
_held = threading.local()


@contextmanager
def slot() -> Iterator[None]:
    """Hold one of the process's drain slots (blocking until one is free)."""
    _slots.acquire()
    _held.depth = getattr(_held, "depth", 0) + 1
    try:
        yield
    finally:
        _held.depth -= 1
        _slots.release()


@contextmanager
def waiting() -> Iterator[None]:
    """Give this thread's slot back while it waits on something other than CPU (no-op without one)."""
    if not getattr(_held, "depth", 0):
        yield
        return
    _slots.release()
    try:
        yield
    finally:
        _slots.acquire()
