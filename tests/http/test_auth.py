"""API keys: parsing LOYALOOP_API_KEYS and constant-time bearer authentication."""

from __future__ import annotations

import pytest

from orchestrator.errors import ConfigurationError
from orchestrator.http.auth import KeyRing, key_id_for, parse_api_keys

SECRET = "s3cret-value-long-enough"


def test_keys_with_and_without_ids() -> None:
    """``ID:SECRET`` keeps its id; a bare secret gets a short hash id that does not reveal it."""
    keys = parse_api_keys(f"shop:{SECRET}, {SECRET}-2 ,")
    assert [k.id for k in keys] == ["shop", key_id_for(f"{SECRET}-2")]
    assert SECRET not in keys[1].id
    assert SECRET not in repr(keys)


def test_short_secrets_and_duplicate_ids_are_refused() -> None:
    """A guessable key or an ambiguous id fails at start-up with a hint."""
    with pytest.raises(ConfigurationError, match="shorter than 16"):
        parse_api_keys("shop:short")
    with pytest.raises(ConfigurationError, match="twice"):
        parse_api_keys(f"shop:{SECRET},shop:{SECRET}-x")


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"Bearer {SECRET}", "shop"),
        (f"bearer {SECRET}", "shop"),
        (f"Bearer {SECRET}x", None),
        (f"Bearer {SECRET[:-1]}", None),
        (f"Token {SECRET}", None),
        ("Bearer ", None),
        ("", None),
        (None, None),
        ("Bearer cl\u00e9-non-ascii-0123456", None),
    ],
)
def test_authenticate(header: str | None, expected: str | None) -> None:
    """Only the exact secret under the Bearer scheme authenticates; the answer is the key id."""
    assert KeyRing(parse_api_keys(f"shop:{SECRET}")).authenticate(header) == expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (f"Bearer shop:{SECRET}", True),  # as LOYALOOP_API_KEYS writes it
        (f"Bearer shop:{SECRET}x", False),  # a wrong secret reveals nothing about the id
        (f"Bearer other:{SECRET}", False),
        (f"Bearer {SECRET}", False),
        ("Bearer shop:", False),
        (None, False),
    ],
)
def test_the_key_id_in_the_bearer_value_is_recognised(header: str | None, expected: bool) -> None:
    assert KeyRing(parse_api_keys(f"shop:{SECRET}")).id_in_bearer(header) is expected
