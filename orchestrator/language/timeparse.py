"""Strict parsers for the time words marketers write: durations, local times, weekdays, zones.

Strict on purpose: ``3 days`` or ``25:00`` must be refused at validation, not guessed at run time,
because a guessed wait silently moves every message of a journey.
"""

from __future__ import annotations

import re
from datetime import time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

_DURATION = re.compile(r"^(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_LOCAL_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

DURATION_HINT = "write a number and a unit with no space: 90m, 12h, 2d, 1w (units: w d h m s)"
TIME_HINT = "write a 24-hour local time as HH:MM, e.g. 09:00 or 21:30"


def parse_duration(text: str) -> timedelta:
    """``2d`` → 2 days; units may combine largest first (``1d12h``); zero is refused."""
    if not isinstance(text, str):
        raise ValueError(f"expected a duration such as '2d', got {text!r}; {DURATION_HINT}")
    match = _DURATION.match(text.strip()) if text.strip() else None
    if not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration; {DURATION_HINT}")
    weeks, days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    value = timedelta(weeks=weeks, days=days, hours=hours, minutes=minutes, seconds=seconds)
    if value <= timedelta(0):
        raise ValueError(f"{text!r} is zero; a duration must be positive")
    return value


def format_duration(value: timedelta) -> str:
    """The inverse of :func:`parse_duration`, used when writing the schema and the demo tables."""
    seconds = int(value.total_seconds())
    parts = []
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def parse_local_time(text: str) -> time:
    """``09:00`` → 09:00; no seconds, no 12-hour clock, no ``24:00``."""
    if not isinstance(text, str):
        raise ValueError(f"expected a local time such as '09:00', got {text!r}; {TIME_HINT}")
    match = _LOCAL_TIME.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a local time; {TIME_HINT}")
    return time(int(match.group(1)), int(match.group(2)))


def parse_weekday(text: str) -> int:
    """``mon`` → 0 … ``sun`` → 6 (Python's ``date.weekday()`` numbering)."""
    key = str(text).strip().lower()[:3]
    if str(text).strip().lower() not in {key, *_FULL_NAMES.get(key, ())} or key not in WEEKDAYS:
        raise ValueError(f"{text!r} is not a weekday; write one of {', '.join(WEEKDAYS)}")
    return WEEKDAYS.index(key)


_FULL_NAMES = {
    "mon": ("monday",),
    "tue": ("tuesday",),
    "wed": ("wednesday",),
    "thu": ("thursday",),
    "fri": ("friday",),
    "sat": ("saturday",),
    "sun": ("sunday",),
}


def parse_timezone(name: str) -> ZoneInfo:
    """An IANA zone such as ``Europe/Amsterdam``; abbreviations like ``CET`` are ambiguous and refused."""
    if not isinstance(name, str) or not name or ("/" not in name and name != "UTC"):
        raise ValueError(f"{name!r} is not an IANA time zone; write e.g. 'Europe/Amsterdam' or 'UTC'")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"{name!r} is not a known IANA time zone; write e.g. 'Europe/Amsterdam'") from exc


def known_timezones() -> set[str]:
    """The zone names this machine's IANA database has (for suggestions in error hints)."""
    return available_timezones()
