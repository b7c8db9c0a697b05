"""Poison input through every door is refused with its error and counted; the worker survives it."""

from __future__ import annotations

from tests.drills import poison


def test_every_poison_input_is_refused_and_no_worker_dies() -> None:
    """The Python API, JSONL import, raw Dramatiq messages, HTTP, the CLI and journey validation each
    refuse every malformed input of the corpus; the refusals are counted in Redis; the worker process
    that received the malformed messages is still the same process and still delivers a good event."""
    result = poison.run(timeout=60.0)
    text = poison.report(result)
    for door in result.doors:
        assert door.accepted == [], text
        assert door.refused == door.sent, text
    assert result.refused_counters.get("input:customer_id", 0) >= 6, text
    assert result.worker_alive and result.worker_pid_before in result.worker_pids_after, text
    assert result.control_delivered, text
