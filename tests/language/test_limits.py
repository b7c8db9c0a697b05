"""A render's time budget counts the rendering thread's own processor time, less garbage collection:
a busy machine or a collection that falls inside a render must not fail a message (the same history
would then tell another story in a simulation), while a template that burns the processor still does."""

from __future__ import annotations

import gc
import time

import pytest

from orchestrator.language import limits


def test_waiting_for_a_core_does_not_spend_the_budget() -> None:
    with limits.budget("template email/probe", 0.05):
        time.sleep(0.2)  # the thread is off the processor, as when the machine is busy
        limits.check_clock()


def test_a_garbage_collection_inside_a_render_does_not_spend_the_budget() -> None:
    cycles: list[list[object]] = []
    for _ in range(300_000):
        item: list[object] = []
        item.append(item)
        cycles.append(item)
    gc.disable()
    try:
        with limits.budget("template email/probe", 0.02):
            started = time.thread_time()
            gc.collect()
            took = time.thread_time() - started
            limits.check_clock()
    finally:
        gc.enable()
        del cycles
    assert took > 0.02, f"the collection took {took:.3f} s, too little to test the budget with"


def test_burning_the_processor_spends_it() -> None:
    with limits.budget("template email/probe", 0.02), pytest.raises(limits.RenderLimitExceeded, match="time budget"):
        started = time.thread_time()
        while time.thread_time() - started < 0.1:
            pass
        limits.check_clock()
