"""The reference receiver of action calls: the example endpoint docs/actions.md describes, written
the way a shop would write its own.

It checks the ``Loyaloop-Signature`` and its age against the raw body, applies each
``Idempotency-Key`` once (a repeat gets the first answer again) and answers with a reward code and
the points credited.  ``loyaloop demo`` runs it on loopback as the shop's loyalty ledger, so the
rewards its journeys credit are visible where a shop would see them; the tests and the SIGKILL
drill run the same one.  It lives in the package, not in ``tests/``, because the demo needs it: one
implementation, so what the demo shows is what the tests check.

A request whose body ends before its ``Content-Length`` (a sender killed between headers and body)
is answered 400 and counted as ``incomplete``, never verified or applied.  Faults can be scripted
for tests and drills: ``fail_next`` answers the next calls with a status (and ``Retry-After``).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

#: A signature older (or further ahead) than this is refused: a captured request cannot be replayed later.
TOLERANCE = 300


def verify(secret: bytes, header: str, body: bytes, now: float, tolerance: int = TOLERANCE) -> bool:
    """Whether ``Loyaloop-Signature: t=…,v1=…`` signs ``body`` with ``secret`` recently enough."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    stamp, given = parts.get("t", ""), parts.get("v1", "")
    if not stamp.isdigit() or abs(now - int(stamp)) > tolerance:
        return False
    expected = hmac.new(secret, stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, given)


@dataclass(frozen=True)
class Credit:
    """One credit the receiver applied: its key, the code it answered with, and the request's body."""

    key: str
    code: str
    body: dict[str, Any]

    @property
    def points(self) -> int | float:
        value = self.body.get("points", 0)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else 0


@dataclass
class Receiver:
    secret: bytes
    url: str = ""
    #: Every call that passed the checks: (idempotency key, body), in arrival order, repeats included.
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: What was applied, once per idempotency key: the answer given (and given again to a repeat).
    applied: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: The body each key was applied with (the first arrival's).
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    refused: int = 0
    #: Requests whose body ended before its Content-Length (the sender died mid-request): not a call.
    incomplete: int = 0
    faults: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, status: int, times: int = 1, retry_after: int | None = None) -> None:
        headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
        self.faults.extend([(status, headers)] * times)

    def handle(self, headers: dict[str, str], body: bytes) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            if len(body) < int(headers.get("content-length", len(body))):
                self.incomplete += 1
                return 400, {"Connection": "close"}, b'{"error": "incomplete body"}'
            if self.faults:
                status, extra = self.faults.pop(0)
                return status, extra, b'{"error": "scripted"}'
            if not verify(self.secret, headers.get("loyaloop-signature", ""), body, time.time()):
                self.refused += 1
                return 401, {}, b'{"error": "bad signature"}'
            key = headers.get("idempotency-key", "")
            payload = json.loads(body)
            self.calls.append((key, payload))
            if key not in self.applied:
                self.applied[key] = {"code": f"RWD-{len(self.applied) + 1:04d}", "credited": payload.get("points", 0)}
                self.bodies[key] = payload
            return 200, {"Content-Type": "application/json"}, json.dumps(self.applied[key]).encode()

    def credits(self) -> list[Credit]:
        """Every credit applied, in the order applied (one per idempotency key)."""
        with self.lock:
            return [Credit(key, str(answer["code"]), self.bodies[key]) for key, answer in self.applied.items()]


@contextmanager
def running(secret: bytes) -> Iterator[Receiver]:
    """The receiver listening on a free loopback port (``receiver.url``) until the block ends."""
    receiver = Receiver(secret)

    class Handler(BaseHTTPRequestHandler):
        # Keep-alive and TCP_NODELAY, as a shop's server would have: a worker's session reuses its
        # connections, and the answer's body is not held back by Nagle waiting for a delayed ACK
        # of its headers (40 ms a call on Linux loopback).
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = self.rfile.read(length)
            status, extra, answer = receiver.handle({k.lower(): v for k, v in self.headers.items()}, body)
            with contextlib.suppress(ConnectionError):  # the sender died mid-request: no one to answer
                self.send_response(status)
                for name, value in extra.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    receiver.url = f"http://127.0.0.1:{server.server_address[1]}/loyalty/credit"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
