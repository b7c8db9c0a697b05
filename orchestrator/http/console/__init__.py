"""The marketer's console: journeys drawn as flows with their live counts, a customer's state and the
support actions on it, and a calendar of sends, served under ``/console`` (docs/console.md).

Server-rendered (Jinja2, autoescaped) with a hand-written stylesheet and a few lines of script
served from the package itself: no build step, no CDN.  It has its own login
(:mod:`~orchestrator.http.console.auth`); ``/v1`` API keys do not open it.  Figures it does not
compute itself plug in through :mod:`~orchestrator.http.console.extensions`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from importlib import resources

import redis
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orchestrator.http.console.actions import Actions
from orchestrator.http.console.auth import Revocations, Sessions, User
from orchestrator.http.console.caching import Memo, RecordsMemo
from orchestrator.http.console.extensions import LiftSource, Panel, RunEnder, TimelineSource
from orchestrator.http.console.measured import FiguresSource
from orchestrator.http.console.pages import Pages
from orchestrator.http.console.web import COOKIE, HEADERS, Console, environment, guarded, redirect, refused
from orchestrator.language.journey import Journey
from orchestrator.language.loader import load_catalogue_for
from orchestrator.language.render import Renderer
from orchestrator.runtime.story import StoreStory
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.store.ratelimit import RateLimiter

#: Files under ``static/`` the console serves, with their content types.
STATIC_TYPES = {".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8"}


def _static_files() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("orchestrator.http.console") / "static"
    found: dict[str, tuple[bytes, str]] = {}
    for item in folder.iterdir():
        suffix = "." + item.name.rsplit(".", 1)[-1]
        if suffix in STATIC_TYPES:
            found[item.name] = (item.read_bytes(), STATIC_TYPES[suffix])
    return found


def create_console(
    settings: Settings,
    client: redis.Redis,
    journeys: Mapping[str, Journey],
    users: Mapping[str, User],
    session_key: bytes,
    *,
    lift: LiftSource | None = None,
    timeline: TimelineSource | None = None,
    end_run: RunEnder | None = None,
    figures: FiguresSource | None = None,
    secure_cookies: bool = False,
    failures_per_minute: int = 10,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> Starlette:
    """The console as an ASGI app, to be mounted (``Mount("/console", app=...)``) or served alone.

    ``client`` decodes responses; ``users`` come from :func:`~orchestrator.http.console.auth.parse_users`;
    ``timeline`` tells each customer's story (default: from ``client``, the customer journals);
    ``end_run`` (``Runtime.end_run``) enables removing customers from journeys; ``figures``
    (``Store.version_figures``) adds recorded entrants per day, conversion per arm and a calendar
    from the measurement records;
    ``failures_per_minute`` failed log-ins per client address are allowed (then 429).
    """
    renderer = Renderer(settings.templates_dir, default_locale=settings.default_locale)
    console = Console(
        settings=settings,
        client=client,
        store=Store(client),
        journeys=dict(journeys),
        sessions=Sessions(users, session_key, revoked=Revocations(client)),
        renderer=renderer,
        catalogue=load_catalogue_for(settings.journeys_dir),
        templates=environment(),
        timeline=timeline if timeline is not None else StoreStory(client),
        end_run=end_run,
        figures=_records(figures) if figures is not None else None,
        lift=(lift if isinstance(lift, Memo) else Memo(lift)) if lift is not None else None,
        secure_cookies=secure_cookies,
        clock=clock,
        failures=RateLimiter.for_failed_auth(client, per_minute=failures_per_minute),
        bucket_key=hashlib.sha256(b"console failed log-ins\0" + session_key).digest(),
    )
    pages, actions = Pages(console), Actions(console)
    static = _static_files()
    versions = {name: hashlib.sha256(body).hexdigest()[:12] for name, (body, _type) in static.items()}
    console.templates.globals["static_version"] = versions

    async def serve_static(request: Request) -> Response:
        found = static.get(str(request.path_params["name"]))
        if found is None:
            return refused(404, "Not found.")
        body, media_type = found
        headers = dict(HEADERS) | {"Cache-Control": "public, max-age=86400"}
        return Response(body, media_type=media_type, headers=headers)

    async def login_page(request: Request) -> Response:
        if await _logged_in(console, request):
            return redirect(request, "/")
        return await actions.login_form(request)

    routes = [
        Route("/login", login_page, methods=["GET"]),
        Route("/login", actions.login, methods=["POST"]),
        Route("/static/{name}", serve_static, methods=["GET"]),
        Route("/logout", guarded(console, actions.logout, post=True), methods=["POST"]),
        Route("/", guarded(console, pages.overview), methods=["GET"]),
        Route("/journeys/{journey_id}", guarded(console, pages.journey), methods=["GET"]),
        Route(
            "/journeys/{journey_id}/preview/{step_id}/{channel}/{locale}",
            guarded(console, pages.preview),
            methods=["GET"],
        ),
        Route("/customers", guarded(console, pages.find_customer), methods=["GET"]),
        Route("/customers/{customer_id}", guarded(console, pages.customer), methods=["GET"]),
        Route(
            "/customers/{customer_id}/consent",
            guarded(console, actions.consent, role="support", post=True),
            methods=["POST"],
        ),
        Route(
            "/customers/{customer_id}/runs/{run_id}/end",
            guarded(console, actions.end_run, role="support", post=True),
            methods=["POST"],
        ),
        Route("/calendar", guarded(console, pages.calendar), methods=["GET"]),
    ]
    return Starlette(routes=routes)


def _records(read: FiguresSource) -> FiguresSource:
    """The records kept for a while: ``read`` as it is when it is a memo already (shared with the
    lift panels, :func:`~orchestrator.http.console.lift.record_sources`)."""
    return read if isinstance(read, Memo) else RecordsMemo(read)


async def _logged_in(console: Console, request: Request) -> bool:
    return await run_in_threadpool(console.sessions.read, request.cookies.get(COOKIE)) is not None


__all__ = ["FiguresSource", "LiftSource", "Panel", "RunEnder", "TimelineSource", "create_console"]
