"""One event that is both a run's goal and the trigger that restarts it (a re-order in a
``re_entry: restart`` journey): the live run converts first, then the event enters the customer
anew, on both event paths, before any send or after it, held out or not.

The end reason used to hang on whether the run had sent a message yet (``sent``), so it followed
the timing of a send rather than the event, and a held-out run (which never sends) could never
convert where a treated one did."""

from __future__ import annotations

from pathlib import Path

from orchestrator.runtime.event_queue import QueuedEvent
from tests.runtime.harness import Harness, journey, running
from tests.runtime.test_runtime import customer


def restock(journey_id: str, holdout: float = 0) -> object:
    return journey(
        {
            "id": journey_id,
            "name": journey_id,
            "trigger": {"event": "order.placed"},
            "re_entry": "restart",
            "goals": [{"event": "order.placed"}],
            "holdout": holdout,
            "steps": [
                {"id": "pause", "wait": "3d"},
                {"id": "nudge", "send": "email", "template": "hello"},
                {"id": "later", "wait": "3d"},
                {"id": "again", "send": "email", "template": "hello"},
            ],
        }
    )


TREATED, HELD = restock("restock"), restock("restock_held", holdout=100)


def order(h: Harness, cid: str, n: int, *, batched: bool) -> None:
    """Order ``n`` of ``cid`` at the clock's moment, through the one-event or the batched path."""
    props = {"order_id": f"{cid}-{n}", "total": 10.0}
    if batched:
        h.runtime.handle_events([QueuedEvent(cid, "order.placed", props, f"{cid}-o{n}", h.clock())])
    else:
        h.runtime.handle_event(cid, "order.placed", props, f"{cid}-o{n}", h.clock())
    h.settle()


def live(h: Harness, cid: str, journey_id: str) -> str:
    """The customer's one live run in the journey."""
    (run_id,) = [run for run, jid in h.runtime.store.live_runs(cid).items() if jid == journey_id]
    return run_id


def ended(h: Harness, cid: str, run_id: str) -> tuple[str, str | None]:
    stored = h.runtime.store.get_enrollment(cid, run_id)
    assert stored is not None
    return stored.enrollment.status, stored.enrollment.exit_reason


def test_a_reorder_before_any_send_converts_the_run_then_restarts_it(redis_url: str, tmp_path: Path) -> None:
    with running(redis_url, tmp_path, [TREATED]) as h:
        for cid, batched in (("one", False), ("many", True)):
            customer(h, cid)
            order(h, cid, 1, batched=batched)
            first = live(h, cid, "restock")
            h.clock.advance(hours=1)
            order(h, cid, 2, batched=batched)  # the goal, and the restart, before the first send
            assert ended(h, cid, first) == ("converted", "goal"), cid
            second = live(h, cid, "restock")
            assert second != first and ended(h, cid, second)[0] == "waiting"
        assert h.outbox() == []
        stats = h.stats("restock")
        assert stats["_journey:converted"] == 2 and "_journey:restarted" not in stats
        assert stats["_journey:entered"] == 4


def test_a_held_out_run_converts_on_the_reorder_as_a_treated_one_does(redis_url: str, tmp_path: Path) -> None:
    """Both runs are past their first send (one sent it, one had it held): the re-order converts both."""
    with running(redis_url, tmp_path, [TREATED, HELD]) as h:
        customer(h, "c1")
        order(h, "c1", 1, batched=False)
        firsts = {jid: live(h, "c1", jid) for jid in ("restock", "restock_held")}
        h.tick(days=3, minutes=1)  # the first send: sent in one journey, held in the other
        assert [(m["journey_id"], m["step_id"]) for m in h.outbox()] == [("restock", "nudge")]
        h.clock.advance(hours=1)
        order(h, "c1", 2, batched=False)
        for jid, run_id in firsts.items():
            assert ended(h, "c1", run_id) == ("converted", "goal"), jid
            assert live(h, "c1", jid) != run_id
