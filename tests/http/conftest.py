"""One real uvicorn serving the app per test module, on the session's real redis-server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import redis
from pydantic import SecretStr

from orchestrator.http import HttpConfig, create_app
from orchestrator.http.auth import parse_api_keys
from orchestrator.http.config import load_sendgrid_key
from orchestrator.settings import Settings
from tests.http.helpers import (
    API_SECRET,
    OTHER_SECRET,
    PUBLIC_URL,
    SECRET_KEY,
    TWILIO_TOKEN,
    RecordingIntake,
    SendGridSigner,
    serve,
)
from tests.redis_server import RedisServer


@dataclass
class Served:
    base_url: str
    intake: RecordingIntake
    signer: SendGridSigner
    client: httpx.Client
    redis: redis.Redis
    settings: Settings


def make_config(signer: SendGridSigner, **overrides: object) -> HttpConfig:
    values: dict[str, object] = {
        "api_keys": parse_api_keys(f"shop:{API_SECRET},app:{OTHER_SECRET}"),
        "sendgrid_public_key": load_sendgrid_key(signer.public_key_b64),
        "twilio_auth_token": TWILIO_TOKEN,
    }
    values.update(overrides)
    return HttpConfig(**values)  # type: ignore[arg-type]


def make_settings() -> Settings:
    return Settings(public_url=PUBLIC_URL, secret_key=SecretStr(SECRET_KEY))


@pytest.fixture(scope="module")
def served_module(redis_server: RedisServer) -> Iterator[Served]:
    intake = RecordingIntake()
    signer = SendGridSigner()
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    settings = make_settings()
    app = create_app(settings, intake, client, config=make_config(signer))
    with serve(app) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        yield Served(base_url, intake, signer, http, client, settings)
    client.close()


@pytest.fixture(scope="module")
def small_limits(redis_server: RedisServer) -> Iterator[tuple[httpx.Client, SendGridSigner]]:
    """A server whose webhook body limits come from its configuration: 4 KiB for SendGrid, 512 B for
    Twilio (flush Redis with the ``redis_url`` fixture)."""
    signer = SendGridSigner()
    client = redis.Redis.from_url(redis_server.url, decode_responses=True)
    config = make_config(signer, sendgrid_max_body=4096, twilio_max_body=512)
    app = create_app(make_settings(), RecordingIntake(), client, config=config)
    with serve(app) as base_url, httpx.Client(base_url=base_url, timeout=10) as http:
        yield http, signer
    client.close()


@pytest.fixture
def served(served_module: Served, redis_url: str) -> Served:
    """The module's server with Redis flushed and the recording intake emptied."""
    served_module.intake.clear()
    return served_module


def bearer(secret: str = API_SECRET) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}
