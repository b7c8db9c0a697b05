"""``loyaloop demo``: every shipped journey, a few hundred synthetic customers, months in seconds.

The demo drives the production path (intake → Dramatiq actors → engine → timers → gate → render
→ channel plugins) with a simulated clock: instead of sleeping, it jumps the clock straight to
the next thing that can happen (an event of the synthetic story, a due timer, a cron fire, the
daily birthday plan), lets the scheduler fire what is due and waits for the workers to finish.
Weeks pass in seconds while every wait, quiet hour and cap is honoured exactly as in production.
"""

from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.cli.status_table import channel_stat
from orchestrator.engine.enrollment import ChannelOutcome, ChannelOutcomeName
from orchestrator.language.journey import Journey, SendStep
from orchestrator.settings import Settings
from orchestrator.workers.embedded import Embedded, SimClock

ZONES = (
    "Europe/Amsterdam",
    "Europe/Amsterdam",
    "America/New_York",
    "Asia/Kolkata",
    "Australia/Sydney",
    "Europe/London",
)
FIRST_NAMES = ("Anna", "Sem", "Lotte", "Daan", "Priya", "Liam", "Olivia", "Noah", "Aarav", "Mia", "Jack", "Emma")
PRODUCTS: tuple[dict[str, Any], ...] = (
    {"sku": "SERUM-30", "name": "Vitamin C serum 30 ml", "price": 29.95, "replenish_days": 45},
    {"sku": "CREAM-50", "name": "Day cream 50 ml", "price": 24.5, "replenish_days": 60},
    {"sku": "MASK-1", "name": "Clay mask", "price": 12.0, "replenish_days": 30},
    {"sku": "BAG-1", "name": "Toiletry bag", "price": 19.0},
)


#: The simulated clock moves in steps of at most this much (a timer fires at most this late).
QUANTUM = timedelta(minutes=15)


@dataclass(order=True)
class Happening:
    """One thing a synthetic customer does at a simulated moment."""

    at: datetime
    order: int
    kind: str = field(compare=False)
    customer_id: str = field(compare=False)
    payload: dict[str, Any] = field(compare=False, default_factory=dict)


@dataclass
class DemoResult:
    journeys: dict[str, Journey]
    stats: dict[str, dict[str, int]]
    outbox: Path
    customers: int
    days: int
    events: int
    seconds: float
    messages: int


def synthetic_story(customers: int, days: int, start: datetime, rng: random.Random) -> list[Happening]:
    """Sign-ups, identities, orders, app opens, tier changes, NPS answers and referrals."""
    story: list[Happening] = []
    counter = 0

    def add(at: datetime, kind: str, cid: str, payload: dict[str, Any]) -> None:
        nonlocal counter
        counter += 1
        story.append(Happening(at, counter, kind, cid, payload))

    span = timedelta(days=days)
    for index in range(customers):
        cid = f"cust-{index:04d}"
        zone = rng.choice(ZONES)
        locale = "nl" if zone == "Europe/Amsterdam" and rng.random() < 0.8 else "en"
        joined = start + span * (0.4 * rng.random())
        birthday = (start + timedelta(days=rng.randrange(0, days + 30))).date().replace(year=rng.randrange(1960, 2004))
        attributes: dict[str, Any] = {
            "email": f"{cid}@example.com",
            "timezone": zone,
            "locale": locale,
            "first_name": rng.choice(FIRST_NAMES),
            "birthday": _safe_date(birthday).isoformat(),
            "member": rng.random() < 0.7,
            "tier": rng.choice(("bronze", "bronze", "silver", "gold", "platinum")),
            "points": rng.randrange(0, 2000),
            "consent": {"email": rng.random() < 0.9, "sms": rng.random() < 0.6, "push": rng.random() < 0.7},
        }
        if rng.random() < 0.7:
            attributes["phone"] = f"+3161{index:07d}" if zone.startswith("Europe") else f"+1212555{index:04d}"
        if rng.random() < 0.6:
            attributes["push_token"] = f"tok-{cid}"
        add(joined, "identify", cid, attributes)
        add(joined + timedelta(seconds=1), "customer.signed_up", cid, {"source": rng.choice(("web", "app", "store"))})
        if rng.random() < 0.5:
            add(joined + timedelta(hours=rng.uniform(1, 96)), "app.opened", cid, {"platform": "ios"})
        moment = joined
        for _ in range(rng.choice((0, 1, 1, 2, 3, 4))):
            moment = moment + timedelta(days=rng.uniform(2, 50))
            if moment > start + span:
                break
            items: list[dict[str, Any]] = [dict(rng.choice(PRODUCTS), quantity=1) for _ in range(rng.choice((1, 1, 2)))]
            total = round(sum(float(item["price"]) for item in items), 2)
            add(
                moment,
                "order.placed",
                cid,
                {"order_id": f"O-{counter}", "total": total, "currency": "EUR", "items": items},
            )
        if rng.random() < 0.15:
            add(joined + span * (0.3 * rng.random()), "tier.changed", cid, {"tier": "gold", "previous_tier": "silver"})
        if rng.random() < 0.15:
            add(joined + timedelta(hours=rng.uniform(2, 120)), "profile.completed", cid, {})
        if rng.random() < 0.3:
            score = rng.choice((6, 8, 9, 10, 10))
            answered = joined + timedelta(days=rng.uniform(5, 40))
            add(answered, "nps.answered", cid, {"score": score})
            if score >= 9 and index > 0 and rng.random() < 0.6:
                friend = f"cust-{rng.randrange(0, index):04d}"
                converted = {"referrer_id": cid, "friend_id": friend, "friend_first_name": rng.choice(FIRST_NAMES)}
                add(answered + timedelta(days=rng.uniform(3, 20)), "referral.converted", cid, converted)
    story.sort()
    return story


