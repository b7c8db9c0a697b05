"""What the console pages show, read from the store: exact records only, never estimates.

Every figure here is a counter the runtime keeps (the journey stats, ``keys.journey_stats``), a
customer's own keys (profile, consent and its history, live runs, the frequency-cap send log) or the
provider feedback recorded by the webhooks.  Where the store keeps no record of something a page
would like to show (per-day cap hits, for one), the page says so instead of estimating it.

Contact points never leave this module in clear: :func:`mask` keeps the first character and the
e-mail domain's last label, or a phone number's last two digits.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any

import redis

from orchestrator.engine.bucketing import is_global_control
from orchestrator.engine.enrollment import ChannelOutcome, Enrollment
from orchestrator.gate.caps import SEP, applies, describe
from orchestrator.gate.consent import consent_history, read_consent, suppression_reason
from orchestrator.http.console.flow import trigger_text
from orchestrator.language.journey import Journey, SendStep
from orchestrator.settings import Settings
from orchestrator.store import Store, keys

CHANNELS = ("email", "sms", "push")
DAY_MS = 86_400_000
EPOCH_DAY = date(1970, 1, 1)
#: Gate outcomes shown per journey on the overview, as the stats name them.
OUTCOMES = ("sent", "capped", "deferred", "no_consent", "suppressed", "no_address", "failed")


def mask(value: str | None) -> str:
    """A contact point shown without revealing it: ``a•••@•••.com``, ``•••••••89``."""
    if not value:
        return ""
    if "@" in value:
        local, _, domain = value.partition("@")
        tail = domain.rsplit(".", 1)[-1] if "." in domain else ""
        return f"{local[:1]}•••@•••.{tail}" if tail else f"{local[:1]}•••@•••"
    digits = [ch for ch in value if ch.isdigit()]
    return "•" * max(len(digits) - 2, 3) + "".join(digits[-2:])


# --- journeys ------------------------------------------------------------------------------------
@dataclass
class JourneyRow:
    """One journey on the overview; ``outcomes`` and ``sends`` are summed over its send steps."""

    id: str
    name: str
    version: str
    category: str
    trigger: str
    steps: int
    loaded: bool
    entered: int = 0
    converted: int = 0
    exited: int = 0
    completed: int = 0
    held: int = 0
    sends: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, int] = field(default_factory=dict)


def all_stats(store: Store, journey_ids: Iterable[str]) -> dict[str, dict[str, int]]:
    """Every journey's stats hash, in one pipelined round trip."""
    ids = list(journey_ids)
    pipe = store.redis.pipeline(transaction=False)
    for journey_id in ids:
        pipe.hgetall(keys.journey_stats(journey_id))
    return {
        journey_id: {k: int(v) for k, v in raw.items()} for journey_id, raw in zip(ids, pipe.execute(), strict=True)
    }


def journey_rows(store: Store, journeys: Mapping[str, Journey]) -> list[JourneyRow]:
    """Every journey loaded from disk or ever run (a journey removed from disk keeps its figures)."""
    stored = store.journey_ids()
    ids = sorted(set(journeys) | set(stored))
    stats = all_stats(store, ids)
    rows: list[JourneyRow] = []
    for journey_id in ids:
        journey = journeys.get(journey_id)
        if journey is None:
            journey = store.load_journey(journey_id, stored[journey_id])
        row = JourneyRow(
            id=journey_id,
            name=journey.name if journey else journey_id,
            version=journey.version if journey else stored.get(journey_id, ""),
            category=journey.category if journey else "",
            trigger="; ".join(trigger_text(journey)) if journey else "",
            steps=len(journey.steps) if journey else 0,
            loaded=journey_id in journeys,
        )
        counts = stats[journey_id]
        row.entered = counts.get("_journey:entered", 0)
        row.converted = counts.get("_journey:converted", 0)
        row.exited = counts.get("_journey:exited", 0)
        row.completed = counts.get("_journey:completed", 0)
        row.held = counts.get("_journey:holdout", 0)
        row.outcomes = dict.fromkeys(OUTCOMES, 0)
        for key, count in counts.items():
            _step, _, rest = key.partition(":")
            if _step == "_journey":
                continue
            outcome = ChannelOutcome.parse(rest)
            if outcome is not None and outcome.outcome in row.outcomes:
                row.outcomes[outcome.outcome] += count
                if outcome.outcome == "sent":
                    row.sends[outcome.channel] = row.sends.get(outcome.channel, 0) + count
        rows.append(row)
    return rows


