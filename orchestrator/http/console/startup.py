"""The console as ``loyaloop serve`` and ``loyaloop console`` build it: users and keys from the environment."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime

import redis
from starlette.applications import Starlette

from orchestrator.http.console import create_console
from orchestrator.http.console.auth import USERS_VARIABLE, User, parse_users, session_key
from orchestrator.http.console.extensions import LiftSource, RunEnder, TimelineSource
from orchestrator.http.console.lift import record_sources
from orchestrator.http.console.measured import FiguresSource
from orchestrator.language.journey import Journey
from orchestrator.language.loader import load_journeys
from orchestrator.runtime.story import StoreStory
from orchestrator.settings import Settings
from orchestrator.store import Store

log = logging.getLogger("loyaloop.console")


def console_users(environ: Mapping[str, str] | None = None) -> dict[str, User]:
    """The users of ``LOYALOOP_CONSOLE_USERS`` (none when it is unset)."""
    return parse_users((environ if environ is not None else os.environ).get(USERS_VARIABLE, ""))


def console_from_environment(
    settings: Settings,
    client: redis.Redis,
    *,
    environ: Mapping[str, str] | None = None,
    users: Mapping[str, User] | None = None,
    fallback_key: bytes | None = None,
    journeys: Mapping[str, Journey] | None = None,
    end_run: RunEnder | None = None,
    figures: FiguresSource | None = None,
    lift: LiftSource | None = None,
    timeline: TimelineSource | None = None,
    clock: Callable[[], datetime] | None = None,
) -> Starlette | None:
    """The console app, or None (with a warning) when no user is configured: a console nobody may
    open is not mounted at all.  Cookies are ``Secure`` when ``LOYALOOP_PUBLIC_URL`` is https.
    ``figures`` reads the measurement records (``Store.version_figures`` on ``client`` by default),
    ``timeline`` each customer's story (from ``client``'s journals by default; a simulation's
    files for ``loyaloop console --simulation``)."""
    env = environ if environ is not None else os.environ
    if figures is None:
        figures = Store(client).version_figures
    if lift is None:  # one reading of the records serves the pages and the report's panels
        figures, lift = record_sources(figures)
    found = dict(users) if users is not None else console_users(env)
    if not found:
        log.warning("%s is empty: the console under /console is not served", USERS_VARIABLE)
        return None
    key = session_key(env, fallback_key)
    if journeys is None:
        journeys = load_journeys(settings.journeys_dir, settings.templates_dir, vouchers=settings.vouchers)
    app = create_console(
        settings,
        client,
        journeys,
        found,
        key,
        end_run=end_run,
        figures=figures,
        lift=lift,
        timeline=timeline if timeline is not None else StoreStory(client),
        secure_cookies=settings.public_url.startswith("https://"),
        clock=clock or (lambda: datetime.now(UTC)),
    )
    warm(figures, lift)
    return app


def warm(figures: FiguresSource, lift: LiftSource) -> threading.Thread:
    """Read the records and build the report once, beside start-up, so the first visitor finds
    them kept (each page still reads them itself when they are older than their period)."""

    def read() -> None:
        try:
            figures(None)
            lift(None)
        except Exception as exc:  # the first page reads again and shows what goes wrong
            log.info("the console could not read the measurement records at start-up (%s)", type(exc).__name__)

    thread = threading.Thread(target=read, name="console-warm", daemon=True)
    thread.start()
    return thread
