"""What must hold for any counts, not only the published examples: intervals stay in range and
hold their estimate, p-values are probabilities, the t quantile inverts its tail, and a report
built from any figures renders without an error."""

from __future__ import annotations

import json

from hypothesis import example, given, settings
from hypothesis import strategies as st

from orchestrator.measure.figures import ArmCounts, VersionFigures
from orchestrator.measure.render_text import render_csv, render_json, render_table
from orchestrator.measure.report import build_report
from orchestrator.measure.statistics import Moments, newcombe, p_value, t_quantile, t_sf, welch, wilson


@st.composite
def counts(draw: st.DrawFn, most: int = 100_000) -> tuple[int, int]:
    trials = draw(st.integers(0, most))
    return draw(st.integers(0, trials)), trials


@given(counts())
def test_wilson_holds_its_estimate_within_zero_and_one(c: tuple[int, int]) -> None:
    interval = wilson(*c)
    assert 0.0 <= interval.lower <= interval.estimate <= interval.upper <= 1.0


@given(counts(), counts())
def test_newcombe_holds_the_difference(a: tuple[int, int], b: tuple[int, int]) -> None:
    interval = newcombe(*a, *b)
    assert -1.0 <= interval.lower <= interval.estimate + 1e-12
    assert interval.estimate - 1e-12 <= interval.upper <= 1.0


@settings(max_examples=200)
@given(counts(5_000), counts(5_000))
def test_p_values_are_probabilities(a: tuple[int, int], b: tuple[int, int]) -> None:
    p, test = p_value(*a, *b)
    assert 0.0 <= p <= 1.0
    assert test in ("z", "fisher", "none")


@given(st.floats(0.5005, 0.9995), st.floats(0.5, 10_000))
def test_the_t_quantile_inverts_the_tail(p: float, df: float) -> None:
    assert abs(t_sf(t_quantile(p, df), df) - (1 - p)) < 1e-8


@given(
    st.integers(2, 10_000),
    st.floats(0, 1_000),
    st.floats(0, 500),
    st.integers(2, 10_000),
    st.floats(0, 1_000),
    st.floats(0, 500),
)
@example(2, 0.0, 0.0, 2, 0.0, 3.1e-95)  # a variance so small its square underflows to 0
def test_welch_brackets_the_difference(
    na: int, mean_a: float, sd_a: float, nb: int, mean_b: float, sd_b: float
) -> None:
    def moments(n: int, mean: float, sd: float) -> Moments:
        return Moments(n, n * mean, (n - 1) * sd * sd + n * mean * mean)

    result = welch(moments(na, mean_a, sd_a), moments(nb, mean_b, sd_b))
    assert result is not None
    d = result.difference
    assert d.lower - 1e-6 <= d.estimate <= d.upper + 1e-6
    assert 0.0 <= result.p_value <= 1.0


ARMS = st.sampled_from(["treated", "holdout", "control", "split:offer:a", "split:offer:b"])
DAYS = st.sampled_from(["2026-11-01", "2026-11-02"])


@st.composite
def arm_counts(draw: st.DrawFn) -> ArmCounts:
    entrants = draw(st.integers(0, 5_000))
    return ArmCounts(
        entrants=entrants,
        converters=draw(st.integers(0, entrants)),
        revenue_sum=draw(st.floats(0, 1e6)),
        revenue_sumsq=draw(st.floats(0, 1e9)),
        nps_responses=draw(st.integers(0, 10)),
        nps_promoters=draw(st.integers(0, 5)),
        nps_detractors=draw(st.integers(0, 5)),
        non_numeric_values=draw(st.integers(0, 3)),
    )


@settings(max_examples=60, deadline=None)
@given(st.dictionaries(ARMS, st.dictionaries(DAYS, arm_counts(), max_size=2), max_size=5))
def test_any_figures_give_a_report(arms: dict[str, dict[str, ArmCounts]]) -> None:
    figures = VersionFigures(
        journey_id="j",
        version="v1",
        arms=arms,
        steps={"s": {"2026-11-01": {"reached": 3, "sent:email": 2, "capped": 1}}},
        step_order=["s"],
    )
    report = build_report([figures])
    assert report.versions[0].verdict
    json.loads(render_json(report))
    assert render_csv(report).startswith("journey_id,")
    assert max(len(line) for line in render_table(report).splitlines()) <= 100
