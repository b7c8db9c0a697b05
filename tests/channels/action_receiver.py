"""A reference receiver for action calls, written the way a shop would: it checks the signature and
its age, applies each Idempotency-Key once (a repeat gets the first answer again), and answers
with a reward code.  Tests run it on loopback; docs/actions.md shows the same checks.  A request
whose body ends before its ``Content-Length`` (a sender killed between headers and body) is answered
400 and counted as ``incomplete``, never verified or applied.

Faults are scripted: ``fail_next`` answers the next calls with a status (and ``Retry-After``).
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


@dataclass
class Receiver:
    secret: bytes
    url: str = ""
    #: Every call that passed the checks: (idempotency key, body), in arrival order, repeats included.
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: What was applied, once per idempotency key.
    applied: dict[str, dict[str, Any]] = field(default_factory=dict)
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
            return 200, {"Content-Type": "application/json"}, json.dumps(self.applied[key]).encode()


@contextmanager
def running(secret: bytes) -> Iterator[Receiver]:
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
