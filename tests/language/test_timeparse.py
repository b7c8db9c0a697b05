"""Durations, local times, weekdays and zones are parsed strictly: a guess would move every message."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from orchestrator.language.timeparse import (
    format_duration,
    parse_duration,
    parse_local_time,
    parse_timezone,
    parse_weekday,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("90m", timedelta(minutes=90)),
        ("12h", timedelta(hours=12)),
        ("2d", timedelta(days=2)),
        ("1w", timedelta(weeks=1)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("30s", timedelta(seconds=30)),
    ],
)
def test_durations_marketers_write_are_understood(text: str, expected: timedelta) -> None:
    """Number and unit with no space, units combinable largest first."""
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["3 days", "2 d", "d2", "12h1d", "1.5d", "", "0d", "-2d", "2D", "2days", "P2D"])
def test_anything_else_is_refused_with_the_fix(text: str) -> None:
    """Spaces, words, wrong order, fractions, zero and ISO forms are errors that say how to write it."""
    with pytest.raises(ValueError, match=repr(text).replace("(", r"\(").replace(")", r"\)")) as caught:
        parse_duration(text)
    assert "duration" in str(caught.value)


def test_non_text_duration_is_refused() -> None:
    """A YAML number (``wait: 3``) has no unit and is refused."""
    with pytest.raises(ValueError, match="expected a duration such as '2d', got 3"):
        parse_duration(3)  # type: ignore[arg-type]


@given(
    st.timedeltas(min_value=timedelta(seconds=1), max_value=timedelta(days=3650))
    .map(lambda d: timedelta(seconds=int(d.total_seconds())))
    .filter(lambda d: d.total_seconds() >= 1)
)
def test_format_duration_round_trips(value: timedelta) -> None:
    """Whatever the schema or the demo prints parses back to the same duration."""
    assert parse_duration(format_duration(value)) == value


@pytest.mark.parametrize(
    ("text", "expected"), [("09:00", time(9)), ("21:30", time(21, 30)), ("00:00", time(0)), ("23:59", time(23, 59))]
)
def test_local_times(text: str, expected: time) -> None:
    """24-hour HH:MM."""
    assert parse_local_time(text) == expected


@pytest.mark.parametrize("text", ["25:00", "24:00", "9:00", "09:60", "9am", "09:00:00", "0900", ""])
def test_bad_local_times_are_refused(text: str) -> None:
    """No 12-hour clock, no seconds, no 24:00, always two digits."""
    with pytest.raises(ValueError, match="is not a local time"):
        parse_local_time(text)


def test_weekdays_short_and_long() -> None:
    """``mon`` and ``Monday`` are both Monday (0); a typo is refused."""
    assert parse_weekday("mon") == 0
    assert parse_weekday("Sunday") == 6
    with pytest.raises(ValueError, match="'funday' is not a weekday"):
        parse_weekday("funday")
    with pytest.raises(ValueError, match="is not a weekday"):
        parse_weekday("mond")


def test_timezones_are_iana_names() -> None:
    """``Europe/Amsterdam`` and ``UTC`` are zones; ``CET`` and made-up names are not."""
    assert str(parse_timezone("Europe/Amsterdam")) == "Europe/Amsterdam"
    assert str(parse_timezone("UTC")) == "UTC"
    with pytest.raises(ValueError, match="'CET' is not an IANA time zone"):
        parse_timezone("CET")
    with pytest.raises(ValueError, match="not a known IANA time zone"):
        parse_timezone("Europe/Atlantis")
