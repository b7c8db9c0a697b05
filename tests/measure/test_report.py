"""The report read from exact counts: funnel, sends, gate, arms, lifts, KPIs and the verdicts a
marketer acts on, and its four renderings (table, JSON, CSV, HTML)."""

from __future__ import annotations

import csv
import io
import json
import re
from datetime import date

import pytest

from orchestrator.measure.figures import ArmCounts, VersionFigures
from orchestrator.measure.render_html import render_html
from orchestrator.measure.render_text import render_csv, render_json, render_table
from orchestrator.measure.report import Comparison, build_report, compare, pp
from orchestrator.measure.statistics import newcombe
from tests.measure.world import WELCOME_NAME, welcome, winback, world


def _by_label(comparisons: list[Comparison]) -> dict[str, Comparison]:
    return {c.label: c for c in comparisons}


def test_a_version_reports_entrants_funnel_sends_and_gate() -> None:
    report = build_report(world())
    welcome_v3 = next(v for v in report.versions if v.journey_id == "welcome")
    assert welcome_v3.entrants == 9000 + 1000 + 500
    assert [(s.step, s.reached, s.sent) for s in welcome_v3.steps] == [("hello", 9000, 8500), ("offer", 7000, 6500)]
    assert welcome_v3.sends_per_channel == {"email": 14800, "sms": 200}
    assert welcome_v3.gate == {"held": 100, "capped": 750, "deferred": 30, "suppressed": 15, "failed": 5}
    assert welcome_v3.non_numeric_values == 3
    # The receipt journey sends 1,000 e-mails that day too.
    assert report.daily_sends["2026-11-01"] == {"email": 4500 + 1000, "sms": 200}
    assert report.daily_gate["2026-11-03"] == {"capped": 400}


def test_arms_carry_rates_revenue_and_kpis() -> None:
    arms = {a.arm: a for a in build_report([welcome()]).versions[0].arms}
    assert list(arms) == ["treated", "holdout", "control"]
    treated = arms["treated"]
    assert treated.conversion.estimate == pytest.approx(0.12)
    assert treated.conversion.lower < 0.12 < treated.conversion.upper
    assert treated.revenue_per_customer == pytest.approx(54000 / 9000)
    assert treated.kpis.repeat_purchase_rate == pytest.approx(900 / 9000)
    assert treated.kpis.orders_per_customer == pytest.approx(1500 / 9000)
    assert treated.kpis.revenue_per_customer == pytest.approx(75000 / 9000)
    assert treated.kpis.redemption_rate == pytest.approx(300 / 9000)
    assert treated.kpis.nps == pytest.approx(100 * (90 - 30) / 200)
    assert arms["holdout"].kpis.nps is None


def test_lifts_against_holdout_control_and_between_split_arms() -> None:
    version = build_report([welcome(), winback()]).versions
    welcome_cmp = _by_label(version[0].comparisons)
    holdout = welcome_cmp["treated vs holdout"]
    assert holdout.lift == newcombe(1080, 9000, 80, 1000)
    assert holdout.relative_lift is not None and holdout.relative_lift.estimate == pytest.approx(0.5)
    assert holdout.incremental_conversions.estimate == pytest.approx(0.04 * 9000)
    assert holdout.incremental_conversions.lower == pytest.approx(holdout.lift.lower * 9000)
    assert holdout.revenue is not None and holdout.revenue.difference.estimate == pytest.approx(6.0 - 3.6)
    assert holdout.incremental_revenue is not None
    assert holdout.incremental_revenue.estimate == pytest.approx(2.4 * 9000)
    assert holdout.test == "z" and holdout.p_value < 0.001
    assert "treated vs control" in welcome_cmp
    split = _by_label(version[1].comparisons)["split offer: b vs a"]
    assert (split.converters_a, split.converters_b) == (18, 12)
    assert split.verdict.startswith("no measurable difference after 600 entrants")


