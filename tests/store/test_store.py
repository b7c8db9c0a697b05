"""The store on a real Redis and on the embedded demo's fakeredis: compare-and-set, hash-tagged keys,
exactly-once claims, AOF restarts (real Redis only), and the replies of its pipelines."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import fakeredis
import pytest
import redis
from hypothesis import HealthCheck, given, settings

from orchestrator.engine.enrollment import Enrollment, SendAction
from orchestrator.engine.run_ids import run_id_for
from orchestrator.errors import StateConflict
from orchestrator.language.profile import Profile
from orchestrator.store import FINISHED_TTL, PendingUpdate, Store, StoredEnrollment, keys, pending_json
from orchestrator.store.timers import Timers
from tests.redis_server import RedisServer
from tests.store.test_run_codec import stored_runs

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["redis-server", "fakeredis"])
def redis_client(request: pytest.FixtureRequest) -> Iterator[redis.Redis]:
    """Each test runs on a real redis-server and on fakeredis (what ``loyaloop demo`` uses), so a
    reply or a script that behaves differently in the demo fails a test."""
    if request.param == "fakeredis":
        fake: redis.Redis = fakeredis.FakeRedis(decode_responses=True)
        yield fake
        return
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"), decode_responses=True)
    yield client
    client.close()


@pytest.fixture
def server_client(redis_url: str) -> Iterator[redis.Redis]:
    """A real redis-server only: for how Redis lays a key out in memory, which fakeredis does not model."""
    client = redis.Redis.from_url(redis_url, decode_responses=True)
    yield client
    client.close()


def enrollment(revision: int = 1, status: Literal["waiting", "completed"] = "waiting") -> Enrollment:
    return Enrollment(
        run_id="r1",
        journey_id="welcome",
        journey_version="v1",
        customer_id="c1",
        status=status,
        entered_at=NOW,
        updated_at=NOW,
        revision=revision,
    )


def test_compare_and_set_refuses_a_stale_revision(redis_client: redis.Redis) -> None:
    """Two workers moving the same revision: the second one gets StateConflict and nothing is lost."""
    store = Store(redis_client)
    assert store.create_enrollment(enrollment(1))
    assert not store.create_enrollment(enrollment(1))
    store.cas_enrollment(enrollment(2), expected=1)
    with pytest.raises(StateConflict):
        store.cas_enrollment(enrollment(2), expected=1)
    stored = store.get_enrollment("c1", "r1")
    assert stored is not None and stored.enrollment.revision == 2
    assert store.live_runs("c1") == {"r1": "welcome"}
    store.cas_enrollment(enrollment(3, "completed"), expected=2)
    assert store.live_runs("c1") == {}


def test_every_per_customer_key_carries_the_hash_tag(redis_client: redis.Redis) -> None:
    """All keys a customer's state uses share the `{customer_id}` hash tag (one Cluster slot)."""
    store = Store(redis_client)
    store.create_enrollment(enrollment(1))
    store.apply_event("c1", "e1", lambda p: p)
    store.claim_delivery("c1", "r1:hello", now=1.0, lease=10)
    customer_keys = [k for k in redis_client.keys("*") if "c1" in k]
    assert customer_keys and all("{c1}" in k for k in customer_keys)


def test_a_claimed_send_is_done_once_and_an_expired_claim_is_taken_over(redis_client: redis.Redis) -> None:
    """claim → busy for others until the lease ends; done stays done with its outcome."""
    store = Store(redis_client)
    assert store.claim_delivery("c1", "k", now=100.0, lease=30) == ("claimed", "")
    assert store.claim_delivery("c1", "k", now=110.0, lease=30)[0] == "busy"
    assert store.claim_delivery("c1", "k", now=131.0, lease=30) == ("claimed", "")
    store.finish_delivery("c1", "k", "sent")
    assert store.claim_delivery("c1", "k", now=500.0, lease=30) == ("done", "sent")


