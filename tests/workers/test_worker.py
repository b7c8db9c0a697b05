"""Real `dramatiq orchestrator.worker` processes: a SIGKILLed worker's runs finish, with no loss and
no duplicate, checked from the outbox."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import pytest
import redis

from orchestrator.settings import load_settings
from orchestrator.workers.scheduler import Scheduler
from tests.runtime.harness import write_templates

JOURNEY = """\
id: kill
name: Kill drill
trigger:
  event: signup
category: transactional
steps:
  - id: hello
    send: email
    template: hello
  - id: pause
    wait: 2s
  - id: tips
    send: email
    template: tips
"""


def _environment(redis_url: str, tmp_path: Path) -> dict[str, str]:
    (tmp_path / "journeys").mkdir()
    (tmp_path / "journeys" / "kill.yaml").write_text(JOURNEY, encoding="utf-8")
    write_templates(tmp_path / "templates", ["hello", "tips"])
    env = dict(os.environ)
    env.update(
        REDIS_URL=redis_url,
        LOYALOOP_JOURNEYS=str(tmp_path / "journeys"),
        LOYALOOP_TEMPLATES=str(tmp_path / "templates"),
        LOYALOOP_OUTBOX=str(tmp_path / "outbox.jsonl"),
        LOYALOOP_SECRET_KEY="k" * 40,
        LOYALOOP_HEARTBEAT_MS="1500",
        LOYALOOP_MAINTENANCE_CHANCE="200000",
        LOYALOOP_TIMER_LEASE="3",
        LOYALOOP_SEND_LEASE="3",
    )
    return env


def _worker(env: dict[str, str]) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "dramatiq", "orchestrator.worker", "-p", "1", "-t", "4"]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )


def _outbox(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


@pytest.mark.slow
def test_a_sigkilled_workers_runs_complete_without_loss_or_duplicates(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kill the only worker mid-way; a fresh worker and the scheduler's leases finish every run once."""
    env = _environment(redis_url, tmp_path)
    for name in ("REDIS_URL", "LOYALOOP_JOURNEYS", "LOYALOOP_TEMPLATES", "LOYALOOP_OUTBOX", "LOYALOOP_SECRET_KEY"):
        monkeypatch.setenv(name, env[name])
    from orchestrator.workers.client import connect

    client = connect(load_settings())
    runtime = client.nudges.runtime
    stop = threading.Event()
    scheduler = Scheduler(
        runtime,
        client.nudges.fire_timers.send,
        client.nudges.enter_batch.send,
        drain_events=client.nudges.drain_events.send,
    )
    thread = threading.Thread(target=scheduler.run_forever, args=(stop,), kwargs={"idle": 0.05}, daemon=True)
    thread.start()
    first = _worker(env)
    second: subprocess.Popen[bytes] | None = None
    customers = [f"c{n}" for n in range(40)]
    try:
        for cid in customers:
            client.identify(cid, {"email": f"{cid}@example.com"})
            client.track(cid, "signup")
        outbox = tmp_path / "outbox.jsonl"
        deadline = time.monotonic() + 30
        while len(_outbox(outbox)) < 10 and time.monotonic() < deadline:
            time.sleep(0.05)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait()
        second = _worker(env)
        deadline = time.monotonic() + 60
        while len(_outbox(outbox)) < 2 * len(customers) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(1.0)  # anything re-driven late would show up now
        sent = Counter((m["customer_id"], m["step_id"]) for m in _outbox(outbox))
        assert set(sent) == {(cid, step) for cid in customers for step in ("hello", "tips")}
        assert max(sent.values()) == 1
    finally:
        stop.set()
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                process.wait(timeout=20)


def _import_worker(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    code = "import orchestrator.worker"
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)


MARKETING = JOURNEY.replace("category: transactional\n", "")


def test_a_worker_refuses_to_start_without_the_signing_secret(redis_url: str, tmp_path: Path) -> None:
    """The runtime is built on the first message, so a missing secret used to fail every message
    (or, without REDIS_URL in the settings, sign with a random key); now the import refuses, in
    one line naming the fix and the journey that needs it, with no traceback."""
    env = _environment(redis_url, tmp_path)
    (tmp_path / "journeys" / "kill.yaml").write_text(MARKETING, encoding="utf-8")
    del env["LOYALOOP_SECRET_KEY"]
    result = _import_worker(env)
    assert result.returncode == 3
    assert result.stderr.startswith("error: LOYALOOP_SECRET_KEY is not set"), result.stderr
    assert "marketing journeys kill" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_worker_refuses_a_bad_tuning_variable_naming_it(redis_url: str, tmp_path: Path) -> None:
    """A typo in LOYALOOP_SEND_LEASE stops the worker at start-up with one line naming the
    variable and its value, instead of a bare ValueError on its first message."""
    env = {**_environment(redis_url, tmp_path), "LOYALOOP_SEND_LEASE": "60s"}
    result = _import_worker(env)
    assert result.returncode == 3
    assert "error: LOYALOOP_SEND_LEASE='60s' is not a number of seconds above 0" in result.stderr
    assert "Traceback" not in result.stderr


def _dramatiq(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "dramatiq", "orchestrator.worker", "-p", "2", "-t", "1"]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)


def test_dramatiq_workers_without_redis_url_stop_with_one_line_each(tmp_path: Path) -> None:
    """`dramatiq orchestrator.worker` without REDIS_URL: every process says why, no traceback."""
    env = _environment("redis://unused", tmp_path)
    del env["REDIS_URL"]
    result = _dramatiq(env)
    assert result.returncode == 3
    assert "error: REDIS_URL is not set" in result.stderr
    assert "Traceback" not in result.stderr


def test_dramatiq_workers_refuse_a_broken_journey_folder(redis_url: str, tmp_path: Path) -> None:
    """A journey that does not load stops every worker process at start-up (before it takes work),
    each problem one line with file:line."""
    env = _environment(redis_url, tmp_path)
    (tmp_path / "journeys" / "kill.yaml").write_text(JOURNEY.replace("wait: 2s", "wait: 3 dayz"), encoding="utf-8")
    result = _dramatiq(env)
    assert result.returncode == 3
    assert "kill.yaml:11:" in result.stderr and "'3 dayz' is not a duration" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_worker_process_logs_the_journeys_it_serves(redis_url: str, tmp_path: Path) -> None:
    """A clean start names every journey as id@version (the version each process serves)."""
    env = _environment(redis_url, tmp_path)
    process = subprocess.Popen(
        [sys.executable, "-m", "dramatiq", "orchestrator.worker", "-p", "1", "-t", "1"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        line = ""
        while time.monotonic() < deadline and "serves journeys" not in line:
            line = process.stdout.readline()
        assert "serves journeys kill@" in line, line
        client = redis.Redis.from_url(redis_url, decode_responses=True)
        try:
            deadline = time.monotonic() + 10
            while not client.keys("lp:serving:*") and time.monotonic() < deadline:
                time.sleep(0.05)
            [key] = client.keys("lp:serving:*")
            assert client.get(key) == line.split("serves journeys ", 1)[1].strip()
        finally:
            client.close()
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.communicate(timeout=20)
