"""The memo in front of the records: one reading per key and period, a burst reads once."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import pytest

from orchestrator.http.console.caching import INLINE_READING, STALE_LIMIT, Memo, RecordsMemo
from orchestrator.http.console.lift import record_sources
from orchestrator.http.console.startup import warm
from orchestrator.measure.figures import VersionFigures


def test_a_reading_is_kept_per_key_for_its_period() -> None:
    reads: list[str | None] = []

    def read(key: str | None) -> str:
        reads.append(key)
        return f"figures of {key}"

    memo = Memo(read, seconds=0.2)
    assert memo(None) == "figures of None" and memo(None) == "figures of None"
    assert memo("welcome") == "figures of welcome"
    assert reads == [None, "welcome"]
    time.sleep(0.25)
    memo(None)
    wait_for(lambda: memo.fresh(None) is not None)
    assert reads == [None, "welcome", None]


def wait_for(condition: Callable[[], bool], seconds: float = 5.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def test_past_its_period_a_slow_reading_is_served_while_a_thread_reads_again() -> None:
    """A page never waits for slow records once they were read: the reading that follows the period
    is made beside the pages, once however many pages ask meanwhile."""
    readings = iter(["first", "second"])
    release = threading.Event()
    reads: list[str] = []

    def read(key: str) -> str:
        value = next(readings)
        reads.append(value)
        if value == "first":
            time.sleep(INLINE_READING + 0.05)
        if value == "second":
            release.wait(5)
        return value

    memo = Memo(read, seconds=0.05)
    assert memo("all") == "first"
    time.sleep(0.08)
    started = time.monotonic()
    assert [memo("all") for _ in range(5)] == ["first"] * 5
    assert time.monotonic() - started < 0.5
    release.set()
    wait_for(lambda: memo.fresh("all") == "second")
    assert reads == ["first", "second"]


def test_a_failed_reading_again_keeps_the_old_one_and_says_so(caplog: pytest.LogCaptureFixture) -> None:
    calls: list[int] = []

    def read(key: str) -> str:
        calls.append(1)
        if len(calls) > 1:
            raise ConnectionError("redis down")
        return "first"

    memo = Memo(read, seconds=0.05)
    memo("all")
    time.sleep(0.08)
    memo._took["all"] = INLINE_READING * 2  # as if the first reading had been slow
    with caplog.at_level(logging.WARNING, logger="loyaloop.console"):
        assert memo("all") == "first"
        wait_for(lambda: "could not read the measurement records again (ConnectionError)" in caplog.text)
    wait_for(lambda: memo("all") == "first" and len(calls) >= 3)


def test_a_quick_reading_is_made_again_inside_the_request_that_finds_it_old() -> None:
    """A reading beside the requests slows every request it overlaps; a quick one is cheaper made
    by the one request that finds the kept one old."""
    reads: list[str] = []

    def read(key: str) -> int:
        reads.append(threading.current_thread().name)
        return len(reads)

    memo = Memo(read, seconds=0.05)
    assert memo("all") == 1
    time.sleep(0.08)
    assert memo("all") == 2 and reads == [threading.current_thread().name] * 2


def test_a_reading_too_old_to_serve_is_read_while_the_page_waits() -> None:
    reads: list[int] = []

    def read(key: str) -> int:
        reads.append(1)
        return len(reads)

    memo = Memo(read, seconds=0.01)
    assert memo("all") == 1
    memo._took["all"] = INLINE_READING * 2  # slow: only its age makes the page wait
    time.sleep(0.01 * STALE_LIMIT + 0.05)
    assert memo("all") == 2 and reads == [1, 1]


def test_a_burst_of_requests_reads_once() -> None:
    reads: list[int] = []

    def slow(key: str) -> int:
        reads.append(1)
        time.sleep(0.05)
        return 42

    memo = Memo(slow, seconds=10)
    threads = [threading.Thread(target=memo, args=("all",)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert reads == [1]


def version(journey_id: str) -> VersionFigures:
    return VersionFigures(journey_id=journey_id, version="v1")


def test_a_journey_is_cut_from_a_fresh_reading_of_all_and_read_alone_otherwise() -> None:
    reads: list[str | None] = []

    def read(key: str | None) -> list[VersionFigures]:
        reads.append(key)
        return [version(j) for j in ("welcome", "winback") if key in (None, j)]

    memo = RecordsMemo(read, seconds=0.2)
    assert [v.journey_id for v in memo("welcome")] == ["welcome"] and reads == ["welcome"]
    memo(None)
    assert [v.journey_id for v in memo("winback")] == ["winback"] and reads == ["welcome", None]
    time.sleep(0.25)
    memo("winback")
    wait_for(lambda: reads == ["welcome", None, "winback"])


def test_the_pages_and_the_report_share_one_reading_of_the_records() -> None:
    """The calendar or the overview reads every journey; the report's panels and each journey's
    page are then built from that reading, not from one of their own."""
    reads: list[str | None] = []

    def read(key: str | None) -> list[VersionFigures]:
        reads.append(key)
        return [version("welcome")]

    records, lift = record_sources(read)
    records(None)
    lift(None)
    lift("welcome")
    records("welcome")
    assert reads == [None]
    assert record_sources(records)[0] is records


def test_start_up_reads_the_records_and_the_report_once_beside_it(caplog: pytest.LogCaptureFixture) -> None:
    """``serve`` warms the shared reading in a thread; the first page then finds it kept.  A
    reading that fails at start-up is logged (by its kind) and left to the first page."""
    reads: list[str | None] = []

    def read(key: str | None) -> list[VersionFigures]:
        reads.append(key)
        return [version("welcome")]

    records, lift = record_sources(read)
    warm(records, lift).join(5)
    assert reads == [None] and records.fresh(None) is not None and lift.fresh(None) is not None

    def broken(key: str | None) -> list[VersionFigures]:
        raise ConnectionError("redis down")

    with caplog.at_level(logging.INFO, logger="loyaloop.console"):
        warm(*record_sources(broken)).join(5)
    assert "could not read the measurement records at start-up (ConnectionError)" in caplog.text
