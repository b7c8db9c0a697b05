"""A customer's events on their production timeline: tracked, applied by the workers on a real
Redis, kept (the newest only, without an address), and told by ``loyaloop explain`` before the
decisions they caused; an event no journey listens to and one refused as bad input marked so."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.errors import InputError
from orchestrator.runtime.event_drain import drain
from orchestrator.runtime.event_queue import EventQueue, encode
from orchestrator.runtime.story import StoreStory
from orchestrator.store import SEEN_TTL, event_log, keys
from tests.runtime.harness import START, Harness
from tests.runtime.test_event_drain import PING, fail_one


@pytest.fixture
def h(redis_url: str, tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(redis_url, tmp_path, [PING]).start()
    yield harness
    harness.stop()


def explain(
    customer_id: str, redis_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> str:
    monkeypatch.setenv("REDIS_URL", redis_url)
    main(["explain", customer_id])
    captured = capsys.readouterr()
    return captured.out + captured.err


def test_tracked_events_are_on_the_timeline_before_what_they_caused(
    h: Harness, redis_url: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Track a known event and a typo'd one; the workers apply both.  ``explain`` lists the event,
    then the entry and the send it caused, and the typo'd event marked as one no journey listens
    to; a property that looks like an address is blanked, nested ones are not kept."""
    h.api.identify("c-1", {"email": "c-1@example.com"})
    h.api.track("c-1", "ping.sent", {"note": "ann@example.com", "n": 1, "nested": {"a": 1}}, event_id="e-1")
    h.settle()
    h.clock.advance(minutes=5)
    h.api.track("c-1", "ping.snet", {}, event_id="e-2")
    h.settle()
    assert len(h.outbox()) == 1

    output = explain("c-1", redis_url, capsys, monkeypatch)
    timeline = output[output.index("c-1: timeline") :]
    kinds = [row.split("│")[2].strip() for row in timeline.splitlines() if row.startswith("│ 2026")]
    assert kinds == ["event", "entered", "sent", "completed", "unknown_event"]
    assert "ping.sent" in timeline and "(id e-1)" in timeline
    assert "ping.snet" in timeline and "no journey listens" in timeline.replace("│", "").replace("\n", "")
    assert "ann@example.com" not in output and "<email>" in timeline and "nested" not in timeline

    told = StoreStory(h.client).read("c-1")
    first, typo = (m for m in told.moments if m.kind.endswith("event"))
    assert first.at == START.isoformat() and first.text.startswith('ping.sent {"n": 1, "note": "<email>"}')
    assert typo.kind == "unknown_event" and typo.at > first.at


def test_a_redelivered_event_is_kept_once_and_the_newest_are_kept(h: Harness) -> None:
    """N+k events keep the newest N, a duplicate id adds nothing, and the list expires like the ids
    kept against redelivery."""
    h.api.identify("c-2", {})
    extra = 5
    for n in range(event_log.MAX_EVENTS + extra):
        h.api.track("c-2", "page.viewed", {"n": n}, event_id=f"v-{n}")
    h.api.track("c-2", "page.viewed", {"n": 0}, event_id=f"v-{event_log.MAX_EVENTS + extra - 1}")
    h.settle()
    kept = event_log.parse(h.client.lrange(keys.event_log("c-2"), 0, -1))
    assert [entry["i"] for entry in kept] == [f"v-{n}" for n in range(extra, event_log.MAX_EVENTS + extra)]
    assert all(entry["k"] == "unknown" for entry in kept)
    assert 0 < h.client.ttl(keys.event_log("c-2")) <= SEEN_TTL
    assert len(StoreStory(h.client).read("c-2").moments) == event_log.MAX_EVENTS


def test_an_event_refused_as_input_is_on_the_timeline_marked_refused(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An event the runtime refuses (kept aside as bad input) is told as refused, with the reason."""
    queue = EventQueue(h.client)
    h.api.identify("c-3", {"email": "c-3@example.com"})
    for n in range(3):
        queue.push("c-3", encode("c-3", "ping.sent", {"n": n}, f"r-{n}", START))
    fail_one(h, monkeypatch, InputError("no good", field="properties"))
    assert drain(h.runtime, queue, queue.shard_of("c-3"), lambda s: None) == 3
    moments = StoreStory(h.client).read("c-3").moments
    events = [(m.kind, m.text) for m in moments if m.kind.endswith("event")]
    assert sorted(kind for kind, _text in events) == ["event", "event", "refused_event"]
    refused = next(text for kind, text in events if kind == "refused_event")
    assert refused == 'ping.sent {"n": 1} (id r-1): refused (InputError, properties), not applied'
    stored = [json.loads(text) for text in h.client.lrange(keys.event_log("c-3"), 0, -1)]
    assert {entry.get("k", "") for entry in stored} == {"", "refused"}
