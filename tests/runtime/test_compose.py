"""The composition root builds the runtime from the settings: its leases, its own drain slots and
sender threads, and the unsubscribe signing secret (required unless the Redis is in-process)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator.errors import ConfigurationError
from orchestrator.runtime.compose import build_runtime, build_timekeeping
from orchestrator.settings import Settings, load_settings
from tests.runtime.harness import journey

SECRET = "c" * 40
MARKETING = {
    "news": journey(
        {
            "id": "news",
            "name": "News",
            "trigger": {"event": "signup"},
            "steps": [{"id": "a", "send": "email", "template": "a"}],
        }
    )
}


def _settings(tmp_path: Path, **overrides: Any) -> Settings:
    (tmp_path / "templates").mkdir(exist_ok=True)
    fields: dict[str, Any] = {
        "templates_dir": tmp_path / "templates",
        "journeys_dir": tmp_path,
        "outbox_path": tmp_path / "outbox.jsonl",
        "secret_key": SECRET,
        **overrides,
    }
    return Settings(**fields)


def test_the_runtime_takes_its_leases_and_slots_from_the_settings(
    tmp_path: Path, redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """LOYALOOP_TIMER_LEASE, LOYALOOP_SEND_LEASE and LOYALOOP_BATCH_SLOTS, read by load_settings,
    size the runtime composed from them; the scheduler's parts take the same timer lease."""
    (tmp_path / "templates").mkdir()
    env = {
        "LOYALOOP_TEMPLATES": str(tmp_path / "templates"),
        "LOYALOOP_OUTBOX": str(tmp_path / "outbox.jsonl"),
        "LOYALOOP_SECRET_KEY": SECRET,
        "LOYALOOP_TIMER_LEASE": "7",
        "LOYALOOP_SEND_LEASE": "9",
        "LOYALOOP_BATCH_SLOTS": "3",
    }
    settings = load_settings(tmp_path, env=env)
    runtime = build_runtime(settings, redis_client, journeys={})
    try:
        assert runtime.timers.lease == 7.0
        assert runtime.send_lease == 9.0 and runtime.delivery.claim_lease == 9.0
        assert runtime.slots.count == 3
    finally:
        runtime.close()
    assert build_timekeeping(settings, redis_client).timers.lease == 7.0


def test_each_runtime_owns_its_slots_and_sender_threads(tmp_path: Path, redis_client: redis.Redis) -> None:
    """Two runtimes share neither (nothing module-level); closing one leaves the other sending."""
    first = build_runtime(_settings(tmp_path), redis_client, journeys={})
    second = build_runtime(_settings(tmp_path), redis_client, journeys={})
    try:
        assert first.slots is not second.slots and first.senders is not second.senders
        first.close()
        with pytest.raises(RuntimeError):
            first.senders.submit(threading.get_ident)
        assert second.senders.submit(threading.get_ident).result(5)
    finally:
        first.close()
        second.close()


def test_a_runtime_on_a_real_redis_refuses_to_run_without_the_secret(tmp_path: Path, redis_client: redis.Redis) -> None:
    """Before, a runtime built without REDIS_URL in its settings signed with a random key whatever its
    Redis was; unsubscribe links then broke at the next restart.  Now only an in-process Redis may."""
    settings = _settings(tmp_path, secret_key=None)
    assert settings.redis_url is None
    with pytest.raises(ConfigurationError, match="LOYALOOP_SECRET_KEY is not set"):
        build_runtime(settings, redis_client, journeys=MARKETING)
    with pytest.raises(ConfigurationError, match="LOYALOOP_SECRET_KEY is 5 bytes"):
        build_runtime(_settings(tmp_path, secret_key="short"), redis_client, journeys={})


def test_without_a_marketing_journey_that_sends_no_secret_is_needed(tmp_path: Path, redis_client: redis.Redis) -> None:
    """Only marketing sends carry signed links; transactional-only journeys run without the key."""
    receipt = journey(
        {
            "id": "receipt",
            "name": "Receipt",
            "category": "transactional",
            "trigger": {"event": "order.placed"},
            "steps": [{"id": "a", "send": "email", "template": "a"}],
        }
    )
    runtime = build_runtime(_settings(tmp_path, secret_key=None), redis_client, journeys={"receipt": receipt})
    try:
        assert runtime.delivery.secret == b""
    finally:
        runtime.close()


def test_the_configured_secret_signs_the_links(tmp_path: Path, redis_client: redis.Redis) -> None:
    """A set key is the one used (so links survive a restart), in-process or not."""
    for in_process in (False, True):
        runtime = build_runtime(_settings(tmp_path), redis_client, journeys={}, in_process=in_process)
        try:
            assert runtime.delivery.secret == SECRET.encode()
        finally:
            runtime.close()


def test_an_in_process_runtime_without_a_secret_signs_with_a_key_of_its_own(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The embedded mode's Redis dies with the process, so a per-process key is safe there; it says so."""
    import fakeredis

    client = fakeredis.FakeRedis(decode_responses=True)
    settings = _settings(tmp_path, secret_key=None)
    with caplog.at_level("INFO", logger="orchestrator.runtime.delivery"):
        runtime = build_runtime(settings, client, journeys={}, in_process=True)
        other = build_runtime(settings, client, journeys={}, in_process=True)
    try:
        assert len(runtime.delivery.secret) == 32 and runtime.delivery.secret != other.delivery.secret
        assert "for this process only" in caplog.text
    finally:
        runtime.close()
        other.close()