# --- one customer --------------------------------------------------------------------------------
@dataclass
class SentMessage:
    """One send recorded in the customer's frequency-cap log, with the provider's feedback."""

    at: datetime
    journey: str
    step: str
    channel: str
    category: str
    status: str


@dataclass
class CapWindow:
    rule: str
    used: int
    limit: int


@dataclass
class CustomerView:
    id: str
    found: bool
    email: str = ""
    phone: str = ""
    push_tokens: int = 0
    timezone: str = ""
    locale: str = ""
    created_at: datetime | None = None
    orders: int = 0
    consent: dict[str, bool | None] = field(default_factory=dict)
    history: list[dict[str, str]] = field(default_factory=list)
    suppressed: list[tuple[str, str]] = field(default_factory=list)
    runs: list[Enrollment] = field(default_factory=list)
    sends: list[SentMessage] = field(default_factory=list)
    caps: list[CapWindow] = field(default_factory=list)
    #: Whether the customer is in the programme-wide control group (never messaged by marketing).
    global_control: bool = False


def _parse_member(member: str) -> tuple[str, str, str, list[str]]:
    """(idempotency key, channel, category, tags) of a send-log member (see ``gate.caps.member``)."""
    parts = member.split(SEP)
    if len(parts) != 4:
        return member, "", "", []
    return parts[0], parts[1], parts[2], [tag for tag in parts[3].split(",") if tag]


def customer_view(
    client: redis.Redis, store: Store, settings: Settings, customer_id: str, now: datetime
) -> CustomerView:
    """Everything the customer page shows, in a few round trips; ``found`` is False for an unknown id."""
    profile = store.get_profile(customer_id)
    if profile is None:
        return CustomerView(customer_id, found=False)
    view = CustomerView(
        customer_id,
        found=True,
        email=mask(profile.email),
        phone=mask(profile.phone),
        push_tokens=len(profile.push_tokens),
        timezone=profile.timezone or "",
        locale=profile.locale or "",
        created_at=profile.created_at,
        orders=profile.orders_count,
        global_control=is_global_control(customer_id, settings.global_holdout),
    )
    recorded = read_consent(client, customer_id)
    view.consent = {channel: recorded.get(channel) for channel in sorted(set(CHANNELS) | set(recorded))}
    view.history = list(reversed(consent_history(client, customer_id)))[:20]
    addresses = [("email", profile.email), ("sms", profile.phone)] + [("push", t) for t in profile.push_tokens]
    for channel, address in addresses:
        if address:
            reason = suppression_reason(client, address)
            if reason is not None:
                view.suppressed.append((channel, reason))
    live = store.live_runs(customer_id)
    view.runs = [stored.enrollment for stored in store.get_enrollments(customer_id, sorted(live))]
    raw: list[tuple[str, float]] = client.zrange(keys.send_log(customer_id), 0, -1, withscores=True)  # type: ignore[assignment]
    entries = [(_parse_member(member), score) for member, score in raw]
    recent = entries[-50:]
    pipe = client.pipeline(transaction=False)
    for (idem, *_rest), _score in recent:
        pipe.hget(keys.message_status(idem), "status")
    statuses = pipe.execute() if recent else []
    for ((idem, channel, category, _tags), score), status in zip(reversed(recent), reversed(statuses), strict=True):
        run_id, _, step_id = idem.rpartition(":")
        view.sends.append(
            SentMessage(
                at=datetime.fromtimestamp(score / 1000, UTC),
                journey=run_id.rsplit("-", 1)[0] if run_id else "",
                step=step_id,
                channel=channel,
                category=category,
                status=status or "no report",
            )
        )
    now_ms = now.timestamp() * 1000
    for rule in settings.caps:
        since = now_ms - rule.window.total_seconds() * 1000
        used = sum(
            1
            for (_idem, channel, category, tags), score in entries
            if score > since and applies(rule, channel, category, tags)
        )
        view.caps.append(CapWindow(describe(rule), used, rule.max))
    return view


