"""The lift panels show the measurement report's own figures and verdicts."""

from __future__ import annotations

import re

from orchestrator.http.console.lift import flag, lift_source
from orchestrator.measure.report import build_report, pp
from orchestrator.store import Store
from tests.http.console.conftest import Site, login


def test_flags_read_the_verdicts_ending() -> None:
    assert flag("adds 2.1 pp conversion (95 % CI 0.4 to 3.8), keep") == "keep"
    assert flag("costs 1.0 pp conversion (95 % CI -2.0 to -0.1), stop") == "stop"
    assert flag("no measurable effect after 900 entrants, change or stop") == "change or stop"
    assert flag("not enough data yet: 3 conversions in the holdout, need 10") == "wait"


def test_journey_and_overview_panels_are_the_reports(site: Site) -> None:
    records = Store(site.redis).version_figures
    report = build_report(records())
    assert report.versions, "the seeded store recorded no versions"
    panel = lift_source(records)("welcome")
    assert panel is not None
    expected = [
        (v.version[:8], c.label, f"{pp(c.lift.estimate)} pp ({pp(c.lift.lower)} to {pp(c.lift.upper)})", c.verdict)
        for v in report.versions
        if v.journey_id == "welcome"
        for c in v.comparisons
    ]
    assert [(row[0], row[1], row[4], row[6]) for row in panel.rows] == expected
    overview = lift_source(records)(None)
    assert overview is not None
    assert {row[0] for row in overview.rows} == {v.journey_id for v in report.versions}
    with site.client() as http:
        login(http, "vic")
        page = http.get("/console/").text
        for journey_id, shown in overview.flags.items():
            assert re.search(rf'data-journey="{journey_id}".*?data-stat="flag"><span[^>]*>{shown}<', page, re.S)
        journey = http.get("/console/journeys/welcome").text
        assert "Lift (measurement report)" in journey
        for _version, _label, _a, _b, _lift, _p, verdict in panel.rows:
            assert verdict.replace("'", "&#39;") in journey
