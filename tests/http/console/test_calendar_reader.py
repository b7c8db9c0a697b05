"""The calendar's reading runs beside the requests: a slow one never holds a page."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from orchestrator.http.console.calendar_reader import CalendarReader
from orchestrator.http.console.reads import Calendar


def reading() -> Calendar:
    return Calendar([], {}, 0, timedelta(days=30), datetime.now(UTC))


def test_a_slow_first_reading_is_not_waited_for_and_is_shown_once_done() -> None:
    release = threading.Event()
    calls: list[int] = []

    def slow() -> Calendar:
        calls.append(1)
        release.wait(5)
        return reading()

    reader = CalendarReader(slow, max_age=60, wait=0.01)
    started = time.monotonic()
    assert reader.get() == (None, True)
    assert time.monotonic() - started < 1
    assert reader.get() == (None, True)  # the same reading, not a second one
    release.set()
    deadline = time.monotonic() + 5
    while reader.get()[1] and time.monotonic() < deadline:
        time.sleep(0.01)
    found, running = reader.get()
    assert found is not None and not running and len(calls) == 1


def test_a_quick_reading_is_shown_at_once_and_a_stale_one_is_read_again() -> None:
    calls: list[int] = []

    def quick() -> Calendar:
        calls.append(1)
        return reading()

    reader = CalendarReader(quick, max_age=0.05, wait=2)
    first, _running = reader.get()
    assert first is not None and calls == [1]
    time.sleep(0.1)
    stale, _ = reader.get()  # the old reading is shown while a new one runs
    assert stale is first
    deadline = time.monotonic() + 5
    while len(calls) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert len(calls) == 2


def test_a_failed_reading_is_reported_and_tried_again() -> None:
    attempts: list[int] = []

    def broken() -> Calendar:
        attempts.append(1)
        raise ConnectionError("redis went away")

    reader = CalendarReader(broken, max_age=60, wait=2)
    assert reader.get() == (None, False)
    assert reader.error == "ConnectionError"
    reader.get()
    assert len(attempts) == 2
