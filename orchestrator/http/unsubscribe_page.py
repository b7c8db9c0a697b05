"""``GET`` and ``POST /u/{token}``: the unsubscribe link of every marketing message (RFC 8058).

``GET`` only shows a confirmation page with a button: mail scanners and link previews fetch every
URL in a message, and they must not unsubscribe anyone.  ``POST`` unsubscribes at once, whatever its
body: it is both the page's button and the mailbox provider's one-click request
(``List-Unsubscribe=One-Click``), which may not show any page.  Unsubscribing twice is harmless.
Pages are tiny, self-contained, never cached and never send the token on in a ``Referer``.
"""

from __future__ import annotations

import html

import redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from orchestrator.errors import UnsubscribeTokenError
from orchestrator.gate.unsubscribe import read_token, unsubscribe
from orchestrator.http.limits import read_body

MAX_BODY = 4096
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
    "X-Frame-Options": "DENY",
}
CHANNEL_NAMES = {"email": "e-mail", "sms": "text", "push": "push"}

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex"><title>{title}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#222}}
button{{font-size:1rem;padding:.6rem 1.2rem;cursor:pointer}}</style></head>
<body><h1>{title}</h1>{body}</body></html>
"""


def page(title: str, body: str, status: int = 200) -> HTMLResponse:
    """A small HTML page; ``body`` must already be escaped."""
    return HTMLResponse(_PAGE.format(title=html.escape(title), body=body), status_code=status, headers=HEADERS)


def _invalid() -> HTMLResponse:
    return page(
        "This link does not work",
        "<p>The unsubscribe link is incomplete or was changed. Please use the link from the message itself, "
        "or reply to the message and ask us to stop.</p>",
        status=400,
    )


class UnsubscribePage:
    """Both methods of ``/u/{token}``; ``secret`` is None when ``LOYALOOP_SECRET_KEY`` is not set."""

    def __init__(self, client: redis.Redis, secret: bytes | None) -> None:
        self._client = client
        self._secret = secret

    def _unavailable(self) -> HTMLResponse:
        return page("Unsubscribing is unavailable", "<p>Please try again later.</p>", status=503)

    async def show(self, request: Request) -> Response:
        if self._secret is None:
            return self._unavailable()
        token = str(request.path_params["token"])
        try:
            claim = read_token(self._secret, token)
        except UnsubscribeTokenError:
            return _invalid()
        channel = html.escape(CHANNEL_NAMES.get(claim.channel, claim.channel))
        return page(
            "Unsubscribe",
            f"<p>Stop receiving marketing {channel} messages from us?</p>"
            '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
            "<button type=submit>Unsubscribe</button></form>",
        )

    async def confirm(self, request: Request) -> Response:
        if self._secret is None:
            return self._unavailable()
        await read_body(request, MAX_BODY)  # drained and ignored: any POST to the link unsubscribes
        token = str(request.path_params["token"])
        secret = self._secret
        try:
            claim = await run_in_threadpool(unsubscribe, self._client, secret, token)
        except UnsubscribeTokenError:
            return _invalid()
        channel = html.escape(CHANNEL_NAMES.get(claim.channel, claim.channel))
        return page(
            "You are unsubscribed",
            f"<p>You will not receive marketing {channel} messages from us any more. "
            "Messages you need, such as receipts, still arrive.</p>",
        )
