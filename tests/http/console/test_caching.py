"""The memo in front of the records: one reading per key and period, a burst reads once."""

from __future__ import annotations

import threading
import time

from orchestrator.http.console.caching import Memo


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
