"""`loyaloop doctor`: each check with a passing and a failing case, against a real redis-server."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import redis
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.cli.doctor import (
    Check,
    broker_check,
    dead_letter_check,
    queue_checks,
    redis_checks,
    run_checks,
    voucher_checks,
)
from orchestrator.language.vouchers import VoucherPool
from orchestrator.runtime.event_queue import BUG, EventQueue
from orchestrator.settings import Settings, load_settings
from orchestrator.store import Store, keys
from orchestrator.store.connect import open_redis
from orchestrator.store.vouchers import Vouchers
from orchestrator.workers.actors import QUEUES as QUEUE_NAMES
from tests.redis_server import free_port
from tests.runtime.harness import write_templates

PROVIDER_VARIABLES = (
    "SENDGRID_API_KEY",
    "TWILIO_ACCOUNT_SID",
    "FCM_SERVICE_ACCOUNT_JSON",
    "GOOGLE_APPLICATION_CREDENTIALS",
)
JOURNEY = """\
id: hello
name: Hello
trigger: {event: signup}
category: transactional
steps:
  - {id: hello, send: email, template: hello}
"""


@pytest.fixture
def env(redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "journeys").mkdir()
    (tmp_path / "journeys" / "hello.yaml").write_text(JOURNEY, encoding="utf-8")
    write_templates(tmp_path / "templates", ["hello"])
    for name, value in {
        "REDIS_URL": redis_url,
        "LOYALOOP_JOURNEYS": str(tmp_path / "journeys"),
        "LOYALOOP_TEMPLATES": str(tmp_path / "templates"),
        "LOYALOOP_OUTBOX": str(tmp_path / "outbox.jsonl"),
    }.items():
        monkeypatch.setenv(name, value)
    for name in (
        "SENDGRID_API_KEY",
        "TWILIO_ACCOUNT_SID",
        "FCM_SERVICE_ACCOUNT_JSON",
        "GOOGLE_APPLICATION_CREDENTIALS",
    ):
        monkeypatch.delenv(name, raising=False)
    return tmp_path


def _by_name(checks: list[Check]) -> dict[str, Check]:
    return {check.name: check for check in checks}


def test_redis_reachable_with_its_version_and_unreachable(redis_client: redis.Redis) -> None:
    found = _by_name(redis_checks(redis_client))
    assert found["redis"].status == "ok" and "version " in found["redis"].detail
    dead = redis.Redis(port=free_port(), socket_connect_timeout=1)
    [check] = redis_checks(dead)
    assert check.status == "fail" and "cannot reach Redis" in check.detail


def test_aof_off_is_a_warning_and_on_is_ok(redis_client: redis.Redis) -> None:
    assert _by_name(redis_checks(redis_client))["persistence"].status == "warn"
    redis_client.config_set("appendonly", "yes")
    try:
        deadline = time.monotonic() + 10
        while int(redis_client.info("persistence").get("aof_rewrite_in_progress", 0)) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _by_name(redis_checks(redis_client))["persistence"] == Check("persistence", "ok", "AOF on")
    finally:
        redis_client.config_set("appendonly", "no")


def test_clock_skew_against_redis_time(redis_client: redis.Redis) -> None:
    assert _by_name(redis_checks(redis_client))["clock"].status == "ok"
    ahead = _by_name(redis_checks(redis_client, now=lambda: time.time() + 2))["clock"]
    assert ahead.status == "warn" and "ahead of Redis" in ahead.detail
    behind = _by_name(redis_checks(redis_client, now=lambda: time.time() - 30))["clock"]
    assert behind.status == "fail" and "behind Redis" in behind.detail and "NTP" in behind.detail


def test_the_broker_reachable_and_not(redis_url: str) -> None:
    assert broker_check(Settings(redis_url=redis_url))[0].status == "ok"
    url = f"redis://127.0.0.1:{free_port()}/0?socket_connect_timeout=1"
    assert broker_check(Settings(redis_url=url))[0].status == "fail"


def test_dead_letters_are_read_where_the_queue_lives_in_its_namespace(redis_url: str, tmp_path: Path) -> None:
    """A queue on a Redis of its own (``LOYALOOP_BROKER_URL``) under a namespace: the dead letters
    are read there, under that namespace's queue names, not on the state Redis."""
    queue_url = f"{redis_url.rsplit('/', 1)[0]}/2"
    queue = redis.Redis.from_url(queue_url, decode_responses=True)
    queue.flushdb()
    settings = Settings(redis_url=redis_url, broker_url=queue_url, namespace="brand2")
    check, dead = broker_check(settings)
    assert (
        check.status == "ok" and "Redis queue broker" in check.detail and "loyaloop-brand2-deliveries" in check.detail
    )
    assert sum(dead.values()) == 0
    queue.zadd("loyaloop-brand2:loyaloop-brand2-deliveries.XQ", {"m1": 1, "m2": 2})
    _check, dead = broker_check(settings)
    assert dead["loyaloop-brand2-deliveries"] == 2
    assert "loyaloop-brand2-deliveries=2" in dead_letter_check(dead).detail
    queue.close()


