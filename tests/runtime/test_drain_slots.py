"""A worker process's drain slots: a bounded number of drains at once, a slot handed back while waiting,
owned by a runtime (sized from its settings) rather than read from the environment at import."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import pytest

from orchestrator.runtime.drain_slots import DrainSlots


def test_a_drain_beyond_the_limit_waits_until_a_slot_is_free_or_handed_back() -> None:
    """With every slot held, another drain waits; a holder that waits on providers lets it in meanwhile."""
    slots = DrainSlots(2)
    entered = threading.Event()
    release = threading.Event()
    holders_in = threading.Barrier(slots.count + 1)

    def holder(hand_back: bool) -> None:
        with slots.slot():
            holders_in.wait()
            if hand_back:
                with slots.waiting():
                    release.wait(5)
            else:
                release.wait(5)

    def latecomer() -> None:
        with slots.slot():
            entered.set()

    holders = [threading.Thread(target=holder, args=(n == 0,)) for n in range(slots.count)]
    for thread in holders:
        thread.start()
    holders_in.wait()
    late = threading.Thread(target=latecomer)
    late.start()
    assert entered.wait(2)  # the first holder handed its slot back while waiting
    release.set()
    for thread in [*holders, late]:
        thread.join(5)
    assert not any(thread.is_alive() for thread in [*holders, late])


def test_a_drain_waits_while_every_slot_is_held() -> None:
    """The limit holds: with the one slot taken, a second drain does not get in until it is let go."""
    slots = DrainSlots(1)
    entered = threading.Event()

    def latecomer() -> None:
        with slots.slot():
            entered.set()

    with slots.slot():
        late = threading.Thread(target=latecomer)
        late.start()
        assert not entered.wait(0.2)
    assert entered.wait(2)
    late.join(5)


def test_waiting_without_a_slot_changes_nothing() -> None:
    """Code outside a drain (a timer, a cohort) may call waiting(): it neither frees nor takes a slot."""
    slots = DrainSlots(2)
    with slots.waiting():
        time.sleep(0)
    acquired = [slots._free.acquire(blocking=False) for _ in range(slots.count)]
    assert all(acquired)
    assert not slots._free.acquire(blocking=False)  # and it did not add one either
    for _ in acquired:
        slots._free.release()


def test_two_runtimes_slots_are_their_own() -> None:
    """Slots are per instance: one runtime's held slots never make another's drains wait, and a
    thread holding a slot of one hands nothing back to the other while it waits."""
    first, second = DrainSlots(1), DrainSlots(1)
    with first.slot():
        with second.slot():
            pass  # would block forever if the two shared one semaphore
        with second.waiting():
            assert not first._free.acquire(blocking=False)


@pytest.mark.parametrize("count", [0, -1])
def test_fewer_than_one_slot_is_refused(count: int) -> None:
    """Zero slots would stop every drain for good; the settings refuse it, and so does the class."""
    with pytest.raises(ValueError, match="at least 1"):
        DrainSlots(count)


def test_importing_the_module_reads_no_environment() -> None:
    """The module used to read ``LOYALOOP_BATCH_SLOTS`` at import, so a typo was a bare ValueError
    from an import; now nothing is read there (the settings check the variable)."""
    env = {**os.environ, "LOYALOOP_BATCH_SLOTS": "two"}
    result = subprocess.run(
        [sys.executable, "-c", "import orchestrator.runtime.drain_slots"], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
