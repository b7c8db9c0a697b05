"""Calendar arithmetic for journeys: customer zones, local times across DST, cron and anniversaries.

Pure functions of their arguments (no clock).  Kept apart from the engine because the scheduler
uses them too, and because DST is where "wait until 09:00" quietly goes wrong: a wall time may
not exist (spring forward) or exist twice (fall back), and offsets such as +05:30, +12:45 or a
30-minute DST shift (Lord Howe) break any arithmetic done in whole hours.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from orchestrator.language.journey import DateTrigger, ScheduleTrigger
from orchestrator.language.profile import Profile

__all__ = [
    "as_date",
    "aware",
    "local_instant",
    "next_date_fire",
    "next_local_time",
    "next_schedule_fire",
    "resolve_zone",
    "schedule_zone",
]


def resolve_zone(name: str | None, fallback: str = "UTC") -> ZoneInfo:
    """The customer's zone, else the fallback, else UTC: a bad zone in a profile never crashes."""
    for candidate in (name, fallback):
        if not candidate:
            continue
        try:
            return ZoneInfo(candidate)
        except (ValueError, KeyError, OSError):
            continue
    return ZoneInfo("UTC")


def aware(moment: datetime) -> datetime:
    """Naive datetimes are taken as UTC: the runtime stores UTC everywhere."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def local_instant(day: date, at: time, zone: ZoneInfo) -> datetime:
    """The UTC instant of wall time ``day at`` in ``zone``.

    Ambiguous (autumn fall-back): the first occurrence.  Nonexistent (spring-forward gap): the
    first valid instant after it, i.e. the moment the clocks jump, so a 02:30 wait on the night
    the clocks skip 02:00-03:00 fires at 03:00, not at 03:30 and not a day late.
    """
    naive = datetime.combine(day, at)
    first = naive.replace(tzinfo=zone, fold=0)
    if first.astimezone(UTC).astimezone(zone).replace(tzinfo=None) == naive:
        return first.astimezone(UTC)
    # In a gap: fold=0 and fold=1 use the offsets on either side; the jump lies between them.
    low = naive.replace(tzinfo=zone, fold=1).astimezone(UTC)
    high = first.astimezone(UTC)
    if low > high:
        low, high = high, low
    before = low.astimezone(zone).utcoffset()
    while high - low > timedelta(seconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(zone).utcoffset() == before:
            low = middle
        else:
            high = middle
    return high.replace(microsecond=0) if high.microsecond else high


def next_local_time(now: datetime, at: time, zone: ZoneInfo, weekdays: list[int] | None = None) -> datetime:
    """The first instant strictly after ``now`` whose wall time in ``zone`` is ``at`` on an allowed weekday."""
    now = aware(now)
    allowed = set(weekdays) if weekdays else None
    today = now.astimezone(zone).date()
    for offset in range(0, 15):
        day = today + timedelta(days=offset)
        if allowed is not None and day.weekday() not in allowed:
            continue
        instant = local_instant(day, at, zone)
        if instant > now:
            return instant
    raise AssertionError("a week always holds an allowed day")  # pragma: no cover


def next_schedule_fire(trigger: ScheduleTrigger, after: datetime, tz: str) -> datetime:
    """The next cron fire strictly after ``after``, reading the cron in zone ``tz`` (returned in UTC).

    The caller resolves ``trigger.timezone`` (``settings`` / ``local`` / a zone) into ``tz``.
    Like classic cron, a schedule with fixed hours fires once on the night clocks fall back (at
    the first of the two identical wall times), so a 02:30 broadcast is not sent twice; an
    hourly-style schedule (``*`` in the hour field) keeps firing through the repeated hour.
    """
    zone = resolve_zone(tz)
    fields = trigger.schedule.split()
    fixed_hours = len(fields) >= 2 and "*" not in fields[1]
    iterator = croniter(trigger.schedule, aware(after).astimezone(zone))
    for _ in range(4):
        fire = iterator.get_next(datetime)
        assert isinstance(fire, datetime)
        fire = aware(fire).astimezone(UTC)
        if not (fixed_hours and _second_occurrence(fire, zone)):
            return fire
    raise AssertionError("a fixed-hour schedule repeats at most once per fall-back")  # pragma: no cover


def schedule_zone(trigger: ScheduleTrigger, profile: Profile | None, settings_timezone: str) -> str:
    """The zone a schedule trigger's cron is read in: ``settings``, ``local`` (the customer's own
    zone, falling back to the settings') or a named zone.  Pass ``profile=None`` for ``local`` to
    get the settings zone (a scheduler that does not fan out per zone)."""
    if trigger.timezone == "settings":
        return settings_timezone
    if trigger.timezone == "local":
        return resolve_zone(profile.timezone if profile else None, settings_timezone).key
    return trigger.timezone


def _second_occurrence(instant: datetime, zone: ZoneInfo) -> bool:
    """Whether ``instant`` is the later of two instants sharing one wall time (fall-back hour)."""
    wall = instant.astimezone(zone).replace(tzinfo=None)
    first = wall.replace(tzinfo=zone, fold=0).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    return first != second and instant == second and first < second


def as_date(value: Any) -> date | None:
    """A date read from a profile value (a date, a datetime, or ISO text of either); None otherwise."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text)
        except ValueError:
            pass
        try:
            return datetime.fromisoformat(text).date()
        except ValueError:
            return None
    return None


def _anniversary(original: date, year: int) -> date:
    """The date in ``year``; a 29 February falls on 28 February in common years."""
    try:
        return original.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


def next_date_fire(trigger: DateTrigger, profile: Profile, after: datetime, settings_timezone: str) -> datetime | None:
    """The next anniversary of the profile's date attribute at ``trigger.at`` local time, after ``after``.

    The date itself (year zero) never fires: a birthday fires from the first birthday on, a
    membership anniversary a year after joining.  Missing or unreadable dates give None.
    """
    # Loyaloop's own fields win a name clash, as in Profile.context(), without building all of it.
    raw = (
        getattr(profile, trigger.date) if trigger.date in Profile.model_fields else profile.attributes.get(trigger.date)
    )
    original = as_date(raw)
    if original is None:
        return None
    zone = resolve_zone(profile.timezone, settings_timezone)
    after = aware(after)
    first_year = max(after.astimezone(zone).year - 1, original.year + 1)
    for year in range(first_year, first_year + 4):
        instant = local_instant(_anniversary(original, year), trigger.at, zone)
        if instant > after:
            return instant
    return None  # pragma: no cover - four consecutive years always hold one ahead
