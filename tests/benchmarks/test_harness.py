"""The harness's verdicts, its table and how it picks a scenario's implementation."""

from __future__ import annotations

import sys
import time
import types

import pytest

from tests.benchmarks import harness
from tests.benchmarks.harness import Figure, Scenario


def test_ratio_targets_compare_value_to_the_same_run_baseline() -> None:
    """``ratio>=`` passes when value / baseline reaches the target, and fails (not crashes) without a baseline."""
    assert Figure("s", "f", 60, "x/s", 100, "no-op", 0.5, "ratio>=").passed is True
    assert Figure("s", "f", 40, "x/s", 100, "no-op", 0.5, "ratio>=").passed is False
    assert Figure("s", "f", 40, "x/s", None, "", 0.5, "ratio>=").passed is False
    assert Figure("s", "f", 1.2, "MiB", 1.0, "idle", 1.25, "ratio<=").passed is True


def test_absolute_targets_and_information_only_figures() -> None:
    """``<=``/``>=`` compare the value itself; a figure without a target has no verdict."""
    assert Figure("s", "p99", 0.9, "s", target=1.0, compare="<=").passed is True
    assert Figure("s", "p99", 1.1, "s", target=1.0, compare="<=").passed is False
    assert Figure("s", "rate", 30_000, "/s", target=20_000, compare=">=").passed is True
    assert Figure("s", "bytes", 142, "B").passed is None
    assert Figure("s", "f", 1, "x", 1, "b", 5.0, "ratio>=").target_text() == ">= 5x baseline"


def test_markdown_table_shows_value_baseline_ratio_target_and_verdict() -> None:
    """One row per figure, with the failing ones in bold and a scenario error on its own row."""
    good = harness.Outcome(
        harness.SCENARIOS[0], "here", [Figure("caps", "rate", 34_166, "d/s", 20_603, "INCR/s", 30_000, ">=")]
    )
    broken = harness.Outcome(harness.SCENARIOS[1], "here", error="TypeError: boom")
    text = harness.markdown([good, broken])
    assert "| caps | rate | 34,166 d/s | 20,603 INCR/s | 1.66x | >= 30,000 d/s | pass |" in text
    assert "error: TypeError: boom" in text


def test_an_area_module_is_used_only_when_it_takes_quick(monkeypatch: pytest.MonkeyPatch) -> None:
    """The area's own ``run(quick, …)`` wins; a function of that name with another signature falls back."""
    module = types.ModuleType("tests.benchmarks._fake_area")

    def run(quick: bool, redis_url: str | None = None) -> list[Figure]:
        return []

    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    chosen, source = Scenario("x", "x", (module.__name__, "run"), ("tests.benchmarks.scenarios_caps", "run")).resolve()
    assert chosen is run and source == f"{module.__name__}.run"

    def other(*, workers: int) -> None:
        return None

    module.run = other  # type: ignore[attr-defined]
    chosen, source = Scenario("x", "x", (module.__name__, "run"), ("tests.benchmarks.scenarios_caps", "run")).resolve()
    assert source == "tests.benchmarks.scenarios_caps.run"


def test_the_redis_url_is_passed_only_to_scenarios_that_accept_it() -> None:
    """Area modules that start their own Redis are called with ``quick`` alone."""
    seen: list[tuple[object, ...]] = []

    def with_url(quick: bool, redis_url: str | None = None) -> list[Figure]:
        seen.append((quick, redis_url))
        return []

    def without(quick: bool) -> list[Figure]:
        seen.append((quick,))
        return []

    harness.call(with_url, True, "redis://x")
    harness.call(without, False, "redis://x")
    assert seen == [(True, "redis://x"), (False,)]


def _fake_scenarios(monkeypatch: pytest.MonkeyPatch, missed: bool = False) -> None:
    """Two scenarios: one measuring (passing, or missing its target), one needing a tool not installed."""
    module = types.ModuleType("tests.benchmarks._fake_scenarios")

    def measures(quick: bool, redis_url: str | None = None) -> list[Figure]:
        return [Figure("fast", "rate", 5 if missed else 50, "x/s", target=10, compare=">=")]

    def needs_a_tool(quick: bool) -> list[Figure]:
        harness.require_tool("loyaloop-no-such-tool", "apt-get install it")
        raise AssertionError("not reached")

    module.measures = measures  # type: ignore[attr-defined]
    module.needs_a_tool = needs_a_tool  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(
        harness,
        "SCENARIOS",
        (
            Scenario("fast", "a measured one", None, (module.__name__, "measures")),
            Scenario("wrk", "a tool missing", None, (module.__name__, "needs_a_tool")),
        ),
    )


