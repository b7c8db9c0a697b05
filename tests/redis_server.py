"""Start a real ``redis-server`` on a free loopback port (used by fixtures and benchmarks)."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A throw-away redis-server; ``appendonly`` turns on AOF for the restart drills, ``extra_args``
    adds server options (e.g. cluster mode for the cluster-safety tests)."""

    def __init__(self, *, appendonly: bool = False, port: int | None = None, extra_args: Sequence[str] = ()) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed; run `bash tests/run.sh` (it installs it)")
        self.binary = binary
        self.port = port or free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="loyaloop-redis-"))
        self.appendonly = appendonly
        self.extra_args = list(extra_args)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        args = [
            self.binary,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self.directory),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--protected-mode", "yes",
            *self.extra_args,
        ]  # fmt: skip
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = redis.Redis.from_url(self.url)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.02)
        client.close()
        return self

    def stop(self, *, kill: bool = False) -> None:
        if self.process is not None:
            if kill:
                self.process.kill()
            else:
                self.process.terminate()
            self.process.wait(timeout=10)
            self.process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)


def start_cluster_node() -> RedisServer:
    """A started redis-server in cluster mode owning every slot: it enforces the one-slot rule for
    scripts, so a test can show a script is Redis Cluster safe.  Call ``cleanup()`` when done."""
    bus = ["--cluster-port", str(free_port())]  # the default (port + 10000) may be taken or past 65535
    server = RedisServer(extra_args=["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", *bus])
    try:
        server.start()
        client = redis.Redis.from_url(server.url, decode_responses=True)
        client.execute_command("CLUSTER", "ADDSLOTSRANGE", 0, 16383)  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + 10
        while "cluster_state:ok" not in client.execute_command("CLUSTER", "INFO"):  # type: ignore[no-untyped-call]
            assert time.monotonic() < deadline, "the cluster node never reported cluster_state:ok"
            time.sleep(0.01)
        client.close()
    except BaseException:
        server.cleanup()  # a server that never answered is still stopped
        raise
    return server
