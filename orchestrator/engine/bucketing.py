"""Deterministic chance for the engine: holdout membership and split arms.

Both come from a sha256 of stable ids, never from a random generator, so a re-run after a crash
(or the same customer entering again) takes the same path, and no state needs storing to know
which arm a customer is in.
"""

from __future__ import annotations

import hashlib

from orchestrator.language.journey import SplitStep

__all__ = ["bucket", "is_global_control", "is_holdout", "split_arm"]

#: Salt of the programme-wide control group: independent of every journey's own holdout buckets.
GLOBAL_CONTROL = "loyaloop:global-control"


def bucket(*parts: str, size: int = 100) -> int:
    """A stable bucket in ``0..size-1`` for the given ids.

    Parts are joined with a separator so ``("ab", "c")`` and ``("a", "bc")`` do not collide.
    """
    digest = hashlib.sha256("\x1f".join(parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") % size


def is_holdout(journey_id: str, customer_id: str, percent: float) -> bool:
    """Whether the customer belongs to the journey's control group (basis points, so 2.5% works)."""
    if percent <= 0:
        return False
    return bucket(journey_id, customer_id, size=10_000) < round(percent * 100)


def is_global_control(customer_id: str, percent: float) -> bool:
    """Whether the customer is in the programme-wide control group (``global_holdout`` percent).

    Depends on the customer id alone, so membership is the same in every journey, every process
    and every day, and any tool can tell it without asking Redis."""
    if percent <= 0:
        return False
    return bucket(GLOBAL_CONTROL, customer_id, size=10_000) < round(percent * 100)


def split_arm(journey_id: str, customer_id: str, step: SplitStep) -> str:
    """The name of the arm this customer takes at ``step`` (same answer every time)."""
    point = bucket(journey_id, customer_id, step.id)
    threshold = 0
    for arm in step.split:
        threshold += arm.percent
        if point < threshold:
            return arm.name
    return step.split[-1].name  # unreachable when percentages sum to 100, kept for safety
