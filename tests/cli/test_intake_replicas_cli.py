"""``loyaloop track`` / ``import`` / ``doctor`` with ``LOYALOOP_INTAKE_REPLICAS``, on a real master
and its real replica: accepted once the replica has the events, a one-line error and exit 1 when it
does not confirm in time, no ``WAIT`` at all when the setting is off, and bad values refused."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import redis

from orchestrator.cli import main
from orchestrator.cli.doctor import replica_check
from orchestrator.runtime.event_queue import PUSH_SCRIPT, EventQueue, decode
from orchestrator.settings import Settings
from orchestrator.store import keys
from orchestrator.store.connect import cluster_client
from tests.cluster_server import RedisClusterServers
from tests.replicated_server import ReplicatedRedis


@pytest.fixture
def env(replicated: ReplicatedRedis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ReplicatedRedis:
    (tmp_path / "journeys").mkdir()
    monkeypatch.setenv("REDIS_URL", replicated.url)
    monkeypatch.setenv("LOYALOOP_JOURNEYS", str(tmp_path / "journeys"))
    monkeypatch.setenv("LOYALOOP_OUTBOX", str(tmp_path / "outbox.jsonl"))
    monkeypatch.setenv("LOYALOOP_INTAKE_REPLICAS", "1")
    monkeypatch.setenv("LOYALOOP_INTAKE_REPLICA_TIMEOUT_MS", "200")
    master = redis.Redis.from_url(replicated.url)
    master.script_load(PUSH_SCRIPT)  # a first NOSCRIPT would send the push, and its WAIT, twice
    master.close()
    replicated.flush()
    return replicated


def replica_ids(servers: ReplicatedRedis, customer_id: str) -> list[str]:
    replica = redis.Redis.from_url(servers.replica.url, decode_responses=True)
    shard = EventQueue(replica).shard_of(customer_id)
    ids = [decode(raw).event_id for raw in replica.lrange(keys.event_queue(shard), 0, -1)]
    replica.close()
    return ids


def test_track_is_accepted_once_the_replica_has_it(env: ReplicatedRedis, capsys: pytest.CaptureFixture[str]) -> None:
    main(["track", "c1", "signup", "--id", "evt-1"])
    assert "evt-1" in capsys.readouterr().out
    assert replica_ids(env, "c1") == ["evt-1"]
    assert env.waits() == 1


def test_track_with_the_setting_off_sends_no_wait(
    env: ReplicatedRedis, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("LOYALOOP_INTAKE_REPLICAS")
    main(["track", "c1", "signup", "--id", "evt-1"])
    assert "evt-1" in capsys.readouterr().out
    assert env.waits() == 0


def test_track_the_replica_does_not_confirm_is_one_line_and_exit_1(
    env: ReplicatedRedis, capsys: pytest.CaptureFixture[str]
) -> None:
    with env.frozen():
        started = time.monotonic()
        with pytest.raises(SystemExit) as stopped:
            main(["track", "c1", "signup"])
        elapsed = time.monotonic() - started
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: the write reached Redis but 0 of the 1 replica(s)")
    assert "may or may not have been kept" in err and "(event id " in err
    assert 0.2 <= elapsed < 5.0  # the timeout, plus the command's own start-up


def test_import_is_accepted_with_one_wait_per_chunk_and_stops_with_the_line_to_resume_from(
    env: ReplicatedRedis, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "events.jsonl"
    lines = [{"customer_id": f"c{n}", "event": "signup", "event_id": f"e{n}"} for n in range(30)]
    path.write_text("".join(json.dumps(line) + "\n" for line in lines), encoding="utf-8")
    main(["import", str(path), "--quiet"])
    assert "imported 30 records, refused 0" in capsys.readouterr().out
    assert all(replica_ids(env, f"c{n}").count(f"e{n}") == 1 for n in range(30))  # (customers share shards)
    assert env.waits() == 1
    with env.frozen(), pytest.raises(SystemExit) as stopped:
        main(["import", str(path), "--quiet"])
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("error: import stopped: the 30 event(s) from line 1 on are not confirmed")


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("LOYALOOP_INTAKE_REPLICAS", "-1"),
        ("LOYALOOP_INTAKE_REPLICAS", "one"),
        ("LOYALOOP_INTAKE_REPLICA_TIMEOUT_MS", "0"),
    ],
)
def test_a_bad_value_is_refused_at_start_in_one_line(
    env: ReplicatedRedis,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    variable: str,
    value: str,
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SystemExit) as stopped:
        main(["track", "c1", "signup"])
    assert stopped.value.code == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"error: {variable}={value!r} is not")
    assert env.waits() == 0


def test_doctor_fails_when_a_master_has_fewer_replicas_than_asked(replicated: ReplicatedRedis) -> None:
    client = redis.Redis.from_url(replicated.url, decode_responses=True)
    on = replica_check(client, Settings(intake_replicas=1))
    too_many = replica_check(client, Settings(intake_replicas=2))
    off = replica_check(client, Settings())
    alone = redis.Redis.from_url(replicated.replica.url, decode_responses=True)  # a Redis with no replica
    nobody = replica_check(alone, Settings(intake_replicas=1))
    client.close()
    alone.close()
    assert (on.status, too_many.status, off.status, nobody.status) == ("ok", "fail", "ok", "fail")
    assert "the Redis has 1 online" in too_many.detail and "LOYALOOP_INTAKE_REPLICAS=2" in too_many.detail
    assert off.detail.startswith("off (LOYALOOP_INTAKE_REPLICAS=0; every master has 1 or more")


def test_doctor_reads_every_master_of_a_cluster(replicated_cluster: RedisClusterServers) -> None:
    client = cluster_client(replicated_cluster.url, decode_responses=True)
    try:
        ok = replica_check(client, Settings(intake_replicas=1))
        short = replica_check(client, Settings(intake_replicas=2))
    finally:
        client.close()
    assert ok.status == "ok" and "every master has 1 or more online" in ok.detail
    assert short.status == "fail"
    for node in replicated_cluster.primaries():  # each master named with what it lacks
        assert f"127.0.0.1:{node.port} has 1" in short.detail