# --- the calendar --------------------------------------------------------------------------------
@dataclass
class Calendar:
    """Sends per UTC day and channel from the customers' send logs (kept ``send_log_retention``);
    ``customers_scanned`` counts the customers with a send log."""

    days: list[date]
    per_day: dict[date, dict[str, int]]
    customers_scanned: int
    retention: timedelta
    read_at: datetime
    totals: dict[str, dict[str, int]] = field(default_factory=dict)
    #: Capped and deferred per day: only from the measurement records (None: from the send logs).
    gate_per_day: dict[date, dict[str, int]] | None = None

    @property
    def complete_from(self) -> date:
        """The first day every log still holds whole (older sends may have been trimmed); records
        are whole on every day."""
        if self.gate_per_day is not None:
            return self.days[0] if self.days else self.read_at.date()
        return (self.read_at - self.retention).date() + timedelta(days=1)


def calendar(store: Store, settings: Settings, journeys: Mapping[str, Journey], now: datetime) -> Calendar:
    """Sends per day per channel (every journey, transactional included) within the send-log
    retention, plus each journey's capped and deferred totals (kept as totals only)."""
    client = store.redis
    by_number: dict[tuple[int, str], int] = {}
    scanned = 0
    prefix, suffix = keys.send_log("\0").split("\0")
    batch: list[str] = []

    def read(batch: list[str]) -> None:
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.zrange(key, 0, -1, withscores=True)
        for log in pipe.execute():
            for member, score in log:
                bucket = (int(score) // DAY_MS, member.split(SEP, 2)[1] if SEP in member else "")
                by_number[bucket] = by_number.get(bucket, 0) + 1

    for key in client.scan_iter(match=f"{prefix}*{suffix}", count=2000):
        batch.append(key)
        if len(batch) >= 2000:
            read(batch)
            scanned += len(batch)
            batch = []
    if batch:
        read(batch)
        scanned += len(batch)
    per_day: dict[date, dict[str, int]] = {}
    for (number, channel), count in by_number.items():
        per_day.setdefault(EPOCH_DAY + timedelta(days=number), {})[channel] = count
    first = min(per_day) if per_day else now.date()
    days = [first + timedelta(days=n) for n in range((max(per_day, default=first) - first).days + 1)]
    rows = journey_rows(store, journeys)
    totals = {row.id: {"capped": row.outcomes["capped"], "deferred": row.outcomes["deferred"]} for row in rows}
    return Calendar(days, per_day, scanned, settings.send_log_retention, now, totals)


def calendar_of_records(
    sends: dict[date, dict[str, int]], gate: dict[date, dict[str, int]], settings: Settings, now: datetime
) -> Calendar:
    """The calendar from the measurement records' per-day step outcomes (``measured.per_day``)."""
    known = set(sends) | set(gate)
    first = min(known, default=now.date())
    days = [first + timedelta(days=n) for n in range((max(known, default=first) - first).days + 1)]
    return Calendar(days, sends, 0, settings.send_log_retention, now, {}, gate)


def send_steps(journey: Journey) -> list[SendStep]:
    return [step for step in journey.steps if isinstance(step, SendStep)]


def template_context(**values: Any) -> dict[str, Any]:
    """The values every page template gets, plus ``values`` (a plain dict, for Jinja)."""
    return {"channels": CHANNELS, **values}
