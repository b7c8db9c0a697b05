"""Proof of effect end to end: exact counts per arm, written by the real runtime on a real Redis and
read back with ``Store.version_figures`` (intention-to-treat from entry, docs/measuring.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.engine.bucketing import is_global_control, is_holdout, split_arm
from orchestrator.language.journey import SplitStep
from orchestrator.measure.figures import ArmCounts, VersionFigures
from tests.runtime.harness import START, Harness, journey, running

OFFER = journey(
    {
        "id": "offer",
        "name": "Offer",
        "trigger": {"event": "signup"},
        "holdout": 50,
        "goals": [{"event": "order.placed", "within": "3d", "value": "properties.total"}],
        "steps": [
            {"id": "hello", "send": "email", "template": "hello"},
            {"id": "pause", "wait": "1d"},
            {"id": "tips", "send": "email", "template": "tips"},
        ],
    }
)


def customer(h: Harness, cid: str) -> None:
    h.api.identify(cid, {"email": f"{cid}@example.com", "consent": {"email": True}, "timezone": "UTC"})


def figures(h: Harness, journey_id: str) -> VersionFigures:
    (found,) = h.runtime.store.version_figures(journey_id)
    return found


def totals(h: Harness, journey_id: str) -> dict[str, ArmCounts]:
    return figures(h, journey_id).arm_totals()


def test_entrants_converters_and_revenue_per_arm_are_exact(redis_url: str, tmp_path: Path) -> None:
    """Twenty entrants split by the journey's own holdout; every second one orders twice: the
    counts per arm equal what the test computes from the same buckets, revenue sums and sums of
    squares per customer included; holdout customers walk the steps with their sends held."""
    ids = [f"c{n}" for n in range(20)]
    with running(redis_url, tmp_path, [OFFER]) as h:
        for cid in ids:
            customer(h, cid)
            h.api.track(cid, "signup")
        h.settle()
        h.tick(hours=2)
        buyers = ids[::2]
        for cid in buyers:
            h.api.track(cid, "order.placed", {"total": 10.0})
            h.api.track(cid, "order.placed", {"total": 5.5})
        h.settle()
        h.tick(days=1, minutes=1)
        arms = totals(h, "offer")
        held = {cid for cid in ids if is_holdout("offer", cid, 50)}
        assert 0 < len(held) < 20
        for arm, members in (("holdout", held), ("treated", set(ids) - held)):
            mine = [cid for cid in buyers if cid in members]
            counts = arms[arm]
            assert counts.entrants == len(members)
            assert counts.converters == len(mine)
            assert counts.conversions == 2 * len(mine)
            assert counts.revenue_sum == 15.5 * len(mine)
            assert counts.revenue_sumsq == 15.5**2 * len(mine)
            assert counts.orders == 2 * len(mine) and counts.repeat_purchasers == len(mine)
        assert arms["treated"].converters_after_message == arms["treated"].converters
        assert arms["holdout"].converters_after_message == 0
        steps = figures(h, "offer").step_totals()
        treated = 20 - len(held)
        stayed = set(ids) - set(buyers)  # a buyer's run converts (the goal ends it) before tips
        assert steps["hello"]["reached"] == 20 and steps["tips"]["reached"] == len(stayed)
        assert steps["hello"]["sent"] == treated and steps["hello"]["sent:email"] == treated
        assert steps["hello"]["held"] == len(held) and steps["tips"]["held"] == len(held & stayed)
        assert len([m for m in h.outbox() if m["customer_id"] in held]) == 0
        found = figures(h, "offer")
        assert found.name == "Offer" and found.holdout_percent == 50 and found.step_order == ["hello", "pause", "tips"]
        assert list(found.arms["treated"]) == [START.date().isoformat()]  # filed under the entry day


def test_a_conversion_after_the_run_ended_counts_within_the_window_and_not_after(
    redis_url: str, tmp_path: Path
) -> None:
    """The run ends after its last send (day 1); an order on day 2 is within the 3-day window and
    counts; one on day 4 does not; nor does an order placed before the customer entered."""
    with running(redis_url, tmp_path, [OFFER]) as h:
        for cid in ("early", "late"):
            customer(h, cid)
            h.api.track(cid, "signup")
        h.settle()
        h.tick(days=1, minutes=1)
        assert h.runtime.store.live_runs("early") == {} and h.runtime.store.live_runs("late") == {}
        h.tick(days=1)
        h.api.track("early", "order.placed", {"total": 20})
        h.settle()
        h.tick(days=2)
        h.api.track("late", "order.placed", {"total": 20})
        h.settle()
        arms = totals(h, "offer")
        converters = sum(counts.converters for counts in arms.values())
        revenue = sum(counts.revenue_sum for counts in arms.values())
        assert (converters, revenue) == (1, 20.0)
        # the KPI window (30 days by default) still counts the late order
        assert sum(counts.orders for counts in arms.values()) == 2


def test_a_redelivered_event_and_a_refired_timer_count_once(redis_url: str, tmp_path: Path) -> None:
    """The same order event (same id) tracked twice converts once; a timer fired again for a revision
    already moved on changes nothing, so the step after it is reached once."""
    with running(redis_url, tmp_path, [OFFER]) as h:
        customer(h, "c1")
        h.api.track("c1", "signup")
        h.settle()
        (run_id,) = h.runtime.store.live_runs("c1")
        waiting = h.runtime.store.get_enrollment("c1", run_id)
        assert waiting is not None and waiting.enrollment.status == "waiting"
        h.tick(days=1, minutes=1)
        assert h.runtime.fire_timer("c1", run_id, waiting.enrollment.revision) != "advanced"
        for _ in range(2):
            h.api.track("c1", "order.placed", {"total": 7}, event_id="order-1")
            h.settle()
        arms = totals(h, "offer")
        assert sum(c.conversions for c in arms.values()) == 1
        assert sum(c.revenue_sum for c in arms.values()) == 7
        assert figures(h, "offer").step_totals()["tips"]["reached"] == 1


def test_a_value_that_is_not_a_number_counts_zero_and_is_counted_apart(redis_url: str, tmp_path: Path) -> None:
    with running(redis_url, tmp_path, [OFFER]) as h:
        customer(h, "c1")
        h.api.track("c1", "signup")
        h.settle()
        h.api.track("c1", "order.placed", {"total": "12 EUR"})
        h.api.track("c1", "order.placed", {"total": 3})
        h.settle()
        counts = sum(totals(h, "offer").values(), ArmCounts())
        assert (counts.conversions, counts.revenue_sum, counts.non_numeric_values) == (2, 3.0, 1)
        assert counts.non_numeric_order_values == 1


PROMO = journey(
    {
        "id": "promo",
        "name": "Promo",
        "trigger": {"event": "signup"},
        "goals": [{"event": "order.placed"}],
        "steps": [{"id": "promo_mail", "send": "email", "template": "hello"}],
    }
)
RECEIPT = journey(
    {
        "id": "receipt",
        "name": "Receipt",
        "category": "transactional",
        "trigger": {"event": "signup"},
        "steps": [{"id": "receipt_mail", "send": "email", "template": "tips"}],
    }
)


def test_the_global_control_group_is_never_messaged_by_marketing_but_is_by_transactional(
    redis_url: str, tmp_path: Path
) -> None:
    ids = [f"g{n}" for n in range(24)]
    with running(redis_url, tmp_path, [PROMO, RECEIPT], settings={"global_holdout": 40}) as h:
        for cid in ids:
            customer(h, cid)
            h.api.track(cid, "signup")
        h.settle()
        control = {cid for cid in ids if is_global_control(cid, 40)}
        assert 0 < len(control) < len(ids)
        sent = {(m["customer_id"], m["journey_id"]) for m in h.outbox()}
        assert {cid for cid, j in sent if j == "promo"} == set(ids) - control
        assert {cid for cid, j in sent if j == "receipt"} == set(ids)
        promo = totals(h, "promo")
        assert promo["control"].entrants == len(control)
        assert promo["treated"].entrants == len(ids) - len(control)
        assert "control" not in totals(h, "receipt")
        assert figures(h, "promo").step_totals()["promo_mail"]["held"] == len(control)


SPLIT = journey(
    {
        "id": "ab",
        "name": "A/B",
        "trigger": {"event": "signup"},
        "goals": [{"event": "order.placed", "value": "properties.total"}],
        "steps": [
            {
                "id": "pick",
                "split": [
                    {"name": "a", "percent": 50, "goto": "mail_a"},
                    {"name": "b", "percent": 50, "goto": "mail_b"},
                ],
            },
            {"id": "mail_a", "send": "email", "template": "hello", "next": "rest"},
            {"id": "mail_b", "send": "email", "template": "tips"},
            {"id": "rest", "wait": "1d"},
        ],
    }
)


def test_split_arms_get_entrants_and_conversions(redis_url: str, tmp_path: Path) -> None:
    ids = [f"s{n}" for n in range(16)]
    step = SPLIT.step("pick")
    assert isinstance(step, SplitStep)
    with running(redis_url, tmp_path, [SPLIT]) as h:
        for cid in ids:
            customer(h, cid)
            h.api.track(cid, "signup")
        h.settle()
        for cid in ids[:8]:
            h.api.track(cid, "order.placed", {"total": 2})
        h.settle()
        arms = totals(h, "ab")
        for name in ("a", "b"):
            members = [cid for cid in ids if split_arm("ab", cid, step) == name]
            counts = arms[f"split:pick:{name}"]
            assert counts.entrants == len(members)
            assert counts.converters == len([cid for cid in members if cid in ids[:8]])
            assert counts.revenue_sum == 2 * counts.converters
        assert arms["treated"].entrants == 16 and arms["treated"].converters == 8


KPI = journey(
    {
        "id": "kpi",
        "name": "KPI",
        "trigger": {"event": "signup"},
        "steps": [{"id": "mail", "send": "email", "template": "hello"}],
    }
)


def test_loyalty_kpis_follow_the_settings_events(redis_url: str, tmp_path: Path) -> None:
    """Order, redemption and NPS events named in ``measure`` are counted once per entrant (orders
    each), within the KPI window only."""
    settings: dict[str, Any] = {
        "measure": {"kpi_window": "10d", "order_event": "purchase", "order_value": "amount", "nps_event": "survey"}
    }
    with running(redis_url, tmp_path, [KPI], settings=settings) as h:
        for cid in ("k1", "k2", "k3"):
            customer(h, cid)
            h.api.track(cid, "signup")
        h.settle()
        h.api.track("k1", "purchase", {"amount": 4})
        h.api.track("k1", "purchase", {"amount": 6})
        h.api.track("k1", "reward.redeemed")
        h.api.track("k1", "reward.redeemed")
        h.api.track("k1", "survey", {"score": 10})
        h.api.track("k2", "survey", {"score": 3})
        h.api.track("k2", "survey", {"score": 11})
        h.api.track("k3", "survey", {"score": 8})
        h.settle()
        h.tick(days=11)
        h.api.track("k2", "purchase", {"amount": 100})
        h.settle()
        counts = totals(h, "kpi")["treated"]
        assert (counts.entrants, counts.repeat_purchasers, counts.orders) == (3, 1, 2)
        assert (counts.order_revenue_sum, counts.order_revenue_sumsq) == (10.0, 100.0)
        assert counts.redeemers == 1
        assert (counts.nps_responses, counts.nps_promoters, counts.nps_detractors) == (3, 1, 1)


NIGHT = journey(
    {
        "id": "night",
        "name": "Night",
        "trigger": {"event": "signup"},
        "steps": [{"id": "text", "send": "sms", "template": "hello"}],
    }
)


def test_a_send_put_off_by_quiet_hours_is_counted_deferred_once(redis_url: str, tmp_path: Path) -> None:
    """23:00 in Auckland: the text waits for the morning, counted ``deferred`` once, also when the
    send is re-driven while still quiet; in the morning it is sent and counted ``sent:sms``."""
    with running(redis_url, tmp_path, [NIGHT], settings={"quiet_hours": {"sms": "21:00-08:00"}}) as h:
        h.api.identify("n1", {"phone": "+31612345678", "consent": {"sms": True}, "timezone": "Pacific/Auckland"})
        h.api.track("n1", "signup")
        h.settle()
        (run_id,) = h.runtime.store.live_runs("n1")
        stored = h.runtime.store.get_enrollment("n1", run_id)
        assert stored is not None and stored.enrollment.status == "sending"
        assert h.runtime.deliver("n1", run_id, stored.enrollment.revision) == "retry"
        assert figures(h, "night").step_totals()["text"] == {"reached": 1, "deferred": 1}
        h.tick(hours=10)
        assert h.outbox() and figures(h, "night").step_totals()["text"] == {
            "reached": 1,
            "deferred": 1,
            "sent": 1,
            "sent:sms": 1,
        }


BROADCAST = journey(
    {
        "id": "bcast",
        "name": "Broadcast",
        "trigger": {"schedule": "0 10 * * mon"},
        "holdout": 50,
        "goals": [{"event": "order.placed", "value": "properties.total"}],
        "steps": [{"id": "news", "send": "email", "template": "hello"}],
    }
)


def test_a_cohort_chunk_counts_each_entry_once_also_when_redelivered(redis_url: str, tmp_path: Path) -> None:
    """A broadcast's chunk entered twice (a redelivered message) counts each entrant once, in its arm."""
    ids = [f"b{n}" for n in range(12)]
    with running(redis_url, tmp_path, [BROADCAST]) as h:
        for cid in ids:
            customer(h, cid)
        h.settle()
        assert h.runtime.enter_batch("bcast", ids, "2026-03-02", {}) == len(ids)
        assert h.runtime.enter_batch("bcast", ids, "2026-03-02", {}) == 0
        h.settle()
        h.api.track(ids[0], "order.placed", {"total": 8})
        h.settle()
        arms = totals(h, "bcast")
        held = {cid for cid in ids if is_holdout("bcast", cid, 50)}
        assert arms["holdout"].entrants == len(held) and arms["treated"].entrants == len(ids) - len(held)
        arm = "holdout" if ids[0] in held else "treated"
        assert (arms[arm].converters, arms[arm].revenue_sum) == (1, 8.0)
        steps = figures(h, "bcast").step_totals()["news"]
        assert (steps["reached"], steps.get("sent", 0), steps.get("held", 0)) == (12, 12 - len(held), len(held))
