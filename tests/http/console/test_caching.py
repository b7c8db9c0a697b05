"""The memo in front of the records: one reading per key and period, a burst reads once."""

from __future__ import annotations

import logging
import threading
import time

import pytest

from orchestrator.http.console.caching import Memo, RecordsMemo
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
    assert reads == [None, "welcome", None]


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
    assert reads == ["welcome", None, "winback"]


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
