"""What the drills and benchmarks share: a throw-away project folder, real processes, outbox checks.

Everything here drives the production path from outside, the way ops would: ``dramatiq
orchestrator.worker`` processes started with an environment, a scheduler process, events queued
through the public Python API, and the outbox file read back as the record of what customers got.
Processes run in their own session so one ``os.killpg`` takes down a worker master and its children
together (a container being killed), and nothing else.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from orchestrator.language.profile import Profile
from orchestrator.store import keys

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
DRAMATIQ = str(Path(sys.executable).with_name("dramatiq"))

#: A settings file with no caps and no quiet hours: the drills count messages, so nothing may be held back.
OPEN_SETTINGS = """\
default_timezone: UTC
default_locale: en
locales: [en]
caps: []
quiet_hours: {}
"""

#: Three sends, two short waits: the journey every exactly-once drill runs.
THREE_STEP = """\
id: drill
name: Drill journey
trigger:
  event: drill.started
re_entry: never
category: transactional
priority: 50
# Never sent: the goal only makes each entry open a measurement window (the SIGKILL drill counts
# every customer's order in it), without ending any run.
goals:
  - event: drill.converted
    within: 1d
steps:
  - id: first
    send: email
    template: drill_first
  - id: pause_one
    wait: {wait}
  - id: second
    send: sms
    template: drill_second
  - id: pause_two
    wait: {wait}
  - id: third
    send: email
    template: drill_third
  - id: done
    exit: true
"""

#: One send right away: the event → send benchmark and the provider-fault drill.
ONE_STEP = """\
id: ping
name: One message per event
trigger:
  event: ping.sent
re_entry: always
category: transactional
priority: 50
steps:
  - id: only
    send: email
    template: drill_first
  - id: done
    exit: true
"""

#: A wait first, then a send: the scheduler drills and the timer benchmark.
WAIT_THEN_SEND = """\
id: waiter
name: Wait, then one message
trigger:
  event: wait.started
re_entry: never
category: transactional
priority: 50
steps:
  - id: pause
    wait: {wait}
  - id: after
    send: email
    template: drill_first
  - id: done
    exit: true
"""

#: Entered in batches by the cohort benchmark (no trigger event ever sent); entering means waiting.
COHORT = """\
id: cohort
name: Cohort entry
trigger:
  event: cohort.never
re_entry: never
category: transactional
priority: 50
steps:
  - id: settle
    wait: 30d
  - id: hello
    send: email
    template: drill_first
  - id: done
    exit: true