def test_waits_and_state_survive_a_redis_restart_with_aof() -> None:
    """Timers, enrollments and profiles written before a restart are all there after it (AOF on)."""
    server = RedisServer(appendonly=True).start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        store, timers = Store(client), Timers(client)
        store.create_enrollment(enrollment(1), timer=(1, 5000.0))
        timers.schedule("c1", "r1", 1, 5000.0)
        store.apply_event("c1", "e1", lambda p: p.model_copy(update={"orders_count": 1}))
        client.close()
        import time

        time.sleep(1.2)  # appendfsync everysec
        server.restart()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        store, timers = Store(client), Timers(client)
        stored = store.get_enrollment("c1", "r1")
        assert stored is not None and stored.timer == (1, 5000.0)
        profile = store.get_profile("c1")
        assert profile is not None and profile.orders_count == 1
        (timer,) = timers.claim_due(5001.0)
        assert (timer.customer_id, timer.run_id, timer.revision) == ("c1", "r1", 1)
        assert client.exists(keys.seen_events("c1"))
        client.close()
    finally:
        server.cleanup()


def test_a_batch_is_one_pipeline_with_pipeline_replies_and_errors(redis_client: redis.Redis) -> None:
    """Store.run on a real server: replies in order (HGETALL as a dict), an empty batch still picked
    by ``pipe or client``, and an error reply raised only after every command ran (like redis-py)."""
    store = Store(redis_client)

    def build(pipe: Any) -> None:
        assert pipe  # an empty batch is truthy: helpers writing to ``pipe or client`` must use it
        pipe.hset("h", mapping={"a": "1", "b": "2"})
        pipe.hgetall("h")
        pipe.get("missing")

    assert store.run(build) == [2, {"a": "1", "b": "2"}, None]

    def failing(pipe: Any) -> None:
        pipe.set("s", "x")
        pipe.hset("s", "f", "v")  # WRONGTYPE
        pipe.set("after", "1")

    with pytest.raises(redis.exceptions.ResponseError):
        store.run(failing)
    assert redis_client.get("after") == "1"
    assert redis_client.ping()


def test_cohort_enrollments_are_created_in_one_call_and_existing_runs_are_refused(redis_client: redis.Redis) -> None:
    """create_enrollments writes every new run of a chunk; a run that exists replies 0 and is left as it was."""
    store = Store(redis_client)
    first = enrollment()
    store.create_enrollment(first)
    other = first.model_copy(update={"run_id": "r2"})
    third = first.model_copy(update={"run_id": "r1", "customer_id": "c2"})
    groups: list[list[int]] = []

    def build(pipe: Any) -> None:
        groups[:] = store.create_enrollments(
            pipe, [(first, None, None, ""), (other, None, (1, 5.0), ""), (third, None, None, "")]
        )

    replies = store.run(build)
    assert len(groups) == 1 and sorted(groups[0]) == [0, 1, 2]
    by_item = dict(zip(groups[0], replies[-1], strict=True))
    assert by_item == {0: 0, 1: 1, 2: 1}
    stored = store.get_enrollment(first.customer_id, "r2")
    assert stored is not None and stored.timer == (1, 5.0)
    assert set(store.live_runs(first.customer_id)) == {"r1", "r2"}


def waiting(revision: int = 1, run_id: str = "welcome-0123456789abcdef") -> Enrollment:
    return enrollment(revision).model_copy(
        update={"run_id": run_id, "step_id": "pause", "wait_until": NOW + timedelta(days=30)}
    )


def test_a_waiting_customer_is_one_small_listpack_hash(server_client: redis.Redis) -> None:
    """A run waiting 30 days and the journey's last entry share the customer's ``runs`` hash, which
    Redis' default settings keep as a listpack: no other key, a couple of hundred bytes."""
    store = Store(server_client)
    run = waiting()
    assert run.wait_until is not None
    assert store.create_enrollment(run, timer=(1, run.wait_until.timestamp()))
    assert server_client.keys("*") == [keys.runs("c1")]
    assert server_client.object("encoding", keys.runs("c1")) == "listpack"
    assert int(server_client.memory_usage(keys.runs("c1"))) < 200  # type: ignore[arg-type]
    assert store.live_runs("c1") == {run.run_id: "welcome"}
    assert store.last_entries("c1") == {"welcome": NOW}
    stored = store.get_enrollment("c1", run.run_id)
    assert stored == StoredEnrollment(run, None, (1, run.wait_until.timestamp()))


