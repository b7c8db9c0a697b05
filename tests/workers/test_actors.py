"""The actors on a real Redis: malformed messages are refused at the door, counted and dropped; a
failure past the door (a bug in the runtime, an outage) is never taken for bad input but logged
with its traceback and retried by Dramatiq."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import dramatiq
import pytest
import redis

from orchestrator.errors import InputError
from orchestrator.store import keys
from tests.runtime.harness import START, Harness, journey

PING = journey(
    {
        "id": "ping",
        "name": "Ping",
        "trigger": {"event": "ping.sent"},
        "re_entry": "always",
        "category": "transactional",
        "steps": [{"id": "hello", "send": "email", "template": "hello"}],
    }
)
WHEN = START.isoformat()


@pytest.fixture
def h(redis_url: str, tmp_path: Path) -> Iterator[Harness]:
    harness = Harness(redis_url, tmp_path, [PING])
    yield harness
    harness.stop()


def call(actor: dramatiq.Actor[Any, Any], *args: Any) -> None:
    """Run an actor's body in this thread, as a worker thread would."""
    actor.fn(*args)


MALFORMED: list[tuple[str, str, tuple[Any, ...], str]] = [
    ("handle_event", "timestamp not a date", ("c-1", "ping.sent", {}, "ev-1", "not-a-time"), "event"),
    ("handle_event", "timestamp without a zone", ("c-1", "ping.sent", {}, "ev-1", "2026-01-01T00:00:00"), "event"),
    ("handle_event", "properties a list", ("c-1", "ping.sent", [1], "ev-1", WHEN), "event"),
    ("handle_event", "customer id with braces", ("{c}", "ping.sent", {}, "ev-1", WHEN), "event"),
    ("handle_event", "event name capitalised", ("c-1", "Ping", {}, "ev-1", WHEN), "event"),
    ("handle_event", "event id a number", ("c-1", "ping.sent", {}, 7, WHEN), "event"),
    ("drain_events", "shard out of range", (99,), "events"),
    ("drain_events", "shard a string", ("3",), "events"),
    ("drain_events", "shard a boolean", (True,), "events"),
    ("profile_changed", "customer id a number", (12345,), "profile"),
    ("deliver", "revision not a number", ("c-1", "run-x", "seven"), "deliver"),
    ("deliver", "revision negative", ("c-1", "run-x", -1), "deliver"),
    ("deliver", "run id empty", ("c-1", "", 3), "deliver"),
    ("deliver", "run id with a pipe", ("c-1", "a|b", 3), "deliver"),
    ("fire_timers", "members not a list", ("c-1|run|3",), "timers"),
    ("fire_timers", "member without fields", (["no-pipes-here"],), "timers"),
    ("fire_timers", "member revision garbage", (["c-1|run|x"],), "timers"),
    ("fire_timers", "member not a string", ([42],), "timers"),
    ("enter_batch", "customer ids not a list", ("ping", 42, "k", {}), "cohort"),
    ("enter_batch", "trigger not an object", ("ping", ["c-1"], "k", [1]), "cohort"),
    ("enter_batch", "journey id a number", (7, ["c-1"], "k", {}), "cohort"),
]


@pytest.mark.parametrize(("actor", "label", "args", "kind"), MALFORMED, ids=[m[1] for m in MALFORMED])
def test_a_malformed_message_is_counted_and_dropped(
    h: Harness, caplog: pytest.LogCaptureFixture, actor: str, label: str, args: tuple[Any, ...], kind: str
) -> None:
    """A message whose arguments fail the door's checks returns (nothing to retry), is counted as
    ``message:<kind>:InputError`` and is logged by field, never by value; nothing is stored."""
    with caplog.at_level(logging.WARNING, logger="orchestrator.workers.actors"):
        call(getattr(h.actors, actor), *args)
    assert h.runtime.store.refused_counts() == {f"message:{kind}:InputError": 1}
    assert [r.getMessage() for r in caplog.records] == [caplog.records[0].getMessage()]
    assert caplog.records[0].getMessage().startswith(f"dropped a malformed {kind} message (")
    assert h.client.exists(keys.profile("{c}")) == 0 and h.outbox() == []


def test_well_formed_messages_pass_the_checks(h: Harness) -> None:
    """The checks refuse nothing a producer of ours sends: an event message is handled and sent."""
    h.api.identify("c-1", {"email": "c-1@example.com"})
    call(h.actors.handle_event, "c-1", "ping.sent", {"n": 1}, "ev-1", WHEN)
    call(h.actors.profile_changed, "c-1")
    call(h.actors.drain_events, 0)
    assert h.runtime.store.refused_counts() == {} and len(h.outbox()) == 1


def _bug(*args: Any, **kwargs: Any) -> Any:
    raise KeyError("ann@example.com")


BUGS: list[tuple[str, str, tuple[Any, ...]]] = [
    ("handle_event", "handle_event", ("c-1", "ping.sent", {}, "ev-1", WHEN)),
    ("profile_changed", "profile_changed", ("c-1",)),
    ("deliver", "deliver", ("c-1", "run-x", 3)),
    ("fire_timers", "fire_timer", (["c-1|@date:ping:2026|0"],)),
    ("enter_batch", "enter_batch", ("ping", ["c-1"], "k", {})),
]