"""

TEMPLATES = {
    "email/drill_first.subject.j2": "Hello {{ profile.first_name | default('there', true) }}",
    "email/drill_first.txt.j2": "First message for {{ profile.id }}.",
    "email/drill_first.html.j2": "<p>First message for {{ profile.id }}.</p>",
    "email/drill_third.subject.j2": "Third",
    "email/drill_third.txt.j2": "Third message.",
    "email/drill_third.html.j2": "<p>Third message.</p>",
    "sms/drill_second.txt.j2": "Second message.",
}

#: What the three-step journey sends each customer: (step, channel).
THREE_STEP_SENDS = (("first", "email"), ("second", "sms"), ("third", "email"))


@dataclass
class Workspace:
    """A project folder (journeys, templates, outbox) and the environment processes run with."""

    root: Path
    redis_url: str
    extra_env: dict[str, str] = field(default_factory=dict)

    @property
    def journeys(self) -> Path:
        return self.root / "journeys"

    @property
    def templates(self) -> Path:
        return self.root / "templates"

    @property
    def outbox(self) -> Path:
        return self.root / "outbox.jsonl"

    def env(self, **overrides: str) -> dict[str, str]:
        # No provider credentials (nothing leaves the machine) and no inherited Prometheus folder
        # (an empty one makes prometheus_client write its files into the working directory).
        environ = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("SENDGRID_", "TWILIO_", "FCM_")) and k != "PROMETHEUS_MULTIPROC_DIR"
        }
        environ.update(
            REDIS_URL=self.redis_url,
            LOYALOOP_JOURNEYS=str(self.journeys),
            LOYALOOP_TEMPLATES=str(self.templates),
            LOYALOOP_OUTBOX=str(self.outbox),
            LOYALOOP_SECRET_KEY="drill-secret-key-drill-secret-key-0123",
            PYTHONPATH=str(ROOT),
            PYTHONUNBUFFERED="1",
        )
        environ.update(self.extra_env)
        environ.update(overrides)
        return environ

    def settings(self) -> Any:
        from orchestrator.settings import load_settings

        return load_settings(self.journeys, env=self.env())


def make_workspace(
    redis_url: str,
    journeys: Mapping[str, str],
    *,
    settings: str = OPEN_SETTINGS,
    root: Path | None = None,
    extra_env: Mapping[str, str] | None = None,
) -> Workspace:
    """Write journeys (file stem → YAML), the drill templates and a settings file into a fresh folder."""
    folder = root or Path(tempfile.mkdtemp(prefix="loyaloop-drill-"))
    space = Workspace(folder, redis_url, dict(extra_env or {}))
    space.journeys.mkdir(parents=True, exist_ok=True)
    (space.journeys / "settings.yaml").write_text(settings)
    for stem, text in journeys.items():
        (space.journeys / f"{stem}.yaml").write_text(text)
    for name, text in TEMPLATES.items():
        path = space.templates / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return space


# --- customers and events ------------------------------------------------------------------------
def customer_ids(count: int, prefix: str = "c") -> list[str]:
    return [f"{prefix}{index:07d}" for index in range(count)]


def seed_profiles(client: redis.Redis, ids: Iterable[str], *, batch: int = 1000) -> int:
    """Write profiles with an e-mail address, a phone number and consent, pipelined (fast set-up)."""
    written = 0
    pipe = client.pipeline(transaction=False)
    for customer_id in ids:
        profile = Profile(
            id=customer_id,
            email=f"{customer_id}@example.test",
            phone=f"+3161{written % 10_000_000:07d}",
            timezone="UTC",
            locale="en",
        )
        pipe.set(keys.profile(customer_id), profile.model_dump_json(exclude={"consent"}))
        pipe.hset(keys.consent(customer_id), mapping={"email": "1", "sms": "1", "push": "1"})
        written += 1
        if written % batch == 0:
            pipe.execute()
    pipe.execute()
    return written


def broker_client(redis_url: str) -> tuple[Any, Any]:
    """A RedisBroker and the actors bound to it, as a producer (the API side) sees them.

    The actors' runtime is never built here: this process only sends messages.
    """
    from dramatiq.brokers.redis import RedisBroker

    from orchestrator.workers.actors import Actors

    broker = RedisBroker(url=redis_url, namespace="loyaloop")  # type: ignore[no-untyped-call]

    def no_runtime(_actors: Any) -> Any:
        raise RuntimeError("this process only produces messages")

    return broker, Actors(broker, no_runtime)


def api(redis_url: str) -> Any:
    """The public Python API (``track``/``identify``) bound to the workers' broker."""
    from orchestrator.runtime.intake import Loyaloop

    _broker, actors = broker_client(redis_url)
    return Loyaloop(actors, redis.Redis.from_url(redis_url, decode_responses=True))


def close_api(lp: Any) -> None:
    """Close what :func:`api` opened (its Redis client and broker connections)."""
    lp.store.redis.close()
    lp.nudges.broker.close()


# --- processes -----------------------------------------------------------------------------------
class Proc:
    """A child process in its own session (so a kill reaches its children too), output to a log file."""

    def __init__(self, args: list[str], env: Mapping[str, str], log: Path, *, cwd: Path | None = None) -> None:
        self.args = args
        self.log = log
        self._handle = log.open("ab")
        self.popen = subprocess.Popen(
            args, env=dict(env), cwd=cwd or ROOT, stdout=self._handle, stderr=subprocess.STDOUT, start_new_session=True
        )
        self.started = time.monotonic()

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal the whole process group (the dramatiq master and its worker processes)."""
        if self.alive():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.popen.pid, sig)
        self.popen.wait(timeout=30)
        self._handle.close()

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (dramatiq's graceful shutdown), then SIGKILL if it lingers."""
        if self.alive():
            try:
                os.killpg(self.popen.pid, signal.SIGTERM)
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                pass
        self.kill()

    def children(self) -> list[int]:
        """Process ids in this group other than the leader (dramatiq's worker processes)."""
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == self.popen.pid and int(entry.name) != self.popen.pid:
                found.append(int(entry.name))
        return found

    def rss_bytes(self) -> int:
        """Resident memory of the group (leader and its worker processes)."""
        total = 0
        for pid in [self.popen.pid, *self.children()]:
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                continue
        return total


def start_worker(
    space: Workspace, *, processes: int = 1, threads: int = 8, module: str = "orchestrator.worker", tag: str = "worker"
) -> Proc:
    """``dramatiq orchestrator.worker -p N -t M`` with the workspace's environment."""
    args = [DRAMATIQ, module, "-p", str(processes), "-t", str(threads), "--skip-logging"]
    return Proc(args, space.env(), space.root / f"{tag}.log")


