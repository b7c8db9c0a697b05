"""``loyaloop serve``: the HTTP intake API, provider webhooks and unsubscribe page under uvicorn."""

from __future__ import annotations

import copy
import os
import shutil
import socket
import tempfile
from typing import Any

import click

from orchestrator.cli.startup import require_ready
from orchestrator.errors import ConfigurationError
from orchestrator.http.config import load_http_config
from orchestrator.http.connections import GuardedHttpProtocol
from orchestrator.http.console.auth import session_key
from orchestrator.http.console.startup import console_users
from orchestrator.http.server import FACTORY, check_replica_timeout, require_redis, run_uvicorn
from orchestrator.settings import load_settings
from orchestrator.store.connect import open_redis

#: Seconds the start-up check waits for Redis (a hung Redis must not hang the command).
STARTUP_TIMEOUT = 5.0


def log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging set-up plus Loyaloop's own loggers (the access log without personal data)."""
    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config["formatters"]["loyaloop"] = {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}
    config["handlers"]["loyaloop"] = {
        "class": "logging.StreamHandler",
        "formatter": "loyaloop",
        "stream": "ext://sys.stdout",
    }
    config["loggers"]["loyaloop"] = {"handlers": ["loyaloop"], "level": level.upper(), "propagate": False}
    return config


def free_port(host: str) -> int:
    """A port the OS says is free on ``host`` now (``--port 0``): uvicorn's workers each bind the
    port they are given, so "any port" must become one number before they start."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on (0.0.0.0 for all).")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one and prints it.",
)
@click.option("--workers", default=1, show_default=True, type=click.IntRange(1, 64), help="uvicorn worker processes.")
@click.option(
    "--log-level", default="info", show_default=True, type=click.Choice(["debug", "info", "warning", "error"])
)
@click.option("--access-log/--no-access-log", default=True, show_default=True, help="Log one line per request.")
def serve(host: str, port: int, workers: int, log_level: str, access_log: bool) -> None:
    """Serve the HTTP API (POST /v1/track, /v1/identify, /v1/batch), the SendGrid and Twilio
    webhooks, the /u/{token} unsubscribe page, /healthz, /metrics and, with LOYALOOP_CONSOLE_USERS,
    the console under /console.  Needs REDIS_URL; keys and
    limits come from the environment (see docs/http.md).  Client addresses are never logged."""
    import redis

    # Refuse bad configuration here, once, rather than in every worker process.
    settings = load_settings()
    require_redis(settings)
    require_ready(settings, command="serve", need_channels=False, need_journeys=False, need_endpoints=False)
    http = load_http_config()
    check_replica_timeout(settings, http)
    if console_users():  # a malformed user list, or no key to sign sessions, is refused here
        session_key(os.environ)
    try:
        probe = open_redis(settings, socket_timeout=STARTUP_TIMEOUT, socket_connect_timeout=STARTUP_TIMEOUT)
    except redis.RedisError as exc:
        raise ConfigurationError(f"cannot reach Redis at REDIS_URL ({type(exc).__name__}); is it running?") from exc
    try:
        probe.ping()
    except redis.RedisError as exc:
        raise ConfigurationError(f"cannot reach Redis at REDIS_URL ({type(exc).__name__}); is it running?") from exc
    finally:
        probe.close()
    metrics_dir: str | None = None
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Each worker keeps its own counters; this folder lets /metrics add them up.
        metrics_dir = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="loyaloop-metrics-")
    if port == 0:
        port = free_port(host)
    click.echo(f"loyaloop serve: listening on http://{host}:{port}", err=True)
    config = log_config(log_level)
    if not access_log:
        config["loggers"]["loyaloop.http.access"] = {"level": "WARNING"}
    try:
        run_uvicorn(
            FACTORY,
            factory=True,
            host=host,
            port=port,
            workers=workers,
            access_log=False,  # uvicorn's access log holds client IPs and raw paths
            log_config=config,
            log_level=log_level,
            proxy_headers=True,
            server_header=False,
            http=GuardedHttpProtocol,
            header_timeout=http.header_timeout,
            body_timeout=http.body_timeout,
            max_connections=http.max_connections,
        )
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)
