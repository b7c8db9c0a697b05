"""Quiet hours in the customer's own wall-clock time: midnight crossings, DST gaps and repeated
hours, odd offsets, missing or unknown zones, journey overrides, and the gate deferring (never
dropping) a send that falls inside."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import redis
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.gate.policy import Gate, SendRequest
from orchestrator.gate.quiet_hours import effective_window, in_window, quiet_until, resolve_zone
from orchestrator.language.journey import QuietWindow
from orchestrator.settings import Settings

NIGHT = QuietWindow.model_validate("21:00-08:00")
ZONES = ["Europe/Amsterdam", "America/New_York", "Asia/Kolkata", "Pacific/Chatham", "Australia/Lord_Howe"]


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def local(zone: str, *args: int, fold: int = 0) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(zone), fold=fold).astimezone(UTC)


# --- pure functions -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("clock", "inside"),
    [
        (time(20, 59), False),
        (time(21, 0), True),
        (time(23, 59), True),
        (time(0, 0), True),
        (time(7, 59), True),
        (time(8, 0), False),
        (time(12, 0), False),
    ],
)
def test_window_crossing_midnight(clock: time, inside: bool) -> None:
    """21:00-08:00 covers the late evening and the early morning; its end is outside."""
    assert in_window(clock, NIGHT) is inside


def test_daytime_window_and_empty_window() -> None:
    """A window within one day is [start, end); start == end means no window at all."""
    lunch = QuietWindow.model_validate("12:00-13:30")
    assert in_window(time(12, 0), lunch) and in_window(time(13, 29), lunch)
    assert not in_window(time(13, 30), lunch) and not in_window(time(11, 59), lunch)
    assert not in_window(time(9, 0), QuietWindow.model_validate("09:00-09:00"))


def test_late_evening_send_waits_for_next_morning_in_amsterdam() -> None:
    """23:30 in Amsterdam in winter (UTC+1) waits until 08:00 local = 07:00 UTC the next day."""
    zone = ZoneInfo("Europe/Amsterdam")
    assert quiet_until(local("Europe/Amsterdam", 2026, 1, 10, 23, 30), NIGHT, zone) == utc(2026, 1, 11, 7, 0)
    assert quiet_until(local("Europe/Amsterdam", 2026, 1, 10, 6, 0), NIGHT, zone) == utc(2026, 1, 10, 7, 0)
    assert quiet_until(local("Europe/Amsterdam", 2026, 1, 10, 12, 0), NIGHT, zone) is None


def test_new_york_spring_forward_night_is_an_hour_shorter() -> None:
    """The night of 7-8 March 2026 loses an hour: 23:00 EST to 08:00 EDT is 8 hours, ending 12:00 UTC."""
    now = local("America/New_York", 2026, 3, 7, 23, 0)
    end = quiet_until(now, NIGHT, ZoneInfo("America/New_York"))
    assert end == utc(2026, 3, 8, 12, 0)
    assert end - now == timedelta(hours=8)


def test_window_end_inside_a_dst_gap_ends_at_the_jump() -> None:
    """Amsterdam skips 02:00-03:00 on 29 March 2026; a window ending 02:30 ends when the clock jumps
    (01:00 UTC), the first moment the clock shows a time past 02:30."""
    window = QuietWindow.model_validate("22:00-02:30")
    now = local("Europe/Amsterdam", 2026, 3, 29, 1, 30)
    assert quiet_until(now, window, ZoneInfo("Europe/Amsterdam")) == utc(2026, 3, 29, 1, 0)


def test_fall_back_repeats_the_end_of_the_window() -> None:
    """Amsterdam repeats 02:00-03:00 on 25 October 2026.  Inside the first 02:10 the window ends at
    the first 02:30; the clock then falls back into the window and the second 02:10 waits for the
    second 02:30."""
    zone = ZoneInfo("Europe/Amsterdam")
    window = QuietWindow.model_validate("21:00-02:30")
    first = local("Europe/Amsterdam", 2026, 10, 25, 2, 10, fold=0)
    second = local("Europe/Amsterdam", 2026, 10, 25, 2, 10, fold=1)
    assert second - first == timedelta(hours=1)
    assert quiet_until(first, window, zone) == utc(2026, 10, 25, 0, 30)
    assert quiet_until(local("Europe/Amsterdam", 2026, 10, 25, 2, 40, fold=0), window, zone) is None
    assert quiet_until(second, window, zone) == utc(2026, 10, 25, 1, 30)


def test_kolkata_half_hour_offset() -> None:
    """21:30 IST (UTC+5:30) waits until 08:00 IST = 02:30 UTC."""
    now = utc(2026, 5, 1, 16, 0)
    assert quiet_until(now, NIGHT, ZoneInfo("Asia/Kolkata")) == utc(2026, 5, 2, 2, 30)


def test_chatham_quarter_hour_offset_across_dst_end() -> None:
    """Chatham leaves +13:45 for +12:45 on 5 April 2026: from 22:00 the night lasts 11 hours."""
    now = local("Pacific/Chatham", 2026, 4, 4, 22, 0)
    end = quiet_until(now, NIGHT, ZoneInfo("Pacific/Chatham"))
    assert now == utc(2026, 4, 4, 8, 15)
    assert end == utc(2026, 4, 4, 19, 15)
    assert end - now == timedelta(hours=11)


def test_lord_howe_half_hour_dst_shift() -> None:
    """Lord Howe moves by 30 minutes (+11 to +10:30 on 5 April 2026): 10.5 clock hours last 11 real ones."""
    now = local("Australia/Lord_Howe", 2026, 4, 4, 21, 30)
    end = quiet_until(now, NIGHT, ZoneInfo("Australia/Lord_Howe"))
    assert end == local("Australia/Lord_Howe", 2026, 4, 5, 8, 0)
    assert end - now == timedelta(hours=11)


def test_missing_or_unknown_zone_falls_back_and_says_so() -> None:
    """No zone, a made-up zone or an abbreviation uses the settings' default and flags it."""
    assert resolve_zone("Asia/Kolkata", "Europe/Amsterdam") == (ZoneInfo("Asia/Kolkata"), False)
    for bad in (None, "", "Mars/Olympus_Mons", "../../etc/passwd"):
        zone, fallback = resolve_zone(bad, "Europe/Amsterdam")
        assert zone == ZoneInfo("Europe/Amsterdam") and fallback is True
    assert resolve_zone(None, "Nowhere/Else")[0] == UTC