def test_a_missing_tool_is_a_skip_and_the_table_still_prints(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """The walk-through lost a minute of figures to `wrk is not installed` and exit 1 with no table."""
    from tests.benchmarks.__main__ import main

    _fake_scenarios(monkeypatch)
    assert main(["--quick"]) == harness.EXIT_SKIPPED
    out = capsys.readouterr().out
    assert "rate" in out and "pass" in out  # the measured scenario's row
    assert "skipped wrk: loyaloop-no-such-tool is not installed (apt-get install it" in out
    assert main(["--quick", "--allow-skips"]) == harness.EXIT_OK
    _fake_scenarios(monkeypatch, missed=True)
    assert main(["--quick", "--allow-skips"]) == harness.EXIT_FAILED  # a failed target is 1 whatever the skips


def test_without_redis_every_scenario_is_skipped_not_lost(monkeypatch: pytest.MonkeyPatch) -> None:
    import tests.redis_server

    class NoRedis:
        def start(self) -> None:
            raise RuntimeError("redis-server is not installed; run `bash tests/run.sh` (it installs it)")

    _fake_scenarios(monkeypatch)
    monkeypatch.setattr(tests.redis_server, "RedisServer", NoRedis)
    outcomes = harness.run_all(None, True, log=lambda line: None)
    assert [o.skipped.startswith("no Redis: redis-server is not installed") for o in outcomes] == [True, True]
    assert harness.exit_status(outcomes) == harness.EXIT_SKIPPED
    assert "| fast | a measured one | | | | | skipped: no Redis" in harness.markdown(outcomes)


def test_a_scenario_that_exits_is_an_error_row_not_the_end_of_the_run(monkeypatch: pytest.MonkeyPatch) -> None:
    module = types.ModuleType("tests.benchmarks._exits")

    def exits(quick: bool) -> list[Figure]:
        raise SystemExit("boom")

    module.exits = exits  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, module.__name__, module)
    monkeypatch.setattr(harness, "SCENARIOS", (Scenario("x", "exits", None, (module.__name__, "exits")),))
    [outcome] = harness.run_all(None, True, log=lambda line: None)
    assert outcome.error == "SystemExit: boom" and harness.exit_status([outcome]) == harness.EXIT_FAILED


def test_the_cluster_scenario_sets_the_cluster_beside_one_redis_at_a_tiny_size(redis_url: str) -> None:
    """Both set-ups measured in one run: rates and CPU per event and per entrant, one Redis the baseline."""
    from tests.benchmarks import scenarios_cluster

    assert [s.name for s in harness.SCENARIOS if s.name == "cluster"] == ["cluster"]
    figures = scenarios_cluster.run(True, redis_url=redis_url, size=40, warm_up=5)
    by_name = {figure.name: figure for figure in figures}
    for name in (
        "events drained",
        "worker CPU per event (drain)",
        "state Redis CPU per event (intake + drain, all primaries)",
        "cohort entered",
        "worker CPU per cohort entrant",
        "state Redis CPU per cohort entrant",
    ):
        figure = next(figure for figure in figures if figure.name.startswith(name))
        assert figure.value > 0 and figure.baseline is not None and figure.baseline > 0, name
        assert figure.baseline_name == "one Redis" and figure.passed is None
    assert 100 / 3 - 1 <= by_name["busiest primary's share of the state CPU"].value <= 100
    assert "| cluster | cohort entered, 40 customers |" in harness.markdown(
        [harness.Outcome(harness.SCENARIOS[0], "here", figures)]
    )


def test_pipelined_incr_is_the_physical_limit_a_round_trip_loop_is_not(redis_url: str) -> None:
    """The event path's Redis CPU is set against pipelined INCR's: a few µs of Redis CPU per call."""
    import redis

    from tests.benchmarks.scenarios_runtime import pipelined_incr

    rate, redis_us = pipelined_incr(redis_url, 20_000)
    assert 0 < redis_us < 10
    client = redis.Redis.from_url(redis_url)
    started = time.perf_counter()
    for _ in range(2_000):
        client.incr("loop")
    client.close()
    assert rate > 2 * 2_000 / (time.perf_counter() - started)
