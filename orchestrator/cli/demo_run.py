"""``loyaloop demo``: every shipped journey, a few hundred synthetic customers, months in seconds.

The demo drives the production path (intake → Dramatiq actors → engine → timers → gate → render
→ channel plugins) with a simulated clock: instead of sleeping, it jumps the clock straight to
the next thing that can happen (an event of the synthetic story, a due timer, a cron fire, the
daily birthday plan), lets the scheduler fire what is due and waits for the workers to finish.
Weeks pass in seconds while every wait, quiet hour and cap is honoured exactly as in production.
"""

from __future__ import annotations

import os
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.cli.demo_ledger import LedgerRecord, VoucherRecord, demo_ledger, ledger_record, voucher_records
from orchestrator.cli.demo_response import Happening, Responder, merge
from orchestrator.cli.status_table import COLUMNS, COUNTED_AS, JOURNEY_COLUMNS, channel_stat
from orchestrator.engine.enrollment import ChannelOutcome, ChannelOutcomeName
from orchestrator.language.journey import Journey, SendStep
from orchestrator.measure.figures import VersionFigures
from orchestrator.settings import Settings
from orchestrator.store import snapshot
from orchestrator.store.vouchers import Vouchers
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


#: One worker thread: sends for one customer due at the same simulated moment (a broadcast and
#: another journey's step) then meet the fatigue gate in queue order, not in whichever order
#: threads happened to run, so the frequency cap holds back the same one every run of a seed.
#: (Several threads gained little: the in-process Redis runs in Python, under one lock.)
DEMO_THREADS = 1

#: The simulated clock moves in steps of at most this much (a timer fires at most this late).
QUANTUM = timedelta(minutes=15)


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
    #: The exact measurement record of every journey version (for ``loyaloop report``'s figures).
    figures: list[VersionFigures] = field(default_factory=list)
    #: The rewards the reference ledger applied (None: no journey endpoint to stand in for).
    ledger: LedgerRecord | None = None
    #: Each voucher pool's codes after the run.
    vouchers: list[VoucherRecord] = field(default_factory=list)


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
        code = f"REF-{index:04d}"
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
            "referral_code": code,
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
            if score >= 9 and rng.random() < 0.6:
                # A promoter's friend signs up with the promoter's code and orders: Loyaloop
                # attributes the first order and rewards both sides (runtime/referrals.py).
                friend = f"{cid}-friend"
                arrived = answered + timedelta(days=rng.uniform(1, 10))
                add(arrived, "identify", friend, _friend_attributes(friend, rng.choice(FIRST_NAMES), zone, locale))
                add(
                    arrived + timedelta(seconds=1),
                    "customer.signed_up",
                    friend,
                    {"source": "web", "referral_code": code},
                )
                item = dict(rng.choice(PRODUCTS), quantity=1)
                first_order = {
                    "order_id": f"O-{counter}",
                    "total": float(item["price"]),
                    "currency": "EUR",
                    "items": [item],
                }
                add(arrived + timedelta(days=rng.uniform(1, 12)), "order.placed", friend, first_order)
    story.sort()
    return story


def _friend_attributes(friend: str, first_name: str, zone: str, locale: str) -> dict[str, Any]:
    """A referred friend: reachable by e-mail (their welcome reward goes there), no birthday."""
    return {
        "email": f"{friend}@example.com",
        "timezone": zone,
        "locale": locale,
        "first_name": first_name,
        "consent": {"email": True, "sms": False, "push": False},
    }


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
    state: Path | None = None,
) -> DemoResult:
    """Run the synthetic story through an embedded (or REDIS_URL) Loyaloop and collect the stats.

    ``state``: where to write the in-process Redis's keys when the run ends (a snapshot
    ``loyaloop console --state`` reads); with REDIS_URL the state simply stays in that Redis.
    """
    rng = random.Random(seed)
    start = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
    clock = SimClock(start)
    story = synthetic_story(customers, days, start, rng)
    end = start + timedelta(days=days)
    began = time.perf_counter()
    responder = Responder(settings.outbox_path)
    with (
        demo_ledger(settings) as receiver,
        Embedded(settings, journeys=journeys, clock=clock, threads=DEMO_THREADS) as system,
    ):
        system.runtime.send_lease = 7 * 86400.0  # simulated time: a send never outlives its lease
        load_demo_vouchers(settings, Vouchers(system.runtime.store.redis), customers)
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
            merge(story, position, responder.reactions(clock.now, _reaction_order))
            if progress is not None:
                progress(clock.now, position)
        stats = {journey_id: system.runtime.store.stats(journey_id) for journey_id in journeys}
        figures = system.runtime.store.version_figures()
        pools = voucher_records(settings, Vouchers(system.runtime.store.redis))
        ledger = ledger_record(receiver)
        if state is not None and not settings.redis_url:
            snapshot.dump(system.client, state, {"now": clock.now.isoformat()})
    outbox = settings.outbox_path
    messages = 0
    if outbox.exists():
        with outbox.open(encoding="utf-8") as handle:
            messages = sum(1 for _ in handle)
    took = time.perf_counter() - began
    return DemoResult(journeys, stats, outbox, customers, days, len(story), took, messages, figures, ledger, pools)


