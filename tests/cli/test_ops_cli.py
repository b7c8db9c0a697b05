"""`loyaloop identify / track / import / status` against a real Redis, with a real worker thread."""

from __future__ import annotations

import json
from pathlib import Path

import dramatiq
import pytest
import redis
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.runtime.event_queue import BUG, INPUT, KEPT_ASIDE_DROPPED, EventQueue, encode
from orchestrator.store import Store, keys
from tests.runtime.harness import START, write_templates

JOURNEY = """\
id: hello
name: Hello
trigger:
  event: signup
category: transactional
goals:  # a goal makes each entry open the measurement window `status --customer` shows
  - event: signup
steps:
  - id: hello
    send: email
    template: hello
"""


@pytest.fixture
def env(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "journeys").mkdir()
    (tmp_path / "journeys" / "hello.yaml").write_text(JOURNEY, encoding="utf-8")
    write_templates(tmp_path / "templates", ["hello"])
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LOYALOOP_JOURNEYS", str(tmp_path / "journeys"))
    monkeypatch.setenv("LOYALOOP_TEMPLATES", str(tmp_path / "templates"))
    monkeypatch.setenv("LOYALOOP_OUTBOX", str(tmp_path / "outbox.jsonl"))
    monkeypatch.setenv("LOYALOOP_SECRET_KEY", "k" * 40)
    return tmp_path


