"""Shared adapter helpers: Retry-After parsing, status mapping and redaction."""

from __future__ import annotations

from datetime import UTC, datetime
from email.utils import format_datetime

import pytest

from channels.http import AUTH_RETRY_AFTER, error_for_status, redact, retry_after
from orchestrator.errors import PermanentError, TransientError

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "30"}, 30.0),
        ({"retry-after": "2.5"}, 2.5),
        ({"Retry-After": format_datetime(datetime.fromtimestamp(NOW + 90, UTC), usegmt=True)}, 90.0),
        ({"X-RateLimit-Reset": str(int(NOW + 45))}, 45.0),
        ({"X-RateLimit-Reset": "20"}, 20.0),
        ({"Retry-After": "-5"}, 0.0),
        ({"Retry-After": "soon"}, None),
        ({}, None),
        (None, None),
    ],
)
def test_retry_after_reads_dates_and_resets(headers: dict[str, str] | None, expected: float | None) -> None:
    """Retry-After in seconds or as an HTTP date, else X-RateLimit-Reset as an epoch time or a delay."""
    assert retry_after(headers, now=NOW) == expected


def test_status_mapping() -> None:
    """429 / 5xx / 408 are transient, 401/403 transient with a long wait, other 4xx permanent."""
    throttled = error_for_status("P", 429, {"Retry-After": "4"})
    assert isinstance(throttled, TransientError) and throttled.retry_after == 4
    assert isinstance(error_for_status("P", 503, {}), TransientError)
    assert isinstance(error_for_status("P", 408, {}), TransientError)
    auth = error_for_status("P", 401, {})
    assert isinstance(auth, TransientError) and auth.retry_after == AUTH_RETRY_AFTER
    bad = error_for_status("P", 422, {}, "x", code="c1")
    assert isinstance(bad, PermanentError) and bad.code == "c1"


def test_redact_removes_addresses_and_numbers() -> None:
    """Provider error texts that quote an address or a number are cleaned before they are stored or logged."""
    text = redact("To jane.doe+x@example.co.uk and +31 6 1234 5678 failed (code 21211)")
    assert "jane" not in text and "1234" not in text and "21211" in text
