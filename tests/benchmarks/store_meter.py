"""How much of a process's processor time goes to talking to Redis, and how much to everything else.

The simulation benchmark uses it to tell the two apart: the time inside the store's round trips
(packing commands, the socket calls, reading replies, redis-py's pool) could shrink with a faster
store; the rest (the engine, the gate's Python, rendering, the run codec, the recorder) would not.
It wraps the three doors every round trip goes through (the store's packer, redis-py's command
and pipeline calls), counting only the outermost call when one goes through another.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import redis
import redis.client

from orchestrator.store import batch


@dataclass
class StoreMeter:
    """Processor and wall seconds spent inside round trips, and how many round trips."""

    cpu: float = 0.0
    wall: float = 0.0
    calls: int = 0
    _inside: threading.local = field(default_factory=threading.local)

    def wrap(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def measured(*args: Any, **kwargs: Any) -> Any:
            if getattr(self._inside, "depth", 0):
                return call(*args, **kwargs)
            self._inside.depth = 1
            cpu, wall = time.thread_time(), time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self.cpu += time.thread_time() - cpu
                self.wall += time.perf_counter() - wall
                self.calls += 1
                self._inside.depth = 0

        return measured


@contextmanager
def store_meter() -> Iterator[StoreMeter]:
    """Meter every round trip made while inside; each call's processor time is its own thread's."""
    meter = StoreMeter()
    doors: list[tuple[Any, str]] = [
        (batch, "_exchange"),
        (redis.Redis, "execute_command"),
        (redis.client.Pipeline, "execute"),
    ]
    saved = [(owner, name, getattr(owner, name)) for owner, name in doors]
    try:
        for owner, name, call in saved:
            setattr(owner, name, meter.wrap(call))
        yield meter
    finally:
        for owner, name, call in saved:
            setattr(owner, name, call)
