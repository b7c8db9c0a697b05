"""The report of proof of effect: per journey version, what happened and what it earned.

:func:`build_report` turns the exact counts (:class:`~orchestrator.measure.figures.VersionFigures`)
into a :class:`Report`: entrants, the funnel per step, sends per channel, the gate's outcomes,
conversions and revenue per arm, the lifts with their intervals, loyalty KPIs per arm and one
verdict a marketer can act on.  The renderers (:mod:`orchestrator.measure.render_text`,
:mod:`orchestrator.measure.render_html`) only lay it out.

Arms are compared by intention to treat: every customer who entered counts in the arm they were
bucketed into, whether or not a message reached them.  The statistics are those of
:mod:`orchestrator.measure.statistics`; a result is meant to be read at the test's pre-set end.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import date
from itertools import combinations
from typing import Literal

from orchestrator.measure.figures import CONTROL, HOLDOUT, TREATED, ArmCounts, VersionFigures
from orchestrator.measure.statistics import (
    MIN_CONVERSIONS,
    Interval,
    Moments,
    WelchResult,
    minimum_detectable_effect,
    newcombe,
    p_value,
    risk_ratio,
    welch,
    wilson,
)

#: The gate's outcomes shown per step and over time (``sent`` is shown per channel).
GATE_OUTCOMES = ("held", "capped", "deferred", "suppressed", "failed")

Kind = Literal["holdout", "control", "split", "programme"]


@dataclass(frozen=True)
class Kpis:
    """Loyalty figures per arm, each over the arm's entrants (NPS over its responses)."""

    repeat_purchase_rate: float
    orders_per_customer: float
    revenue_per_customer: float
    redemption_rate: float
    #: % promoters - % detractors; None without responses.
    nps: float | None


@dataclass(frozen=True)
class ArmSummary:
    arm: str
    counts: ArmCounts
    conversion: Interval
    #: Goal value per entrant (the revenue the test measures).
    revenue_per_customer: float
    kpis: Kpis


@dataclass(frozen=True)
class Comparison:
    """Arm ``a`` (the one messaged, or the challenger) against arm ``b`` (the baseline)."""

    kind: Kind
    label: str
    arm_a: str
    arm_b: str
    entrants_a: int
    entrants_b: int
    converters_a: int
    converters_b: int
    #: Absolute lift in conversion rate, a - b, with Newcombe's interval.
    lift: Interval
    #: Relative lift (a / b - 1) with the log interval; None when an arm has no converter.
    relative_lift: Interval | None
    p_value: float
    test: str
    #: Revenue per customer, a - b, with Welch's interval; None below two entrants an arm, or
    #: when neither arm has any goal value.
    revenue: WelchResult | None
    #: Lift x entrants of ``a``: conversions and revenue that would not have happened without it.
    incremental_conversions: Interval
    incremental_revenue: Interval | None
    #: The smallest lift these sample sizes would detect (80 % power, 5 % two-sided).
    mde: float | None
    #: Why the lift is not to be read yet ("6 conversions in the holdout, need 10"), or None.
    shortfall: str | None
    verdict: str


@dataclass(frozen=True)
class StepRow:
    step: str
    reached: int
    sent: int
    sent_per_channel: dict[str, int]
    gate: dict[str, int]


@dataclass(frozen=True)
class VersionReport:
    journey_id: str
    version: str
    name: str
    category: str
    holdout_percent: float
    entrants: int
    arms: list[ArmSummary]
    steps: list[StepRow]
    sends_per_channel: dict[str, int]
    gate: dict[str, int]
    comparisons: list[Comparison]
    verdict: str
    non_numeric_values: int


@dataclass(frozen=True)
class Report:
    since: date | None
    until: date | None
    versions: list[VersionReport]
    #: All marketing journeys' treated entrants against the global control group's.
    programme: Comparison | None
    #: Day → channel → sends, and day → gate outcome → count, over every version reported.
    daily_sends: dict[str, dict[str, int]] = field(default_factory=dict)
    daily_gate: dict[str, dict[str, int]] = field(default_factory=dict)


