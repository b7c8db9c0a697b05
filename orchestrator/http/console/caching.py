"""A short-lived memo for the console's readings of the measurement records and the report.

Reading every version's records takes ~100 ms and building the report from them ~30 ms (300-customer
demo, 9 journeys, on the 2-core test machine), independent of the number of customers: too much for
every page view, and the overview needs both.  Each reading is kept ``seconds`` per argument (the
journey id, or None for all), so a page shows the records as they were at most that long ago; the
console says so under its panels.  Readings are made under a lock per memo, so a burst of requests
reads once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")

#: How long one reading of the records serves the pages.
RECORDS_SECONDS = 15.0


class Memo(Generic[Key, Value]):
    """``read(key)`` remembered for ``seconds`` per key."""

    def __init__(self, read: Callable[[Key], Value], seconds: float = RECORDS_SECONDS) -> None:
        self._read = read
        self.seconds = seconds
        self._lock = threading.Lock()
        self._kept: dict[Key, tuple[float, Value]] = {}

    def __call__(self, key: Key, /) -> Value:
        with self._lock:
            now = time.monotonic()
            kept = self._kept.get(key)
            if kept is not None and now - kept[0] <= self.seconds:
                return kept[1]
            value = self._read(key)
            self._kept[key] = (time.monotonic(), value)
            return value
