"""Start a real RabbitMQ (Debian's ``rabbitmq-server``) on free loopback ports, apart from any system one.

It runs as its own node (``RABBITMQ_NODENAME``), with its own data and log folders, its own AMQP and
distribution ports and its own ``epmd`` (on a free port too, started here so it is stopped here),
under a temporary ``HOME`` (the Erlang cookie lives there): a RabbitMQ the machine already runs is
never touched.  Readiness is an AMQP connection that opens, not a sleep.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

import pika

from tests.redis_server import free_port

#: Where Debian installs the server script that runs as the calling user (``/usr/sbin/rabbitmq-server``
#: would switch to the ``rabbitmq`` user and the system's folders).
SERVER_SCRIPT = Path("/usr/lib/rabbitmq/bin/rabbitmq-server")


def unavailable_reason() -> str | None:
    """Why RabbitMQ cannot be started here (shown as the skip reason), or None when it can."""
    if not SERVER_SCRIPT.exists():
        return f"{SERVER_SCRIPT} is missing: `apt-get install -y rabbitmq-server` (tests/run.sh does it)"
    if shutil.which("epmd") is None:
        return "epmd (Erlang) is missing: `apt-get install -y rabbitmq-server` installs it"
    return None


class RabbitMQServer:
    """A throw-away RabbitMQ node; ``url`` is its ``amqp://`` address (guest may log in over loopback)."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dist_port = free_port()
        self.epmd_port = free_port()
        self.directory = Path(tempfile.mkdtemp(prefix="loyaloop-rabbitmq-"))
        self.node = f"loyaloop{self.port}@localhost"
        self.process: subprocess.Popen[bytes] | None = None
        self.epmd: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def environment(self) -> dict[str, str]:
        base = self.directory
        (base / "mnesia").mkdir(exist_ok=True)
        (base / "log").mkdir(exist_ok=True)
        (base / "enabled_plugins").write_text("[].\n")
        return {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(base),
            "ERL_EPMD_PORT": str(self.epmd_port),
            "RABBITMQ_NODENAME": self.node,
            "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
            "RABBITMQ_NODE_PORT": str(self.port),
            "RABBITMQ_DIST_PORT": str(self.dist_port),
            "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
            "RABBITMQ_LOG_BASE": str(base / "log"),
            "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),  # absent: the defaults
            "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
            "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
            "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
            "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
            "RABBITMQ_LOGS": str(base / "log" / "rabbit.log"),
        }

    def start(self, timeout: float = 60.0) -> RabbitMQServer:
        reason = unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
        env = self.environment()
        try:
            epmd = shutil.which("epmd") or "epmd"
            self.epmd = subprocess.Popen(
                [epmd, "-port", str(self.epmd_port), "-address", "127.0.0.1"],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            self.process = subprocess.Popen(
                [str(SERVER_SCRIPT)],
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,  # its Erlang children go with it on stop
            )
            self.wait_ready(timeout)
        except BaseException:
            self.cleanup()
            raise
        return self

    def wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        parameters = pika.URLParameters(self.url)
        while True:
            assert self.process is not None
            if self.process.poll() is not None:
                log = self.directory / "log" / "rabbit.log"
                tail = log.read_text()[-2000:] if log.exists() else "(no log)"
                raise RuntimeError(f"rabbitmq-server exited with {self.process.returncode}: {tail}")
            try:
                pika.BlockingConnection(parameters).close()
                return
            except pika.exceptions.AMQPConnectionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)

    def stop(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=10)
            self.process = None
        if self.epmd is not None:
            self.epmd.terminate()
            self.epmd.wait(timeout=10)
            self.epmd = None

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)
