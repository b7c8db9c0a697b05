"""The bounded thread hand-off: work runs in its threads, and when every thread and queue place is
taken a call is refused at once rather than queued behind the stuck ones."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from orchestrator.errors import ServiceUnavailable
from orchestrator.http.offload import Offload


def test_work_runs_in_the_pools_threads() -> None:
    """Not on the event loop's thread: that is the point of the hand-off."""
    offload = Offload(threads=2, backlog=1)
    try:
        name = asyncio.run(offload.run(lambda: threading.current_thread().name))
    finally:
        offload.close()
    assert name.startswith("loyaloop-http")


def test_a_full_pool_refuses_at_once_and_takes_calls_again_once_free() -> None:
    """Two threads and one queue place: a fourth call is refused immediately (503 upstream), and
    once the stuck calls end the pool serves again."""
    offload = Offload(threads=2, backlog=1)
    release = threading.Event()

    async def scenario() -> tuple[float, list[str]]:
        stuck = [asyncio.ensure_future(offload.run(release.wait, 10)) for _ in range(3)]
        await asyncio.sleep(0.05)
        started = time.monotonic()
        with pytest.raises(ServiceUnavailable) as refused:
            await offload.run(lambda: "never")
        took = time.monotonic() - started
        assert refused.value.retry_after >= 1
        release.set()
        await asyncio.gather(*stuck)
        return took, [await offload.run(lambda: "served") for _ in range(4)]

    try:
        took, after = asyncio.run(scenario())
    finally:
        offload.close()
    assert took < 0.05
    assert after == ["served"] * 4


def test_a_cancelled_caller_keeps_its_place_until_its_thread_is_done() -> None:
    """A request that goes away does not free the place of a thread still waiting on Redis."""
    offload = Offload(threads=1, backlog=0)
    release = threading.Event()

    async def scenario() -> None:
        waiting = asyncio.ensure_future(offload.run(release.wait, 10))
        await asyncio.sleep(0.05)
        waiting.cancel()
        await asyncio.sleep(0.05)
        with pytest.raises(ServiceUnavailable):
            await offload.run(lambda: "never")
        release.set()
        await asyncio.sleep(0.05)
        assert await offload.run(lambda: "served") == "served"

    try:
        asyncio.run(scenario())
    finally:
        offload.close()
