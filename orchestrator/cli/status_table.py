"""Gate decisions per journey and step, read back from the journey stats for ``loyaloop status``.

The runtime counts every decision under ``<step>:<outcome>:<channel>`` in the journey's stats
hash (see :mod:`orchestrator.runtime.delivery`).  Ops want the fatigue gate's answer per step at a glance
(how many were sent, capped, deferred, suppressed, refused for consent) rather than a list of raw
keys, and for every journey that ever ran, including ones since removed from disk, so the table
is built from the stats alone.
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.engine.enrollment import ChannelOutcome, ChannelOutcomeName

#: Columns of the decisions table: heading → the outcome counted (summed over channels).
COLUMNS: tuple[tuple[str, ChannelOutcomeName], ...] = (
    ("sent", "sent"),
    ("capped", "capped"),
    ("deferred", "deferred"),
    ("suppressed", "suppressed"),
    ("no consent", "no_consent"),
    ("no address", "no_address"),
    ("failed", "failed"),
)
_OUTCOMES: set[str] = {outcome for _heading, outcome in COLUMNS}


def channel_stat(key: str) -> tuple[str, ChannelOutcome] | None:
    """A journey stats key as (step, outcome on a channel): ``offer:sent:email`` → ("offer",
    sent on email); None for the engine's step summaries (``offer:sent``), the journey's own
    counters (``_journey:…``) and every other stat."""
    step, _, rest = key.partition(":")
    outcome = ChannelOutcome.parse(rest)
    if step == "_journey" or outcome is None:
        return None
    return step, outcome


def decision_rows(stats: Mapping[str, int]) -> list[tuple[str, dict[str, int]]]:
    """Per send step (sorted by id): each column's count, summed over channels.

    Only per-channel keys count (``offer:sent:email``), never the engine's step summary
    (``offer:sent``), so a send is counted once; ``deferred`` covers quiet hours and
    ``on_capped: defer`` alike (each deferral of each attempt).
    """
    steps: dict[str, dict[str, int]] = {}
    for key, count in stats.items():
        found = channel_stat(key)
        if found is None or found[1].outcome not in _OUTCOMES:
            continue
        step, outcome = found
        row = steps.setdefault(step, dict.fromkeys(_OUTCOMES, 0))
        row[outcome.outcome] += int(count)
    return sorted(steps.items())
