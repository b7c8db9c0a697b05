"""A seeded store and a real uvicorn serving the console, shared by the console's HTTP and browser tests.

The store is seeded by ``loyaloop demo``'s own run (40 synthetic customers, 45 days, in-process),
saved with :mod:`orchestrator.store.snapshot` and loaded into the session's real redis-server, so
the pages show what the workers really recorded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import httpx
import pytest
import redis
from pydantic import SecretStr

from orchestrator.cli.demo_run import run_demo
from orchestrator.http import create_app
from orchestrator.http.console import create_console
from orchestrator.http.console.auth import User, hash_password
from orchestrator.http.console.lift import record_sources
from orchestrator.language.journey import Journey
from orchestrator.language.loader import load_journeys
from orchestrator.runtime.compose import build_runtime
from orchestrator.settings import Settings, load_settings
from orchestrator.store import Store, snapshot
from tests.http.conftest import make_config
from tests.http.helpers import API_SECRET, PUBLIC_URL, SECRET_KEY, RecordingIntake, SendGridSigner, serve
from tests.redis_server import RedisServer

PASSWORDS = {"ana": "ana's long passphrase", "vic": "vic's long passphrase"}
SESSION_KEY = b"console-test-session-key-0123456789abcdef"


def fast_users() -> dict[str, User]:
    """``ana`` (support) and ``vic`` (viewer), hashed with a low scrypt cost to keep tests quick."""
    return {
        "ana": User("ana", hash_password(PASSWORDS["ana"], n=2**12), "support"),
        "vic": User("vic", hash_password(PASSWORDS["vic"], n=2**12), "viewer"),
    }


def console_settings(tmp: Path) -> Settings:
    base = load_settings()
    return base.model_copy(
        update={"public_url": PUBLIC_URL, "secret_key": SecretStr(SECRET_KEY), "outbox_path": tmp / "outbox.jsonl"}
    )


@pytest.fixture(scope="session")
def demo_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("console-demo")
    settings = console_settings(folder).model_copy(update={"secret_key": None})
    journeys = load_journeys(settings.journeys_dir, settings.templates_dir, vouchers=settings.vouchers)
    state = folder / "state.json"
    run_demo(settings, journeys, customers=40, days=45, seed=11, state=state)
    return state


@dataclass
class Site:
    base_url: str
    redis: redis.Redis
    settings: Settings
    journeys: dict[str, Journey]
    now: datetime

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, follow_redirects=False, timeout=30)


@pytest.fixture(scope="module")
def site(redis_server: RedisServer, demo_state: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    client.flushall()
    snapshot.load(client, demo_state)
    settings = console_settings(tmp_path_factory.mktemp("console-site"))
    runtime = build_runtime(settings, client, check_endpoints=False)  # as `loyaloop console`: it runs no step
    journeys = dict(runtime.journeys.current)
    # The demo's clock is simulated: the console looks at its state as of the demo's last moment.
    now = datetime.fromisoformat(snapshot.meta(demo_state)["now"])
    records, lift = record_sources(Store(client).version_figures)  # as serve builds it
    console = create_console(
        settings,
        client,
        journeys,
        fast_users(),
        SESSION_KEY,
        end_run=runtime.end_run,
        figures=records,
        lift=lift,
        clock=lambda: now,
    )
    app = create_app(settings, RecordingIntake(), client, config=make_config(SendGridSigner()), console=console)
    try:
        with serve(app) as base_url:
            yield Site(base_url, client, settings, journeys, now)
    finally:
        runtime.close()
        client.close()


def login(http: httpx.Client, user: str) -> str:
    """Log ``user`` in on ``http`` (its cookies keep the session); returns the session's CSRF token."""
    form = http.get("/console/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None
    answer = http.post("/console/login", data={"user": user, "password": PASSWORDS[user], "csrf": token.group(1)})
    assert answer.status_code == 303, answer.text
    page = http.get("/console/")
    found = re.search(r'name="csrf" value="([^"]+)"', page.text)
    assert found is not None
    return found.group(1)


__all__ = ["API_SECRET", "PASSWORDS", "Site", "fast_users", "login"]