def test_identify_track_and_status_from_the_command_line(env: Path) -> None:
    """identify and track queue work; a worker sends it; status shows the journey's counts."""
    runner = CliRunner()
    result = runner.invoke(cli, ["identify", "c1", "email=c1@example.com", "timezone=Europe/Amsterdam"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(cli, ["track", "c1", "signup", "--prop", "source=web", "--id", "evt-1"])
    assert result.exit_code == 0 and "evt-1" in result.output
    broker = dramatiq.get_broker()
    worker = dramatiq.Worker(broker, worker_threads=2, worker_timeout=50)
    worker.start()
    try:
        for queue in ("loyaloop-events", "loyaloop-deliveries"):
            broker.join(queue, timeout=20_000)
    finally:
        worker.stop()
    lines = (env / "outbox.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["customer_id"] for line in lines] == ["c1"]
    status = runner.invoke(cli, ["status"])
    assert status.exit_code == 0, status.output
    assert "hello" in status.output and "entered" in status.output and "timers:" in status.output
    assert "events: 0 queued, 0 kept aside" in status.output
    one = runner.invoke(cli, ["status", "--customer", "c1"])
    assert one.exit_code == 0, one.output
    assert "customer c1: not in the global control group (0 %)" in one.output
    assert "window hello-" in one.output and "arms treated" in one.output


def test_status_tells_the_global_control_group_and_a_customer_s_membership(env: Path) -> None:
    """``global_holdout`` in settings.yaml is shown by status; a member is told apart by id alone."""
    (env / "journeys" / "settings.yaml").write_text("global_holdout: 100\n", encoding="utf-8")
    runner = CliRunner()
    status = runner.invoke(cli, ["status"])
    assert status.exit_code == 0, status.output
    assert "global control group: 100 % of customers" in " ".join(status.output.split())
    one = runner.invoke(cli, ["status", "--customer", "anyone"])
    assert "customer anyone: IN the global control group (100 %)" in one.output


def test_status_shows_events_kept_aside_by_why_and_those_dropped(env: Path, redis_client: redis.Redis) -> None:
    """status tells bad input from bugs among the events ever kept aside, and shows how many the
    list's cap dropped, besides how many the list holds now."""
    queue = EventQueue(redis_client)
    queue.bury("r-1", "InputError", INPUT)
    queue.bury("r-2", "KeyError", BUG)
    queue.bury("r-3", "TypeError", BUG)
    redis_client.hincrby(keys.metrics_counters(), KEPT_ASIDE_DROPPED, 4)
    status = CliRunner().invoke(cli, ["status"])
    assert status.exit_code == 0, status.output
    assert f"events: 0 queued, 3 kept aside in {keys.dead_events()}" in status.output
    assert "kept aside in all: 1 bad input, 2 bug; 4 dropped (cap 10000)" in status.output


def test_a_bad_track_is_one_error_line(env: Path) -> None:
    """A malformed event name is refused with the field named, no traceback."""
    result = CliRunner().invoke(cli, ["track", "c1", "Not An Event"])
    assert result.exit_code != 0
    assert isinstance(result.exception, Exception) and "event name" in str(result.exception)


def test_import_reports_bad_lines(env: Path) -> None:
    """import takes the good lines, lists the bad ones by number, and exits 1 because it refused some
    (it used to exit 0); an identify line with "attributes": null is refused, as the docs require."""
    path = env / "events.jsonl"
    path.write_text(
        '{"customer_id": "c1", "event": "signup"}\nnot json\n'
        '{"type": "identify", "customer_id": "c2", "attributes": null}\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(cli, ["import", str(path), "--quiet"])
    assert result.exit_code == 1, result.output
    assert "imported 1 records, refused 2" in result.output and "line 2" in result.output
    assert "line 3: " in result.output and "'attributes' is required" in result.output
    path.write_text('{"customer_id": "c1", "event": "signup"}\n', encoding="utf-8")
    assert CliRunner().invoke(cli, ["import", str(path), "--quiet"]).exit_code == 0


def test_track_and_identify_take_key_value_typed_alike(env: Path, redis_client: redis.Redis) -> None:
    """`track anna signup source=web` used to fail with "unexpected extra argument"; both commands
    now take KEY=VALUE (and --prop, --json), typed the same way."""
    runner = CliRunner()
    args = ["n=42", "price=42.5", "gift=true", "day=2026-03-01", "at=2026-03-01T09:30:00+01:00", "code=007", "s=web"]
    result = runner.invoke(cli, ["track", "c1", "signup", *args, "--prop", "extra=1", "--json", '{"x": [1]}'])
    assert result.exit_code == 0, result.output
    [record] = [r for shard in range(16) for r in redis_client.lrange(keys.event_queue(shard), 0, -1)]
    expected = {"n": 42, "price": 42.5, "gift": True, "day": "2026-03-01", "at": "2026-03-01T09:30:00+01:00"}
    assert json.loads(record)[2] == {**expected, "code": "007", "s": "web", "extra": 1, "x": [1]}
    result = runner.invoke(cli, ["identify", "c1", *args, "--json", '{"consent": {"email": true}}'])
    assert result.exit_code == 0, result.output
    profile = Store(redis_client).get_profile("c1")
    assert profile is not None and profile.consent.get("email") is True
    assert {k: profile.attributes[k] for k in expected} == expected
    bad = runner.invoke(cli, ["track", "c1", "signup", "day=2026-02-30"])
    assert bad.exit_code != 0 and "day='2026-02-30' looks like a date but is not one" in str(bad.exception)


def test_track_and_identify_help_show_the_syntax_with_an_example() -> None:
    for command in ("track", "identify"):
        text = CliRunner().invoke(cli, [command, "--help"]).output
        assert "[KEY=VALUE]..." in text and "Example:" in text and "ISO dates" in text, text
    assert 'consent=\'{"email": true' in CliRunner().invoke(cli, ["identify", "--help"]).output


def test_status_shows_unknown_events_with_a_did_you_mean(env: Path) -> None:
    """A track of `order.deliverd` while no journey listens to it: status names it and suggests the
    catalogue's event (the walk-through saw only `events_handled: 1`)."""
    (env / "journeys" / "catalogue.yaml").write_text(
        "profile:\n  first_name: string\nevents:\n  signup: {}\n  order.delivered: {}\n", encoding="utf-8"
    )
    runner = CliRunner()
    assert runner.invoke(cli, ["track", "c1", "order.deliverd", "--id", "evt-1"]).exit_code == 0
    assert runner.invoke(cli, ["track", "c1", "order.deliverd", "--id", "evt-2"]).exit_code == 0
    broker = dramatiq.get_broker()
    worker = dramatiq.Worker(broker, worker_threads=1, worker_timeout=50)
    worker.start()
    try:
        broker.join("loyaloop-events", timeout=20_000)
    finally:
        worker.stop()
    status = runner.invoke(cli, ["status"])
    assert "unknown events (no journey listens): 'order.deliverd': 2 (did you mean 'order.delivered'?)" in status.output


def test_replay_events_queues_the_bugs_again_and_leaves_bad_input_unless_asked(
    env: Path, redis_client: redis.Redis
) -> None:
    """`loyaloop replay-events` puts events kept aside for a bug back on their shard (bad input only
    with --bad-input), takes them off the kept-aside list, and says how many."""
    queue = EventQueue(redis_client)
    queue.bury(encode("c1", "signup", {}, "ev-bug", START), "KeyError", BUG)
    queue.bury(encode("c2", "signup", {}, "ev-input", START), "InputError", INPUT)
    result = CliRunner().invoke(cli, ["replay-events"])
    assert result.exit_code == 0, result.output
    assert "queued 1 kept-aside event(s) again" in result.output
    assert queue.depth() == 1 and [e["kind"] for e in queue.kept_aside()] == ["input"]
    result = CliRunner().invoke(cli, ["replay-events", "--bad-input"])
    assert "queued 1 kept-aside event(s) again" in result.output and queue.dead() == 0 and queue.depth() == 2
