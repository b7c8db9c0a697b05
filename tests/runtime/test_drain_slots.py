"""A worker process's drain slots: a bounded number of drains at once, a slot handed back while waiting."""

from __future__ import annotations

import threading
import time

from orchestrator.runtime import drain_slots as batch_slots


def test_a_drain_beyond_the_limit_waits_until_a_slot_is_free_or_handed_back() -> None:
    """With every slot held, another drain waits; a holder that waits on providers lets it in meanwhile."""
    entered = threading.Event()
    release = threading.Event()
    holders_in = threading.Barrier(batch_slots.SLOTS + 1)

    def holder(hand_back: bool) -> None:
        with batch_slots.slot():
            holders_in.wait()
            if hand_back:
                with batch_slots.waiting():
                    release.wait(5)
            else:
                release.wait(5)

    def latecomer() -> None:
        with batch_slots.slot():
            entered.set()

    holders = [threading.Thread(target=holder, args=(n == 0,)) for n in range(batch_slots.SLOTS)]
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


def test_waiting_without_a_slot_changes_nothing() -> None:
    """Code outside a drain (a timer, a cohort) may call waiting(): it neither frees nor takes a slot."""
    with batch_slots.waiting():
        time.sleep(0)
    acquired = [batch_slots._slots.acquire(blocking=False) for _ in range(batch_slots.SLOTS)]
    assert all(acquired)
    for _ in acquired:
        batch_slots._slots.release()