def test_verdicts_a_marketer_can_act_on() -> None:
    report = build_report(world())
    verdicts = {v.journey_id: v.verdict for v in report.versions}
    assert re.fullmatch(r"adds 4\.0 pp conversion \(95 % CI \d\.\d to \d\.\d\), keep", verdicts["welcome"])
    assert verdicts["winback"] == "not enough data yet: 6 conversions in the holdout, need 10"
    assert verdicts["receipt"] == "transactional journey: not tested against a holdout"

    def verdict(treated: tuple[int, int], holdout: tuple[int, int]) -> str:
        a, b = (
            ArmCounts(entrants=treated[0], converters=treated[1]),
            ArmCounts(entrants=holdout[0], converters=holdout[1]),
        )
        return compare("holdout", "treated vs holdout", "treated", a, "holdout", b).verdict

    assert verdict((3600, 360), (400, 40)).startswith("no measurable effect after 4,000 entrants (could detect ")
    assert verdict((3600, 360), (400, 40)).endswith("pp or more), change or stop")
    assert re.fullmatch(
        r"costs 5\.0 pp conversion \(95 % CI -\d+\.\d to -\d\.\d\), stop", verdict((9000, 450), (1000, 100))
    )
    assert verdict((9000, 9), (1000, 50)) == "not enough data yet: 9 conversions in the treated, need 10"


def test_the_programme_is_all_marketing_against_the_global_control() -> None:
    programme = build_report(world()).programme
    assert programme is not None
    # The transactional journey's 1,000 treated entrants are not marketing: left out.
    assert (programme.entrants_a, programme.converters_a) == (9000 + 600, 1080 + 30)
    assert (programme.entrants_b, programme.converters_b) == (500, 40)
    assert build_report([winback()]).programme is None


def test_since_and_until_select_entry_days_and_outcome_days() -> None:
    report = build_report([welcome()], since=date(2026, 11, 2), until=date(2026, 11, 2))
    version = report.versions[0]
    assert {a.arm: a.counts.entrants for a in version.arms} == {"treated": 4000, "holdout": 400}
    assert [(s.step, s.reached) for s in version.steps] == [("hello", 4000), ("offer", 0)]
    assert list(report.daily_sends) == ["2026-11-02"]
    with pytest.raises(ValueError, match="after"):
        build_report([welcome()], since=date(2026, 11, 3), until=date(2026, 11, 2))


def test_no_entrants_no_holdout() -> None:
    empty = VersionFigures(journey_id="quiet", version="v1")
    assert build_report([empty]).versions[0].verdict == "no entrants in this period"
    treated_only = VersionFigures(
        journey_id="all", version="v1", arms={"treated": {"2026-11-01": ArmCounts(entrants=5)}}
    )
    assert "set holdout_percent" in build_report([treated_only]).versions[0].verdict


def test_the_table_fits_100_columns_and_says_the_verdicts() -> None:
    text = render_table(build_report(world()))
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "verdict: adds 4.0 pp conversion" in text
    assert "not enough data yet: 6 conversions in the holdout, need 10" in text
    assert "3 events without a numeric value (counted as 0)" in text
    assert "Programme: adds" in text
    assert "Win-back (winback v1" in text


def test_json_and_csv_carry_every_figure() -> None:
    report = build_report(world())
    data = json.loads(render_json(report))
    assert [v["journey_id"] for v in data["versions"]] == ["receipt", "welcome", "winback"]
    welcome_json = data["versions"][1]
    assert welcome_json["arms"][0]["counts"]["entrants"] == 9000
    assert welcome_json["comparisons"][0]["lift"]["estimate"] == pytest.approx(0.04)
    assert data["programme"]["label"] == "all marketing vs global control"
    rows = list(csv.DictReader(io.StringIO(render_csv(report))))
    lift = next(r for r in rows if r["journey_id"] == "welcome" and r["metric"] == "lift")
    assert (lift["section"], lift["subject"]) == ("comparison", "treated vs holdout")
    assert float(lift["value"]) == pytest.approx(0.04)
    assert any(r["journey_id"] == "*" and r["metric"] == "verdict" for r in rows)
    assert any(r["subject"] == "hello" and r["metric"] == "sent:sms" and r["value"] == "200" for r in rows)


