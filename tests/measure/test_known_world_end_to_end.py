"""One world with a known effect through the real runtime, then the report: 600 customers enter a
journey with a 50 % holdout, and exactly 20 % of the treated and 10 % of the held place the goal
order within the window.  The record the workers keep must give the report exactly those rates, a
lift of exactly the known difference, an interval around it, and a verdict that keeps the journey
(the statistics' coverage on many worlds is tests/measure/test_statistics.py; this is the pipeline)."""

from __future__ import annotations

from pathlib import Path

from orchestrator.engine.bucketing import is_holdout
from orchestrator.measure.report import build_report
from tests.runtime.harness import journey, running

CUSTOMERS = 600
OFFER = journey(
    {
        "id": "offer",
        "name": "Offer",
        "trigger": {"event": "signup"},
        "holdout": 50,
        "goals": [{"event": "order.placed", "within": "7d", "value": "properties.total"}],
        "steps": [{"id": "hello", "send": "email", "template": "hello"}],
    }
)


def test_the_report_gives_the_known_effect_of_a_world_run_through_the_runtime(redis_url: str, tmp_path: Path) -> None:
    ids = [f"k{n:04d}" for n in range(CUSTOMERS)]
    held = [cid for cid in ids if is_holdout("offer", cid, 50)]
    treated = [cid for cid in ids if cid not in held]
    buyers = treated[: len(treated) // 5] + held[: len(held) // 10]  # 20 % and 10 %, exactly
    with running(redis_url, tmp_path, [OFFER], settings={"global_holdout": 0}) as h:
        for cid in ids:
            h.api.identify(cid, {"email": f"{cid}@example.com", "consent": {"email": True}, "timezone": "UTC"})
            h.api.track(cid, "signup", event_id=f"{cid}-signup")
        h.settle()
        h.clock.advance(days=2)
        for cid in buyers:
            h.api.track(cid, "order.placed", {"total": 50}, event_id=f"{cid}-order")
        h.settle()
        report = build_report(h.runtime.store.version_figures("offer"))
    (version,) = report.versions
    comparison = next(c for c in version.comparisons if (c.arm_a, c.arm_b) == ("treated", "holdout"))
    assert (comparison.entrants_a, comparison.entrants_b) == (len(treated), len(held))
    assert (comparison.converters_a, comparison.converters_b) == (len(treated) // 5, len(held) // 10)
    truth = (len(treated) // 5) / len(treated) - (len(held) // 10) / len(held)
    assert abs(comparison.lift.estimate - truth) < 1e-12
    assert comparison.lift.lower < truth < comparison.lift.upper
    assert comparison.revenue is not None and comparison.revenue.difference.estimate > 0
    assert comparison.verdict.endswith("keep"), comparison.verdict
