"""The exact measurement record in Redis: counted only by a compare-and-set that wins (one at a
time, or a cohort chunk's shapes times their winners), an event counted once, one shard per journey
version on a single Redis, summed back by ``version_figures`` (per-slot shards: test_figures_cluster)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import fakeredis
import pytest
import redis

from orchestrator.engine.enrollment import Enrollment
from orchestrator.engine.measuring import Hit, Tally, Window
from orchestrator.store import FigureArgs, Store, keys, lua
from orchestrator.store.figures import ONE_SHARD, decode_window, decode_windows, encode_window, slot_tag
from tests.runtime.harness import journey

NOW = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)


@pytest.fixture(params=["redis-server", "fakeredis"])
def store(request: pytest.FixtureRequest) -> Iterator[Store]:
    """Real redis-server and fakeredis (the embedded demo's): the scripts must count alike on both."""
    if request.param == "fakeredis":
        yield Store(fakeredis.FakeRedis(decode_responses=True))
        return
    client = redis.Redis.from_url(request.getfixturevalue("redis_url"), decode_responses=True)
    yield Store(client)
    client.close()


def run(customer_id: str, revision: int = 1) -> Enrollment:
    return Enrollment(
        run_id=f"welcome-{customer_id}",
        journey_id="welcome",
        journey_version="v1",
        customer_id=customer_id,
        status="waiting",
        entered_at=NOW,
        updated_at=NOW,
        revision=revision,
    )


def opened(customer_id: str) -> Window:
    entered = NOW.timestamp()
    return Window("welcome", "v1", ("treated",), "2026-03-02", entered, 86400.0, 86400.0, entered + 86400, "ab12")


def entry(customer_id: str) -> FigureArgs:
    counted = Tally(
        arms=(("treated", "2026-03-02", "entrants", 1),),
        steps=(("hello", "2026-03-02", "reached", 1),),
        window=opened(customer_id),
    )
    return FigureArgs.of(counted, f"welcome-{customer_id}")


def create(store: Store, customer_id: str, revision: int = 1, expected: int = -1) -> bool:
    enrollment = run(customer_id, revision)

    def write(pipe: object) -> None:
        store.index_figures(pipe, {store.figures_member(enrollment)})
        store.write_enrollment(pipe, enrollment, expected=expected, send=None, timer=None, figures=entry(customer_id))

    return bool(store.run(write)[-1])


def test_counts_are_written_only_by_a_compare_and_set_that_wins(store: Store) -> None:
    """The same entry stored twice (a redelivered trigger) and a stale move count nothing more."""
    assert create(store, "c1") and not create(store, "c1")
    assert not create(store, "c1", revision=5, expected=3)
    (found,) = store.version_figures("welcome")
    assert found.arm_totals()["treated"].entrants == 1
    assert found.step_totals() == {"hello": {"reached": 1}}
    assert list(store.open_windows("c1")) == ["welcome-c1"]
    assert store.live_runs("c1") == {"welcome-c1": "welcome"}  # the window is no live run
    if not isinstance(store.redis, fakeredis.FakeRedis):  # fakeredis does not model encodings
        assert store.redis.object("encoding", keys.runs("c1")) == "listpack"  # nor a cost beyond the hash


def test_an_event_is_counted_once_with_per_customer_sums_of_squares(store: Store) -> None:
    create(store, "c1")
    windows = store.open_windows("c1")
    at = NOW.timestamp() + 60

    def count(event_id: str, value: float) -> None:
        hit = Hit("welcome-c1", goal=True, value=value, order=True, order_value=value, nps=10)
        store.run(lambda pipe: store.measure_event(pipe, "c1", event_id, at, [hit], windows))

    count("e1", 3.0)
    count("e1", 3.0)  # redelivered: nothing more
    count("e2", 4.5)
    counts = store.version_figures("welcome")[0].arm_totals()["treated"]
    assert (counts.converters, counts.conversions, counts.revenue_sum) == (1, 2, 7.5)
    assert counts.revenue_sumsq == pytest.approx(7.5**2)  # one customer's 7.5, squared
    assert (counts.repeat_purchasers, counts.orders, counts.order_revenue_sumsq) == (1, 2, pytest.approx(56.25))
    assert (counts.nps_responses, counts.nps_promoters) == (1, 1)
    assert counts.converters_after_message == 0  # no message was delivered
    stored = store.open_windows("c1")["welcome-c1"]
    assert (stored.converted, stored.revenue, stored.orders, stored.nps_answered) == (True, 7.5, 2, True)


def test_on_one_redis_a_version_keeps_one_shard_and_older_slot_shards_still_count(store: Store) -> None:
    """A single Redis has no slots: every customer's counts go to the version's one shard, listed
    once.  Shards written per slot by earlier releases stay listed and are summed in."""
    assert not store.slotted
    ids = [f"cust-{n}" for n in range(40)]
    for customer_id in ids:
        assert store.figures_shard(run(customer_id)) == keys.figures(ONE_SHARD, "welcome", "v1")
        create(store, customer_id)
    assert store.redis.smembers(keys.figures_index()) == {f"welcome|v1|{ONE_SHARD}"}
    older = slot_tag("cust-0")
    store.redis.hincrby(keys.figures(older, "welcome", "v1"), "a|treated|2026-03-01|entrants", 2)
    store.redis.sadd(keys.figures_index(), f"welcome|v1|{older}")
    (found,) = store.version_figures()
    assert found.arm_totals()["treated"].entrants == 42


def chunk(store: Store, ids: list[str], figures: list[FigureArgs]) -> dict[str, int]:
    """Create a chunk of runs with their figures; each customer's reply (1 created, 0 existed)."""
    items = [(run(customer_id), None, None, "") for customer_id in ids]
    calls: list[list[int]] = []

    def write(pipe: Any) -> None:
        calls[:] = store.create_enrollments(pipe, items, None, figures)

    replies = store.run(write)[-len(calls) :]
    found: dict[str, int] = {}
    for call, oks in zip(calls, replies, strict=True):
        found.update((ids[index], ok) for index, ok in zip(call, oks, strict=True))
    return found


def shaped(arm: str, customer_id: str) -> FigureArgs:
    window = replace(opened(customer_id), arms=(arm,))
    counted = Tally(
        arms=((arm, "2026-03-02", "entrants", 1),),
        steps=(("hello", "2026-03-02", "reached", 1),),
        window=window,
    )
    return FigureArgs.of(counted, f"welcome-{customer_id}")


def test_a_chunk_adds_each_shape_once_times_the_entrants_whose_creation_won(store: Store) -> None:
    """A cohort chunk sends each distinct shape once; the script counts it for every entrant whose
    compare-and-set won and opens only their windows: a run that existed counts nothing again."""
    ids = [f"k{n}" for n in range(9)]
    assert create(store, "k0")  # k0 entered before, with its own counts
    figures = [shaped("holdout" if n % 3 == 0 else "treated", customer_id) for n, customer_id in enumerate(ids)]
    assert chunk(store, ids, figures) == {customer_id: int(customer_id != "k0") for customer_id in ids}
    assert chunk(store, ids, figures) == dict.fromkeys(ids, 0)  # the chunk redelivered
    (found,) = store.version_figures("welcome")
    arms = found.arm_totals()
    assert (arms["treated"].entrants, arms["holdout"].entrants) == (1 + 6, 2)  # k0 by create(), as treated
    assert found.step_totals() == {"hello": {"reached": 9}}
    assert [w.arms for w in (store.open_windows(c)["welcome-" + c] for c in ids)] == [("treated",)] + [
        ("holdout",) if n % 3 == 0 else ("treated",) for n in range(1, 9)
    ]


def test_a_shape_s_money_figures_are_added_once_per_entrant(store: Store) -> None:
    """Money is added by HINCRBYFLOAT once per entrant, as one at a time would (no entry carries
    any today; the scripts keep the rule all the same), counts by one HINCRBY times the entrants."""
    money = FigureArgs("a|treated|2026-03-02|revenue_sum\t2.5\na|treated|2026-03-02|converters\t1")
    assert chunk(store, ["m1", "m2", "m3"], [money] * 3) == {"m1": 1, "m2": 1, "m3": 1}
    (found,) = store.version_figures("welcome")
    treated = found.arm_totals()["treated"]
    assert (treated.converters, treated.revenue_sum) == (3, 7.5)


def test_a_window_round_trips_and_stays_short() -> None:
    """Whole seconds of entry and windows, the journey left out when the run id names it; under 64
    bytes with every slot of a converted, ordering, answering customer filled."""
    window = opened("c1")
    assert decode_window(encode_window(window, "welcome-c1"), "welcome-c1") == window
    assert decode_window(encode_window(window, "other"), "other") == window
    busy = replace(
        window,
        arms=("treated", "split:pick:a"),
        first_sent=window.entered + 3600,
        expires=window.entered + 3600 + 86400,
        converted=True,
        revenue=123.45,
        converted_after_message=True,
        orders=3,
        order_revenue=99.5,
        redeemed=True,
        nps_answered=True,
    )
    text = encode_window(busy, "welcome-0123456789abcdef")
    assert decode_windows({"welcome-0123456789abcdef": text}) == {"welcome-0123456789abcdef": busy}
    assert len(encode_window(window, "welcome-c1")) < 40 and len(text) < 80


@pytest.mark.parametrize(
    "moment",
    ["1970-01-01T00:00:00", "2000-02-29T23:59:59", "2024-12-31T12:00:00", "2026-03-01T00:00:00", "2100-03-01T00:00:01"],
)
def test_the_scripts_file_counts_under_the_same_utc_day_as_python(store: Store, moment: str) -> None:
    """The event script names the entry day itself (a window keeps only the entry second)."""
    source = lua.source("orchestrator.store.scripts", "lib_figures") + "return day_of(tonumber(ARGV[1]))"
    at = datetime.fromisoformat(moment).replace(tzinfo=UTC)
    assert store.redis.eval(source, 0, int(at.timestamp())) == at.date().isoformat()


def test_a_reading_costs_two_round_trips_and_reads_a_stored_version_once(store: Store) -> None:
    """Every shard of every version comes back in one round trip after the index's; a stored
    version's outline (name, category, holdout, steps) is read with the first reading only, and
    revenue sums keep their fractions while counts stay integers."""
    welcome = journey(
        {
            "id": "welcome",
            "name": "Welcome",
            "trigger": {"event": "signup"},
            "holdout": 10,
            "steps": [{"id": "hello", "send": "email", "template": "hello"}, {"id": "bye", "wait": "1d"}],
        }
    )
    store.save_journey(welcome)
    for customer_id in ("c1", "c2", "c3"):
        enrollment = run(customer_id).model_copy(update={"journey_version": welcome.version})
        window = replace(opened(customer_id), version=welcome.version)
        counted = Tally(arms=(("treated", "2026-03-02", "entrants", 1),), window=window)

        def write(pipe: object, enrollment: Enrollment = enrollment, counted: Tally = counted) -> None:
            store.index_figures(pipe, {store.figures_member(enrollment)})
            store.write_enrollment(
                pipe, enrollment, expected=-1, send=None, timer=None, figures=FigureArgs.of(counted, enrollment.run_id)
            )

        store.run(write)
    hit = Hit("welcome-c1", goal=True, value=2.25)
    windows = store.open_windows("c1")
    store.run(lambda pipe: store.measure_event(pipe, "c1", "e1", NOW.timestamp() + 60, [hit], windows))
    older = slot_tag("c9")  # a shard of an earlier release's per-slot layout: read in the same trip
    store.redis.hincrby(keys.figures(older, "welcome", welcome.version), "a|treated|2026-03-01|entrants", 1)
    store.redis.sadd(keys.figures_index(), f"welcome|{welcome.version}|{older}")
    trips: list[int] = []
    original = store.run

    def counting(build: object) -> list[object]:
        trips.append(1)
        return original(build)  # type: ignore[arg-type]

    store.run = counting  # type: ignore[method-assign]
    (found,) = store.version_figures()
    assert len(trips) == 2 and len(store.redis.smembers(keys.figures_index())) == 2
    assert (found.name, found.category, found.holdout_percent, found.step_order) == (
        "Welcome",
        "marketing",
        10.0,
        ["hello", "bye"],
    )
    totals = found.arm_totals()["treated"]
    assert (totals.entrants, totals.converters, totals.revenue_sum) == (4, 1, 2.25)
    assert isinstance(totals.entrants, int)
    store.redis.delete(keys.journey_version("welcome", welcome.version))
    (again,) = store.version_figures()
    assert again.name == "Welcome" and again.arm_totals() == found.arm_totals()
