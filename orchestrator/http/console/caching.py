"""A short-lived memo for the console's readings of the measurement records and the report.

Reading every version's records takes tens of milliseconds and building the report from them a few
more (docs/benchmarks.md, the console's section): too much for every page view, and the overview
needs both.  Each reading is kept ``seconds`` per argument (the journey id, or None for all), so a
page shows the records as they were at most that long ago; the console says so under its panels.
Readings are made under a lock per memo, so a burst of requests reads once.  Past its period a
reading that took longer than :data:`INLINE_READING` is still served, for up to :data:`STALE_LIMIT`
periods, while a thread reads it again: a page then never waits seconds for the records (whose
reading grows with the journeys and, on a Cluster, with the slots that hold them).  A quicker
reading is made again inside the request that finds it old: a reading beside the requests competes
with them for the interpreter, and every request it overlaps pays a few milliseconds at each of its
thread hand-overs (measured: a calendar request of 6 ms took 110 to 129 ms beside a 35 ms reading,
docs/benchmarks.md), more in all than the one request that reads.  The records' memo
(:class:`RecordsMemo`) answers a journey from a fresh reading of all journeys, and the report is
built on that memo (:func:`record_sources`), so the calendar, the overview, its report and every
journey page share one reading.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from orchestrator.measure.figures import VersionFigures

Key = TypeVar("Key", bound=Hashable)
Value = TypeVar("Value")

#: How long one reading of the records serves the pages.
RECORDS_SECONDS = 15.0
#: Seconds a reading may take and still be made again inside a request (see the module's text).
INLINE_READING = 0.15
#: Periods an old reading is still served while a new one is made beside the pages; past that
#: (the store has been failing that long) a page waits for a reading of its own, or its error.
STALE_LIMIT = 10

log = logging.getLogger("loyaloop.console")


class Memo(Generic[Key, Value]):
    """``read(key)`` remembered for ``seconds`` per key (then read again inline or beside, by its cost)."""

    def __init__(self, read: Callable[[Key], Value], seconds: float = RECORDS_SECONDS) -> None:
        self._read = read
        self.seconds = seconds
        self._lock = threading.Lock()
        self._kept: dict[Key, tuple[float, Value]] = {}
        self._refreshing: set[Key] = set()
        #: Seconds the latest reading of each key took.
        self._took: dict[Key, float] = {}

    def __call__(self, key: Key, /) -> Value:
        with self._lock:
            now = time.monotonic()
            kept = self._kept.get(key)
            if kept is not None and now - kept[0] <= self.seconds:
                return kept[1]
            slow = self._took.get(key, 0.0) > INLINE_READING
            if kept is not None and slow and now - kept[0] <= self.seconds * STALE_LIMIT:
                if key not in self._refreshing:
                    self._refreshing.add(key)
                    threading.Thread(target=self._refresh, args=(key,), name="console-records", daemon=True).start()
                return kept[1]
            value = self._timed_read(key)
            self._kept[key] = (time.monotonic(), value)
            return value

    def _timed_read(self, key: Key) -> Value:
        started = time.monotonic()
        value = self._read(key)
        self._took[key] = time.monotonic() - started
        return value

    def _refresh(self, key: Key) -> None:
        """Read ``key`` again beside the pages; a failure leaves the old reading to be served."""
        try:
            value = self._timed_read(key)
        except Exception as exc:  # the pages go on with the old reading; the next one tries again
            log.warning(
                "could not read the measurement records again (%s); the pages show the last reading", type(exc).__name__
            )
        else:
            with self._lock:
                self._kept[key] = (time.monotonic(), value)
        finally:
            with self._lock:
                self._refreshing.discard(key)

    def fresh(self, key: Key) -> Value | None:
        """The kept reading of ``key`` if it is still within its period, else None (nothing is read)."""
        with self._lock:
            kept = self._kept.get(key)
            return kept[1] if kept is not None and time.monotonic() - kept[0] <= self.seconds else None


class RecordsMemo(Memo[str | None, list[VersionFigures]]):
    """The records' memo: a journey's figures are cut from a fresh reading of all journeys when
    there is one (the overview or the calendar read them all), else read on their own."""

    def __call__(self, key: str | None, /) -> list[VersionFigures]:
        if key is not None:
            every = self.fresh(None)
            if every is not None:
                return [version for version in every if version.journey_id == key]
        return super().__call__(key)
