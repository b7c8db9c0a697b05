"""Fixtures for channel tests: Stoplight Prism serving the providers' contracts, and a scripted loopback server.

Prism is part of the test environment (``tests/run.sh`` installs it); when it is missing these
tests fail rather than skip, because a skipped contract test proves nothing.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.channels.fake_google import FakeGoogle
from tests.channels.loopback import LoopbackServer

REPO = Path(__file__).resolve().parents[2]
#: CI runs the repository at another path with ``shared/`` beside it.
SPECS = (REPO / ".." / "shared" / "specs").resolve()
SENDGRID_SPEC = "sendgrid-mail-send.openapi.json"
TWILIO_SPEC = "twilio-messages.openapi.json"
START_TIMEOUT = 60.0


def _prism_binary() -> str:
    local = REPO / "node_modules" / ".bin" / "prism"
    if local.exists():
        return str(local)
    found = shutil.which("prism")
    if found is None:
        pytest.fail("Stoplight Prism is not installed: run `bash tests/run.sh` (it installs @stoplight/prism-cli)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Prism:
    """One Prism mock: its base URL and its log, read for contract violations."""

    url: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def log(self) -> str:
        return self.log_path.read_text(encoding="utf-8", errors="replace")

    def mark(self) -> int:
        """A position in the log; :meth:`violations` reports only what came after it."""
        return len(self.log_path.read_bytes())

    def violations(self, since: int = 0) -> list[str]:
        """Violation lines logged after ``since``, once Prism has logged its answer to the request."""
        deadline = time.monotonic() + 3.0
        text = ""
        while time.monotonic() < deadline:  # Prism writes its log asynchronously
            text = self.log_path.read_bytes()[since:].decode("utf-8", errors="replace")
            if "Responding with" in text or "Request terminated" in text:
                break
            time.sleep(0.02)
        return [line for line in text.splitlines() if "Violation" in line or "✖" in line]


def _start(spec: str, tmp: Path, path: Path | None = None) -> Prism:
    path = path or SPECS / spec
    if not path.exists():
        pytest.fail(f"provider contract {path} is missing; the shared specs must sit beside the repository")
    port = _free_port()
    log_path = tmp / f"prism-{spec}.log"
    log_file = log_path.open("wb")
    process = subprocess.Popen(
        [_prism_binary(), "mock", "-h", "127.0.0.1", "-p", str(port), "--errors", str(path)],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        env={**os.environ, "NO_COLOR": "1", "FORCE_COLOR": "0"},
    )
    log_file.close()
    return Prism(url=f"http://127.0.0.1:{port}", log_path=log_path, process=process)


def _wait(prism: Prism) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if "Prism is listening" in prism.log():
            return
        if prism.process.poll() is not None:
            pytest.fail(f"Prism exited with {prism.process.returncode}:\n{prism.log()[-2000:]}")
        time.sleep(0.1)
    pytest.fail(f"Prism did not start within {START_TIMEOUT:g}s:\n{prism.log()[-2000:]}")


@pytest.fixture(scope="session")
def prism_mocks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Prism]]:
    """The provider mocks and the published action contract, started together (each takes seconds)."""
    tmp = tmp_path_factory.mktemp("prism")
    mocks = {
        "sendgrid": _start(SENDGRID_SPEC, tmp),
        "twilio": _start(TWILIO_SPEC, tmp),
        "actions": _start("actions", tmp, REPO / "docs" / "actions.openapi.json"),
    }
    try:
        for prism in mocks.values():
            _wait(prism)
        yield mocks
    finally:
        for prism in mocks.values():
            prism.process.terminate()
            try:
                prism.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                prism.process.kill()
                prism.process.wait()


@pytest.fixture
def sendgrid_prism(prism_mocks: dict[str, Prism]) -> Prism:
    return prism_mocks["sendgrid"]


@pytest.fixture
def twilio_prism(prism_mocks: dict[str, Prism]) -> Prism:
    return prism_mocks["twilio"]


@pytest.fixture
def actions_prism(prism_mocks: dict[str, Prism]) -> Prism:
    """Prism serving docs/actions.openapi.json: the contract Loyaloop publishes for action calls."""
    return prism_mocks["actions"]


@pytest.fixture
def loopback() -> Iterator[LoopbackServer]:
    server = LoopbackServer().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def rsa_key() -> rsa.RSAPrivateKey:
    """The service account's key, generated once (2048-bit generation takes a moment)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def google(loopback: LoopbackServer, rsa_key: rsa.RSAPrivateKey) -> FakeGoogle:
    """A fake Google token endpoint and FCM v1 endpoint on the loopback server."""
    fake = FakeGoogle(loopback, rsa_key)
    loopback.handler = fake.handle
    return fake
