"""The compact run layout: every enrollment field, pending send and live timer round-trips exactly,
and a waiting run of a shipped journey stays under Redis' 64-byte listpack limit."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.engine.enrollment import FINISHED, Enrollment, SendAction
from orchestrator.engine.run_ids import run_id_for
from orchestrator.store.run_codec import (
    RunParts,
    StoredEnrollment,
    decode_run,
    due_text,
    encode_run,
    parse_due,
    parse_seconds,
    seconds_text,
    split_runs,
)

NOW = datetime(2026, 11, 27, 11, 42, 26, 315284, tzinfo=UTC)

# Text that likes the characters the layout uses (separators, markers, digits).
tricky = st.text(alphabet=st.sampled_from("ab-|:,!=@{}.0 é"), max_size=8) | st.text(max_size=12)
ids = tricky.filter(lambda text: text != "" and "|" not in text)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
properties = st.dictionaries(st.text(max_size=8), json_values, max_size=3)
zones = st.sampled_from(
    [UTC, ZoneInfo("Europe/London"), ZoneInfo("Europe/Amsterdam"), timezone(timedelta(minutes=-330)), None]
)


@st.composite
def moments(draw: st.DrawFn) -> datetime:
    """Any moment, naive or aware; zone offsets in whole minutes, as ISO-8601 JSON writes them (the
    local mean times of the 19th century had seconds)."""
    zone = draw(zones)
    low = datetime(1970, 1, 2) if isinstance(zone, ZoneInfo) else datetime(1, 1, 2)
    naive = draw(st.datetimes(min_value=low, max_value=datetime(9999, 12, 30)))
    return naive.replace(tzinfo=zone)


@st.composite
def near_moments(draw: st.DrawFn) -> datetime:
    """Moments like the runtime's: UTC, now-ish, to the microsecond."""
    return NOW + timedelta(microseconds=draw(st.integers(-(10**14), 10**14)))


@st.composite
def stored_runs(draw: st.DrawFn) -> tuple[Enrollment, SendAction | None, tuple[int, float] | None]:
    customer_id = draw(tricky)
    journey_id = draw(ids)
    run_id = draw(st.one_of(ids, st.just(run_id_for(journey_id, customer_id, "e1"))))
    when = st.one_of(near_moments(), moments())
    entered = draw(when)
    updated = draw(st.one_of(st.just(entered), when))
    wait_until = draw(st.one_of(st.none(), when))
    revision = draw(st.integers(0, 10**6))
    enrollment = Enrollment(
        run_id=run_id,
        journey_id=journey_id,
        journey_version=draw(tricky),
        customer_id=customer_id,
        status=draw(st.sampled_from(["active", "waiting", "sending", "completed", "converted", "exited"])),
        step_id=draw(st.one_of(st.none(), tricky)),
        entered_at=entered,
        updated_at=updated,
        holdout=draw(st.booleans()),
        control=draw(st.booleans()),
        trigger=draw(properties),
        trigger_event_id=draw(st.one_of(st.none(), tricky)),
        wait_until=wait_until,
        waiting_for=draw(st.one_of(st.none(), tricky)),
        awaited_event=draw(st.one_of(st.none(), properties)),
        outcomes=draw(st.dictionaries(tricky, tricky, max_size=3)),
        sent=draw(st.integers(-5, 10**9)),
        exit_reason=draw(st.one_of(st.none(), tricky)),
        revision=revision,
    )
    timer: tuple[int, float] | None = None
    kind = draw(st.sampled_from(["none", "wait", "moment", "float"]))
    if kind == "wait" and wait_until is not None and wait_until.tzinfo is not None:
        timer = (revision, wait_until.timestamp())
    elif kind == "moment":
        timer = (draw(st.sampled_from([revision, revision - 1, 7])), draw(near_moments()).timestamp())
    elif kind == "float":
        timer = (revision, draw(st.floats(-1e17, 1e17, allow_nan=False)))
    send = None
    if draw(st.booleans()):
        step = draw(tricky)
        send = SendAction(
            step_id=step,
            channels=tuple(draw(st.lists(tricky, max_size=3))),
            template=draw(tricky),
            on_capped=draw(st.sampled_from(["skip", "defer", "exit"])),
            recipient_id=draw(st.one_of(st.just(customer_id), tricky)),
            idempotency_key=draw(st.one_of(st.just(f"{run_id}:{step}"), tricky)),
            holdout=draw(st.booleans()),
        )
    return enrollment, send, timer


