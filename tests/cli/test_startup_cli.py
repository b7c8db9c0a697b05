"""`loyaloop worker` and `loyaloop scheduler` check everything before they take work: one line per
problem with its fix, exit 1, no traceback; a clean start names the journeys it serves."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.runtime.harness import write_templates

CLI = [sys.executable, "-c", "from orchestrator.cli import main; main()"]
MARKETING = """\
id: news
name: News
trigger: {event: signup}
steps:
  - {id: hello, send: email, template: hello}
"""


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    (tmp_path / "journeys").mkdir(exist_ok=True)
    (tmp_path / "journeys" / "news.yaml").write_text(MARKETING, encoding="utf-8")
    write_templates(tmp_path / "templates", ["hello"])
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "LOYALOOP_SECRET_KEY"}}
    env.update(
        LOYALOOP_JOURNEYS=str(tmp_path / "journeys"),
        LOYALOOP_TEMPLATES=str(tmp_path / "templates"),
        LOYALOOP_OUTBOX=str(tmp_path / "outbox.jsonl"),
        PYTHONPATH=os.getcwd(),
        **extra,
    )
    return env


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=60)


def test_worker_without_redis_or_secret_says_both_in_two_lines(tmp_path: Path) -> None:
    """The walk-through's worker started happily without LOYALOOP_SECRET_KEY and failed every send;
    without REDIS_URL it printed a 29-line traceback.  Now: both problems, one line each."""
    result = _run(["worker", "-p", "1", "-t", "1"], _env(tmp_path))
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 2, result.stderr
    assert errors[0].startswith("error: REDIS_URL is not set") and "export REDIS_URL=" in errors[0]
    assert errors[1].startswith("error: LOYALOOP_SECRET_KEY is not set") and "news" in errors[1]
    assert "Traceback" not in result.stderr


def test_worker_refuses_a_journey_folder_that_does_not_load(redis_url: str, tmp_path: Path) -> None:
    env = _env(tmp_path, REDIS_URL=redis_url, LOYALOOP_SECRET_KEY="k" * 40)
    (tmp_path / "journeys" / "news.yaml").write_text(MARKETING.replace("hello}", "helo}"), encoding="utf-8")
    result = _run(["worker"], env)
    assert result.returncode == 1
    assert "news.yaml:5:" in result.stderr and "'helo'" in result.stderr
    assert "Traceback" not in result.stderr


def test_scheduler_does_not_need_the_secret_but_needs_redis(tmp_path: Path) -> None:
    result = _run(["scheduler"], _env(tmp_path))
    assert result.returncode == 1
    assert [line for line in result.stderr.splitlines() if line.startswith("error: ")] == [
        line for line in result.stderr.splitlines() if line.startswith("error: REDIS_URL is not set")
    ]


def test_scheduler_starts_and_names_the_journeys_it_serves(redis_url: str, tmp_path: Path) -> None:
    env = _env(tmp_path, REDIS_URL=redis_url)
    process = subprocess.Popen(
        [*CLI, "scheduler"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        assert process.stdout is not None
        deadline = time.monotonic() + 30
        seen = ""
        while "scheduler running" not in seen and time.monotonic() < deadline:
            seen += process.stdout.readline()
        assert "loyaloop scheduler: journeys news@" in seen
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=20)


CREDIT = """\
id: credit
name: Points for a review
trigger: {event: review.posted}
category: transactional
steps:
  - id: give_points
    action: ledger
    body: {customer: "{{ profile.id }}", points: "{{ 50 }}"}
"""
LEDGER = "endpoints:\n  ledger: {kind: webhook, url_env: SHOP_LEDGER_URL, secret_env: SHOP_LEDGER_SECRET}\n"


def test_worker_and_scheduler_refuse_an_endpoint_without_its_url_in_one_line(redis_url: str, tmp_path: Path) -> None:
    """Fail fast, at start-up: not a worker that starts and then fails every call to the ledger."""
    env = _env(tmp_path, REDIS_URL=redis_url, LOYALOOP_SECRET_KEY="k" * 40, SHOP_LEDGER_SECRET="x" * 40)
    env.pop("SHOP_LEDGER_URL", None)
    (tmp_path / "journeys" / "credit.yaml").write_text(CREDIT, encoding="utf-8")
    (tmp_path / "journeys" / "settings.yaml").write_text(LEDGER, encoding="utf-8")
    for command in (["worker", "-p", "1", "-t", "1"], ["scheduler"]):
        result = _run(command, env)
        assert result.returncode == 1, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert errors == [
            "error: journey 'credit' step 'give_points' calls endpoint 'ledger', which cannot be called: "
            "SHOP_LEDGER_URL is not set; export SHOP_LEDGER_URL=https://… (the endpoint's URL)"
        ], result.stderr
        assert "not started (1 problem(s) above)" in result.stderr and "Traceback" not in result.stderr