def test_a_finished_run_moves_to_its_own_expiring_key_and_cannot_be_created_again(redis_client: redis.Redis) -> None:
    """Finishing drops the run from the live runs (and its timer) into ``run:<id>`` with the 90-day
    TTL; it still reads back, and creating that run again fails as long as it is kept."""
    store = Store(redis_client)
    run = waiting()
    assert run.wait_until is not None
    store.create_enrollment(run, timer=(1, run.wait_until.timestamp()))
    done = run.model_copy(update={"revision": 2, "status": "completed", "exit_reason": "done", "wait_until": None})
    store.cas_enrollment(done, expected=1, timer=None)
    assert store.live_runs("c1") == {}
    assert store.last_entries("c1") == {"welcome": NOW}
    ttl = int(redis_client.ttl(keys.finished_run("c1", run.run_id)))  # type: ignore[arg-type]
    assert FINISHED_TTL - 5 < ttl <= FINISHED_TTL
    assert store.get_enrollment("c1", run.run_id) == StoredEnrollment(done, None, None)
    assert store.get_runs([("c1", run.run_id), ("c1", "nope")]) == [StoredEnrollment(done, None, None), None]
    assert not store.create_enrollment(run)
    with pytest.raises(StateConflict):
        store.cas_enrollment(done.model_copy(update={"revision": 3}), expected=1)


def test_keep_leaves_the_stored_timer_and_set_timer_field_moves_it(redis_client: redis.Redis) -> None:
    """``timer="keep"`` carries the stored (revision, due) over to the new revision exactly, even when
    the entry time changes; set_timer_field moves the timer without touching the run's wait_until;
    a finished run gets no timer."""
    store = Store(redis_client)
    run = waiting()
    assert run.wait_until is not None
    due = run.wait_until.timestamp()
    store.create_enrollment(run, timer=(1, due))
    moved = run.model_copy(update={"revision": 2, "entered_at": NOW - timedelta(seconds=1.5)})
    store.cas_enrollment(moved, expected=1)
    assert store.get_enrollment("c1", run.run_id) == StoredEnrollment(moved, None, (1, due))
    store.set_timer_field("c1", run.run_id, 2, due + 0.1234567)
    assert store.get_enrollment("c1", run.run_id) == StoredEnrollment(moved, None, (2, due + 0.1234567))
    store.run(lambda pipe: store.set_timer_field("c1", run.run_id, 5, 12.5, pipe=pipe))
    assert store.get_enrollment("c1", run.run_id) == StoredEnrollment(moved, None, (5, 12.5))
    store.set_timer_field("c1", "missing", 1, 12.5)
    assert store.live_runs("c1") == {run.run_id: "welcome"}


def test_pending_updates_and_the_claim_are_written_only_when_the_compare_and_set_wins(
    redis_client: redis.Redis,
) -> None:
    """A losing compare-and-set records no pending update and claims nothing; a winning one does both,
    and clear_pending leaves no key behind."""
    store = Store(redis_client)
    store.create_enrollment(enrollment(1))
    updates = pending_json([PendingUpdate("r1:give", "c1", {"vip": True}, {"points": 5.0})])

    def write(expected: int) -> list[Any]:
        return store.run(
            lambda pipe: store.write_enrollment(
                pipe, enrollment(2), expected=expected, send=None, timer=None, claim=("r1:hello", 99.0), pending=updates
            )
        )

    assert write(7)[-1] == 0
    assert store.pending_updates("c1", "r1", 2) == [] and not redis_client.exists(keys.delivered("c1"))
    assert write(1)[-1] == 1
    assert store.pending_updates("c1", "r1", 2) == [PendingUpdate("r1:give", "c1", {"vip": True}, {"points": 5.0})]
    assert redis_client.hget(keys.delivered("c1"), "r1:hello") == "claimed:99.0"
    store.clear_pending("c1", "r1", 2)
    assert not redis_client.exists(keys.pending_updates("c1"))


