"""Small hand-made figures for the report's tests: two journeys, a holdout, the global control
group, a split and a name that tries to inject markup."""

from __future__ import annotations

from orchestrator.measure.figures import ArmCounts, VersionFigures

WELCOME_NAME = "Welcome <script>alert(1)</script> & co"


def welcome() -> VersionFigures:
    """9,000 treated converting at 12 %, 1,000 holdout at 8 %, 500 in the global control at 8 %."""
    return VersionFigures(
        journey_id="welcome",
        version="v3",
        name=WELCOME_NAME,
        holdout_percent=10,
        arms={
            "treated": {
                "2026-11-01": ArmCounts(
                    entrants=5000, converters=600, conversions=650, revenue_sum=30000.0, revenue_sumsq=30000.0 * 90,
                    repeat_purchasers=500, orders=800, order_revenue_sum=40000.0, redeemers=200,
                    nps_responses=100, nps_promoters=50, nps_detractors=20, non_numeric_values=3,
                ),
                "2026-11-02": ArmCounts(
                    entrants=4000, converters=480, conversions=500, revenue_sum=24000.0, revenue_sumsq=24000.0 * 90,
                    repeat_purchasers=400, orders=700, order_revenue_sum=35000.0, redeemers=100,
                    nps_responses=100, nps_promoters=40, nps_detractors=10,
                ),
            },
            "holdout": {
                "2026-11-01": ArmCounts(entrants=600, converters=48, revenue_sum=2160, revenue_sumsq=172800, orders=70),
                "2026-11-02": ArmCounts(entrants=400, converters=32, revenue_sum=1440, revenue_sumsq=115200, orders=50),
            },
            "control": {"2026-11-01": ArmCounts(entrants=500, converters=40, revenue_sum=1800.0, revenue_sumsq=144e3)},
        },
        steps={
            "hello": {
                "2026-11-01": {"reached": 5000, "sent": 4700, "sent:email": 4500, "sent:sms": 200, "held": 100,
                               "capped": 150, "deferred": 30, "suppressed": 15, "failed": 5},
                "2026-11-02": {"reached": 4000, "sent": 3800, "sent:email": 3800, "capped": 200},
            },
            "offer": {"2026-11-03": {"reached": 7000, "sent": 6500, "sent:email": 6500, "capped": 400}},
        },
        step_order=["hello", "offer"],
    )  # fmt: skip


def winback() -> VersionFigures:
    """A holdout with only 6 converters, and a two-armed split at the step ``offer``."""
    return VersionFigures(
        journey_id="winback",
        version="v1",
        name="Win-back",
        holdout_percent=10,
        arms={
            "treated": {"2026-11-01": ArmCounts(entrants=600, converters=30)},
            "holdout": {"2026-11-01": ArmCounts(entrants=60, converters=6)},
            "split:offer:a": {"2026-11-01": ArmCounts(entrants=300, converters=12)},
            "split:offer:b": {"2026-11-01": ArmCounts(entrants=300, converters=18)},
        },
        steps={"offer": {"2026-11-03": {"reached": 600, "sent": 580, "sent:sms": 580}}},
        step_order=["offer"],
    )


def receipts() -> VersionFigures:
    """A transactional journey: never held out, never in the programme's figure."""
    return VersionFigures(
        journey_id="receipt",
        version="v1",
        name="Receipt",
        category="transactional",
        arms={
            "treated": {"2026-11-01": ArmCounts(entrants=1000, converters=900)},
            "control": {"2026-11-01": ArmCounts(entrants=0)},
        },
        steps={"mail": {"2026-11-01": {"reached": 1000, "sent": 1000, "sent:email": 1000}}},
        step_order=["mail"],
    )


def world() -> list[VersionFigures]:
    return [welcome(), winback(), receipts()]