def stored(enrollment: Enrollment, parts: RunParts, handle: str = "1") -> list[str | None]:
    """What the compare-and-set script stores: the core behind revision and handle, then the parts."""
    core = f"{enrollment.revision}|{handle}|{parts.core}"
    return [core, parts.moments, parts.trigger, parts.outcomes, parts.extra, parts.send]


def round_trip(enrollment: Enrollment, send: SendAction | None, timer: tuple[int, float] | None) -> StoredEnrollment:
    parts = encode_run(enrollment, send, timer)
    return decode_run(enrollment.customer_id, enrollment.run_id, stored(enrollment, parts))


def same_moment(a: datetime | None, b: datetime | None) -> bool:
    """Equal instants with equal offsets (naive stays naive), as the JSON form gave back."""
    if a is None or b is None:
        return a is b
    return a == b and a.utcoffset() == b.utcoffset() and (a.tzinfo is None) == (b.tzinfo is None)


@settings(max_examples=400, deadline=None)
@given(stored_runs())
def test_every_field_of_a_run_round_trips_exactly(run: tuple[Enrollment, SendAction | None, Any]) -> None:
    """Whatever the enrollment holds (separators in ids, empty strings apart from None, naive or
    offset datetimes, JSON trigger properties, any revision of the timer), decoding the stored
    strings gives it back; a finished run keeps no timer (the compare-and-set drops it)."""
    enrollment, send, timer = run
    back = round_trip(enrollment, send, timer)
    assert back.enrollment.model_dump() == enrollment.model_dump()
    for name in ("entered_at", "updated_at", "wait_until"):
        assert same_moment(getattr(back.enrollment, name), getattr(enrollment, name)), name
    assert back.send == send
    assert back.timer == (None if enrollment.status in FINISHED else timer)


def test_a_waiting_run_of_a_shipped_journey_is_one_short_core() -> None:
    """The common case (a 30-day wait) is two short values, well under Redis' 64 bytes: the core and
    the moments, its wait pointing at the timer, its journey read from the run id."""
    run_id = run_id_for("activation", "c1", "e1")
    due = NOW + timedelta(days=30)
    enrollment = Enrollment(
        run_id=run_id,
        journey_id="activation",
        journey_version="e88dc7322641",
        customer_id="c1",
        status="waiting",
        step_id="until_running_low",
        entered_at=NOW,
        updated_at=NOW,
        wait_until=due,
        revision=1,
    )
    parts = encode_run(enrollment, None, (1, due.timestamp()))
    assert parts == RunParts(core="w|until_running_low|e88dc7322641", moments="1795779746.315284||=|2592000")