def test_the_read_script_sees_the_same_live_runs_and_last_entries(redis_client: redis.Redis) -> None:
    """apply_event (Lua) and live_runs/last_entries/entry_state (Python) read the runs hash alike,
    for run ids that name their journey and for ones that do not; re_entry may keep two runs."""
    store = Store(redis_client)
    store.create_enrollment(waiting())
    store.create_enrollment(enrollment(1))
    later = waiting(run_id="welcome-fedcba9876543210").model_copy(update={"entered_at": NOW + timedelta(hours=1)})
    store.create_enrollment(later)
    state = store.apply_event("c1", "e1", lambda p: p)
    live = {"welcome-0123456789abcdef": "welcome", "r1": "welcome", "welcome-fedcba9876543210": "welcome"}
    assert state.live == store.live_runs("c1") == live
    assert state.last == store.last_entries("c1") == {"welcome": NOW + timedelta(hours=1)}
    store.save_profile(Profile(id="c1"))
    assert store.customers(["c1", "nobody"]) == {"c1": (Profile(id="c1"), live, state.last)}
    assert store.entry_state(["c1"]) == {"c1": (live, state.last)}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(run=stored_runs())
def test_any_run_round_trips_through_redis(redis_client: redis.Redis, run: Any) -> None:
    """What the compare-and-set script writes, get_enrollment reads back exactly, live or finished."""
    store = Store(redis_client)
    redis_client.flushdb()
    enrollment_, send, timer = run
    assert store.create_enrollment(enrollment_, send=send, timer=timer)
    expected_timer = None if enrollment_.finished else timer
    assert store.get_enrollment(enrollment_.customer_id, enrollment_.run_id) == StoredEnrollment(
        enrollment_, send, expected_timer
    )
    assert store.live_runs(enrollment_.customer_id) == (
        {} if enrollment_.finished else {enrollment_.run_id: enrollment_.journey_id}
    )


def test_live_runs_take_the_smallest_free_handle_and_keep_their_parts_apart(redis_client: redis.Redis) -> None:
    """Two live runs of one customer hold handles 1 and 2; when the first finishes its parts go with
    it, the next run takes handle 1 again, and the second run reads back untouched."""
    store = Store(redis_client)
    first = waiting().model_copy(update={"trigger": {"sku": "A"}, "outcomes": {"hello": "sent"}})
    second = waiting(run_id="welcome-fedcba9876543210").model_copy(update={"trigger": {"sku": "B"}})
    store.create_enrollment(first, timer=(1, 10.0))
    store.create_enrollment(second, timer=(1, 20.0))
    fields = redis_client.hgetall(keys.runs("c1"))
    assert fields[first.run_id].split("|")[1] == "1" and fields[second.run_id].split("|")[1] == "2"
    store.cas_enrollment(first.model_copy(update={"revision": 2, "status": "exited"}), expected=1, timer=None)
    assert not [name for name in redis_client.hkeys(keys.runs("c1")) if name.startswith("1|")]
    third = waiting(run_id="welcome-00000000000000ff").model_copy(update={"trigger_event_id": "e3"})
    store.create_enrollment(third)
    assert redis_client.hget(keys.runs("c1"), third.run_id).split("|")[1] == "1"  # type: ignore[union-attr]
    assert store.get_enrollments("c1", [second.run_id, third.run_id]) == [
        StoredEnrollment(second, None, (1, 20.0)),
        StoredEnrollment(third, None, None),
    ]


def test_an_event_triggered_run_after_a_send_stays_a_listpack(server_client: redis.Redis) -> None:
    """Trigger properties, the event's id, an earlier send's outcome and a pending send: each part
    under 64 bytes, so Redis' default settings keep the customer's hash a listpack throughout."""
    store = Store(server_client)
    run = waiting(run_id=run_id_for("replenishment", "c1", "0b7e2f4e-8d1c-4c57-9a51-2d0f3f1c9e11")).model_copy(
        update={
            "journey_id": "replenishment",
            "journey_version": "64989415ee29",
            "status": "sending",
            "step_id": "until_running_low",
            "wait_until": None,
            "trigger": {"order_id": "A1234", "total": 42.5},
            "trigger_event_id": "0b7e2f4e-8d1c-4c57-9a51-2d0f3f1c9e11",
            "outcomes": {"first_order_sms": "sent"},
            "sent": 1,
        }
    )
    send = SendAction("remind", ("email", "push"), "replenish_reminder", "defer", "c1", f"{run.run_id}:remind")
    store.create_enrollment(run, send=send, timer=(1, NOW.timestamp() + 60.0))
    assert server_client.object("encoding", keys.runs("c1")) == "listpack"
    due = NOW + timedelta(days=3)
    later = run.model_copy(update={"revision": 2, "status": "waiting", "wait_until": due, "sent": 2})
    store.cas_enrollment(later, expected=1, timer=(2, due.timestamp()))
    assert server_client.object("encoding", keys.runs("c1")) == "listpack"
    assert store.get_enrollment("c1", run.run_id) == StoredEnrollment(later, None, (2, due.timestamp()))


