"""The catalogue of fields journeys may rely on: its shorthand, examples and located mistakes."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import ValidationFailed
from orchestrator.language.catalogue import builtin_profile_fields, load_catalogue

ROOT = Path(__file__).resolve().parents[2]


def test_the_shipped_catalogue_lists_the_fields_the_journeys_use() -> None:
    catalogue = load_catalogue(ROOT / "journeys" / "catalogue.yaml")
    assert {"first_name", "birthday", "tier", "member", "nps_score", "referrer_id", "points", "app_opened_at"} <= set(
        catalogue.profile
    )
    assert catalogue.event_fields("order.placed") == {"order_id", "total", "currency", "items"}
    assert catalogue.event_fields("tier.changed") == {"tier", "previous_tier"}
    assert catalogue.event_fields("referral.converted") >= {"referrer_id", "friend_id"}  # type: ignore[operator]
    assert catalogue.event_fields("nps.answered") >= {"score"}  # type: ignore[operator]
    assert catalogue.event_fields("profile.completed") == set()
    assert catalogue.event_fields("no.such") is None
    assert {"email.clicked", "email.opened", "email.delivered", "app.opened", "customer.signed_up"} <= set(
        catalogue.events
    )


def test_profile_fields_include_loyaloops_own() -> None:
    """orders_count and friends come from Profile.context() and need no catalogue entry."""
    assert {"id", "orders_count", "total_spent", "last_order_at", "products", "consent", "locale"} <= (
        builtin_profile_fields()
    )


def test_shorthand_and_examples(tmp_path: Path) -> None:
    """``name: type`` is short for ``name: {type: …}``; list items get example rows for previews."""
    path = tmp_path / "catalogue.yaml"
    path.write_text(
        "profile:\n  first_name: {type: string, example: Anna}\n  points: integer\n"
        "events:\n  order.placed:\n    properties:\n      total: {type: number, example: 9.5}\n"
        "      items: {type: list, items: {sku: {type: string, example: S1}, qty: integer}}\n"
    )
    catalogue = load_catalogue(path)
    assert catalogue.profile["points"].type == "integer"
    assert catalogue.example_attributes() == {"first_name": "Anna"}
    assert catalogue.example_event("order.placed") == {"total": 9.5, "items": [{"sku": "S1", "qty": 0}]}


def test_mistakes_in_the_catalogue_are_located(tmp_path: Path) -> None:
    path = tmp_path / "catalogue.yaml"
    path.write_text("profile:\n  first_name: strng\nevents:\n  Order Placed: {}\n")
    with pytest.raises(ValidationFailed) as caught:
        load_catalogue(path)
    assert [(p.line, p.column, p.message) for p in caught.value.problems] == [
        (
            2,
            15,
            "first_name: input should be 'string', 'number', 'integer', 'boolean', 'date', 'datetime', "
            "'list', 'object' or 'any', got 'strng'",
        ),
        (4, 3, "Order Placed: 'Order Placed' is not valid here"),
    ]
    assert "write a dotted event name" in caught.value.problems[1].hint
