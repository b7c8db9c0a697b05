"""The console's plumbing: templates, security headers, the session check every page goes through.

Every response carries a strict Content-Security-Policy (``default-src 'self'``, no inline script
or style, no framing), ``no-store`` caching and ``nosniff``; templates are Jinja2 with autoescape on
for every file, so a value from a journey, a profile or the store is always shown as text.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

import jinja2
import redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from orchestrator.http.console.auth import Role, Session, Sessions, same_token
from orchestrator.http.console.extensions import LiftSource, RunEnder, TimelineSource
from orchestrator.http.console.measured import FiguresSource
from orchestrator.http.limits import read_body
from orchestrator.language.catalogue import Catalogue
from orchestrator.language.journey import Journey
from orchestrator.language.render import Renderer
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.store.ratelimit import RateLimiter

COOKIE = "loyaloop_console"
LOGIN_COOKIE = "loyaloop_console_login"
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; frame-src 'self'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'; object-src 'none'"
)
#: A preview is a marketer's template rendered for a sample customer: no script, no remote image.
PREVIEW_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'self'; sandbox"
HEADERS = {
    "Content-Security-Policy": CSP,
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cross-Origin-Opener-Policy": "same-origin",
}
#: Largest form body the console reads (login, consent, remove from journey).
MAX_FORM = 4096
audit_log = logging.getLogger("loyaloop.console.audit")

Handler = Callable[[Request, Session], Awaitable[Response]]


def environment() -> jinja2.Environment:
    """The console's own templates (trusted, shipped with the package), escaping every value,
    every one compiled up front."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("orchestrator.http.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["count"] = lambda value: f"{int(value):,}"
    env.filters["when"] = lambda value: "" if value is None else f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC"
    # Compiled now, not on each page's first request (tens of milliseconds a page on a busy machine).
    for name in env.list_templates(extensions=["html"]):
        env.get_template(name)
    return env


@dataclass
class Console:
    """Everything the pages read from and write through; one per app."""

    settings: Settings
    client: redis.Redis
    store: Store
    journeys: Mapping[str, Journey]
    sessions: Sessions
    renderer: Renderer
    catalogue: Catalogue | None
    templates: jinja2.Environment
    #: Failed log-ins per client address, shared by every server process through Redis.
    failures: RateLimiter
    #: Names the failure buckets (an HMAC of the client address, never the address itself).
    bucket_key: bytes
    lift: LiftSource | None = None
    timeline: TimelineSource | None = None
    end_run: RunEnder | None = None
    figures: FiguresSource | None = None
    #: Mark cookies ``Secure`` even on plain HTTP (behind a proxy that ends TLS without saying so).
    secure_cookies: bool = False
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def page(self, request: Request, name: str, session: Session | None, status: int = 200, **values: Any) -> Response:
        html = self.templates.get_template(name).render(
            session=session,
            root=request.scope.get("root_path", ""),
            **values,
        )
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def secure(self, request: Request) -> bool:
        return self.secure_cookies or request.url.scheme == "https"


def redirect(request: Request, path: str) -> Response:
    response = RedirectResponse(request.scope.get("root_path", "") + path, status_code=303)
    response.headers.update(HEADERS)
    return response


def refused(status: int, text: str) -> Response:
    return HTMLResponse(f"<!doctype html><title>{status}</title><p>{text}</p>", status_code=status, headers=HEADERS)


async def read_form(request: Request) -> dict[str, str] | None:
    """A small ``application/x-www-form-urlencoded`` body as a dict (first value of each field), or
    None when it is too large or of another type: the console's forms are a few short fields."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/x-www-form-urlencoded":
        return None
    body = await read_body(request, MAX_FORM)
    if body is None:
        return None
    fields: dict[str, str] = {}
    for name, value in parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True, max_num_fields=20):
        fields.setdefault(name, value)
    return fields


def guarded(console: Console, handler: Handler, *, role: Role = "viewer", post: bool = False) -> Callable[..., Any]:
    """``handler`` behind the session check (and for a POST, the CSRF check): no session → the login
    page (GET) or 403 (POST); a ``viewer`` on a ``support`` action → 403; a POST whose ``csrf``
    field is not the session's → 403, before the handler runs."""

    async def endpoint(request: Request) -> Response:
        session = await run_in_threadpool(console.sessions.read, request.cookies.get(COOKIE))
        if session is None:
            if post or request.method != "GET":
                return refused(403, "Log in first.")
            return redirect(request, "/login")
        if role == "support" and not session.may_act:
            return refused(403, "Your role may look but not change anything here.")
        if post:
            form = await read_form(request)
            if form is None or not same_token(form.get("csrf", ""), session):
                return refused(403, "The form was stale or not sent by this console; reload the page and try again.")
            request.state.form = form
        return await handler(request, session)

    return endpoint


def audit(session: Session, action: str, **details: str) -> None:
    """One line per support action: who, when, what, on which customer or run; never an address."""
    fields = " ".join(f"{name}={value}" for name, value in sorted(details.items()))
    at = datetime.now(UTC).isoformat(timespec="seconds")
    audit_log.info("console action at=%s user=%s action=%s %s", at, session.user, action, fields)


def staff_entry(session: Session, action: str, **details: str) -> dict[str, str]:
    """The customer journal's entry for a support action (shown on the customer's timeline)."""
    return {"at": datetime.now(UTC).isoformat(), "kind": "staff", "user": session.user, "action": action, **details}