def start_scheduler(
    space: Workspace, *, lease: float = 30.0, idle: float = 0.05, tag: str = "scheduler", victim: bool = False
) -> Proc:
    """A scheduler process (``python -m tests.drills.scheduler_proc``) ticking against the workspace's Redis;
    ``victim`` claims what is due and stalls (see that module)."""
    args = [PYTHON, "-m", "tests.drills.scheduler_proc", "--lease", str(lease), "--idle", str(idle)]
    return Proc([*args, "--victim"] if victim else args, space.env(), space.root / f"{tag}.log")


def wait_for(check: Callable[[], bool], timeout: float, *, interval: float = 0.1, what: str = "condition") -> float:
    """Poll ``check`` until true; returns seconds waited; raises TimeoutError naming ``what``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > timeout:
            raise TimeoutError(f"{what} not reached within {timeout:.0f} s")
        time.sleep(interval)
    return time.monotonic() - started


# --- the outbox as the record of what customers received ----------------------------------------
def outbox_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    lines = []
    with path.open("rb") as handle:
        for raw in handle:
            if raw.endswith(b"\n"):
                lines.append(json.loads(raw))
    return lines


def count_lines(path: Path) -> int:
    if not path.exists():
        return 0
    with path.open("rb") as handle:
        return sum(chunk.count(b"\n") for chunk in iter(lambda: handle.read(1 << 20), b""))


def outbox_reaches(path: Path, count: int) -> Callable[[], bool]:
    """A check for :func:`wait_for`: the outbox holds at least ``count`` messages."""
    return lambda: count_lines(path) >= count


@dataclass
class Tally:
    """What the outbox says each customer received, against what the journey defines."""

    expected: int
    received: int
    lost: list[tuple[str, str]]
    duplicated: list[tuple[str, str, int]]
    unexpected: list[tuple[str, str]]

    @property
    def exact(self) -> bool:
        return not self.lost and not self.duplicated and not self.unexpected


def tally(path: Path, ids: Iterable[str], sends: Iterable[tuple[str, str]]) -> Tally:
    """Compare the outbox with ``sends`` (step, channel) per customer: lost, duplicated, unexpected."""
    wanted = {(customer_id, step): channel for customer_id in ids for step, channel in sends}
    seen: Counter[tuple[str, str]] = Counter()
    unexpected = []
    for line in outbox_lines(path):
        pair = (line["customer_id"], line["step_id"])
        if pair not in wanted or wanted[pair] != line["channel"]:
            unexpected.append(pair)
        seen[pair] += 1
    lost = [pair for pair in wanted if seen[pair] == 0]
    duplicated = [(c, s, n) for (c, s), n in seen.items() if n > 1]
    return Tally(len(wanted), sum(seen.values()), lost, duplicated, unexpected)


def describe_machine(client: redis.Redis | None = None) -> str:
    """One line naming the machine, for figures that must say where they were measured."""
    import platform

    cpus = os.cpu_count()
    text = f"{platform.machine()}, {cpus} CPUs, Python {platform.python_version()}"
    if client is not None:
        text += f", redis-server {client.info('server')['redis_version']}"
    return text + f", load average {os.getloadavg()[0]:.2f}"


@dataclass
class RedisHandle:
    """A started RedisServer and a client on it (closed and removed by :meth:`close`)."""

    server: Any
    client: Any  # redis.Redis with decode_responses=True (str replies; the stubs cannot say so)

    @property
    def url(self) -> str:
        return str(self.server.url)

    def close(self) -> None:
        self.client.close()
        self.server.cleanup()


def start_redis(*, appendonly: bool = False) -> RedisHandle:
    from tests.redis_server import RedisServer

    server = RedisServer(appendonly=appendonly).start()
    return RedisHandle(server, redis.Redis.from_url(server.url, decode_responses=True))


def queue_depths(client: redis.Redis) -> dict[str, int]:
    """Messages waiting in each Dramatiq queue (namespace ``loyaloop``), and the tracked events
    waiting in their shard lists (``events``)."""
    from orchestrator.runtime.event_queue import EventQueue
    from orchestrator.workers.actors import QUEUES

    depths = {queue: int(client.llen(f"loyaloop:{queue}")) for queue in QUEUES}
    depths["events"] = EventQueue(client).depth()
    return depths


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
