"""Journey ``update`` steps are part of the step's compare-and-set: recorded atomically with it,
applied once (keyed by run id and step id), and re-driven by a timer when a crash interrupts."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from orchestrator.engine.run_ids import UPDATE_RUN_PREFIX, run_id_for
from orchestrator.store import PendingUpdate, Store, keys
from orchestrator.store.timers import member
from tests.runtime.harness import Harness, journey, running

REWARD = journey(
    {
        "id": "reward",
        "name": "Reward",
        "trigger": {"event": "signup"},
        "steps": [
            {"id": "award", "update": {"set": {"tier": "silver"}, "increment": {"points": 10}}},
            {"id": "thank", "update": {"to": "trigger.referrer", "increment": {"credits": 5}}},
            {"id": "pause", "wait": "1d"},
        ],
    }
)


def _setup(h: Harness) -> None:
    for cid in ("c1", "ref"):
        h.api.identify(cid, {"email": f"{cid}@example.com", "consent": {"email": True}})


class Crash(RuntimeError):
    """A worker dying between the compare-and-set and applying the update."""


def test_updates_to_the_customer_and_to_another_customer_are_applied_once(redis_url: str, tmp_path: Path) -> None:
    """The entering customer gets ``set`` and ``increment``; the referrer (``update.to``) gets its
    credits; nothing pending or re-drive timer is left afterwards, only the 1-day wait."""
    with running(redis_url, tmp_path, [REWARD]) as h:
        _setup(h)
        h.api.track("c1", "signup", {"referrer": "ref"}, event_id="e1")
        h.settle()
        store = h.runtime.store
        c1, ref = store.get_profile("c1"), store.get_profile("ref")
        assert c1 is not None and ref is not None
        assert c1.attributes == {"tier": "silver", "points": 10}
        assert ref.attributes == {"credits": 5}
        run_id = run_id_for("reward", "c1", "e1")
        stored = store.get_enrollment("c1", run_id)
        assert stored is not None and stored.enrollment.step_id == "pause"
        assert not h.client.exists(keys.pending_updates("c1"))
        assert h.runtime.timers.pending() == 1


def test_a_crash_between_the_step_and_its_update_is_re_driven_without_double_counting(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The step's compare-and-set stores the run at ``pause`` together with its pending updates;
    a failure injected right after it loses nothing: the re-drive timer fires after the lease and
    applies both updates once, and firing it again changes nothing."""
    with running(redis_url, tmp_path, [REWARD]) as h:
        _setup(h)
        h.settle()
        store = h.runtime.store
        original = Store.apply_update

        def crash(self: Store, update: PendingUpdate) -> bool:
            raise Crash("worker died")

        monkeypatch.setattr(Store, "apply_update", crash)
        with pytest.raises(Crash):
            h.runtime.handle_event("c1", "signup", {"referrer": "ref"}, "e1", datetime.now(UTC))
        monkeypatch.setattr(Store, "apply_update", original)

        run_id = run_id_for("reward", "c1", "e1")
        stored = store.get_enrollment("c1", run_id)
        assert stored is not None and stored.enrollment.step_id == "pause"  # the step moved on
        c1 = store.get_profile("c1")
        assert c1 is not None and c1.attributes == {}  # ... but the update was not applied
        assert len(store.pending_updates("c1", run_id, stored.enrollment.revision)) == 2

        h.tick(seconds=h.runtime.send_lease + 1)
        c1, ref = store.get_profile("c1"), store.get_profile("ref")
        assert c1 is not None and ref is not None
        assert c1.attributes == {"tier": "silver", "points": 10}
        assert ref.attributes == {"credits": 5}
        assert store.pending_updates("c1", run_id, stored.enrollment.revision) == []

        # A replayed re-drive (a redelivered timer message) applies nothing twice.
        h.actors.fire_timers.send([member("c1", UPDATE_RUN_PREFIX + run_id, stored.enrollment.revision)])
        h.settle()
        assert h.runtime.redrive_updates("c1", run_id, stored.enrollment.revision) == "stale"
        c1 = store.get_profile("c1")
        assert c1 is not None and c1.attributes["points"] == 10


def test_apply_update_is_idempotent_per_run_and_step(redis_url: str, tmp_path: Path) -> None:
    """The same keyed update applied twice increments once; another step's key increments again."""
    with running(redis_url, tmp_path, [REWARD]) as h:
        store = h.runtime.store
        first = PendingUpdate("run-1:award", "c9", {}, {"points": 2.5})
        assert store.apply_update(first) is True
        assert store.apply_update(first) is False
        assert store.apply_update(PendingUpdate("run-1:again", "c9", {"x": "y"}, {"points": 1})) is True
        profile = store.get_profile("c9")
        assert profile is not None and profile.attributes == {"points": 3.5, "x": "y"}
