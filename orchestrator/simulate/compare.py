"""Two simulations of one history, side by side: what a change to the journeys or the settings
would change for customers (``loyaloop simulate EVENTS --compare OTHER_JOURNEYS_DIR``).

``a`` is the current journeys' run, ``b`` the other folder's.  The customers whose experience
changed most are those with the largest difference in messages received, then in sends held back.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

#: How many of the most changed customers the comparison lists.
MOST_CHANGED = 20

Rows = Iterable[Mapping[str, Any]]


def compare(a_messages: Rows, a_decisions: Rows, b_messages: Rows, b_decisions: Rows) -> dict[str, Any]:
    """The comparison as one JSON-ready dict (``comparison.json``)."""
    a_by, a_customer = _messages(a_messages)
    b_by, b_customer = _messages(b_messages)
    a_caps, a_held = _held(a_decisions)
    b_caps, b_held = _held(b_decisions)
    customers = set(a_customer) | set(b_customer) | set(a_held) | set(b_held)
    changed: list[dict[str, Any]] = sorted(
        (
            {
                "customer_id": customer,
                "messages_a": a_customer[customer],
                "messages_b": b_customer[customer],
                "held_a": a_held[customer],
                "held_b": b_held[customer],
            }
            for customer in customers
            if (a_customer[customer], a_held[customer]) != (b_customer[customer], b_held[customer])
        ),
        key=_change,
    )
    return {
        "messages": {"a": sum(a_by.values()), "b": sum(b_by.values())},
        "messages_by_journey_channel": _side_by_side(a_by, b_by),
        "customers_reached": {"a": len(a_customer), "b": len(b_customer)},
        "cap_hits": _side_by_side(a_caps, b_caps),
        "customers_changed": len(changed),
        "most_changed": changed[:MOST_CHANGED],
    }


def _change(row: dict[str, Any]) -> tuple[int, int, str]:
    return (-abs(row["messages_b"] - row["messages_a"]), -abs(row["held_b"] - row["held_a"]), row["customer_id"])


def _messages(rows: Rows) -> tuple[Counter[str], Counter[str]]:
    by: Counter[str] = Counter()
    per_customer: Counter[str] = Counter()
    for row in rows:
        by[f"{row['journey_id']} / {row['channel']}"] += 1
        per_customer[str(row["customer_id"])] += 1
    return by, per_customer


def _held(rows: Rows) -> tuple[Counter[str], Counter[str]]:
    caps: Counter[str] = Counter()
    per_customer: Counter[str] = Counter()
    for row in rows:
        per_customer[str(row["customer_id"])] += 1
        if row.get("rule"):
            caps[str(row["rule"])] += 1
    return caps, per_customer


def _side_by_side(a: Counter[str], b: Counter[str]) -> dict[str, dict[str, int]]:
    return {key: {"a": a[key], "b": b[key]} for key in sorted(set(a) | set(b))}


def write_comparison(path: Path, diff: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(diff, indent=1) + "\n", encoding="utf-8")
