"""How many batches (event drains, cohort chunks) a worker process works on at once, and letting
a slot go while a batch waits on something other than CPU.

A batch is Python CPU under one GIL: two keep a process busy (one computes while the other waits
on Redis); more only make the threads take turns at the GIL, and every Redis reply then waits for
its thread's turn.  For events there is a second gain: while other shards wait for a slot their
lists fill, so each drain takes a bigger batch as the load grows.  A batch waiting on slow
providers computes nothing, so it gives its slot back for the wait (:func:`waiting`).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager

#: Batches one worker process works on at once (``LOYALOOP_BATCH_SLOTS``).
SLOTS = int(os.environ.get("LOYALOOP_BATCH_SLOTS", "2"))
_slots = threading.Semaphore(SLOTS)
_held = threading.local()


@contextmanager
def slot() -> Iterator[None]:
    """Hold one of the process's batch slots (blocking until one is free)."""
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