def test_profiles_are_written_only_over_the_json_that_was_read(redis_client: redis.Redis) -> None:
    """set_profiles creates an absent profile, replaces one still as read, and refuses one that changed."""
    store = Store(redis_client)
    redis_client.set(keys.profile("kept"), Profile(id="kept").model_dump_json(exclude={"consent"}))
    redis_client.set(keys.profile("moved"), '{"id": "moved"}')
    stamp = datetime(2026, 3, 2, tzinfo=UTC)
    written = store.set_profiles(
        [
            (Profile(id="new", created_at=stamp), ""),
            (Profile(id="kept", created_at=stamp), Profile(id="kept").model_dump_json(exclude={"consent"})),
            (Profile(id="moved", created_at=stamp), '{"id": "stale"}'),
        ]
    )
    assert written == [True, True, False]
    assert [(p.created_at if p else None) for p in (store.get_profile(c) for c in ("new", "kept", "moved"))] == [
        stamp,
        stamp,
        None,
    ]


def consent_log(client: redis.Redis, customer_id: str) -> list[tuple[str, str, str]]:
    entries: list[Any] = client.xrange(keys.consent_history(customer_id))  # type: ignore[assignment]
    return [(fields["channel"], fields["granted"], fields["source"]) for _id, fields in entries]


def test_a_profile_save_records_the_consent_it_changes_in_the_history(redis_client: redis.Redis) -> None:
    """Saving a profile writes its consent through the one writer: each channel it changes gets a
    history entry with the save's source; repeating the stored choice adds none; a channel the
    profile leaves out is kept, never erased."""
    store = Store(redis_client)
    store.save_profile(Profile(id="c1", consent={"email": True, "sms": False}), source="import")
    assert redis_client.hgetall(keys.consent("c1")) == {"email": "1", "sms": "0"}
    assert consent_log(redis_client, "c1") == [("email", "1", "import"), ("sms", "0", "import")]
    store.save_profile(Profile(id="c1", consent={"email": True}))
    assert len(consent_log(redis_client, "c1")) == 2
    store.save_profile(Profile(id="c1", consent={"email": False}))
    assert redis_client.hgetall(keys.consent("c1")) == {"email": "0", "sms": "0"}
    assert consent_log(redis_client, "c1")[-1] == ("email", "0", "profile")


def test_a_changed_profile_records_its_consent_change_with_the_history(redis_client: redis.Redis) -> None:
    """change_profile writes a consent change and its history entry in the profile's own MULTI, and
    returns what is stored; a change that leaves consent alone records nothing."""
    store = Store(redis_client)
    store.change_profile("c2", lambda p: p.model_copy(update={"email": "c2@example.test"}))
    assert consent_log(redis_client, "c2") == [] and not redis_client.exists(keys.consent("c2"))

    def grant_sms(profile: Profile) -> Profile:
        profile.consent = {"sms": True}
        return profile

    assert store.change_profile("c2", grant_sms, source="support").consent == {"sms": True}
    assert consent_log(redis_client, "c2") == [("sms", "1", "support")]
    stored = store.get_profile("c2")
    assert stored is not None and stored.email == "c2@example.test" and stored.consent == {"sms": True}


def test_the_store_has_no_consent_writer_without_history() -> None:
    """The history-less ``Store.set_consent`` is gone: consent changes go through the gate's writer."""
    assert not hasattr(Store, "set_consent")
