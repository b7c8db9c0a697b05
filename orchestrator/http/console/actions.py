"""The console's writes: logging in and out, and the ``support`` role's customer actions.

Consent goes through the one consent writer (:func:`orchestrator.gate.consent.set_consent`), which
keeps the history entry beside the flag; its ``source`` names the console user (``console:ana``),
so the customer's consent history says who changed it.  Removing a customer from a journey ends the
run through the runtime's own exit path (``Runtime.end_run``: a compare-and-set on the run, the
way a restart ends one).  Both are logged by :func:`~orchestrator.http.console.web.audit` (who,
when, what; never an address) and written to the customer's journal, so they show on the
customer's timeline.
"""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from orchestrator.errors import InputError
from orchestrator.gate.consent import set_consent
from orchestrator.http.console.auth import Session
from orchestrator.http.console.reads import CHANNELS
from orchestrator.http.console.web import (
    COOKIE,
    LOGIN_COOKIE,
    Console,
    audit,
    audit_log,
    read_form,
    redirect,
    refused,
    staff_entry,
)
from orchestrator.runtime.story import REMOVED
from orchestrator.store import journal
from orchestrator.store.ratelimit import retry_after


class Actions:
    def __init__(self, console: Console) -> None:
        self.c = console

    async def login_form(self, request: Request, message: str = "", status: int = 200) -> Response:
        cookie, token = self.c.sessions.login_token()
        response = self.c.page(request, "login.html", None, status=status, csrf=token, message=message, title="Log in")
        response.set_cookie(
            LOGIN_COOKIE,
            cookie,
            max_age=1800,
            httponly=True,
            secure=self.c.secure(request),
            samesite="lax",
            path=request.scope.get("root_path", "") or "/",
        )
        return response

    def _bucket(self, request: Request) -> str:
        """The client address's failure bucket: a keyed digest, never the address."""
        address = request.client.host if request.client is not None and request.client.host else "-"
        return "console:" + hmac.new(self.c.bucket_key, address.encode(), hashlib.sha256).hexdigest()[:32]

    def _wait(self, bucket: str) -> float:
        pipe = self.c.client.pipeline(transaction=False)
        self.c.failures.queue_peek(pipe, bucket)
        clock, state = pipe.execute()
        return self.c.failures.peeked(bucket, clock, state)

    async def login(self, request: Request) -> Response:
        bucket = self._bucket(request)
        wait = await run_in_threadpool(self._wait, bucket)
        if wait > 0:
            # Even a right password waits: otherwise the limit would only change wrong answers' status.
            response = await self.login_form(request, "Too many failed log-ins from here; wait a minute.", status=429)
            response.headers["Retry-After"] = str(retry_after(wait))
            return response
        form = await read_form(request)
        if form is None or not self.c.sessions.check_login_token(
            request.cookies.get(LOGIN_COOKIE), form.get("csrf", "")
        ):
            return await self.login_form(request, "The form expired; please log in again.", status=403)
        name, password = form.get("user", "")[:64], form.get("password", "")[:256]
        session = await run_in_threadpool(self.c.sessions.login, name, password)
        if session is None:
            audit_name = name if name in self.c.sessions.users else "(unknown)"
            self._log_failure(audit_name)
            await run_in_threadpool(self.c.failures.acquire, bucket)
            return await self.login_form(request, "Wrong user name or password.", status=401)
        response = redirect(request, "/")
        response.set_cookie(
            COOKIE,
            self.c.sessions.cookie(session),
            max_age=self.c.sessions.lifetime,
            httponly=True,
            secure=self.c.secure(request),
            samesite="lax",
            path=request.scope.get("root_path", "") or "/",
        )
        response.delete_cookie(LOGIN_COOKIE, path=request.scope.get("root_path", "") or "/")
        audit(session, "login")
        return response

    def _log_failure(self, name: str) -> None:
        audit_log.warning("console login refused user=%s", name)

    async def logout(self, request: Request, session: Session) -> Response:
        """Ends the session on the server (a copy of the cookie kept elsewhere is refused too)."""
        await run_in_threadpool(self.c.sessions.revoke, session)
        response = redirect(request, "/login")
        response.delete_cookie(COOKIE, path=request.scope.get("root_path", "") or "/")
        audit(session, "logout")
        return response

    async def consent(self, request: Request, session: Session) -> Response:
        customer_id = str(request.path_params["customer_id"])
        form = request.state.form
        channel, wanted = form.get("channel", ""), form.get("granted", "")
        if channel not in CHANNELS or wanted not in ("0", "1"):
            return refused(400, "Choose a channel and whether consent is given.")
        granted = wanted == "1"
        known = await run_in_threadpool(self.c.store.get_profile, customer_id)
        if known is None:
            return refused(404, "No such customer.")
        try:
            await run_in_threadpool(
                set_consent, self.c.client, customer_id, channel, granted, source=f"console:{session.user}"
            )
        except InputError as exc:
            return refused(400, str(exc))
        action = "consent.restore" if granted else "consent.withdraw"
        audit(session, action, customer=customer_id, channel=channel)
        entry = staff_entry(session, action, channel=channel)
        await run_in_threadpool(journal.write, self.c.client, customer_id, [entry])
        done = "consent-restored" if granted else "consent-withdrawn"
        return redirect(request, f"/customers/{quote(customer_id, safe='')}?done={done}")

    async def end_run(self, request: Request, session: Session) -> Response:
        customer_id, run_id = str(request.path_params["customer_id"]), str(request.path_params["run_id"])
        if self.c.end_run is None:
            return refused(501, "Removing customers from journeys is not available in this console.")
        live = await run_in_threadpool(self.c.store.live_runs, customer_id)
        if run_id not in live or not hmac.compare_digest(request.state.form.get("run", "").encode(), run_id.encode()):
            return refused(404, "That run is not live any more.")
        ended = await run_in_threadpool(self.c.end_run, customer_id, run_id, REMOVED)
        audit(session, "journey.remove", customer=customer_id, run=run_id, journey=live[run_id], ended=str(ended))
        if ended:
            entry = staff_entry(session, "journey.remove", run=run_id, journey=live[run_id])
            await run_in_threadpool(journal.write, self.c.client, customer_id, [entry])
        return redirect(request, f"/customers/{quote(customer_id, safe='')}?done=removed")
