"""Calendar arithmetic: local wall times across DST and odd offsets, cron fires, anniversaries."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.engine.localtime import next_date_fire, next_local_time, next_schedule_fire, schedule_zone
from orchestrator.language.journey import DateTrigger, ScheduleTrigger
from orchestrator.language.profile import Profile

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)  # a Monday


@pytest.mark.parametrize(
    ("now", "at", "zone", "expected"),
    [
        # Amsterdam spring forward (29 Mar 2026, 02:00 CET → 03:00 CEST): 02:30 does not exist.
        (datetime(2026, 3, 28, 12, 0, tzinfo=UTC), time(2, 30), "Europe/Amsterdam", datetime(2026, 3, 29, 1, 0)),
        # The day across the change is 23 h long: 09:00 CEST the next morning.
        (datetime(2026, 3, 28, 10, 0, tzinfo=UTC), time(9, 0), "Europe/Amsterdam", datetime(2026, 3, 29, 7, 0)),
        # Amsterdam fall back (25 Oct 2026): 02:30 happens twice, the first (CEST) wins.
        (datetime(2026, 10, 24, 12, 0, tzinfo=UTC), time(2, 30), "Europe/Amsterdam", datetime(2026, 10, 25, 0, 30)),
        # New York spring forward (8 Mar 2026): 02:30 → 03:00 EDT.
        (datetime(2026, 3, 7, 12, 0, tzinfo=UTC), time(2, 30), "America/New_York", datetime(2026, 3, 8, 7, 0)),
        # New York fall back (1 Nov 2026): 01:30 EDT first.
        (datetime(2026, 10, 31, 12, 0, tzinfo=UTC), time(1, 30), "America/New_York", datetime(2026, 11, 1, 5, 30)),
        # Kolkata, +05:30, exactly at 09:00 local: strictly after, so tomorrow.
        (datetime(2026, 6, 1, 3, 30, tzinfo=UTC), time(9, 0), "Asia/Kolkata", datetime(2026, 6, 2, 3, 30)),
        # Chatham +12:45 in winter.
        (datetime(2026, 6, 30, 12, 0, tzinfo=UTC), time(9, 0), "Pacific/Chatham", datetime(2026, 6, 30, 20, 15)),
        # Chatham spring forward (27 Sep 2026, 02:45 → 03:45): 03:00 does not exist → 03:45 +13:45.
        (datetime(2026, 9, 26, 6, 0, tzinfo=UTC), time(3, 0), "Pacific/Chatham", datetime(2026, 9, 26, 14, 0)),
        # Lord Howe half-hour DST (4 Oct 2026, 02:00 → 02:30): 02:15 → 02:30 +11.
        (datetime(2026, 10, 3, 6, 0, tzinfo=UTC), time(2, 15), "Australia/Lord_Howe", datetime(2026, 10, 3, 15, 30)),
        # Lord Howe fall back (5 Apr 2026, 02:00 → 01:30): 01:45 twice, first at +11.
        (datetime(2026, 4, 4, 6, 0, tzinfo=UTC), time(1, 45), "Australia/Lord_Howe", datetime(2026, 4, 4, 14, 45)),
    ],
)
def test_next_local_time_across_dst_and_odd_offsets(now: datetime, at: time, zone: str, expected: datetime) -> None:
    """Gaps resolve to the moment clocks jump; overlaps to the first occurrence; odd offsets exact."""
    assert next_local_time(now, at, ZoneInfo(zone)) == expected.replace(tzinfo=UTC)


def test_next_schedule_fire_in_a_zone_across_dst() -> None:
    """Cron read in Amsterdam: Monday 09:00 is 08:00 UTC in winter, 07:00 UTC after the change."""
    trigger = ScheduleTrigger(schedule="0 9 * * 1")
    monday_nine = datetime(2026, 3, 23, 8, 0, tzinfo=UTC)
    assert next_schedule_fire(trigger, monday_nine - timedelta(minutes=1), "Europe/Amsterdam") == monday_nine
    assert next_schedule_fire(trigger, monday_nine, "Europe/Amsterdam") == datetime(2026, 3, 30, 7, 0, tzinfo=UTC)
    assert next_schedule_fire(trigger, monday_nine, "UTC") == datetime(2026, 3, 23, 9, 0, tzinfo=UTC)


def test_fixed_hour_schedule_fires_once_through_dst_changes() -> None:
    """A daily 02:30 broadcast: at the jump in spring, once (not twice) when clocks fall back."""
    trigger = ScheduleTrigger(schedule="30 2 * * *")
    fires = [datetime(2026, 3, 28, 12, 0, tzinfo=UTC)]
    for _ in range(2):
        fires.append(next_schedule_fire(trigger, fires[-1], "Europe/Amsterdam"))
    assert fires[1:] == [datetime(2026, 3, 29, 1, 0, tzinfo=UTC), datetime(2026, 3, 30, 0, 30, tzinfo=UTC)]
    fires = [datetime(2026, 10, 24, 12, 0, tzinfo=UTC)]
    for _ in range(2):
        fires.append(next_schedule_fire(trigger, fires[-1], "Europe/Amsterdam"))
    assert fires[1:] == [datetime(2026, 10, 25, 0, 30, tzinfo=UTC), datetime(2026, 10, 26, 1, 30, tzinfo=UTC)]


def test_interval_schedule_keeps_firing_through_the_repeated_hour() -> None:
    """``*/30`` means every half hour of real time, also in the hour that happens twice."""
    trigger = ScheduleTrigger(schedule="*/30 * * * *")
    fires = [datetime(2026, 10, 25, 0, 10, tzinfo=UTC)]
    for _ in range(4):
        fires.append(next_schedule_fire(trigger, fires[-1], "Europe/Amsterdam"))
    assert [f.strftime("%H:%M") for f in fires[1:]] == ["00:30", "01:00", "01:30", "02:00"]


def test_next_date_fire_birthday_and_leap_day() -> None:
    """Next anniversary at the trigger's local time; 29 Feb falls on 28 Feb in common years."""
    trigger = DateTrigger(date="birthday", at=time(9, 0))
    leapling = Profile(id="c1", timezone="Europe/Amsterdam", attributes={"birthday": "2000-02-29"})
    assert next_date_fire(trigger, leapling, datetime(2027, 1, 1, tzinfo=UTC), "UTC") == datetime(
        2027, 2, 28, 8, 0, tzinfo=UTC
    )
    assert next_date_fire(trigger, leapling, datetime(2027, 2, 28, 8, 0, tzinfo=UTC), "UTC") == datetime(
        2028, 2, 29, 8, 0, tzinfo=UTC
    )
    plain = Profile(id="c1", attributes={"birthday": date(1990, 7, 14)})
    assert next_date_fire(trigger, plain, datetime(2026, 7, 14, 10, 0, tzinfo=UTC), "Asia/Kolkata") == datetime(
        2027, 7, 14, 3, 30, tzinfo=UTC
    )


