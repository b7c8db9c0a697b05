"""The daily planning of date triggers reads the date index: on every day it plans exactly the
anniversaries a scan of every profile would, across time zones, 29 February and index changes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from orchestrator import engine
from orchestrator.engine.run_ids import date_timer_run
from orchestrator.language.journey import DateTrigger
from orchestrator.language.profile import Profile
from orchestrator.store import keys
from orchestrator.workers.scheduler import DATE_HORIZON, DATE_LOOKBACK
from tests.runtime.harness import Clock, Harness, journey


def dated(journey_id: str, attribute: str) -> Any:
    return journey(
        {
            "id": journey_id,
            "name": journey_id,
            "trigger": {"date": attribute, "at": "09:00"},
            "re_entry": "300d",
            "steps": [{"id": "wishes", "send": "email", "template": "hello"}],
        }
    )


JOURNEYS = [dated("bday", "birthday"), dated("member", "created_at"), dated("lastorder", "last_order_at")]
#: The extremes (+14 and -11), a zone with summer time either side of the equator, and none (settings).
ZONES = ["Pacific/Kiritimati", "Pacific/Pago_Pago", "Europe/Amsterdam", "Australia/Sydney", None]


@pytest.fixture
def harness(redis_url: str, tmp_path: Path) -> Iterator[Harness]:
    h = Harness(redis_url, tmp_path, JOURNEYS, clock=Clock(datetime(2027, 2, 24, 23, 30, tzinfo=UTC)))
    try:
        yield h
    finally:
        h.stop()


def customers(h: Harness) -> list[Profile]:
    """Per zone: birthdays on every day from 20 February to 8 March, 29 February, one in July."""
    days = [date(1990, 2, 20) + timedelta(days=n) for n in range(17)] + [date(1992, 2, 29), date(1990, 7, 1)]
    profiles: list[Profile] = []
    for z, zone in enumerate(ZONES):
        for d, day in enumerate(days):
            # Joined on the birthday, but in another year (the 29 February one in July: found by its birthday alone).
            joined = (
                datetime(2020 + d % 4, day.month, day.day, 12, tzinfo=UTC) if day.day < 29 else datetime(2021, 7, 9)
            )
            profile = Profile(
                id=f"c{z}-{d}",
                timezone=zone,
                attributes={"birthday": day.isoformat(), "tier": "gold"},
                created_at=joined,
                last_order_at=joined,
            )
            h.runtime.store.save_profile(profile)
            profiles.append(profile)
    return profiles


def expected(h: Harness, now: datetime) -> set[tuple[str, str, float]]:
    """What a scan of every profile plans at ``now`` (the planner before the index)."""
    found: set[tuple[str, str, float]] = set()
    profiles = [p for ids in h.runtime.store.scan_customers() for p in h.runtime.store.get_profiles(ids).values()]
    for profile in profiles:
        for item in JOURNEYS:
            assert isinstance(item.trigger, DateTrigger)
            fire = engine.next_date_fire(item.trigger, profile, now - DATE_LOOKBACK, h.settings.default_timezone)
            if fire is not None and fire <= now + DATE_HORIZON:
                found.add((profile.id, date_timer_run(item.id, fire.year), fire.timestamp()))
    return found


def planned(h: Harness, monkeypatch: pytest.MonkeyPatch, now: datetime) -> set[tuple[str, str, float]]:
    recorded: list[tuple[str, str, int, float]] = []
    monkeypatch.setattr(h.runtime.timers, "schedule_many", lambda entries, pipe=None: recorded.extend(entries))
    count = h.scheduler.plan_dates(now)
    assert count == len(recorded)
    return {(customer, run, due) for customer, run, _revision, due in recorded}


def test_each_day_plans_exactly_what_a_scan_would_across_zones_and_29_february(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Ten UTC days around the end of February 2027 (a common year) and 2028 (a leap year)."""
    customers(harness)
    leap_day_fires: list[str] = []
    for start in (datetime(2027, 2, 24, 23, 30, tzinfo=UTC), datetime(2028, 2, 24, 0, 5, tzinfo=UTC)):
        for n in range(10):
            now = start + timedelta(days=n)
            want = expected(harness, now)
            got = planned(harness, monkeypatch, now)
            assert got == want, now
            assert {customer for customer, run, _ in want if run.startswith("@date:bday:")}, now  # never vacuous
            leap_day_fires += [
                datetime.fromtimestamp(due, UTC).date().isoformat()
                for customer, run, due in got
                if customer.endswith("-17") and run.startswith("@date:bday:")
            ]
    # 29 February 1992 fires on 28 February in 2027 and on 29 February in 2028, in every zone.
    assert {day[5:] for day in leap_day_fires} >= {"02-27", "02-28", "02-29"}


def test_a_moved_birthday_is_planned_on_its_new_day_only(harness: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime(2027, 6, 10, 6, 0, tzinfo=UTC)
    store = harness.runtime.store
    store.save_profile(Profile(id="a", attributes={"birthday": "1990-06-10"}))
    store.save_profile(Profile(id="b", attributes={"birthday": "1990-06-10"}))
    store.update_profile("a", {"birthday": "1990-12-24"}, {})
    got = planned(harness, monkeypatch, now)
    assert {customer for customer, run, _ in got if run.startswith("@date:bday:")} == {"b"}
    assert harness.client.smembers(keys.date_day("birthday", "06-10")) == {"b"}
    assert harness.client.smembers(keys.date_day("birthday", "12-24")) == {"a"}


def test_profiles_from_before_the_index_are_backfilled_by_the_first_pass(
    harness: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Profiles written straight into Redis (as an older version left them) and no ready mark: the
    first pass builds the index, then plans from it."""
    now = datetime(2027, 6, 10, 6, 0, tzinfo=UTC)
    for n in range(5):
        profile = Profile(id=f"old{n}", attributes={"birthday": f"1980-06-{10 + n:02d}"})
        harness.client.set(keys.profile(profile.id), profile.model_dump_json(exclude={"consent"}))
    assert not harness.client.exists(keys.date_index_ready())
    got = planned(harness, monkeypatch, now)
    assert {customer for customer, run, _ in got if run.startswith("@date:bday:")} == {"old0", "old1"}
    assert harness.client.get(keys.date_index_ready()) == "1"
    assert harness.client.smembers(keys.date_day("birthday", "06-14")) == {"old4"}
