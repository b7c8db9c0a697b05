"""Where a simulation keeps its state: a Redis of its own, never the one at ``REDIS_URL``.

Two backends answer the same Redis commands and scripts, so the runtime cannot tell them apart:

- ``redis-server`` (chosen by ``auto`` when the binary is on ``PATH``): a private server started
  for the run on a Unix socket in a temporary folder, with no port, no persistence, and stopped
  (and its folder removed) at the end.  Lua runs in C, which is what makes months of a shop's
  history take a minute or two instead of an hour (docs/benchmarks.md has the figures);
- ``fakeredis``: the embedded mode's in-process Redis (:func:`orchestrator.workers.embedded.in_process_redis`),
  nothing to install, fine for a few thousand customers.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import redis

from orchestrator.errors import ConfigurationError
from orchestrator.workers.embedded import in_process_redis

Backend = Literal["auto", "redis-server", "fakeredis"]
BACKENDS: tuple[Backend, ...] = ("auto", "redis-server", "fakeredis")
#: Seconds a private redis-server may take to answer its first PING.
START_TIMEOUT = 10.0


def chosen(backend: Backend) -> Literal["redis-server", "fakeredis"]:
    """The backend ``auto`` stands for on this machine."""
    if backend == "auto":
        return "redis-server" if shutil.which("redis-server") else "fakeredis"
    return backend


@contextmanager
def private_redis(backend: Backend = "auto") -> Iterator[Any]:
    """A client (``decode_responses=True``) on an empty Redis private to this run."""
    if chosen(backend) == "fakeredis":
        client = in_process_redis()
        try:
            yield client
        finally:
            client.close()
        return
    binary = shutil.which("redis-server")
    if binary is None:
        raise ConfigurationError("--backend redis-server needs the redis-server binary on PATH; or use fakeredis")
    folder = Path(tempfile.mkdtemp(prefix="loyaloop-simulate-"))
    socket = folder / "redis.sock"
    args = [binary, "--port", "0", "--unixsocket", str(socket), "--unixsocketperm", "700", "--dir", str(folder),
            "--save", "", "--appendonly", "no", "--maxmemory-policy", "noeviction"]  # fmt: skip
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    client = redis.Redis(unix_socket_path=str(socket), decode_responses=True)
    try:
        _wait(client, process)
        yield client
    finally:
        client.close()
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        shutil.rmtree(folder, ignore_errors=True)


def _wait(client: redis.Redis, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            client.ping()
            return
        except (redis.ConnectionError, FileNotFoundError):
            if process.poll() is not None:
                raise ConfigurationError(
                    f"the private redis-server exited at start (code {process.returncode})"
                ) from None
            if time.monotonic() > deadline:
                raise ConfigurationError("the private redis-server did not answer in time") from None
            time.sleep(0.01)
