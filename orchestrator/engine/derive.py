"""What events teach Loyaloop about a customer: the profile fields it maintains itself.

Kept apart from the runtime because it is pure (profile, event) → profile, and because the list of
order events and the item fields read here are part of the contract with whoever sends events.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from orchestrator.language.profile import ProductPurchase, Profile

#: Events that count as an order: orders_count, total_spent, last_order_at and products follow them.
ORDER_EVENTS = frozenset({"order.placed", "order.completed", "order", "purchase"})


def changes_profile(profile: Profile, name: str) -> bool:
    """Whether :func:`derive_profile` would change this profile (saves the copy it needs)."""
    return name in ORDER_EVENTS or profile.created_at is None


def derive_profile(profile: Profile, name: str, properties: dict[str, Any], timestamp: datetime) -> Profile:
    """What an event teaches about a customer: orders count, money spent, products to replenish."""
    if profile.created_at is None:
        profile.created_at = timestamp
    if name not in ORDER_EVENTS:
        return profile
    profile.orders_count += 1
    total = next((properties[k] for k in ("total", "amount", "value") if k in properties), 0)
    if isinstance(total, int | float) and not isinstance(total, bool):
        profile.total_spent = round(profile.total_spent + float(total), 2)
    if profile.last_order_at is None or timestamp > profile.last_order_at:
        profile.last_order_at = timestamp
    items = properties.get("items") or properties.get("products") or []
    if isinstance(items, list):
        for item in items:
            if not isinstance(item, dict) or not item.get("sku"):
                continue
            sku = str(item["sku"])
            days = item.get("replenish_days")
            replenish_at = None
            if isinstance(days, int | float) and not isinstance(days, bool) and days > 0:
                replenish_at = timestamp + timedelta(days=float(days))
            profile.products[sku] = ProductPurchase(
                sku=sku, name=str(item.get("name", "")), last_bought_at=timestamp, replenish_at=replenish_at
            )
    return profile