def test_dead_letters_on_rabbitmq(redis_url: str, rabbitmq_server: Any) -> None:
    """With RabbitMQ as the queue the broker's own dead-letter queues are counted (the Redis keys
    the Redis broker uses do not exist there)."""
    settings = Settings(redis_url=redis_url, broker_url=rabbitmq_server.url)
    check, dead = broker_check(settings)
    assert check.status == "ok" and check.detail.startswith("RabbitMQ queue broker"), check
    assert set(dead) == set(QUEUE_NAMES) and sum(dead.values()) == 0
    down = Settings(redis_url=redis_url, broker_url=f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F")
    refused = broker_check(down)[0]
    assert refused.status == "fail" and "Traceback" not in refused.detail


def test_queues_clean_then_stalled_dead_lettered_kept_aside_and_unknown(env: Path, redis_client: redis.Redis) -> None:
    settings = load_settings()
    store = Store(redis_client)
    clean = _by_name(queue_checks(redis_client, store, settings))
    assert dead_letter_check(broker_check(settings)[1]).status == "ok"
    assert {name: check.status for name, check in clean.items()} == {
        "event shards": "ok",
        "kept aside": "ok",
        "unknown events": "ok",
    }
    redis_client.rpush(keys.event_queue(3), "{}")  # events in a shard nobody drains
    redis_client.zadd("loyaloop:loyaloop-deliveries.XQ", {"m1": 1})
    EventQueue(redis_client).bury("r", "KeyError", BUG)
    redis_client.hset(keys.unknown_events(), "signup", 2)
    found = _by_name(queue_checks(redis_client, store, settings))
    assert found["event shards"].status == "warn" and "shards [3]" in found["event shards"].detail
    dead = dead_letter_check(broker_check(settings)[1])
    assert dead.status == "warn" and "loyaloop-deliveries=1" in dead.detail
    assert found["kept aside"].status == "warn" and found["kept aside"].detail.startswith("1 events kept aside")
    assert found["unknown events"].status == "warn" and "'signup': 2" in found["unknown events"].detail
    redis_client.set(keys.event_drain(3), "queued")  # a drain is on its way: pending, not stalled
    assert _by_name(queue_checks(redis_client, store, settings))["event shards"].status == "ok"


def test_journeys_and_channels_valid_and_not(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    found = run_checks(load_settings())
    names = _by_name(found)
    assert names["journeys"].status == "ok" and "hello@" in names["journeys"].detail
    assert names["channel email"] == Check("channel email", "ok", "outbox file")
    assert not [check for check in found if check.status == "fail"]
    monkeypatch.setenv("SENDGRID_API_KEY", "SG.x")
    (env / "journeys" / "hello.yaml").write_text(JOURNEY.replace("hello}", "helo}"), encoding="utf-8")
    failed = [check.detail for check in run_checks(load_settings()) if check.status == "fail"]
    assert any("LOYALOOP_EMAIL_FROM" in detail for detail in failed), failed
    assert any("'helo'" in detail for detail in failed), failed


def test_the_command_exits_0_or_1_and_speaks_json(env: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["doctor", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["ok"] is True and {"redis", "clock", "broker", "event shards"} <= {
        c["name"] for c in report["checks"]
    }
    (env / "journeys" / "hello.yaml").write_text("id: [", encoding="utf-8")
    result = runner.invoke(cli, ["doctor"])
    assert result.exit_code == 1
    assert "FAIL  config:" in result.output and "hello.yaml:1:" in result.output


def test_doctor_without_redis_url_fails_in_one_line_and_no_traceback(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    env["PYTHONPATH"] = os.getcwd()
    result = subprocess.run(
        [sys.executable, "-c", "from orchestrator.cli import main; main()", "doctor"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert "FAIL  config: REDIS_URL is not set" in result.stdout and "Traceback" not in result.stderr


def test_voucher_pools_full_low_and_empty(redis_client: redis.Redis) -> None:
    """A pool with enough codes is ok; below its low_stock a warning; empty a failure, or a warning
    when a fallback code covers it; generated pools have no stock to check."""
    settings = Settings(
        vouchers={
            "full": VoucherPool(low_stock=2),
            "low": VoucherPool(low_stock=5),
            "empty": VoucherPool(),
            "covered": VoucherPool(fallback_code="WELCOME10"),
            "made": VoucherPool(kind="generated"),
        }
    )
    Vouchers(redis_client).load("full", ["F-1", "F-2", "F-3"])
    Vouchers(redis_client).load("low", ["L-1"])
    found = {check.name: check for check in voucher_checks(redis_client, settings)}
    assert {name: check.status for name, check in found.items()} == {
        "vouchers covered": "warn",
        "vouchers empty": "fail",
        "vouchers full": "ok",
        "vouchers low": "warn",
    }
    assert "loyaloop vouchers load low FILE" in found["vouchers low"].detail


def test_an_action_endpoint_without_its_url_fails_the_report_in_one_line(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """doctor reports what would stop a worker: the journey, step, endpoint and variable to set."""
    (env / "journeys" / "credit.yaml").write_text(
        "id: credit\nname: Credit\ntrigger: {event: review.posted}\ncategory: transactional\nsteps:\n"
        '  - {id: give_points, action: ledger, body: {customer: "{{ profile.id }}"}}\n',
        encoding="utf-8",
    )
    (env / "journeys" / "settings.yaml").write_text(
        "endpoints:\n  ledger: {kind: webhook, url_env: SHOP_LEDGER_URL, secret_env: SHOP_LEDGER_SECRET}\n",
        encoding="utf-8",
    )
    monkeypatch.delenv("SHOP_LEDGER_URL", raising=False)
    monkeypatch.setenv("SHOP_LEDGER_SECRET", "x" * 40)
    failed = [check for check in run_checks(load_settings()) if check.status == "fail"]
    assert [check.name for check in failed] == ["config"]
    assert failed[0].detail.startswith("journey 'credit' step 'give_points' calls endpoint 'ledger'")
    assert "export SHOP_LEDGER_URL=" in failed[0].detail
    monkeypatch.setenv("SHOP_LEDGER_URL", "https://shop.example/ledger")
    assert not [check for check in run_checks(load_settings()) if check.status == "fail"]


def test_on_a_cluster_every_event_shard_is_checked(cluster_url: str, redis_url: str) -> None:
    """A cluster has 64 event shards by default, not one Redis' 16: a stalled shard past the
    sixteenth is found too, and the queue's dead letters are read on its own broker."""
    settings = Settings(redis_url=cluster_url, broker_url=redis_url)
    client = open_redis(settings)
    try:
        client.rpush(keys.event_queue(40), "{}")
        found = _by_name(queue_checks(client, Store(client), settings))
        assert found["event shards"].status == "warn" and "shards [40]" in found["event shards"].detail
        assert broker_check(settings)[0].status == "ok"
    finally:
        client.close()
