"""The scheduler on a real Redis: cron broadcasts fire once with two schedulers, cohorts enter in batches."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from orchestrator.workers.scheduler import OUTAGE_PAUSE_MAX, Scheduler, outage_pause
from tests.runtime.harness import journey, running

BROADCAST = journey(
    {
        "id": "monthly",
        "name": "Monthly",
        "trigger": {"schedule": "0 10 * * *", "timezone": "UTC"},
        "audience": "profile.tier | default('') == 'gold'",
        "re_entry": "always",
        "steps": [{"id": "news", "send": "email", "template": "hello"}],
    }
)
BIRTHDAY = journey(
    {
        "id": "bday",
        "name": "Birthday",
        "trigger": {"date": "birthday", "at": "09:00"},
        "re_entry": "300d",
        "steps": [{"id": "wishes", "send": "email", "template": "hello"}],
    }
)


def test_two_schedulers_start_a_broadcast_once_and_enter_the_audience(redis_url: str, tmp_path: Path) -> None:
    """Both schedulers tick past 10:00; the gold customers get one message each, the others none."""
    with running(redis_url, tmp_path, [BROADCAST]) as h:
        for n in range(30):
            tier = "gold" if n % 3 == 0 else "silver"
            h.api.identify(f"c{n}", {"email": f"c{n}@example.com", "tier": tier, "consent": {"email": True}})
        other = Scheduler(h.runtime, h.actors.fire_timers.send, h.actors.enter_batch.send, cohort_chunk=4)
        h.scheduler.cohort_chunk = 4
        h.scheduler.tick(h.clock())  # first sight: no back-fill
        other.tick(h.clock())
        h.clock.advance(days=1)
        reports = [h.scheduler.tick(h.clock()), other.tick(h.clock())]
        h.settle()
        assert sum(r.broadcasts for r in reports) == 1
        assert sorted(m["customer_id"] for m in h.outbox()) == sorted(f"c{n}" for n in range(0, 30, 3))


def test_a_birthday_fires_once_at_the_customers_local_time(redis_url: str, tmp_path: Path) -> None:
    """A birthday planned by two schedulers enters once, at 09:00 in Sydney."""
    with running(redis_url, tmp_path, [BIRTHDAY]) as h:
        tomorrow = (h.clock() + timedelta(days=1)).astimezone(__import__("zoneinfo").ZoneInfo("Australia/Sydney"))
        h.api.identify(
            "c1",
            {
                "email": "c1@example.com",
                "consent": {"email": True},
                "timezone": "Australia/Sydney",
                "birthday": tomorrow.date().replace(year=1990).isoformat(),
            },
        )
        other = Scheduler(h.runtime, h.actors.fire_timers.send, h.actors.enter_batch.send)
        assert h.scheduler.plan_dates(h.clock()) + other.plan_dates(h.clock()) == 1
        for _ in range(8):
            h.tick(hours=6)
            other.tick(h.clock())
            h.settle()
        sent = h.outbox()
        assert [m["customer_id"] for m in sent] == ["c1"]
        assert h.stats("bday")["_journey:entered"] == 1


LOCAL = journey(
    {
        "id": "morning",
        "name": "Morning",
        "trigger": {"schedule": "0 10 * * *", "timezone": "local"},
        "re_entry": "always",
        "steps": [{"id": "news", "send": "email", "template": "hello"}],
    }
)


def test_a_local_time_broadcast_reaches_each_zone_at_ten_on_its_own_clock(redis_url: str, tmp_path: Path) -> None:
    """10:00 in Amsterdam is 09:00 UTC, in New York 15:00 UTC: each customer gets it at their ten."""
    with running(redis_url, tmp_path, [LOCAL]) as h:
        for cid, zone in (("ams", "Europe/Amsterdam"), ("nyc", "America/New_York")):
            h.api.identify(cid, {"email": f"{cid}@example.com", "timezone": zone, "consent": {"email": True}})
        h.tick(minutes=1)  # 10:01 UTC, 11:01 in Amsterdam: first sight of each zone, nothing back-filled
        h.tick(hours=4, minutes=54)  # 14:55 UTC = 09:55 in New York
        assert h.outbox() == []
        h.tick(minutes=10)  # 15:05 UTC = 10:05 in New York
        assert [m["customer_id"] for m in h.outbox()] == ["nyc"]
        h.clock.now = h.clock.now.replace(hour=8, minute=55) + timedelta(days=1)
        h.tick()  # 09:55 in Amsterdam
        assert len(h.outbox()) == 1
        h.tick(minutes=10)  # 09:05 UTC = 10:05 in Amsterdam
        assert [m["customer_id"] for m in h.outbox()] == ["nyc", "ams"]


def test_an_outage_backs_the_scheduler_off_from_a_quarter_second_to_five_seconds() -> None:
    """A failover lasts seconds: the first retries come quickly, a long outage is not hammered."""
    pauses = [outage_pause(failures) for failures in range(1, 12)]
    assert pauses[:5] == [0.25, 0.5, 1.0, 2.0, 4.0]
    assert pauses[5:] == [OUTAGE_PAUSE_MAX] * 6 == [5.0] * 6