def test_html_is_self_contained_and_escapes_every_value() -> None:
    page = render_html(build_report(world()))
    assert "<script" not in page
    assert "Welcome &lt;script&gt;alert(1)&lt;/script&gt; &amp; co" in page
    assert WELCOME_NAME not in page
    # Nothing is fetched: no src, no href but the SVGs' own #fragments, no stylesheet link, no @import.
    assert not re.search(r"\bsrc\s*=", page)
    assert not re.search(r"\bhref\s*=\s*\"(?!#)", page)
    assert "@import" not in page and "<link" not in page
    assert page.count("<svg") == 3 + 3  # lift, sends, gate; one funnel per version
    assert "adds 4.0 pp conversion" in page


def test_html_of_a_report_with_nothing_to_chart_renders() -> None:
    """No comparison (no holdout, no control), no sends, no gate outcomes: the page says so instead
    of failing on the charts it cannot draw (once: 'dict object' has no attribute 'lift')."""
    treated_only = VersionFigures(
        journey_id="all", version="v1", arms={"treated": {"2026-11-01": ArmCounts(entrants=5)}}
    )
    for figures in ([], [treated_only]):
        page = render_html(build_report(figures))
        assert "<svg" not in page and "lift-chart" not in page


def test_a_dollar_in_a_name_is_not_math() -> None:
    """matplotlib would read ``$…$`` as mathtext; a journey name is plain text."""
    figures = welcome().model_copy(update={"name": "Save $5 now, $10 later"})
    page = render_html(build_report([figures]))
    assert "Save $5 now, $10 later: treated vs holdout" in page


def test_csv_cells_never_run_as_spreadsheet_formulas() -> None:
    """A journey name is written by a marketer; opened in a spreadsheet it must stay text."""
    figures = welcome().model_copy(update={"name": '=HYPERLINK("http://x","y")'})
    rows = list(csv.DictReader(io.StringIO(render_csv(build_report([figures])))))
    name = next(r["value"] for r in rows if r["metric"] == "name")
    assert name == '\'=HYPERLINK("http://x","y")'
    lower = next(r["value"] for r in rows if r["metric"] == "lift_lower")
    assert float(lower) > 0  # numbers are untouched


def test_an_interval_just_above_zero_never_reads_zero() -> None:
    """ "adds … (95 % CI 0.0 to 3.1), keep" would contradict itself; tiny limits keep two digits."""
    assert pp(0.021) == "2.1"
    assert pp(0.000004) == "0.0004"
    assert pp(-0.0003) == "-0.03"
    assert pp(0.0) == "0.0"


def test_one_conversion_is_singular() -> None:
    a, b = ArmCounts(entrants=500, converters=40), ArmCounts(entrants=50, converters=1)
    verdict = compare("holdout", "treated vs holdout", "treated", a, "holdout", b).verdict
    assert verdict == "not enough data yet: 1 conversion in the holdout, need 10"


def test_money_sums_do_not_depend_on_the_order_the_days_were_read() -> None:
    """The days of an arm come in a Redis hash's order, which differs between servers: the same
    days read in another order give the same totals to the last digit (0.1 + 0.2 + 0.3 is not
    0.3 + 0.2 + 0.1 in floating point)."""
    days = {"2026-01-01": 0.1, "2026-01-02": 0.2, "2026-01-03": 0.3}

    def figures(order: list[str]) -> VersionFigures:
        arm = {day: ArmCounts(entrants=1, revenue_sum=days[day], order_revenue_sum=days[day]) for day in order}
        return VersionFigures(journey_id="winback", version="v1", arms={"treated": arm})

    forward = figures(sorted(days)).arm_totals()["treated"]
    backward = figures(sorted(days, reverse=True)).arm_totals()["treated"]
    assert (0.1 + 0.2) + 0.3 != (0.3 + 0.2) + 0.1
    assert forward == backward
    report = build_report([figures(sorted(days))]), build_report([figures(sorted(days, reverse=True))])
    assert render_json(report[0]) == render_json(report[1])
