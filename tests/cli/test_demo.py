"""`loyaloop demo` runs the shipped journeys embedded (no Redis server) and prints the table."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli


@pytest.mark.slow
def test_the_demo_runs_every_shipped_journey_embedded_and_prints_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no REDIS_URL, a small demo fills the outbox and prints one section per journey."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("LOYALOOP_SECRET_KEY", raising=False)
    outbox = tmp_path / "outbox.jsonl"
    result = CliRunner().invoke(cli, ["demo", "--customers", "40", "--days", "45", "--outbox", str(outbox)])
    assert result.exit_code == 0, result.output
    for journey_id in ("welcome", "winback", "birthday", "replenishment"):
        assert journey_id in result.output
    assert outbox.exists() and outbox.read_text(encoding="utf-8").count("\n") > 20
    assert str(outbox) in result.output.replace("\n", "")


@pytest.mark.slow
def test_the_demo_runs_on_a_real_redis_when_redis_url_is_set(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With REDIS_URL the same demo runs on that Redis; a database already in use is refused."""
    import redis

    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LOYALOOP_SECRET_KEY", "d" * 40)
    client = redis.Redis.from_url(redis_url)
    client.set("someone-elses-key", "1")
    outbox = tmp_path / "outbox.jsonl"
    args = ["demo", "--customers", "20", "--days", "20", "--outbox", str(outbox)]
    refused = CliRunner().invoke(cli, args)
    assert refused.exit_code != 0 and "not empty" in str(refused.exception)
    result = CliRunner().invoke(cli, [*args, "--flush"])
    assert result.exit_code == 0, result.output
    assert redis_url in result.output and outbox.exists()
    assert client.exists("lp:stats:welcome")
    client.close()
