"""``Runtime.end_run``: support staff remove a customer from a journey through the runtime's exit path."""

from __future__ import annotations

from pathlib import Path

from tests.runtime.harness import running
from tests.runtime.test_runtime import CART, customer


def test_ending_a_waiting_run_exits_it_and_nothing_is_sent_later(redis_url: str, tmp_path: Path) -> None:
    with running(redis_url, tmp_path, [CART]) as h:
        customer(h, "c1")
        h.api.track("c1", "cart.abandoned")
        h.settle()
        (run_id,) = h.runtime.store.live_runs("c1")
        assert h.runtime.end_run("c1", run_id, "removed") is True
        assert h.runtime.store.live_runs("c1") == {}
        stored = h.runtime.store.get_enrollment("c1", run_id)
        assert stored is not None
        assert stored.enrollment.status == "exited" and stored.enrollment.exit_reason == "removed"
        h.tick(days=2)  # the wait's timer finds a newer revision and does nothing
        assert h.outbox() == []
        stats = h.stats("cart")
        assert stats["_journey:exited"] == 1 and stats["_journey:removed"] == 1
        assert h.runtime.end_run("c1", run_id, "removed") is False  # already finished
        assert h.runtime.end_run("c1", "cart-0000000000000000", "removed") is False  # unknown
