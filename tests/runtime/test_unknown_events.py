"""Events whose name no journey listens to are counted per name, exactly, in Redis, and shown with
a did-you-mean against the catalogue's events (orchestrator/runtime/unknown_events.py)."""

from __future__ import annotations

from pathlib import Path

import redis

from orchestrator.runtime.journey_book import known_events, listened_events
from orchestrator.runtime.unknown_events import UnknownEvent, unknown_events
from orchestrator.store import Store, keys
from orchestrator.store.stats import OTHER_NAMES, UNKNOWN_NAMES_KEPT
from tests.runtime.harness import journey, running

SIGNUP = journey(
    {
        "id": "welcome",
        "name": "Welcome",
        "trigger": {"event": "customer.signed_up"},
        "goals": [{"event": "order.refunded"}],
        "exit_when": [{"event": "customer.deleted"}],
        "steps": [
            {"id": "hello", "send": "email", "template": "hello"},
            {"id": "nps", "wait": {"event": "nps.answered", "timeout": "2d"}},
        ],
    }
)


def test_a_journey_listens_to_its_trigger_goals_exits_and_waits() -> None:
    assert listened_events(SIGNUP) == {"customer.signed_up", "order.refunded", "customer.deleted", "nps.answered"}
    known = known_events([SIGNUP])
    assert "order.placed" in known and "email.delivered" in known  # the profile's and the providers' own
    assert "signup" not in known


def test_unknown_names_are_counted_exactly_and_known_ones_not(redis_url: str, tmp_path: Path) -> None:
    """Two 'signup', one 'cart.updated', a redelivered 'signup' (same event id): 2 and 1; the events
    a journey listens to are not counted."""
    with running(redis_url, tmp_path, [SIGNUP]) as h:
        h.api.track("c1", "signup", event_id="e1")
        h.api.track("c1", "signup", event_id="e1")  # a retry of the same event
        h.api.track("c2", "signup", event_id="e2")
        h.api.track("c1", "cart.updated", event_id="e3")
        h.api.track("c1", "customer.signed_up", event_id="e4")
        h.api.track("c1", "nps.answered", event_id="e5")
        h.settle()
        # The single-event path counts the same way.
        h.runtime.handle_event("c3", "signup", {}, "e6", None)
        assert h.runtime.store.unknown_events() == {"signup": 3, "cart.updated": 1}


def test_the_report_suggests_the_catalogues_event(redis_client: redis.Redis, tmp_path: Path) -> None:
    (tmp_path / "catalogue.yaml").write_text(
        "events:\n  customer.signed_up: {}\n  cart.abandoned: {}\n  order.delivered: {}\n", encoding="utf-8"
    )
    redis_client.hset(keys.unknown_events(), mapping={"signup": 5, "order.deliverd": 2, "zzz": 1})
    found = unknown_events(Store(redis_client), tmp_path)
    assert found == [
        UnknownEvent("signup", 5, "customer.signed_up"),
        UnknownEvent("order.deliverd", 2, "order.delivered"),
        UnknownEvent("zzz", 1, None),
    ]
    assert str(found[0]) == "'signup': 5 (did you mean 'customer.signed_up'?)"


def test_past_the_cap_new_names_share_one_count(redis_client: redis.Redis) -> None:
    """A producer sending random names cannot grow the hash without bound."""
    store = Store(redis_client)
    redis_client.hset(keys.unknown_events(), mapping={f"n{i}": 1 for i in range(UNKNOWN_NAMES_KEPT)})
    assert store.unknown_names(["n1", "fresh"]) == {"n1": "n1", "fresh": OTHER_NAMES}