def build_report(figures: list[VersionFigures], since: date | None = None, until: date | None = None) -> Report:
    """The report over entry days (arms) and outcome days (steps) in ``[since, until]``."""
    if since is not None and until is not None and since > until:
        raise ValueError(f"since {since.isoformat()} is after until {until.isoformat()}")
    ordered = sorted(figures, key=lambda f: (f.journey_id, f.version))
    versions = [_version(f, since, until) for f in ordered]
    treated, control = ArmCounts(), ArmCounts()
    for f in ordered:
        if f.category == "marketing":
            totals = f.arm_totals(since, until)
            treated += totals.get(TREATED, ArmCounts())
            control += totals.get(CONTROL, ArmCounts())
    programme = None
    if control.entrants:
        programme = compare("programme", "all marketing vs global control", TREATED, treated, CONTROL, control)
    daily_sends: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    daily_gate: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for f in ordered:
        for days in f.steps.values():
            for day, outcomes in days.items():
                if not _within(day, since, until):
                    continue
                for outcome, count in outcomes.items():
                    if outcome.startswith("sent:"):
                        daily_sends[day][outcome.partition(":")[2]] += count
                    elif outcome in GATE_OUTCOMES:
                        daily_gate[day][outcome] += count
    return Report(
        since=since,
        until=until,
        versions=versions,
        programme=programme,
        daily_sends={day: dict(v) for day, v in sorted(daily_sends.items())},
        daily_gate={day: dict(v) for day, v in sorted(daily_gate.items())},
    )


def _version(figures: VersionFigures, since: date | None, until: date | None) -> VersionReport:
    totals = figures.arm_totals(since, until)
    arms = [summarize(arm, totals[arm]) for arm in sorted(totals, key=_arm_order) if totals[arm] != ArmCounts()]
    step_totals = figures.step_totals(since, until)
    order = list(figures.step_order) + sorted(set(step_totals) - set(figures.step_order))
    steps = [_step_row(step, step_totals.get(step, {})) for step in order]
    sends: dict[str, int] = defaultdict(int)
    gate: dict[str, int] = dict.fromkeys(GATE_OUTCOMES, 0)
    for row in steps:
        for channel, count in row.sent_per_channel.items():
            sends[channel] += count
        for outcome, count in row.gate.items():
            gate[outcome] += count
    comparisons = _comparisons(totals)
    return VersionReport(
        journey_id=figures.journey_id,
        version=figures.version,
        name=figures.name or figures.journey_id,
        category=figures.category,
        holdout_percent=figures.holdout_percent,
        entrants=sum(c.entrants for c in totals.values()),
        arms=arms,
        steps=steps,
        sends_per_channel=dict(sorted(sends.items())),
        gate=gate,
        comparisons=comparisons,
        verdict=_headline(figures, totals, comparisons),
        non_numeric_values=sum(c.non_numeric_values for c in totals.values()),
    )


def _comparisons(totals: dict[str, ArmCounts]) -> list[Comparison]:
    found: list[Comparison] = []
    treated = totals.get(TREATED, ArmCounts())
    baselines: tuple[tuple[str, Kind], ...] = ((HOLDOUT, "holdout"), (CONTROL, "control"))
    for baseline, kind in baselines:
        counts = totals.get(baseline)
        if counts is not None and counts.entrants and treated.entrants:
            found.append(compare(kind, f"treated vs {baseline}", TREATED, treated, baseline, counts))
    splits: dict[str, list[str]] = defaultdict(list)
    for arm in sorted(totals):
        if arm.startswith("split:"):
            splits[arm.split(":")[1]].append(arm)
    for step, arms in sorted(splits.items()):
        for first, second in combinations(arms, 2):
            a, b = second, first  # the later-named arm is the challenger
            label = f"split {step}: {a.split(':', 2)[2]} vs {b.split(':', 2)[2]}"
            found.append(compare("split", label, a, totals[a], b, totals[b]))
    return found


def summarize(arm: str, counts: ArmCounts) -> ArmSummary:
    """An arm's conversion rate (Wilson interval), revenue per customer and KPIs."""
    n = counts.entrants

    def per(x: float) -> float:
        return x / n if n else 0.0

    nps = None
    if counts.nps_responses:
        nps = 100.0 * (counts.nps_promoters - counts.nps_detractors) / counts.nps_responses
    kpis = Kpis(
        repeat_purchase_rate=per(counts.repeat_purchasers),
        orders_per_customer=per(counts.orders),
        revenue_per_customer=per(counts.order_revenue_sum),
        redemption_rate=per(counts.redeemers),
        nps=nps,
    )
    converters = min(counts.converters, n)
    return ArmSummary(arm, counts, wilson(converters, n), per(counts.revenue_sum), kpis)


