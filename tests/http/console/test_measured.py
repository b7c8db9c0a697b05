"""The console's reading of the measurement records, and the pages once a records reader is given."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime

import httpx
import redis

from orchestrator.http.console import create_console
from orchestrator.http.console.measured import conversion_panel, journey_measures, per_day, reached_counts
from orchestrator.language.loader import load_journeys
from orchestrator.measure.figures import ArmCounts, VersionFigures
from orchestrator.settings import load_settings
from tests.http.console.conftest import PASSWORDS, fast_users
from tests.http.helpers import serve
from tests.redis_server import RedisServer

TODAY = date(2026, 3, 10)
RECORDS = [
    VersionFigures(
        journey_id="welcome",
        version="v1",
        arms={
            "treated": {"2026-03-10": ArmCounts(entrants=4, converters=1), "2026-03-01": ArmCounts(entrants=6)},
            "holdout": {"2026-03-09": ArmCounts(entrants=2, converters=1, conversions=2, revenue_sum=30.5)},
        },
        steps={
            "welcome_email": {"2026-03-10": {"reached": 4, "sent": 3, "sent:email": 3, "capped": 1}},
            "points_push": {"2026-03-09": {"sent:push": 2, "deferred": 4}},
        },
    ),
    VersionFigures(
        journey_id="welcome",
        version="v2",
        arms={"treated": {"2026-02-01": ArmCounts(entrants=5, converters=5)}},  # 37 days ago: outside 30
        steps={"welcome_email": {"2026-03-10": {"reached": 1, "sent:email": 1}}},
    ),
]


def test_entrants_over_recent_days_sum_every_version_and_arm() -> None:
    measure = journey_measures(RECORDS, TODAY)["welcome"]
    assert (measure.entrants_7d, measure.entrants_30d) == (6, 12)
    assert len(measure.daily) == 30 and measure.daily[-1] == 4 and measure.daily[-2] == 2


def test_conversion_panel_counts_per_arm() -> None:
    panel = conversion_panel("welcome", RECORDS)
    assert panel is not None
    rows = {row[0]: row for row in panel.rows}
    assert rows["treated"][1:4] == ("15", "6", "40.0%")
    assert rows["holdout"][1:6] == ("2", "1", "50.0%", "2", "30.50")
    assert conversion_panel("winback", RECORDS) is None


def test_reached_sums_versions_and_days() -> None:
    assert reached_counts(RECORDS) == {"welcome_email": 5, "points_push": 0}


def test_sends_and_gate_outcomes_per_day() -> None:
    sends, gate = per_day(RECORDS)
    assert sends == {date(2026, 3, 10): {"email": 4}, date(2026, 3, 9): {"push": 2}}
    assert gate == {date(2026, 3, 10): {"capped": 1}, date(2026, 3, 9): {"deferred": 4}}


def test_pages_show_the_records_when_a_reader_is_given(redis_server: RedisServer) -> None:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushall()
    settings = load_settings()
    journeys = load_journeys(settings.journeys_dir, settings.templates_dir, vouchers=settings.vouchers)

    def records(journey_id: str | None = None) -> list[VersionFigures]:
        return [figures for figures in RECORDS if journey_id in (None, figures.journey_id)]

    app = create_console(
        settings,
        client,
        journeys,
        fast_users(),
        b"m" * 32,
        figures=records,
        clock=lambda: datetime(2026, 3, 10, 12, tzinfo=UTC),
    )
    try:
        with serve(app) as base, httpx.Client(base_url=base) as http:
            form = http.get("/login")
            token = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert token is not None
            http.post("/login", data={"user": "vic", "password": PASSWORDS["vic"], "csrf": token.group(1)})
            overview = http.get("/").text
            assert re.search(r'data-journey="welcome".*?data-stat="entered-7d">6<', overview, re.S)
            assert '<svg class="spark"' in overview
            journey = http.get("/journeys/welcome").text
            assert "Conversion per arm (recorded)" in journey and "40.0%" in journey
            calendar = http.get("/calendar").text
            row = re.search(r'<tr data-day="2026-03-09">(.*?)</tr>', calendar, re.S)
            assert row is not None and 'data-gate="deferred">4<' in row.group(1)
            assert 'data-channel="push">2<' in row.group(1)
    finally:
        client.close()