def test_a_run_after_a_send_keeps_every_value_short() -> None:
    """An event-triggered run in ``sending`` after an earlier send: recipient and idempotency key are
    left out when they are the engine's defaults, outcomes are ``step=outcome``, the event id has
    the extra part to itself, and updated and timer are seconds after entry and update."""
    send = SendAction("hello", ("email", "sms"), "welcome", "defer", "c1", "welcome-0123456789abcdef:hello")
    enrollment = Enrollment(
        run_id="welcome-0123456789abcdef",
        journey_id="welcome",
        journey_version="v1",
        customer_id="c1",
        status="sending",
        step_id="hello",
        entered_at=NOW,
        updated_at=NOW,
        trigger={"order_id": "A1234", "total": 42.5},
        trigger_event_id="0b7e2f4e-8d1c-4c57-9a51-2d0f3f1c9e11",
        outcomes={"intro": "sent", "tips": "capped"},
        sent=1,
        revision=3,
    )
    enrollment.updated_at = NOW + timedelta(microseconds=306)
    timer = (3, enrollment.updated_at.timestamp() + 60.0)
    parts = encode_run(enrollment, send, timer)
    assert parts == RunParts(
        core="s|hello|v1||1",
        moments="1795779746.315284|0.000306||60",
        trigger='{"order_id":"A1234","total":42.5}',
        outcomes="intro=sent,tips=capped",
        extra='{"e":"0b7e2f4e-8d1c-4c57-9a51-2d0f3f1c9e11"}',
        send="hello|email,sms|welcome|defer",
    )
    assert all(len(value) <= 64 for value in stored(enrollment, parts) if value)
    assert round_trip(enrollment, send, timer) == StoredEnrollment(enrollment, send, timer)


@pytest.mark.parametrize("bad", [("", "j"), ("a|b", "j"), ("r1", ""), ("r1", "x|y")])
def test_run_and_journey_ids_must_be_non_empty_without_a_bar(bad: tuple[str, str]) -> None:
    """``|`` separates a run's parts (and timer members): such ids are refused, not stored wrongly."""
    run_id, journey_id = bad
    enrollment = Enrollment(
        run_id=run_id, journey_id=journey_id, journey_version="v", customer_id="c", entered_at=NOW, updated_at=NOW
    )
    with pytest.raises(ValueError, match=re.escape("no '|'")):
        encode_run(enrollment, None, None)


@given(st.integers(-(10**18), 10**18))
def test_seconds_text_is_exact(value: int) -> None:
    """Microseconds written as decimal seconds come back to the microsecond."""
    assert parse_seconds(seconds_text(value)) == value


@given(st.floats(allow_nan=False, allow_infinity=False), st.integers(-(10**16), 10**16))
def test_a_due_time_comes_back_as_the_same_float(due: float, base: int) -> None:
    """Relative to the entry time when that is exact, absolute otherwise: always the same float."""
    assert parse_due(due_text(due, base), base)[0] == due
    assert parse_due(due_text(due, None), None)[0] == due


def test_the_runs_hash_reads_as_live_runs_and_last_entries() -> None:
    """Fields without ``|`` are live runs (journey from the core, else from the run id), ``|<journey>``
    are last entries in epoch microseconds, and a run's parts (``<handle>|<part>``) are neither."""
    fields = {
        "welcome-0123456789abcdef": "2|1|w|pause|v1",
        "1|m": "1795779746.315284||=|2592000",
        "1|t": '{"a":1}',
        "r1": "1|2|a||v1|welcome",
        "2|m": "1795779746.315284",
        "|welcome": "1795779746315284",
    }
    live, last = split_runs(fields)
    assert live == {"welcome-0123456789abcdef": "welcome", "r1": "welcome"}
    assert last == {"welcome": NOW}


def test_a_wait_past_2255_keeps_its_microseconds_beside_a_timer_a_microsecond_off() -> None:
    """Past 2**53 microseconds a due epoch's microseconds cannot be recovered by multiplying; the
    wait must not be taken for the timer's moment (found by hypothesis: read back 1 µs early)."""
    wait = datetime(2256, 1, 1, 0, 0, 0, 12, tzinfo=UTC)
    enrollment = Enrollment(
        run_id="0-36107bb5308d8ec2",
        journey_id="0",
        journey_version="",
        customer_id="",
        status="active",
        entered_at=datetime(2026, 11, 27, 11, 42, 26, 315284, tzinfo=UTC),
        updated_at=datetime(2000, 1, 1, tzinfo=ZoneInfo("Europe/Amsterdam")),
        wait_until=wait,
    )
    back = round_trip(enrollment, None, (0, 9025257600.000011))
    assert back.enrollment.wait_until == wait
