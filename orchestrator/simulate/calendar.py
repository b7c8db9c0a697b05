"""The fatigue calendar: how often each customer would hear from the brand, and where the caps bit.

Computed from the simulation's own rows (``messages.jsonl``, ``decisions.jsonl``), so it says
exactly what those files say.  Weeks are ISO weeks of the message's UTC time (``2026-W07``).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

#: How many of the busiest customers the calendar lists.
BUSIEST = 10


def iso_week(at: str) -> str:
    year, week, _day = datetime.fromisoformat(at).isocalendar()
    return f"{year}-W{week:02d}"


def calendar(messages: Iterable[Mapping[str, Any]], decisions: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The calendar as one JSON-ready dict (``calendar.json``)."""
    per_customer_week: Counter[tuple[str, str]] = Counter()
    per_day: dict[str, Counter[str]] = defaultdict(Counter)
    per_customer: Counter[str] = Counter()
    total = 0
    for row in messages:
        total += 1
        customer = str(row["customer_id"])
        per_customer_week[(customer, iso_week(str(row["at"])))] += 1
        per_day[str(row["at"])[:10]][str(row["channel"])] += 1
        per_customer[customer] += 1
    # How many (customer, week) pairs had 1, 2, 3… messages: a flooded customer shows as a long tail.
    distribution = Counter(per_customer_week.values())
    busiest_week: dict[str, int] = {}
    for (customer, _week), count in per_customer_week.items():
        busiest_week[customer] = max(busiest_week.get(customer, 0), count)
    busiest = sorted(per_customer.items(), key=lambda item: (-item[1], item[0]))[:BUSIEST]
    cap_hits: Counter[str] = Counter()
    held: Counter[str] = Counter()
    for row in decisions:
        held[str(row["outcome"])] += 1
        if row.get("rule"):
            cap_hits[f"{row['rule']} ({row['outcome']})"] += 1
    return {
        "messages": total,
        "customers_reached": len(per_customer),
        "per_customer_week": {str(count): pairs for count, pairs in sorted(distribution.items())},
        "per_day_channel": {day: dict(sorted(channels.items())) for day, channels in sorted(per_day.items())},
        "busiest_customers": [
            {"customer_id": customer, "messages": count, "most_in_one_week": busiest_week[customer]}
            for customer, count in busiest
        ],
        "cap_hits": dict(sorted(cap_hits.items(), key=lambda item: (-item[1], item[0]))),
        "held": dict(sorted(held.items(), key=lambda item: (-item[1], item[0]))),
    }


def weekly_channel_totals(cal: Mapping[str, Any]) -> list[tuple[str, dict[str, int]]]:
    """The per-day table folded into ISO weeks (what the terminal summary prints)."""
    weeks: dict[str, Counter[str]] = defaultdict(Counter)
    for day, channels in cal["per_day_channel"].items():
        weeks[iso_week(day + "T00:00:00+00:00")].update(channels)
    return [(week, dict(counts)) for week, counts in sorted(weeks.items())]
