"""Test helpers for the HTTP app: a real uvicorn server in a thread, an intake that records, signers."""

from __future__ import annotations

import base64
import select
import socket
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import uvicorn
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from starlette.types import ASGIApp

from orchestrator.errors import InputError
from tests.redis_server import free_port

API_SECRET = "test-secret-0123456789abcdef"
OTHER_SECRET = "other-secret-0123456789abcdef"
TWILIO_TOKEN = "twilio-auth-token-for-tests-0001"
PUBLIC_URL = "https://hooks.example.test"
SECRET_KEY = "unsubscribe-signing-secret-for-tests"


@contextmanager
def serve(app: ASGIApp) -> Iterator[str]:
    """Serve ``app`` with a real uvicorn on a free loopback port; yields the base URL."""
    port = free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def request_head(path: str, headers: dict[str, str], *, length: int | None) -> bytes:
    """The head of a POST: ``Content-Length: length``, or a chunked body when ``length`` is None."""
    lines = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", *(f"{name}: {value}" for name, value in headers.items())]
    lines.append(f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def chunks(total: int, size: int = 64 * 1024) -> Iterator[bytes]:
    """``total`` bytes of a chunked body in ``size`` pieces, never terminated (the sender is still going)."""
    for _ in range(total // size):
        yield b"%x\r\n" % size + b" " * size + b"\r\n"


def raw_exchange(base_url: str, head: bytes, parts: Iterable[bytes] = (), *, timeout: float = 5.0) -> tuple[int, int]:
    """Send ``head``, then ``parts`` until the server answers: its status and the bytes of ``parts``
    sent before the answer came.  A server that waits for the whole body makes this time out."""
    host, port = base_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=timeout) as sock:
        sock.sendall(head)
        sent = 0
        for part in parts:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer is in
            try:
                sock.sendall(part)
            except OSError:
                break  # the server stopped reading
            sent += len(part)
        response = b""
        while b"\r\n" not in response:
            data = sock.recv(4096)
            if not data:
                break
            response += data
    return int(response.split(b" ", 2)[1]), sent


@dataclass
class RecordingIntake:
    """An :class:`~orchestrator.http.protocol.Intake` that records calls (pure HTTP-validation tests only)."""

    tracked: list[dict[str, Any]] = field(default_factory=list)
    identified: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    refuse_customers: set[str] = field(default_factory=set)
    broken: bool = False
    consent_channels: frozenset[str] | None = None

    def track(
        self,
        customer_id: str,
        event: str,
        properties: dict[str, Any] | None = None,
        *,
        event_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> str:
        if self.broken:
            raise ConnectionError("the queue is unreachable")
        if customer_id in self.refuse_customers:
            raise InputError("customer refused by the runtime", field="customer_id")
        event_id = event_id or f"generated-{len(self.tracked)}"
        self.tracked.append(
            {
                "customer_id": customer_id,
                "event": event,
                "properties": properties or {},
                "event_id": event_id,
                "timestamp": timestamp,
            }
        )
        return event_id

    def track_many(self, events: Sequence[Mapping[str, Any]]) -> list[str]:
        if self.broken:
            raise ConnectionError("the queue is unreachable")
        for index, item in enumerate(events):
            if item["customer_id"] in self.refuse_customers:
                raise InputError("customer refused by the runtime", field="customer_id", index=index)
        return [self.track(**item) for item in events]

    def identify(self, customer_id: str, attributes: dict[str, Any]) -> None:
        if customer_id in self.refuse_customers:
            raise InputError("customer refused by the runtime", field="customer_id")
        self.identified.append((customer_id, attributes))

    def clear(self) -> None:
        self.tracked.clear()
        self.identified.clear()
        self.refuse_customers.clear()
        self.broken = False


class SendGridSigner:
    """A real ECDSA P-256 key pair standing in for SendGrid's."""

    def __init__(self) -> None:
        self.private_key = ec.generate_private_key(ec.SECP256R1())

    @property
    def public_key_b64(self) -> str:
        der = self.private_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return base64.b64encode(der).decode()

    def headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = self.private_key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
            "Content-Type": "application/json",
        }
