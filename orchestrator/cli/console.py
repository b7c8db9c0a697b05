"""``loyaloop console``: the marketer's console in the browser, for a local look after ``loyaloop demo``.

With ``REDIS_URL`` it reads that Redis (what ``loyaloop serve`` mounts under ``/console`` too);
without it, it loads the state ``loyaloop demo`` left (``--state``, default
``loyaloop-demo-state.json`` in the temp folder) into an in-process Redis, so the demo's customers,
runs and counts can be looked at after the demo ended.  With ``--simulation DIR`` it loads the
state ``loyaloop simulate --out DIR`` kept there instead, and tells each customer's story from that
simulation's files (the same reading as ``loyaloop explain --simulation DIR``).  Changes made
there stay in that process.

Users come from ``LOYALOOP_CONSOLE_USERS`` (``loyaloop console hash-password`` makes a hash).  On
loopback with no users configured, a one-time ``support`` user with a random password is made and
the password printed once on this terminal: nobody else can reach a loopback port's login anyway.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import sys
from datetime import UTC, datetime
from pathlib import Path

import click
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route

from orchestrator.cli.demo_run import default_state
from orchestrator.cli.serve import log_config
from orchestrator.errors import ConfigurationError, InputError
from orchestrator.http.console.auth import User, hash_password, random_key
from orchestrator.http.console.startup import console_from_environment, console_users
from orchestrator.runtime.compose import build_runtime
from orchestrator.runtime.story import FolderStory, Story
from orchestrator.settings import load_settings
from orchestrator.simulate.simulation import STATE_FILE
from orchestrator.simulate.source import parse_mapping, read_history
from orchestrator.simulate.timeline import events_of
from orchestrator.store import snapshot
from orchestrator.store.connect import open_redis
from orchestrator.workers.embedded import in_process_redis

LOCAL_USER = "local"


def _loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@click.group(invoke_without_command=True)
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=8020, show_default=True, type=click.IntRange(1, 65535), help="Port to listen on.")
@click.option(
    "--state",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="State file written by `loyaloop demo` (used without REDIS_URL).",
)
@click.option(
    "--simulation",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The --out folder of `loyaloop simulate` (used without REDIS_URL).",
)
@click.option("--journeys", "journeys_dir", type=click.Path(file_okay=False, path_type=Path), help="Journeys folder.")
@click.option(
    "--now",
    "now_text",
    default=None,
    help="Show caps windows as of this moment (ISO-8601; default: the demo's simulated end, else now).",
)
@click.pass_context
def console(
    ctx: click.Context,
    host: str,
    port: int,
    state: Path | None,
    simulation: Path | None,
    journeys_dir: Path | None,
    now_text: str | None,
) -> None:
    """Serve the console (journeys as flows with their counts, customers, the calendar) on HOST:PORT.

    Without REDIS_URL it shows the state the last `loyaloop demo` left."""
    if ctx.invoked_subcommand is not None:
        return
    import redis

    settings = load_settings(journeys_dir)
    story: Story | None = None
    if simulation is not None:
        if state is not None or settings.redis_url:
            raise ConfigurationError("--simulation reads its own state: leave out --state and unset REDIS_URL")
        state = simulation / STATE_FILE
        if not state.is_file():
            raise ConfigurationError(
                f"no simulation state at {str(state)!r}: run `loyaloop simulate --out {simulation}` (it keeps it)"
            )
        story = simulation_story(simulation, snapshot.meta(state))
    if settings.redis_url:
        client: redis.Redis = open_redis(settings)  # a single Redis or a Cluster, as the workers
        in_process = False
    else:
        path = state or default_state()
        if not path.is_file():
            raise ConfigurationError(
                f"no demo state at {str(path)!r}: run `loyaloop demo` first (it writes it), "
                "pass --state FILE, or set REDIS_URL to look at a running Loyaloop"
            )
        client = in_process_redis()
        count = snapshot.load(client, path)
        click.echo(f"Loaded {count} keys of demo state from {path}")
        in_process = True
        now_text = now_text or snapshot.meta(path).get("now")
    now = _moment(now_text) if now_text else None
    if now is not None:
        click.echo(f"Showing the state as of {now.isoformat()}")
    users = console_users()
    if not users:
        if not _loopback(host):
            raise ConfigurationError(
                "set LOYALOOP_CONSOLE_USERS (see `loyaloop console hash-password`) to serve the console beyond loopback"
            )
        password = secrets.token_urlsafe(12)
        users = {LOCAL_USER: User(LOCAL_USER, hash_password(password), "support")}
        click.echo(f"No LOYALOOP_CONSOLE_USERS: log in as {LOCAL_USER!r} with the one-time password {password}")
    # The console ends runs but runs no step: the journeys' endpoints need no URL here.
    runtime = build_runtime(settings, client, in_process=in_process, check_endpoints=False)
    app = console_from_environment(
        settings,
        client,
        users=users,
        fallback_key=random_key(),
        journeys=runtime.journeys.current,
        end_run=runtime.end_run,
        timeline=story,
        clock=(lambda: now) if now is not None else None,
    )
    assert app is not None

    async def home(request: Request) -> Response:
        return RedirectResponse("/console/", status_code=307)

    click.echo(f"Console: http://{host}:{port}/console/  (Ctrl+C to stop)")
    server = Starlette(routes=[Route("/", home), Mount("/console", app=app)])
    try:
        uvicorn.run(server, host=host, port=port, log_config=log_config("info"), access_log=False, server_header=False)
    finally:
        runtime.close()
        client.close()


def simulation_story(folder: Path, meta: dict[str, str]) -> Story:
    """A simulation's story: its files, with the simulated history's events when that file is still there."""
    events = Path(meta.get("events", ""))
    if meta.get("events") and events.is_file():
        lines = read_history(events, mapping=parse_mapping(meta.get("map") or None)).lines
        return FolderStory(folder, events_of(lines))
    return FolderStory(folder)


def _moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"--now {text!r} is not an ISO-8601 date and time", field="now") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@console.command("hash-password")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the password from standard input (one line).")
def hash_password_command(from_stdin: bool) -> None:
    """Print the hash of a console password, for LOYALOOP_CONSOLE_USERS (name:hash:role)."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    click.echo(hash_password(password))
    if not os.environ.get("LOYALOOP_CONSOLE_SECRET") and not os.environ.get("LOYALOOP_SECRET_KEY"):
        click.echo("note: set LOYALOOP_CONSOLE_SECRET (32+ characters) to sign console sessions", err=True)