@pytest.mark.parametrize(("actor", "method", "args"), BUGS, ids=[b[0] for b in BUGS])
def test_a_bug_inside_the_runtime_is_not_malformed_input_but_retried(
    h: Harness,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    actor: str,
    method: str,
    args: tuple[Any, ...],
) -> None:
    """A KeyError raised deep in the runtime (which the actors used to drop as "malformed") is not
    counted as refused: it is logged with its traceback, the address it quoted blanked, and raised
    to Dramatiq's Retries middleware as a Retry chained to it."""
    monkeypatch.setattr(h.runtime, method, _bug)
    with (
        caplog.at_level(logging.WARNING, logger="orchestrator.workers.actors"),
        pytest.raises(dramatiq.Retry) as raised,
    ):
        call(getattr(h.actors, actor), *args)
    assert isinstance(raised.value.__cause__, KeyError)
    assert h.runtime.store.refused_counts() == {}
    logged = caplog.records[-1].getMessage()
    assert caplog.records[-1].levelno == logging.ERROR and "failed with KeyError" in logged
    assert "Traceback (most recent call last)" in logged and "_bug" in logged and "<email>" in logged
    assert "ann@example.com" not in caplog.text and caplog.records[-1].exc_info is None


def test_an_input_error_from_inside_the_runtime_is_retried_not_refused(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Once a message passed the door, even an InputError is the runtime's (a check that moved, a
    bad journey setting), not the message's: it is retried, not counted and dropped."""

    def refuses(*args: Any) -> None:
        raise InputError("journey tag '' must be a non-empty identifier", field="journey_tags")

    monkeypatch.setattr(h.runtime, "deliver", refuses)
    with pytest.raises(dramatiq.Retry):
        call(h.actors.deliver, "c-1", "run-x", 3)
    assert h.runtime.store.refused_counts() == {}


def test_a_redis_outage_is_retried_without_a_traceback(
    h: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Redis going away is nobody's bug: one warning line, and Dramatiq retries."""

    def outage(*args: Any) -> None:
        raise redis.exceptions.ConnectionError("gone")

    monkeypatch.setattr(h.runtime, "profile_changed", outage)
    with caplog.at_level(logging.WARNING, logger="orchestrator.workers.actors"), pytest.raises(dramatiq.Retry):
        call(h.actors.profile_changed, "c-1")
    assert [r.levelno for r in caplog.records] == [logging.WARNING] and "Traceback" not in caplog.text
    assert h.runtime.store.refused_counts() == {}


def test_a_bad_timer_member_does_not_hold_up_the_good_ones(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """The well-formed members of a batch fire and are acknowledged; the message is counted once as malformed."""
    fired: list[tuple[str, str, int]] = []
    monkeypatch.setattr(h.runtime, "fire_timer", lambda c, r, v, **_: fired.append((c, r, v)) or "stale")
    call(h.actors.fire_timers, ["c-1|@date:ping:2026|0", "c-1|run|x", "{c}|run|1", "c-2|@date:ping:2026|0"])
    assert fired == [("c-1", "@date:ping:2026", 0), ("c-2", "@date:ping:2026", 0)]
    assert h.runtime.store.refused_counts() == {"message:timers:InputError": 1}


def test_a_bad_customer_id_does_not_hold_up_a_cohort(h: Harness, monkeypatch: pytest.MonkeyPatch) -> None:
    """A broadcast chunk with one malformed id enters the others; the message is counted once as malformed."""
    entered: list[list[str]] = []
    monkeypatch.setattr(h.runtime, "enter_batch", lambda j, ids, k, t: entered.append(ids) or len(ids))
    call(h.actors.enter_batch, "ping", ["c-1", "{c}", "c-2"], "schedule:1", {"fired_at": WHEN})
    assert entered == [["c-1", "c-2"]]
    assert h.runtime.store.refused_counts() == {"message:cohort:InputError": 1}


def wait_for(condition: Callable[[], bool], seconds: float = 15.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_worker_retries_a_message_a_bug_failed_and_it_then_succeeds(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through a real worker: the first delivery of an event message meets a bug in the runtime;
    Dramatiq retries it with back-off, the second succeeds, the event is sent and nothing counts as refused."""
    h.api.identify("c-1", {"email": "c-1@example.com"})
    original = h.runtime.handle_event
    calls: list[str] = []

    def flaky(*args: Any) -> str:
        calls.append(args[3])
        if len(calls) == 1:
            raise KeyError("a bug")
        return original(*args)

    monkeypatch.setattr(h.runtime, "handle_event", flaky)
    h.start(threads=1)
    h.actors.handle_event.send("c-1", "ping.sent", {}, "ev-1", WHEN)
    wait_for(lambda: len(h.outbox()) == 1)
    assert calls == ["ev-1", "ev-1"]
    assert h.runtime.store.refused_counts() == {}
