"""The calendar's reading of every send log, done beside the requests rather than inside one.

The store keeps no per-day record of sends, so the calendar adds up every customer's frequency-cap
log (:func:`~orchestrator.http.console.reads.calendar`): a few milliseconds for a demo, tens of
seconds for 100,000 customers.  A page must not wait that long, so one reading at a time runs in a
thread of its own; a request shows the latest finished reading (and when it was made), starts a new
one when that is older than ``max_age``, and waits for a running one only ``wait`` seconds (enough
for a small shop's, so its first visit shows figures at once).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from orchestrator.http.console.reads import Calendar


class CalendarReader:
    def __init__(self, read: Callable[[], Calendar], *, max_age: float = 300.0, wait: float = 0.05) -> None:
        self._read = read
        self.max_age = max_age
        self.wait = wait
        self._lock = threading.Lock()
        self._latest: tuple[float, Calendar] | None = None
        self._running: threading.Thread | None = None
        self.error: str | None = None

    def _run(self) -> None:
        try:
            result = self._read()
        except Exception as exc:  # shown on the page; the next request tries again
            self.error = type(exc).__name__
        else:
            self.error = None
            with self._lock:
                self._latest = (time.monotonic(), result)
        finally:
            with self._lock:
                self._running = None

    def get(self) -> tuple[Calendar | None, bool]:
        """(the latest finished reading or None, whether a reading is under way)."""
        with self._lock:
            latest, running = self._latest, self._running
            stale = latest is None or time.monotonic() - latest[0] > self.max_age
            if stale and running is None:
                running = self._running = threading.Thread(target=self._run, name="console-calendar", daemon=True)
                running.start()
        if latest is None and running is not None:
            running.join(self.wait)
            with self._lock:
                latest, running = self._latest, self._running
        return (latest[1] if latest else None), running is not None
