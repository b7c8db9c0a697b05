"""The event-loop intake: a track is queued on the asyncio Redis client exactly as
``Loyaloop.track`` queues it, and a drain nudge that cannot be sent does not lose the event."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest
import redis

from orchestrator.errors import InputError
from orchestrator.http.availability import async_redis_like, close_async_redis
from orchestrator.http.offload import Offload
from orchestrator.http.queue_intake import QueueIntake, ThreadedIntake, async_intake
from orchestrator.runtime.event_queue import EventQueue, decode
from orchestrator.runtime.intake import Loyaloop
from orchestrator.store import keys
from tests.http.helpers import RecordingIntake

T = TypeVar("T")


class Nudges:
    def __init__(self, *, fail: bool = False, hang: threading.Event | None = None) -> None:
        self.drains: list[int] = []
        self.fail = fail
        self.hang = hang

    def nudge_drain(self, shard: int) -> None:
        if self.hang is not None:
            self.hang.wait(10)
        if self.fail:
            raise redis.exceptions.ConnectionError("the broker is unreachable")
        self.drains.append(shard)

    def nudge_profile(self, customer_id: str) -> None:
        pass


def with_intake(client: redis.Redis, nudges: Nudges, use: Callable[[QueueIntake], Awaitable[T]]) -> T:
    loyaloop = Loyaloop(nudges, client)

    async def scenario() -> T:
        aredis = async_redis_like(client, timeout=0.3)
        offload = Offload(threads=2, backlog=2)
        try:
            intake = async_intake(loyaloop, aredis, offload, timeout=0.3)
            assert isinstance(intake, QueueIntake)
            return await use(intake)
        finally:
            offload.close()
            await close_async_redis(aredis)

    return asyncio.run(scenario())


def test_a_track_is_queued_like_the_sync_client_does_and_nudges_an_idle_shard_once(redis_client: redis.Redis) -> None:
    """The record on the shard's list is the one ``Loyaloop.track`` writes; only the first track of
    an idle shard sends a drain message."""
    nudges = Nudges()

    async def use(intake: QueueIntake) -> list[str]:
        return [await intake.track("c-1", "order.placed", {"total": 3}, event_id=f"e-{n}") for n in range(2)]

    assert with_intake(redis_client, nudges, use) == ["e-0", "e-1"]
    queue = EventQueue(redis_client)
    shard = queue.shard_of("c-1")
    assert nudges.drains == [shard]  # the second track found the shard already marked
    queued = [decode(raw) for raw in redis_client.lrange(keys.event_queue(shard), 0, -1)]
    assert [(event.customer_id, event.event_id, event.properties) for event in queued] == [
        ("c-1", "e-0", {"total": 3}),
        ("c-1", "e-1", {"total": 3}),
    ]


def test_a_nudge_that_fails_or_hangs_still_answers_and_the_event_stays_queued(
    redis_client: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    """The event is durable before the nudge; the scheduler re-drives the marked shard."""
    release = threading.Event()
    with caplog.at_level(logging.WARNING, logger="loyaloop.http"):
        failed = with_intake(redis_client, Nudges(fail=True), lambda intake: intake.track("c-1", "e", event_id="a"))
        hung = with_intake(redis_client, Nudges(hang=release), lambda intake: intake.track("c-2", "e", event_id="b"))
    release.set()
    assert (failed, hung) == ("a", "b")
    assert EventQueue(redis_client).depth() == 2
    warnings = [record.getMessage() for record in caplog.records]
    assert any("ConnectionError" in text and "re-drives" in text for text in warnings)
    assert any("TimeoutError" in text for text in warnings)


def test_a_refused_event_is_raised_and_counted(redis_client: redis.Redis) -> None:
    """Like ``Loyaloop.track``: InputError with its field, counted by field, nothing queued."""

    async def use(intake: QueueIntake) -> None:
        with pytest.raises(InputError) as refused:
            await intake.track("c 1", "e")
        assert refused.value.field == "customer_id"

    with_intake(redis_client, Nudges(), use)
    assert Loyaloop(Nudges(), redis_client).store.refused_counts() == {"input:customer_id": 1}
    assert EventQueue(redis_client).depth() == 0


def test_any_other_intake_runs_in_the_threads(redis_client: redis.Redis) -> None:
    """A test double (or an embedded client) is called in the bounded thread pool."""
    recording = RecordingIntake()

    async def scenario() -> str:
        aredis = async_redis_like(redis_client, timeout=0.3)
        offload = Offload(threads=1, backlog=0)
        try:
            intake = async_intake(recording, aredis, offload, timeout=0.3)
            assert isinstance(intake, ThreadedIntake)
            await intake.identify("c-1", {"plan": "gold"})
            return await intake.track("c-1", "e", event_id="x")
        finally:
            offload.close()
            await close_async_redis(aredis)

    assert asyncio.run(scenario()) == "x"
    assert recording.identified == [("c-1", {"plan": "gold"})]
