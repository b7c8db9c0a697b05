"""Gate decisions per journey and step, read back from the journey stats for ``loyaloop status``.

The runtime counts every decision under ``<step>:<outcome>:<channel>`` in the journey's stats
hash (see :mod:`orchestrator.runtime.delivery`).  Ops want the fatigue gate's answer per step at a glance
(how many were sent, capped, deferred, suppressed, refused for consent) rather than a list of raw
keys, and for every journey that ever ran, including ones since removed from disk, so the table
is built from the stats alone.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from orchestrator.engine.enrollment import ChannelOutcome, ChannelOutcomeName

if TYPE_CHECKING:
    from rich.table import Table

#: Columns of the decisions table: heading → the outcome counted (summed over channels).  The
#: headings are short so the table fits 80 columns; :data:`LEGEND` spells them out.  ``loyaloop
#: status`` and ``loyaloop demo`` use the same ones.
COLUMNS: tuple[tuple[str, ChannelOutcomeName], ...] = (
    ("sent", "sent"),
    ("capd", "capped"),
    ("defr", "deferred"),
    ("supp", "suppressed"),
    ("cons", "no_consent"),
    ("addr", "no_address"),
    ("fail", "failed"),
)
#: Columns of a journey's own counts (the demo's summary table).
JOURNEY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("in", "entered"),
    ("hold", "holdout"),
    ("conv", "converted"),
    ("exit", "exited"),
    ("done", "completed"),
    ("fail", "failed"),
)
LEGEND = (
    "sent: accepted by the channel (e/s/p: e-mail, SMS, push) · capd: held by a frequency cap · "
    "defr: deferred (quiet hours, on_capped: defer) · supp: address suppressed · cons: no consent · "
    "addr: no address · fail: a failed send (provider, template, voucher), or for a journey a run "
    "whose last send failed · in: entered · hold: holdout · conv: converted (a goal) · "
    "exit: left early (exit rule, exit step with a reason) · done: completed (last step or exit: true)"
)
#: Channel outcomes counted under another column: a template that could not render and an empty
#: voucher pool are failures of the send (``fail``), as a provider's refusal is.
COUNTED_AS: dict[str, str] = {"template_error": "failed", "voucher_empty": "failed"}
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
        if found is None or COUNTED_AS.get(found[1].outcome, found[1].outcome) not in _OUTCOMES:
            continue
        step, outcome = found
        row = steps.setdefault(step, dict.fromkeys(_OUTCOMES, 0))
        row[COUNTED_AS.get(outcome.outcome, outcome.outcome)] += int(count)
    return sorted(steps.items())


def counts_table(title: str, headings: Sequence[str], sections: Iterable[tuple[list[str], list[list[str]]]]) -> Table:
    """A table that fits 80 columns: one name column (a journey's row in bold, its steps' rows
    indented under it), then right-aligned counts under the short ``headings`` (see :data:`LEGEND`).
    Each section is the journey's row (its id, then its counts or none) and its steps' rows."""
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 0), pad_edge=False, title_justify="left")
    # 20 characters of name plus eight count columns of 5 digits fit 80; longer names are cut with "…".
    table.add_column("journey / step", no_wrap=True, overflow="ellipsis", max_width=20)
    for heading in headings:
        # "sent" may list channels ("e12 s3 p1"): it wraps, one channel a line, rather than widen.
        table.add_column(
            heading,
            justify="right",
            no_wrap=heading != "sent",
            min_width=7 if heading == "sent" else max(len(heading), 6),
        )
    for journey_row, step_rows in sections:
        cells = journey_row[1:] + [""] * (len(headings) - len(journey_row) + 1)
        table.add_row(f"[bold]{journey_row[0]}[/bold]", *cells)
        for row in step_rows:
            table.add_row(f"  {row[0]}", *row[1:])
    return table
