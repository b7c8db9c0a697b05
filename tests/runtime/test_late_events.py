"""Late events through the real runtime: a cart event stamped hours ago sends its one-hour reminder
at once; one older than max_event_age starts nothing and is counted."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from tests.runtime.harness import journey, running

CART = {
    "id": "cart",
    "name": "Cart",
    "trigger": {"event": "cart.abandoned"},
    "re_entry": "always",
    "category": "transactional",
    "steps": [{"id": "an_hour", "wait": "1h"}, {"id": "remind", "send": "email", "template": "hello"}],
}


def test_a_late_event_fires_its_overdue_wait_at_once(redis_url: str, tmp_path: Path) -> None:
    with running(redis_url, tmp_path, [journey(CART)]) as h:
        h.api.identify("c1", {"email": "c1@example.com"})
        h.api.track("c1", "cart.abandoned", event_id="cart-1", timestamp=h.clock() - timedelta(hours=20))
        h.settle()
        h.tick(seconds=1)  # the scheduler's next pass finds the wait overdue
        assert [m["customer_id"] for m in h.outbox()] == ["c1"]


def test_an_event_older_than_max_event_age_starts_nothing(redis_url: str, tmp_path: Path) -> None:
    short = journey({**CART, "id": "cart_short", "max_event_age": "2h"})
    with running(redis_url, tmp_path, [journey(CART), short]) as h:
        h.api.identify("c1", {"email": "c1@example.com"})
        h.api.track("c1", "cart.abandoned", event_id="cart-1", timestamp=h.clock() - timedelta(hours=3))
        h.api.track("c1", "cart.abandoned", event_id="cart-2", timestamp=h.clock() - timedelta(hours=25))
        h.settle()
        h.tick(seconds=1)
        assert h.stats("cart")["_journey:too_old"] == 1  # the 25-hour-old one, past the default 24 h
        assert h.stats("cart_short")["_journey:too_old"] == 2  # both, past its own 2 h
        assert len(h.outbox()) == 1  # the 3-hour-old event through the default journey
