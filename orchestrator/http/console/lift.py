"""The lift panels, from the measurement report (``orchestrator.measure.report``): the same
statistics and verdicts as ``loyaloop report``, never computed a second way.

:func:`lift_source` turns the records' reader into the console's ``LiftSource``: for one journey,
a row per comparison of each version (its arms, the lift in percentage points with its 95 %
interval, the p-value and the verdict); for the overview, a row per version with its headline
verdict, and a flag per journey (``keep``, ``stop``, ``change or stop``, ``wait``) taken from the
verdict of its version with the most entrants.
"""

from __future__ import annotations

from orchestrator.http.console.caching import Memo, RecordsMemo
from orchestrator.http.console.extensions import LiftSource, Panel
from orchestrator.http.console.measured import FiguresSource
from orchestrator.measure.report import VersionReport, build_report, pp

#: The verdict's last words → the overview's flag.
FLAGS = (("change or stop", "change or stop"), ("stop", "stop"), ("keep", "keep"))


def flag(verdict: str) -> str:
    """``keep``, ``stop``, ``change or stop`` from a verdict's ending; ``wait`` for anything else
    (not enough data, no holdout)."""
    for ending, name in FLAGS:
        if verdict.endswith(ending):
            return name
    return "wait"


def _journey_panel(journey_id: str, versions: list[VersionReport]) -> Panel | None:
    rows = []
    for version in versions:
        for c in version.comparisons:
            lift = f"{pp(c.lift.estimate)} pp ({pp(c.lift.lower)} to {pp(c.lift.upper)})"
            rows.append(
                (
                    version.version[:8],
                    c.label,
                    f"{c.converters_a:,}/{c.entrants_a:,}",
                    f"{c.converters_b:,}/{c.entrants_b:,}",
                    lift,
                    f"{c.p_value:.3g}",
                    c.verdict,
                )
            )
    if not versions:
        return None
    note = " ".join(f"{version.version[:8]}: {version.verdict}." for version in versions if not version.comparisons)
    return Panel(
        title="Lift (measurement report)",
        columns=("version", "comparison", "converted (a)", "converted (b)", "lift, 95 % interval", "p", "verdict"),
        rows=tuple(rows),
        note=(note + " " if note else "") + f"As `loyaloop report {journey_id}` computes it (docs/measuring.md).",
    )


def _overview_panel(versions: list[VersionReport]) -> Panel | None:
    if not versions:
        return None
    flags: dict[str, str] = {}
    most: dict[str, int] = {}
    for version in versions:  # a journey's flag is the verdict of its version with the most entrants
        if version.entrants >= most.get(version.journey_id, -1):
            most[version.journey_id] = version.entrants
            flags[version.journey_id] = flag(version.verdict)
    rows = tuple((v.journey_id, v.version[:8], f"{v.entrants:,}", v.verdict, flag(v.verdict)) for v in versions)
    return Panel(
        title="Lift per journey version (measurement report)",
        columns=("journey", "version", "entrants", "verdict", "flag"),
        rows=rows,
        note="The same statistics and verdicts as `loyaloop report` (docs/measuring.md).",
        flags=flags,
    )


def record_sources(read: FiguresSource) -> tuple[RecordsMemo, Memo[str | None, Panel | None]]:
    """The console's two readers of the records ``read`` gives, sharing one reading: the records'
    memo and the lift panels built from it (each kept :data:`~orchestrator.http.console.caching.RECORDS_SECONDS`)."""
    records = read if isinstance(read, RecordsMemo) else RecordsMemo(read)
    return records, Memo(lift_source(records))


def lift_source(figures: FiguresSource) -> LiftSource:
    """The console's lift panels, built from the records ``figures`` reads."""

    def lift(journey_id: str | None) -> Panel | None:
        report = build_report(figures(journey_id))
        if journey_id is None:
            return _overview_panel(report.versions)
        return _journey_panel(journey_id, [v for v in report.versions if v.journey_id == journey_id])

    return lift