def test_next_date_fire_skips_year_zero_and_refuses_bad_dates() -> None:
    """A membership started today fires a year later; missing or malformed dates give None."""
    trigger = DateTrigger(date="member_since", at=time(9, 0))
    member = Profile(id="c1", attributes={"member_since": "2026-03-02"})
    assert next_date_fire(trigger, member, NOW - timedelta(hours=5), "UTC") == datetime(2027, 3, 2, 9, 0, tzinfo=UTC)
    for value in (None, "", "2026-13-01", "yesterday", 12345):
        assert next_date_fire(trigger, Profile(id="c1", attributes={"member_since": value}), NOW, "UTC") is None
    assert next_date_fire(trigger, Profile(id="c1"), NOW, "UTC") is None


ZONES = ["Europe/Amsterdam", "America/New_York", "Asia/Kolkata", "Pacific/Chatham", "Australia/Lord_Howe"]


@settings(max_examples=300, deadline=None)
@given(
    now=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)),
    at=st.times().map(lambda t: t.replace(second=0, microsecond=0)),
    zone_name=st.sampled_from(ZONES),
    weekdays=st.none() | st.lists(st.integers(min_value=0, max_value=6), min_size=1, max_size=7, unique=True),
)
def test_next_local_time_is_the_first_matching_instant(
    now: datetime, at: time, zone_name: str, weekdays: list[int] | None
) -> None:
    """Strictly after now, on an allowed day, at the asked wall time, or at the jump when that time
    does not exist that day; and no earlier instant after now would have done."""
    zone = ZoneInfo(zone_name)
    due = next_local_time(now, at, zone, weekdays)
    assert due > now
    local = due.astimezone(zone)
    if weekdays is not None:
        assert local.weekday() in weekdays
    if local.time() != at:
        # A spring-forward gap: the wall time was skipped, ``due`` is the jump itself.
        just_before = (due - timedelta(seconds=1)).astimezone(zone)
        assert just_before.utcoffset() != local.utcoffset()
        assert just_before.time() < at < local.time()
    limit = timedelta(days=7 if weekdays else 1, hours=2)
    assert due - now <= limit
    # The same wall time one day earlier (if allowed) is not after now: ``due`` is the first.
    earlier_day = local.date() - timedelta(days=1)
    if weekdays is None or earlier_day.weekday() in weekdays:
        earlier = datetime.combine(earlier_day, at).replace(tzinfo=zone)
        assert earlier.astimezone(UTC) <= now or earlier.astimezone(UTC) >= due


