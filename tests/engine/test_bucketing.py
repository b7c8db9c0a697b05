"""Deterministic chance: holdout (control group) membership and split arms come from stable
hashes, follow their percentages, and a holdout member walks the journey without a message."""

from __future__ import annotations

from collections import Counter

from orchestrator import engine
from orchestrator.engine.enrollment import Record, SendAction
from orchestrator.language.journey import SplitStep
from tests.engine.builders import SPLIT, WELCOME, fire, of_type, only, profile, start

# ----------------------------------------------------------------------------------------------
# Holdout.


def test_holdout_members_walk_the_journey_but_never_get_a_send_action() -> None:
    """A control group is enrolled, waits like everyone else and is measured, never messaged."""
    flow = WELCOME.model_copy(update={"holdout": 50.0})
    held = [f"c{i}" for i in range(200) if engine.is_holdout("flow", f"c{i}", 50)]
    assert 60 < len(held) < 140
    for customer in held[:20]:
        who = profile(customer)
        d = start(flow, who)
        assert d.enrollment.holdout
        assert d.actions[:2] == (Record(None, "entered"), Record(None, "holdout"))
        steps = 0
        while not d.enrollment.finished:
            assert not of_type(d, SendAction)
            d = fire(flow, d, who)
            steps += 1
        assert not of_type(d, SendAction)
        assert steps == 2, "both waits were taken"
        assert d.enrollment.outcomes == {"hello": "holdout", "points": "holdout", "offer": "holdout"}
        assert d.enrollment.sent == 0


def test_holdout_zero_and_hundred() -> None:
    """0% holds nobody out, 100% holds everyone out."""
    assert not any(engine.is_holdout("j", f"c{i}", 0) for i in range(500))
    assert all(engine.is_holdout("j", f"c{i}", 100) for i in range(500))


def test_holdout_is_deterministic_and_near_its_percentage() -> None:
    """The same customer is always in (or out of) the control group; 10% is about 10%."""
    ids = [f"cust-{i}" for i in range(10_000)]
    share = sum(engine.is_holdout("winback", i, 10) for i in ids) / len(ids)
    assert 0.085 < share < 0.115
    # Pinned, not recomputed: a per-process salt (``hash()``) would agree with itself here and still
    # move live customers in and out of the control group on every deploy.
    held = [i for i in ids[:100] if engine.is_holdout("winback", i, 10)]
    assert held == ["cust-7", "cust-10", "cust-41", "cust-55", "cust-59", "cust-73", "cust-80", "cust-81"]


# ----------------------------------------------------------------------------------------------
# Split arms.


def test_split_is_deterministic_per_customer() -> None:
    """The same customer always takes the same arm, and the record names it."""
    for i in range(50):
        who = profile(f"c{i}")
        first, second = start(SPLIT, who), start(SPLIT, who)
        arm = only(first, SendAction).step_id
        assert arm == only(second, SendAction).step_id
        assert Record("ab", f"split:{arm.removeprefix('send_')}") in first.actions
    # Pinned, as for holdouts: the arm must be the same in every process, not only twice in this one.
    arms = [only(start(SPLIT, profile(f"c{i}")), SendAction).step_id for i in range(10)]
    assert arms == ["send_b", "send_c", "send_b", "send_b", "send_b", "send_b", "send_c", "send_a", "send_b", "send_a"]


def test_split_distribution_follows_the_percentages() -> None:
    """Over 10,000 customers each arm gets its share within two percentage points."""
    step = SPLIT.step("ab")
    assert isinstance(step, SplitStep)
    counts = Counter(engine.split_arm("flow", f"customer-{i}", step) for i in range(10_000))
    assert abs(counts["a"] / 10_000 - 0.20) < 0.02
    assert abs(counts["b"] / 10_000 - 0.30) < 0.02
    assert abs(counts["c"] / 10_000 - 0.50) < 0.02


def test_split_arms_are_independent_per_step_and_journey() -> None:
    """Different journeys bucket the same customer independently (no correlated A/B tests)."""
    step = SPLIT.step("ab")
    assert isinstance(step, SplitStep)
    same = sum(engine.split_arm("one", f"c{i}", step) == engine.split_arm("two", f"c{i}", step) for i in range(2000))
    assert same < 1500  # fully correlated would be 2000; independent is about 0.2²+0.3²+0.5² = 38%
