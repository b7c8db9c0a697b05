"""A runtime on a simulated clock (the demo, the simulator) sends in turn: how slow a channel seemed
on this machine must not decide the order of a batch's sends, or the same story would come out
differently on a busy machine.  A worker's runtime hands a slow channel's sends to its threads."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from pydantic import SecretStr

from orchestrator.runtime import batch
from orchestrator.runtime.attempts import AttemptResult
from orchestrator.runtime.compose import build_runtime
from orchestrator.runtime.drain_slots import DrainSlots
from orchestrator.settings import load_settings
from orchestrator.workers.embedded import in_process_redis

ROOT = Path(__file__).resolve().parents[2]


def jobs(seen: list[str]) -> list[tuple[str, object]]:
    def job(name: str) -> object:
        def run() -> AttemptResult:
            seen.append(threading.current_thread().name)
            return AttemptResult("sent", "slow")

        return run

    return [("slow", job(str(n))) for n in range(4)]


def test_without_sender_threads_a_slow_channels_sends_run_in_turn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(batch._took, "slow", 10.0)  # the channel looks slow on this machine
    seen: list[str] = []
    results = batch._concurrently(None, DrainSlots(1), jobs(seen))  # type: ignore[arg-type]
    assert [r.outcome for r in results] == ["sent"] * 4
    assert set(seen) == {threading.current_thread().name}


def test_with_sender_threads_a_slow_channels_sends_go_to_them(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(batch._took, "slow", 10.0)
    seen: list[str] = []
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="loyaloop-send") as senders:
        batch._concurrently(senders, DrainSlots(1), jobs(seen))  # type: ignore[arg-type]
    assert all(name.startswith("loyaloop-send") for name in seen)


def test_a_runtime_on_a_private_in_process_redis_sends_in_turn() -> None:
    """``in_process`` (the demo's and the simulator's runtime) sends in turn; a worker's does not."""
    settings = load_settings(ROOT / "journeys", env={}).model_copy(update={"secret_key": SecretStr("k" * 40)})
    client = in_process_redis()
    for in_process in (True, False):
        runtime = build_runtime(settings, client, in_process=in_process, check_endpoints=False, channels={})
        try:
            assert runtime.serial_sends is in_process
        finally:
            runtime.close()
