"""The embedded mode (``loyaloop demo``): the one place a missing signing secret is allowed, and a
``stop`` that leaves no sender thread behind."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator.errors import ConfigurationError
from orchestrator.settings import Settings
from orchestrator.workers.embedded import Embedded
from tests.runtime.harness import journey

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
    return Settings(
        templates_dir=tmp_path / "templates",
        journeys_dir=tmp_path,
        outbox_path=tmp_path / "outbox.jsonl",
        **overrides,
    )


def test_without_redis_or_secret_the_demo_signs_with_a_key_of_its_own(tmp_path: Path) -> None:
    """No REDIS_URL, no LOYALOOP_SECRET_KEY: the state is in-process, so is the key (it cannot
    outlive what its links refer to); ``stop`` then shuts the runtime's sender threads down."""
    system = Embedded(_settings(tmp_path), journeys={}).start()
    try:
        assert len(system.runtime.delivery.secret) == 32
        assert system.runtime.senders.submit(threading.get_ident).result(5)
    finally:
        system.stop()
    with pytest.raises(RuntimeError, match="shutdown"):
        system.runtime.senders.submit(threading.get_ident)


def test_a_set_secret_is_used_in_the_demo_too(tmp_path: Path) -> None:
    """A key that is set is always the one used."""
    with Embedded(_settings(tmp_path, secret_key="e" * 40), journeys={}) as system:
        assert system.runtime.delivery.secret == b"e" * 40


def test_on_a_real_redis_the_demo_needs_the_secret(tmp_path: Path, redis_url: str) -> None:
    """``loyaloop demo`` with REDIS_URL keeps its state (and its links) past the process: no random key
    when a marketing journey sends (with none, no link is built and no key is needed)."""
    with pytest.raises(ConfigurationError, match="LOYALOOP_SECRET_KEY is not set"):
        Embedded(_settings(tmp_path, redis_url=redis_url), journeys=MARKETING)
    assert Embedded(_settings(tmp_path, redis_url=redis_url), journeys={}).runtime.delivery.secret == b""


def test_a_redis_handed_in_is_not_taken_for_an_in_process_one(tmp_path: Path, redis_client: redis.Redis) -> None:
    """Only a Redis the embedded mode made itself counts as in-process; a caller's client may be real."""
    with pytest.raises(ConfigurationError, match="LOYALOOP_SECRET_KEY is not set"):
        Embedded(_settings(tmp_path), journeys=MARKETING, client=redis_client)
