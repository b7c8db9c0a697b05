"""Quiet hours: daily windows in the customer's own wall-clock time during which a channel stays silent.

A window is judged on the local wall clock (``21:00-08:00`` means "after nine in the evening or
before eight in the morning, as the customer's clock shows it"), because that is what the customer
experiences.  A send that falls inside is deferred to the window's end, never dropped.  Clock
changes are handled on that definition:

* a window end that falls in a DST gap (the clock jumps over it) ends at the jump itself;
* a window end that occurs twice (the clock falls back) ends at the next occurrence after now,
  so a clock that falls back *into* the window makes the customer quiet again, as their clock says;
* offsets such as +05:30 (Kolkata), +12:45 (Chatham) and 30-minute DST shifts (Lord Howe) need
  nothing special, because everything is computed through ``zoneinfo``.

No I/O here: the gate calls these functions before its single Redis round trip.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from functools import lru_cache
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from orchestrator.language.journey import QuietWindow

#: What a journey's ``quiet_hours`` field may hold: per-channel windows, ``False`` (off) or ``None`` (inherit).
QuietOverride = Mapping[str, QuietWindow | None] | Literal[False] | None


@lru_cache(maxsize=4096)
def _zone(name: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return None


def resolve_zone(name: str | None, default: str) -> tuple[tzinfo, bool]:
    """The customer's zone, or the settings default with ``True`` when theirs is missing or unknown.

    The flag travels into the gate's decision so a profile with a bad zone is visible in the stats
    instead of silently getting the shop's clock.  An unusable default falls back to UTC.
    """
    zone = _zone(name) if name else None
    if zone is not None:
        return zone, False
    fallback = _zone(default)
    return (fallback if fallback is not None else UTC), True


def effective_window(
    channel: str,
    defaults: Mapping[str, QuietWindow | None],
    override: QuietOverride,
) -> QuietWindow | None:
    """The window that applies to ``channel``: the journey's override merged over the settings.

    ``override`` is ``False`` to switch quiet hours off for the journey, ``None`` to inherit the
    settings, or a mapping whose channels replace the settings' ones (``None`` for "no window on
    this channel"); channels it does not name keep the settings' window.
    """
    if override is False:
        return None
    if override is not None and channel in override:
        return override[channel]
    return defaults.get(channel)


def in_window(clock: time, window: QuietWindow) -> bool:
    """Whether a local wall-clock time is inside ``[start, end)``; a window may cross midnight."""
    start, end = window.start, window.end
    if start == end:
        return False
    if start < end:
        return start <= clock < end
    return clock >= start or clock < end


def _wall(moment: datetime, zone: tzinfo) -> datetime:
    return moment.astimezone(zone).replace(tzinfo=None)


def _occurrences(day: date, clock: time, zone: tzinfo) -> list[datetime]:
    """The UTC instants at which the wall clock in ``zone`` shows ``clock`` on ``day``.

    Usually one, two when the clock falls back over it, and in a gap the instant of the jump
    (the first moment the clock shows a time at or past ``clock``).
    """
    naive = datetime.combine(day, clock)
    found: list[datetime] = []
    candidates: list[datetime] = []
    for fold in (0, 1):
        instant = naive.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        candidates.append(instant)
        if _wall(instant, zone) == naive and instant not in found:
            found.append(instant)
    if found:
        return sorted(found)
    return [_jump(min(candidates), max(candidates), zone)]


def _jump(before: datetime, after: datetime, zone: tzinfo) -> datetime:
    """The instant between ``before`` and ``after`` where the zone's offset changes (a DST gap).

    Bisection to the second: gaps are rare and at most a few hours wide, so this costs ~14 steps.
    """
    start_offset = before.astimezone(zone).utcoffset()
    low, high = before, after
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == start_offset:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0)


def quiet_until(now: datetime, window: QuietWindow | None, zone: tzinfo) -> datetime | None:
    """``None`` when ``now`` is outside the window, else the UTC instant the window ends.

    The end is the next instant after ``now`` at which the local clock shows the window's end, or
    the jump that skips over it (see the module docstring for DST gaps and repeated hours).  When
    a clock falling back briefly leaves and re-enters the window, the send waits for the end of
    the whole stretch rather than slipping out in the repeated hour.
    """
    if window is None or window.start == window.end:
        return None
    if now.tzinfo is None:
        raise ValueError(f"now must be timezone-aware, got naive {now!r}; pass datetime.now(UTC)")
    local = now.astimezone(zone)
    if not in_window(local.time().replace(tzinfo=None), window):
        return None
    today = local.date()
    for day in (today, today + timedelta(days=1), today + timedelta(days=2)):
        for instant in _occurrences(day, window.end, zone):
            # A jump can land inside a window that covers almost the whole day: not an end then.
            if instant > now and not in_window(_wall(instant, zone).time(), window):
                return instant
    raise AssertionError("unreachable: a window end occurs within two days")  # pragma: no cover
