"""The body parsers never fail with anything but InputError, whatever JSON they are given."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import InputError
from orchestrator.http.validation import parse_batch, parse_identify, parse_json, parse_track

NOW = datetime(2026, 6, 1, tzinfo=UTC)
SKEW = timedelta(hours=1)

scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
)
field_names = st.sampled_from(["customer_id", "event", "properties", "event_id", "timestamp", "attributes", "type"])
near_miss = st.dictionaries(
    field_names,
    json_values | st.sampled_from(["c-1", "order.placed", "2026-01-01T00:00:00Z", "0001-01-01T00:00:00+01:00"]),
    max_size=6,
)


def parses_or_refuses(call: Any) -> None:
    try:
        call()
    except InputError as exc:
        assert str(exc)
        assert exc.field is None or isinstance(exc.field, str)


@settings(max_examples=300, deadline=None)
@given(document=json_values | near_miss)
def test_track_and_identify_refuse_cleanly(document: Any) -> None:
    """Any JSON value either parses or is refused with an InputError (never TypeError, KeyError, OverflowError)."""
    parses_or_refuses(lambda: parse_track(document, NOW, SKEW))
    parses_or_refuses(lambda: parse_identify(document))


@settings(max_examples=150, deadline=None)
@given(items=st.lists(near_miss | json_values, max_size=5))
def test_batches_refuse_cleanly(items: list[Any]) -> None:
    """A batch of anything either parses whole or is refused with an InputError naming a batch[...] field."""
    try:
        parse_batch({"batch": items}, NOW, SKEW, 500)
    except InputError as exc:
        assert exc.field is None or exc.field.startswith("batch")


@settings(max_examples=150, deadline=None)
@given(raw=st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_raw_bytes_refuse_cleanly(raw: bytes) -> None:
    """Arbitrary bytes are JSON or an InputError."""
    parses_or_refuses(lambda: parse_json(raw))


def test_a_valid_document_round_trips() -> None:
    """The parsed call holds exactly what was sent."""
    body = {"customer_id": "c-1", "event": "order.placed", "properties": {"n": 1}, "event_id": "e-1"}
    call = parse_track(json.loads(json.dumps(body)), NOW, SKEW)
    assert (call.customer_id, call.event, call.properties, call.event_id) == ("c-1", "order.placed", {"n": 1}, "e-1")


def test_an_oversized_integer_is_refused_without_pythons_hint() -> None:
    """A 5,000-digit integer made Python's 'use sys.set_int_max_str_digits()' hint the 400's text;
    the message is now our own."""
    try:
        parse_json(b'{"customer_id": "c-1", "event": "a.b", "properties": {"n": ' + b"7" * 5_000 + b"}}")
    except InputError as exc:
        message = str(exc)
    else:
        raise AssertionError("a 5,000-digit integer was accepted")
    assert "set_int_max_str_digits" not in message and "4300" not in message
    assert "64 bits" in message


@pytest.mark.parametrize("body", [{"customer_id": "c1"}, {"customer_id": "c1", "attributes": None}])
def test_identify_requires_attributes_and_refuses_null(body: dict[str, object]) -> None:
    """docs/http.md says `attributes` is required; `null` used to pass as "no attributes"."""
    with pytest.raises(InputError, match="'attributes' is required"):
        parse_identify(body)
    assert parse_identify({"customer_id": "c1", "attributes": {}}).attributes == {}