def compare(kind: Kind, label: str, arm_a: str, a: ArmCounts, arm_b: str, b: ArmCounts) -> Comparison:
    """Arm ``a`` against arm ``b`` with every statistic of the report, and its verdict."""
    ca, cb = min(a.converters, a.entrants), min(b.converters, b.entrants)
    lift = newcombe(ca, a.entrants, cb, b.entrants)
    ratio = risk_ratio(ca, a.entrants, cb, b.entrants)
    relative = None if ratio is None else Interval(ratio.estimate - 1, ratio.lower - 1, ratio.upper - 1)
    p, test = p_value(ca, a.entrants, cb, b.entrants)
    revenue = None
    if a.revenue_sum or b.revenue_sum:  # a goal without a value has no revenue to compare
        revenue = welch(
            Moments(a.entrants, a.revenue_sum, a.revenue_sumsq), Moments(b.entrants, b.revenue_sum, b.revenue_sumsq)
        )
    baseline = cb / b.entrants if b.entrants else 0.0
    mde = minimum_detectable_effect(baseline, a.entrants, b.entrants)
    shortfall = None
    for arm, converters in ((arm_b, cb), (arm_a, ca)):
        if converters < MIN_CONVERSIONS:
            noun = "conversion" if converters == 1 else "conversions"
            shortfall = f"{converters:,} {noun} in the {_arm_label(arm)}, need {MIN_CONVERSIONS}"
            break
    partial = Comparison(
        kind=kind,
        label=label,
        arm_a=arm_a,
        arm_b=arm_b,
        entrants_a=a.entrants,
        entrants_b=b.entrants,
        converters_a=ca,
        converters_b=cb,
        lift=lift,
        relative_lift=relative,
        p_value=p,
        test=test,
        revenue=revenue,
        incremental_conversions=lift.scaled(a.entrants),
        incremental_revenue=None if revenue is None else revenue.difference.scaled(a.entrants),
        mde=mde,
        shortfall=shortfall,
        verdict="",
    )
    return _with_verdict(partial)


def _with_verdict(c: Comparison) -> Comparison:
    """One line a marketer can act on: keep, change or stop; or wait for enough data."""
    if c.shortfall is not None:
        return replace(c, verdict=f"not enough data yet: {c.shortfall}")
    interval = f"95 % CI {pp(c.lift.lower)} to {pp(c.lift.upper)}"
    entrants = c.entrants_a + c.entrants_b
    if c.kind == "split":
        winner, loser = (c.arm_a, c.arm_b) if c.lift.estimate > 0 else (c.arm_b, c.arm_a)
        if c.lift.excludes_zero():
            return replace(
                c,
                verdict=f"{_arm_label(winner)} beats {_arm_label(loser)} by {pp(abs(c.lift.estimate))} pp "
                f"conversion ({interval}), keep {_arm_label(winner)}",
            )
        return replace(c, verdict=f"no measurable difference after {entrants:,} entrants{_mde_note(c)}")
    if c.lift.lower > 0:
        return replace(c, verdict=f"adds {pp(c.lift.estimate)} pp conversion ({interval}), keep")
    if c.lift.upper < 0:
        return replace(c, verdict=f"costs {pp(-c.lift.estimate)} pp conversion ({interval}), stop")
    return replace(c, verdict=f"no measurable effect after {entrants:,} entrants{_mde_note(c)}, change or stop")


def _mde_note(c: Comparison) -> str:
    return "" if c.mde is None else f" (could detect {pp(c.mde)} pp or more)"


def _headline(figures: VersionFigures, totals: dict[str, ArmCounts], comparisons: list[Comparison]) -> str:
    """The version's verdict: its holdout's, else the global control's; or why there is none."""
    for kind in ("holdout", "control"):
        for c in comparisons:
            if c.kind == kind:
                return c.verdict if kind == "holdout" else f"against the global control: {c.verdict}"
    if not any(c.entrants for c in totals.values()):
        return "no entrants in this period"
    if figures.category == "transactional":
        return "transactional journey: not tested against a holdout"
    return "no holdout or control entrants: set holdout_percent to measure the effect"


def _step_row(step: str, outcomes: dict[str, int]) -> StepRow:
    channels = {o.partition(":")[2]: n for o, n in sorted(outcomes.items()) if o.startswith("sent:")}
    return StepRow(
        step=step,
        reached=outcomes.get("reached", 0),
        sent=outcomes.get("sent", sum(channels.values())),
        sent_per_channel=channels,
        gate={o: outcomes.get(o, 0) for o in GATE_OUTCOMES},
    )


def pp(rate: float) -> str:
    """A rate difference in percentage points, one decimal (0.021 → "2.1"); a limit closer to zero
    than 0.05 pp keeps two significant digits, so an interval just above zero never reads "0.0"."""
    points = 100 * rate
    if 0 < abs(points) < 0.05:
        return f"{points:.2g}"
    return f"{points:.1f}"


def _arm_label(arm: str) -> str:
    if arm.startswith("split:"):
        return f"arm {arm.split(':', 2)[2]}"
    return {CONTROL: "global control"}.get(arm, arm)


def _arm_order(arm: str) -> tuple[int, str]:
    return ({TREATED: 0, HOLDOUT: 1, CONTROL: 2}.get(arm, 3), arm)


def _within(day: str, since: date | None, until: date | None) -> bool:
    when = date.fromisoformat(day)
    return (since is None or when >= since) and (until is None or when <= until)