def test_journey_override_merges_over_settings() -> None:
    """A journey's mapping replaces the named channels, inherits the rest; False turns it all off."""
    defaults = {"sms": NIGHT, "push": NIGHT}
    late = QuietWindow.model_validate("23:00-07:00")
    assert effective_window("sms", defaults, None) == NIGHT
    assert effective_window("sms", defaults, {"sms": late}) == late
    assert effective_window("push", defaults, {"sms": late}) == NIGHT
    assert effective_window("push", defaults, {"push": None}) is None
    assert effective_window("email", defaults, None) is None
    assert effective_window("sms", defaults, False) is None


@settings(max_examples=300, deadline=None)
@given(
    zone_name=st.sampled_from(ZONES),
    moment=st.datetimes(min_value=datetime(2025, 1, 1), max_value=datetime(2027, 12, 31)),
    start=st.integers(min_value=0, max_value=95),
    end=st.integers(min_value=0, max_value=95),
)
def test_deferral_lands_outside_the_window_and_soon(zone_name: str, moment: datetime, start: int, end: int) -> None:
    """Whatever the zone, instant and window: a quiet send is deferred to a later instant whose local
    time is outside the window, within a day and a bit; a send outside the window is not held."""
    zone = ZoneInfo(zone_name)
    window = QuietWindow(start=time(start // 4, start % 4 * 15), end=time(end // 4, end % 4 * 15))
    now = moment.replace(tzinfo=UTC)
    inside = in_window(now.astimezone(zone).time(), window)
    until = quiet_until(now, window, zone)
    if not inside:
        assert until is None
        return
    assert until is not None
    assert until > now
    assert not in_window(until.astimezone(zone).time(), window)
    assert until - now <= timedelta(hours=26)


# --- the gate -----------------------------------------------------------------------------------
def sms(
    key: str, *, zone: str | None = "Europe/Amsterdam", category: str = "marketing", **extra: object
) -> SendRequest:
    return SendRequest(
        customer_id="ann",
        channel="sms",
        category=category,  # type: ignore[arg-type]
        journey_id="j",
        journey_tags=(),
        priority=50,
        idempotency_key=key,
        address="+31612345678",
        consent={"sms": True},
        timezone=zone,
        **extra,  # type: ignore[arg-type]
    )


def test_gate_defers_a_quiet_send_to_the_window_end(redis_client: redis.Redis) -> None:
    """A marketing SMS at 23:00 Amsterdam is ``quiet`` until 08:00 local, nothing is recorded, and
    defer_until returns that moment even when it is beyond ``defer_max`` (quiet never drops)."""
    gate = Gate(redis_client, Settings(quiet_hours={"sms": NIGHT}))
    now = local("Europe/Amsterdam", 2026, 1, 10, 23, 0)
    decision = gate.check(sms("a"), now=now)
    assert decision.outcome == "quiet"
    assert decision.retry_at == utc(2026, 1, 11, 7, 0)
    assert "21:00-08:00" in decision.reason and not decision.timezone_fallback
    assert gate.defer_until(decision, sms("a"), now, timedelta(hours=1)) == decision.retry_at
    assert gate.check(sms("a"), now=decision.retry_at).allowed


def test_gate_uses_the_default_zone_for_a_bad_profile_zone(redis_client: redis.Redis) -> None:
    """16:00 UTC is 21:30 in Kolkata (the default): quiet, and the fallback is flagged."""
    gate = Gate(redis_client, Settings(quiet_hours={"sms": NIGHT}, default_timezone="Asia/Kolkata"))
    decision = gate.check(sms("a", zone="Invalid/Zone"), now=utc(2026, 5, 1, 16, 0))
    assert decision.outcome == "quiet" and decision.timezone_fallback
    assert decision.retry_at == utc(2026, 5, 2, 2, 30)
    allowed = gate.check(sms("b", zone=None), now=utc(2026, 5, 1, 6, 0))
    assert allowed.allowed and allowed.timezone_fallback


def test_transactional_bypasses_quiet_hours_unless_configured(redis_client: redis.Redis) -> None:
    """A 23:00 receipt goes out at once by default; ``transactional_quiet_hours`` holds it too."""
    now = local("Europe/Amsterdam", 2026, 1, 10, 23, 0)
    assert (
        Gate(redis_client, Settings(quiet_hours={"sms": NIGHT}))
        .check(sms("t", category="transactional"), now=now)
        .allowed
    )
    strict = Gate(redis_client, Settings(quiet_hours={"sms": NIGHT}, transactional_quiet_hours=True))
    assert strict.check(sms("t2", category="transactional"), now=now).outcome == "quiet"


def test_journey_override_false_sends_at_night(redis_client: redis.Redis) -> None:
    """A journey with ``quiet_hours: false`` (say, a flash sale) ignores the settings' window."""
    gate = Gate(redis_client, Settings(quiet_hours={"sms": NIGHT}))
    now = local("Europe/Amsterdam", 2026, 1, 10, 23, 0)
    assert gate.check(sms("a", quiet_hours_override=False), now=now).allowed
    late = {"sms": QuietWindow.model_validate("23:30-07:00")}
    assert gate.check(sms("b", quiet_hours_override=late), now=now).allowed
