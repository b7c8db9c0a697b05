"""Frequency caps hold across real worker processes: ``dramatiq orchestrator.worker -p 2 -t 8``
(two processes, eight threads each) handling a burst of events for the same few customers from
three marketing journeys never sends more than any cap allows, and sends every message the caps
do allow — checked from the outbox, the record of what customers received."""

from __future__ import annotations

import itertools
import time
from collections import Counter
from pathlib import Path

import redis

from orchestrator.store import keys
from tests.drills import support

#: Any four marketing messages a day, at most three e-mails and two texts: the "any" rule binds
#: first (3 + 2 > 4), so every customer ends with exactly four whatever order the sends race in.
CAPS_SETTINGS = """\
default_timezone: UTC
default_locale: en
locales: [en]
caps:
  - {channel: any, window: 24h, max: 4, category: marketing}
  - {channel: email, window: 24h, max: 3}
  - {channel: sms, window: 24h, max: 2}
quiet_hours: {}
"""
CAPS = {"any": 4, "email": 3, "sms": 2}

JOURNEY = """\
id: {id}
name: {id}
trigger:
  event: {id}.seen
re_entry: always
category: marketing
priority: {priority}
steps:
  - id: offer
    send: {channel}
    template: {template}
"""
JOURNEYS = {
    "mails": JOURNEY.format(id="mails", priority=60, channel="email", template="drill_first"),
    "texts": JOURNEY.format(id="texts", priority=50, channel="sms", template="drill_second"),
    "news": JOURNEY.format(id="news", priority=40, channel="email", template="drill_third"),
}
CUSTOMERS = support.customer_ids(4, prefix="cap")
EVENTS_PER_JOURNEY = 12  # per customer: 36 attempts each, all within a second or two


def totals(client: redis.Redis) -> Counter[str]:
    """The three journeys' stats added up (``_journey:entered``, ``offer:sent:email``, …)."""
    found: Counter[str] = Counter()
    for journey_id in JOURNEYS:
        found.update({str(k): int(v) for k, v in client.hgetall(keys.journey_stats(journey_id)).items()})
    return found


def decided(stats: Counter[str]) -> int:
    return sum(n for k, n in stats.items() if k.startswith(("offer:sent:", "offer:capped:")))


def settled(client: redis.Redis) -> bool:
    """Every event handled (no message queued or in a worker's hands) and every run's send decided.

    ``re_entry: always`` starts a new run only when the customer's last run of that journey has
    ended, so an event arriving while one is still sending enters nothing: how many runs start
    depends on the race, and the test counts what the stats say entered."""
    if any(support.queue_depths(client).values()) or any(client.scan_iter(match="loyaloop:__acks__.*")):
        return False
    stats = totals(client)
    return stats["_journey:entered"] > 0 and decided(stats) == stats["_journey:entered"]


def test_two_worker_processes_never_exceed_a_cap_and_send_all_it_allows(
    redis_url: str, redis_client: redis.Redis, tmp_path: Path
) -> None:
    """144 events for 4 customers, each entering a marketing journey that sends at once, race for
    the customers' slots in 16 worker threads: per customer the outbox holds exactly four messages
    (the binding ``any`` cap), never more than three e-mails or two texts, one per run; every
    other run's send is recorded as capped."""
    space = support.make_workspace(redis_url, JOURNEYS, settings=CAPS_SETTINGS, root=tmp_path)
    support.seed_profiles(redis_client, CUSTOMERS)
    worker = support.start_worker(space, processes=2, threads=8)
    try:
        lp = support.api(redis_url)
        attempts = list(itertools.product(range(EVENTS_PER_JOURNEY), JOURNEYS, CUSTOMERS))
        for n, journey_id, customer_id in attempts:
            lp.track(customer_id, f"{journey_id}.seen", {}, event_id=f"{journey_id}-{customer_id}-{n}")
        support.close_api(lp)
        support.wait_for(lambda: settled(redis_client), 30, what="every event handled and send decided")
        time.sleep(0.3)  # a straggler would land now
        assert settled(redis_client)
    finally:
        worker.stop()
    sent = support.outbox_lines(space.outbox)
    per_channel = Counter((m["customer_id"], m["channel"]) for m in sent)
    per_customer = Counter(m["customer_id"] for m in sent)
    assert per_customer == {customer_id: CAPS["any"] for customer_id in CUSTOMERS}, per_channel
    assert all(count <= CAPS[channel] for (_customer, channel), count in per_channel.items()), per_channel
    runs = Counter((m["customer_id"], m["journey_id"], m["run_id"]) for m in sent)
    assert set(runs.values()) == {1}
    stats = totals(redis_client)
    assert stats["offer:sent:email"] + stats["offer:sent:sms"] == len(sent)
    assert stats["offer:capped:email"] + stats["offer:capped:sms"] == stats["_journey:entered"] - len(sent)
    assert "Traceback" not in (tmp_path / "worker.log").read_text()
