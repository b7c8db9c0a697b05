"""A customer's story: the journal production writes, read back as the same timeline a simulation's
files give, and the pieces of text each row is made of."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
import redis

from orchestrator.engine.enrollment import Enrollment
from orchestrator.gate.consent import set_consent
from orchestrator.runtime.story import (
    FolderStory,
    Moment,
    StoreStory,
    feedback_text,
    how_it_ended,
    journal_moment,
    ordered,
)
from orchestrator.simulate.driver import Driver, WorkerPump
from orchestrator.simulate.simulation import load_setup, simulate, write_output
from orchestrator.simulate.source import parse_mapping, read_history, read_profiles
from orchestrator.simulate.timeline import events_of
from orchestrator.store import Store, journal, keys
from orchestrator.workers.embedded import Embedded, SimClock

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "docs" / "examples"
MAP = "customer_id=customer,event=kind,timestamp=placed_at,properties.total=amount"
UNTIL = datetime(2026, 6, 30, tzinfo=UTC)


def _example_lines() -> list:
    lines = read_history(EXAMPLE / "orders.csv", mapping=parse_mapping(MAP)).lines
    return read_profiles(EXAMPLE / "profiles.jsonl", lines[0].at) + lines


@pytest.mark.usefixtures("shop_ledger")  # the workers' referral journeys call the ledger endpoint
def test_production_journal_tells_what_the_simulation_tells(tmp_path: Path, redis_url: str) -> None:
    """The worked example of docs/simulate.md run twice: simulated (its files) and by production's
    workers on a real Redis (the journal).  Every held send, with its reason and until when, every
    entry and every end are the same in both stories, and so are the finished runs."""
    lines = _example_lines()
    setup = load_setup(None, None, 0)
    folder = tmp_path / "sim"
    write_output(folder, simulate(setup, lines, until=UNTIL, backend="fakeredis"))
    settings = setup.settings.model_copy(update={"redis_url": redis_url})
    clock = SimClock(lines[0].at)
    with Embedded(settings, journeys=setup.journeys, clock=clock, threads=2) as system:
        Driver(WorkerPump(system), clock, setup.journeys).run(lines, until=UNTIL)
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    try:
        for customer in ("anna", "sem", "priya"):
            simulated = FolderStory(folder).read(customer)
            produced = StoreStory(client).read(customer)

            assert decisions(produced.moments) == decisions(simulated.moments), customer
            assert runs(produced.moments) == runs(simulated.moments), customer
            # The events the workers applied are the history's, at the same moments, first on ties.
            history = events_of(lines)(customer)
            assert events(produced.moments) == [(m.at, m.text.split(" ")[0]) for m in history if m.kind == "event"]
            assert produced.moments[0].kind == "event", customer
            sent = [(m.at, m.journey_id, m.step_id) for m in simulated.moments if m.kind == "sent"]
            assert [(m.at, m.journey_id, m.step_id) for m in produced.moments if m.kind == "sent"] == sent
            assert [(r.run_id, r.journey_id, r.ended_at, r.how) for r in produced.ended] == [
                (r.run_id, r.journey_id, r.ended_at, r.how) for r in simulated.ended
            ], customer
            assert all(r.version for r in produced.ended)  # production knows each run's version
        anna = StoreStory(client).read("anna")
        deferred = next(m for m in anna.moments if m.kind == "deferred")
        assert "quiet hours 21:00-08:00 on sms in Europe/Amsterdam" in deferred.text
        assert " until 2026-" in deferred.text
        assert not any("anna@example.com" in m.text or "+3161" in m.text for m in anna.moments)
    finally:
        client.close()


HELD = {"deferred", "capped", "no_consent", "suppressed", "no_address", "failed", "holdout"}


def decisions(moments: list[Moment]) -> list[tuple[str, ...]]:
    return [(m.at, m.kind, m.journey_id, m.step_id, m.text) for m in moments if m.kind in HELD]


def runs(moments: list[Moment]) -> list[tuple[str, ...]]:
    """Entries and ends (consent changes are production's only: a simulation has no history of them)."""
    return [(m.at, m.kind, m.journey_id) for m in moments if m.kind not in HELD | {"sent", "consent"} | EVENTS]


EVENTS = {"event", "unknown_event", "refused_event"}


def events(moments: list[Moment]) -> list[tuple[str, str]]:
    return [(m.at, m.text.split(" ")[0]) for m in moments if m.kind in EVENTS]


def test_the_journal_keeps_only_known_fields_and_expires(redis_client: redis.Redis) -> None:
    journal.write(redis_client, "c-1", [{"at": "2026-01-01T00:00:00+00:00", "kind": "staff", "email": "x@y.z"}])
    assert journal.read(redis_client, "c-1") == [{"at": "2026-01-01T00:00:00+00:00", "kind": "staff"}]
    assert 0 < redis_client.ttl(keys.journal("c-1")) <= 90 * 86400


def test_sends_carry_the_providers_feedback_and_consent_changes_their_source(redis_client: redis.Redis) -> None:
    """The send log's entries (a fallback channel's key included) with each message's status;
    consent changes from elsewhere are told, the console's own are left to the staff entry."""
    customer = "c-7"
    redis_client.zadd(
        keys.send_log(customer),
        {
            "welcome-5f0c2a9e41d7b3c8:hello\x1femail\x1fmarketing\x1f": 1767607200000,
            "welcome-5f0c2a9e41d7b3c8:nudge:sms\x1fsms\x1fmarketing\x1f": 1767610800000,
        },
    )
    redis_client.hset(
        keys.message_status("welcome-5f0c2a9e41d7b3c8:hello"),
        mapping={"status": "delivered", "processed_at": "1767607201", "delivered_at": "1767607260"},
    )
    set_consent(redis_client, customer, "sms", False, source="twilio:stop", at=1767614400.0)
    set_consent(redis_client, customer, "email", False, source="console:ana", at=1767614500.0)
    moments = StoreStory(redis_client).read(customer).moments
    assert [(m.kind, m.journey_id, m.step_id) for m in moments] == [
        ("sent", "welcome", "hello"),
        ("sent", "welcome", "nudge"),
        ("consent", "", ""),
    ]
    assert (
        moments[0].text
        == "email (marketing): provider delivered (processed 2026-01-05 10:00, delivered 2026-01-05 10:01)"
    )
    assert moments[1].text == "sms (marketing): provider no report"
    assert moments[2].text == "sms consent withdrawn (twilio:stop)"


def test_finished_runs_come_from_the_journal_and_name_staff_removals(redis_client: redis.Redis) -> None:
    store = Store(redis_client)
    entered = datetime(2026, 1, 5, 10, tzinfo=UTC)
    ended = datetime(2026, 1, 6, 10, tzinfo=UTC)
    for run_id, status, reason in (("welcome-c-9", "exited", "removed"), ("vip-c-9", "converted", "goal")):
        run = Enrollment(
            run_id=run_id,
            journey_id=run_id.split("-")[0],
            journey_version="v1",
            customer_id="c-9",
            status=status,
            entered_at=entered,
            updated_at=ended,
            exit_reason=reason,
            revision=1,
        )
        assert store.create_enrollment(run)
    journal.write(
        redis_client,
        "c-9",
        [
            {"at": ended.isoformat(), "kind": "ended", "journey": "vip", "run": "vip-c-9", "outcome": "converted"},
            {
                "at": ended.isoformat(),
                "kind": "ended",
                "journey": "welcome",
                "run": "welcome-c-9",
                "outcome": "exited",
                "reason": "removed",
            },
            {"at": ended.isoformat(), "kind": "staff", "user": "ana", "action": "journey.remove", "run": "welcome-c-9"},
        ],
    )
    told = StoreStory(redis_client, store).read("c-9")
    assert {(r.run_id, r.version, r.entered_at, r.ended_at, r.how) for r in told.ended} == {
        ("welcome-c-9", "v1", entered, ended, "removed by staff (ana)"),
        ("vip-c-9", "v1", entered, ended, "goal reached (goal)"),
    }
    assert [m.text for m in told.moments if m.kind == "staff"] == ["ana: journey.remove (run welcome-c-9)"]


def test_rows_in_words() -> None:
    capped = journal_moment(
        {"at": "2026-01-05T10:00:00+00:00", "kind": "held", "journey": "welcome", "step": "hello", "channel": "email",
         "outcome": "capped", "reason": "max 2 per 7 days on all channels", "rule": "max 2 per 7 days on all channels"}
    )  # fmt: skip
    assert capped == (
        2,
        Moment("2026-01-05T10:00:00+00:00", "capped", "welcome", "hello", "email: max 2 per 7 days on all channels"),
    )
    assert how_it_ended("exited", "removed", "ana") == "removed by staff (ana)"
    assert how_it_ended("exited", "removed") == "removed by staff"
    assert how_it_ended("exited", "unsubscribed") == "exited (unsubscribed)"
    assert how_it_ended("completed", "completed") == "completed"
    assert how_it_ended("failed", None) == "failed"
    assert feedback_text({}) == "no report"
    assert feedback_text({"status": "bounced"}) == "bounced"
    late, early = (
        Moment("2026-01-05T10:00:00.5+00:00", "sent", "", "", ""),
        Moment("2026-01-05T10:00:00+00:00", "x", "", "", ""),
    )
    assert ordered([(3, late), (9, early)]) == [early, late]


def test_a_folder_story_is_the_simulations_files(tmp_path: Path) -> None:
    def run(at: str, customer: str, what: str, reason: str = "") -> dict[str, str]:
        row = {"at": at, "customer_id": customer, "journey_id": "w", "run_id": f"w-{customer}", "what": what}
        return row | ({"reason": reason} if reason else {})

    decision = {
        "at": "2026-01-06T10:00:00+00:00",
        "customer_id": "a",
        "journey_id": "w",
        "step_id": "s",
        "channel": "sms",
        "outcome": "deferred",
        "reason": "quiet hours",
        "until": "2026-01-07T07:00:00+00:00",
    }
    rows = {
        "runs.jsonl": [
            run("2026-01-05T10:00:00+00:00", "a", "entered"),
            run("2026-01-07T10:00:00+00:00", "a", "exited", "removed"),
            run("2026-01-05T10:00:00+00:00", "b", "entered"),
        ],
        "decisions.jsonl": [decision],
        "messages.jsonl": [],
    }
    for name, found in rows.items():
        (tmp_path / name).write_text("".join(json.dumps(row) + "\n" for row in found), encoding="utf-8")
    told = FolderStory(tmp_path).read("a")
    assert [m.kind for m in told.moments] == ["entered", "deferred", "exited"]
    assert told.moments[1].text == "sms: quiet hours until 2026-01-07T07:00:00+00:00"
    assert [(r.run_id, r.how) for r in told.ended] == [("w-a", "removed by staff")]
    assert told.ended[0].entered_at == datetime(2026, 1, 5, 10, tzinfo=UTC)