@settings(max_examples=100, deadline=None)
@given(
    after=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC)),
    schedule=st.sampled_from(["0 9 * * *", "30 2 * * *", "*/15 * * * *", "0 9 * * 1", "45 2 * * 0"]),
    zone_name=st.sampled_from(ZONES),
)
def test_next_schedule_fire_is_always_strictly_later(after: datetime, schedule: str, zone_name: str) -> None:
    """A scheduler asking for the next fire after the last one never gets the same one back."""
    fire_at = next_schedule_fire(ScheduleTrigger(schedule=schedule), after, zone_name)
    assert fire_at > after
    assert fire_at - after <= timedelta(days=8)


def test_schedule_zone_resolves_settings_local_and_named_zones() -> None:
    """``settings`` → the settings zone; ``local`` → the customer's (or settings'); else the name."""
    local = ScheduleTrigger(schedule="0 10 * * 2", timezone="local")
    assert schedule_zone(ScheduleTrigger(schedule="0 10 * * 2"), None, "Europe/Amsterdam") == "Europe/Amsterdam"
    assert schedule_zone(local, Profile(id="c1", timezone="Asia/Kolkata"), "Europe/Amsterdam") == "Asia/Kolkata"
    assert schedule_zone(local, Profile(id="c1", timezone="nowhere"), "Europe/Amsterdam") == "Europe/Amsterdam"
    assert schedule_zone(local, None, "Europe/Amsterdam") == "Europe/Amsterdam"
    named = ScheduleTrigger(schedule="0 10 * * 2", timezone="America/New_York")
    assert schedule_zone(named, Profile(id="c1", timezone="Asia/Kolkata"), "UTC") == "America/New_York"


def test_next_date_fire_reads_loyaloop_fields_too() -> None:
    """A date trigger on ``created_at`` (a membership anniversary) uses the profile's own field."""
    trigger = DateTrigger(date="created_at", at=time(9, 0))
    member = Profile(
        id="c1", created_at=datetime(2024, 6, 1, 15, 0, tzinfo=UTC), attributes={"created_at": "1999-01-01"}
    )
    assert next_date_fire(trigger, member, NOW, "UTC") == datetime(2026, 6, 1, 9, 0, tzinfo=UTC)
