"""A synthetic shop history for ``loyaloop simulate``: sign-ups with profiles, orders, app opens,
NPS answers and tier changes, as the JSONL that ``loyaloop import`` reads (``timestamp`` on every
line), in time order.

    python tests/simulate/make_history.py --customers 25000 --orders 70000 --months 18 > history.jsonl

The default size is the benchmark's (docs/benchmarks.md); tests call :func:`history` with a few
dozen customers.  Same arguments, same file, byte for byte.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from orchestrator.cli.demo_run import FIRST_NAMES, PRODUCTS, ZONES

START = datetime(2025, 1, 6, 7, 0, tzinfo=UTC)
#: New York area codes: the synthetic numbers must be valid ones (identify checks them).
AREAS = ("212", "646", "718", "917")


def history(customers: int, orders: int, months: int, seed: int = 7, start: datetime = START) -> list[dict[str, Any]]:
    """The history's lines, sorted by time (ties keep their order of creation)."""
    rng = random.Random(seed)
    span = timedelta(days=30.4 * months)
    lines: list[tuple[datetime, int, dict[str, Any]]] = []

    def add(at: datetime, line: dict[str, Any]) -> None:
        line["timestamp"] = at.isoformat()
        lines.append((at, len(lines), line))

    joined_at: list[datetime] = []
    for index in range(customers):
        cid = f"c{index:06d}"
        zone = rng.choice(ZONES)
        joined = start + span * (0.8 * rng.random())
        joined_at.append(joined)
        attributes: dict[str, Any] = {
            "email": f"{cid}@example.com",
            "timezone": zone,
            "locale": "nl" if zone == "Europe/Amsterdam" and rng.random() < 0.8 else "en",
            "first_name": rng.choice(FIRST_NAMES),
            "birthday": f"{rng.randrange(1960, 2004)}-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}",
            "member": rng.random() < 0.7,
            "tier": rng.choice(("bronze", "bronze", "silver", "gold", "platinum")),
            "points": rng.randrange(0, 2000),
            "consent": {"email": rng.random() < 0.9, "sms": rng.random() < 0.6, "push": rng.random() < 0.7},
        }
        if rng.random() < 0.7:
            attributes["phone"] = (
                f"+3161{index:07d}" if zone.startswith("Europe") else f"+1{AREAS[index % 4]}555{index % 10000:04d}"
            )
        if rng.random() < 0.6:
            attributes["push_token"] = f"tok-{cid}"
        add(joined, {"type": "identify", "customer_id": cid, "attributes": attributes})
        source = rng.choice(("web", "app", "store"))
        add(
            joined + timedelta(seconds=1),
            {"customer_id": cid, "event": "customer.signed_up", "properties": {"source": source}},
        )
        if rng.random() < 0.4:
            add(joined + timedelta(hours=rng.uniform(1, 96)), {"customer_id": cid, "event": "app.opened"})
        if rng.random() < 0.2:
            add(joined + timedelta(days=rng.uniform(5, 40)), _nps(cid, rng))
        if rng.random() < 0.1:
            add(joined + timedelta(days=rng.uniform(10, 200)), _tier(cid))
    # Orders: a few customers order often, most seldom (a long tail, as shops see).
    weights = [rng.paretovariate(1.5) for _ in range(customers)]
    buyers = rng.choices(range(customers), weights=weights, k=orders)
    for number, index in enumerate(buyers):
        joined = joined_at[index]
        at = joined + timedelta(hours=1) + (start + span - joined) * rng.random()
        items = [dict(rng.choice(PRODUCTS), quantity=1) for _ in range(rng.choice((1, 1, 2)))]
        total = round(sum(float(item["price"]) for item in items), 2)
        properties = {"order_id": f"O{number:07d}", "total": total, "currency": "EUR", "items": items}
        add(at, {"customer_id": f"c{index:06d}", "event": "order.placed", "properties": properties})
    lines.sort(key=lambda item: (item[0], item[1]))
    return [line for _at, _n, line in lines]


def _nps(cid: str, rng: random.Random) -> dict[str, Any]:
    return {"customer_id": cid, "event": "nps.answered", "properties": {"score": rng.choice((6, 8, 9, 10, 10))}}


def _tier(cid: str) -> dict[str, Any]:
    return {"customer_id": cid, "event": "tier.changed", "properties": {"tier": "gold", "previous_tier": "silver"}}


def lines_text(lines: list[dict[str, Any]]) -> Iterator[str]:
    for line in lines:
        yield json.dumps(line, separators=(",", ":")) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=25_000)
    parser.add_argument("--orders", type=int, default=70_000)
    parser.add_argument("--months", type=int, default=18)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    sys.stdout.writelines(lines_text(history(args.customers, args.orders, args.months, args.seed)))


if __name__ == "__main__":
    main()
