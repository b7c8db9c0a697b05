"""Poison input through every door is refused with its error and counted; the worker survives it."""

from __future__ import annotations

import pytest

from tests.drills import poison


@pytest.fixture(scope="module")
def drilled() -> poison.PoisonResult:
    """One run of the drill (workers, HTTP server and CLI processes are slow to start), shared below."""
    return poison.run(timeout=60.0)


@pytest.mark.parametrize(
    "door",
    ["Python API: Loyaloop.track", "import: JSONL file", "HTTP: POST /v1/track", "CLI: loyaloop track"],
)
def test_each_malformed_event_is_refused_at_the_door(drilled: poison.PoisonResult, door: str) -> None:
    """Every malformed event of the corpus is refused by this door (an error, a 4xx, exit 1) and
    nothing malformed is accepted."""
    found = next(d for d in drilled.doors if d.name == door)
    assert found.accepted == [] and found.refused == found.sent > 0, poison.report(drilled)


def test_malformed_journeys_are_refused_with_their_location(drilled: poison.PoisonResult) -> None:
    """``loyaloop validate`` exits 1 naming file:line for each broken journey; the loader refuses the folder."""
    found = next(d for d in drilled.doors if d.name.startswith("journeys"))
    assert found.accepted == [] and found.refused == found.sent == len(poison.JOURNEYS) + 1, poison.report(drilled)


def test_refusals_are_counted_by_reason(drilled: poison.PoisonResult) -> None:
    """Refused inputs are counted in Redis by the field at fault, not silently dropped."""
    counters = drilled.refused_counters
    for reason in ("input:customer_id", "input:event", "input:properties", "input:event_id", "input:timestamp"):
        assert counters.get(reason, 0) >= 2, counters


def test_malformed_queue_messages_are_counted_and_dropped(drilled: poison.PoisonResult) -> None:
    """Messages that bypass intake validation (straight onto the Dramatiq queues) are counted and
    dropped by the worker, and none of them is stored as if it were good."""
    found = next(d for d in drilled.doors if d.name.startswith("Dramatiq queue"))
    assert found.accepted == [], poison.report(drilled)


def test_bad_shard_records_are_kept_aside_as_bad_input_not_as_bugs(drilled: poison.PoisonResult) -> None:
    """The two records written straight into event shards are kept aside as bad input, counted and
    listed so; no event of the drill is taken for a bug."""
    assert drilled.kept_aside_counted == {"input": 2, "bug": 0}, poison.report(drilled)
    assert drilled.kept_aside_listed == {"input": 2}, poison.report(drilled)


def test_the_worker_survives_and_still_delivers(drilled: poison.PoisonResult) -> None:
    """The worker process that ate the malformed messages is the same process afterwards and still
    delivers a good event."""
    assert drilled.worker_alive and drilled.worker_pid_before in drilled.worker_pids_after, poison.report(drilled)
    assert drilled.control_delivered, poison.report(drilled)
