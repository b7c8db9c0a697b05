"""Which journey versions each live process serves (orchestrator/workers/serving.py)."""

from __future__ import annotations

import pytest
import redis
from click.testing import CliRunner

from orchestrator.store import keys
from orchestrator.workers.serving import TTL, announce, serving


def test_an_announcement_is_listed_and_expires(redis_client: redis.Redis) -> None:
    announce(redis_client, "welcome@0303d1c818eb", process="host-a:12")
    announce(redis_client, "welcome@91c0aa000000", process="host-b:7")
    assert serving(redis_client) == {"host-a:12": "welcome@0303d1c818eb", "host-b:7": "welcome@91c0aa000000"}
    assert 0 < redis_client.ttl(keys.serving("host-a:12")) <= TTL  # a killed process drops off by itself
    redis_client.delete(keys.serving("host-b:7"))
    assert list(serving(redis_client)) == ["host-a:12"]


def test_status_shows_what_each_live_process_serves(
    redis_url: str, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """During a rolling deploy two versions run side by side; status shows which process has which."""
    from orchestrator.cli import cli

    monkeypatch.setenv("REDIS_URL", redis_url)
    announce(redis_client, "welcome@0303d1c818eb", process="host-a:12")
    announce(redis_client, "welcome@91c0aa000000", process="host-b:7")
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code == 0, result.output
    assert "serving: host-a:12 welcome@0303d1c818eb; host-b:7 welcome@91c0aa000000" in result.output