def _reaction_order(customer_id: str, number: int) -> dict[str, Any]:
    """The order a customer places because a message reached them (see demo_response)."""
    product = PRODUCTS[number % len(PRODUCTS)]
    item = dict(product, quantity=1)
    return {"order_id": f"R-{number}", "total": float(product["price"]), "currency": "EUR", "items": [item]}


def _quantum(moment: datetime) -> datetime:
    """Round up to the demo's time step, so things due within one step are handled together."""
    step = QUANTUM.total_seconds()
    return datetime.fromtimestamp(-(-moment.timestamp() // step) * step, UTC)


def _happen(system: Embedded, happening: Happening) -> None:
    if happening.kind == "identify":
        system.api.identify(happening.customer_id, happening.payload)
    else:
        # A fixed event id per happening (not a random one): run ids, and so idempotency keys and
        # anything bucketed on them, are the same every run of one seed.
        event_id = f"demo-{happening.order}"
        system.api.track(
            happening.customer_id, happening.kind, happening.payload, event_id=event_id, timestamp=happening.at
        )


def default_state() -> Path:
    """Where ``loyaloop demo`` leaves its state and ``loyaloop console`` looks for it by default."""
    return Path(tempfile.gettempdir()) / "loyaloop-demo-state.json"


def default_outbox() -> Path:
    """The demo's outbox when ``--outbox`` is not given: a fresh temporary file, removed at the end."""
    handle, name = tempfile.mkstemp(prefix="loyaloop-demo-", suffix=".jsonl")
    os.close(handle)
    return Path(name)


# --- the report ---------------------------------------------------------------------------------
CHANNELS = ("email", "sms", "push")


def journey_row(journey: Journey, stats: dict[str, int]) -> list[str]:
    """The journey's own counts under :data:`~orchestrator.cli.status_table.JOURNEY_COLUMNS`."""
    return [journey.id, *(str(stats.get(f"_journey:{stat}", 0)) for _heading, stat in JOURNEY_COLUMNS)]


def step_rows(journey: Journey, stats: dict[str, int]) -> list[list[str]]:
    """One row per send step under the gate's :data:`~orchestrator.cli.status_table.COLUMNS` (the
    labels ``loyaloop status`` uses), ``sent`` split by channel (``e1 s2``), then ``hold``."""
    per_channel = [(found, value) for key, value in stats.items() if (found := channel_stat(key)) is not None]

    def channel_sum(step: str, outcome: ChannelOutcomeName) -> int:
        return sum(
            value
            for (at, counted), value in per_channel
            if at == step and COUNTED_AS.get(counted.outcome, counted.outcome) == outcome
        )

    result = []
    for step in journey.steps:
        if not isinstance(step, SendStep):
            continue
        sent_on = {c: stats.get(f"{step.id}:{ChannelOutcome('sent', c)}", 0) for c in CHANNELS}
        sent = " ".join(f"{c[0]}{count}" for c, count in sent_on.items() if count)
        counts = {outcome: channel_sum(step.id, outcome) for _heading, outcome in COLUMNS}
        cells = [sent or "0", *(str(counts[outcome]) for _heading, outcome in COLUMNS[1:])]
        result.append([step.id, *cells, str(stats.get(f"{step.id}:holdout", 0))])
    return result


#: Headings of the demo's sends table: the gate's columns, then the step's holdout.
SEND_HEADINGS = (*(heading for heading, _outcome in COLUMNS), "hold")


def load_demo_vouchers(settings: Settings, vouchers: Vouchers, count: int) -> None:
    """Fill every ``kind: pool`` voucher pool with synthetic codes (``DEMO-BIRTHDAY-00001``…), as a
    shop would with ``loyaloop vouchers load``, so the demo's rewards carry unique codes."""
    for name, spec in settings.vouchers.items():
        if spec.kind == "pool":
            vouchers.load(name, [f"DEMO-{name.upper()}-{n:05d}" for n in range(1, count + 1)])