def _safe_date(day: date) -> date:
    return day if not (day.month == 2 and day.day == 29) else day.replace(day=28)


def run_demo(
    settings: Settings,
    journeys: dict[str, Journey],
    *,
    customers: int = 300,
    days: int = 120,
    seed: int = 7,
    progress: Callable[[datetime, int], None] | None = None,
) -> DemoResult:
    """Run the synthetic story through an embedded (or REDIS_URL) Loyaloop and collect the stats."""
    rng = random.Random(seed)
    start = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    clock = SimClock(start)
    story = synthetic_story(customers, days, start, rng)
    end = start + timedelta(days=days)
    began = time.perf_counter()
    with Embedded(settings, journeys=journeys, clock=clock, threads=4) as system:
        system.runtime.send_lease = 7 * 86400.0  # simulated time: a send never outlives its lease
        position = 0
        system.tick(start)
        while clock.now < end:
            next_at = [end]
            if position < len(story):
                next_at.append(story[position].at)
            due = system.runtime.timers.next_due()
            if due is not None:
                next_at.append(datetime.fromtimestamp(due, UTC))
            broadcast = system.scheduler.next_broadcast(clock.now)
            if broadcast is not None:
                next_at.append(broadcast)
            next_at.append(datetime.combine(clock.now.date() + timedelta(days=1), datetime.min.time(), UTC))
            clock.now = max(clock.now, _quantum(min(next_at)))
            while position < len(story) and story[position].at <= clock.now:
                _happen(system, story[position])
                position += 1
            system.settle()
            system.tick(clock.now)
            if progress is not None:
                progress(clock.now, position)
        stats = {journey_id: system.runtime.store.stats(journey_id) for journey_id in journeys}
    outbox = settings.outbox_path
    messages = 0
    if outbox.exists():
        with outbox.open(encoding="utf-8") as handle:
            messages = sum(1 for _ in handle)
    return DemoResult(journeys, stats, outbox, customers, days, len(story), time.perf_counter() - began, messages)


def _quantum(moment: datetime) -> datetime:
    """Round up to the demo's time step, so things due within one step are handled together."""
    step = QUANTUM.total_seconds()
    return datetime.fromtimestamp(-(-moment.timestamp() // step) * step, UTC)


def _happen(system: Embedded, happening: Happening) -> None:
    if happening.kind == "identify":
        system.api.identify(happening.customer_id, happening.payload)
    else:
        system.api.track(happening.customer_id, happening.kind, happening.payload, timestamp=happening.at)


def default_outbox() -> Path:
    return Path(tempfile.gettempdir()) / f"loyaloop-demo-{int(time.time())}.jsonl"


# --- the report ---------------------------------------------------------------------------------
CHANNELS = ("email", "sms", "push")


def rows(journey: Journey, stats: dict[str, int]) -> list[list[str]]:
    """Table rows for one journey: a summary row, then one row per send step."""

    def get(name: str) -> int:
        return stats.get(name, 0)

    per_channel = [(found, value) for key, value in stats.items() if (found := channel_stat(key)) is not None]

    def channel_sum(step: str, outcome: ChannelOutcomeName) -> int:
        return sum(value for (at, counted), value in per_channel if at == step and counted.outcome == outcome)

    summary = [
        journey.id,
        "(journey)",
        str(get("_journey:entered")),
        "",
        "",
        "",
        "",
        "",
        "",
        str(get("_journey:holdout")),
        str(get("_journey:converted")),
        str(get("_journey:exited")),
        str(get("_journey:completed")),
    ]
    result = [summary]
    for step in journey.steps:
        if not isinstance(step, SendStep):
            continue
        sent_on = {c: get(f"{step.id}:{ChannelOutcome('sent', c)}") for c in CHANNELS}
        sent = " ".join(f"{c[0]}{count}" for c, count in sent_on.items() if count)
        refused = channel_sum(step.id, "suppressed") + channel_sum(step.id, "no_consent")
        result.append(
            [
                "",
                step.id,
                "",
                sent or "0",
                str(channel_sum(step.id, "capped")),
                str(channel_sum(step.id, "deferred")),  # quiet hours and on_capped: defer
                str(refused),
                str(channel_sum(step.id, "no_address")),
                str(channel_sum(step.id, "failed") + get(f"{step.id}:undeliverable")),
                str(get(f"{step.id}:holdout")),
                "",
                "",
                "",
            ]
        )
    return result


HEADERS = (
    "journey",
    "step",
    "entered",
    "sent e/s/p",
    "capped",
    "deferred",
    "suppressed/no consent",
    "no address",
    "failed",
    "holdout",
    "converted",
    "exited",
    "completed",
)
