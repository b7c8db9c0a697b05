"""Drill: SIGKILL a Redis Cluster master in the middle of a run and let the cluster promote its replica.

Run: ``python -m tests.drills.failover [--customers 10000] [--node-timeout-ms 1500] [--processes 1] [--threads 8]``

A real cluster of three masters with one replica each (``cluster-node-timeout`` small, so the
failover fits a test) holds the state; the queue is on a single Redis of its own
(``LOYALOOP_BROKER_URL``), which the failover does not touch.  Real ``dramatiq orchestrator.worker``
processes, a real ``loyaloop scheduler`` and a real ``loyaloop serve`` run throughout.  Customers
run the three-message journey (send, wait, send, wait, send); when a third of the messages are in
the outbox, one master is SIGKILLed — no shutdown, no last word to its replica — while a small HTTP
client keeps tracking new customers through ``serve`` (retrying a 503 with the same event id, as a
client should).

What it measures, besides the outbox (lost, duplicated, unexpected messages):

- **the replication window** just before the kill: the master's ``master_repl_offset`` against what
  its replica had acknowledged (``INFO replication``, sampled every 20 ms), and a canary that INCRs
  one key of the doomed master every half millisecond and remembers the last value the master
  acknowledged; read back on the promoted replica, the difference is the count of acknowledged
  writes the failover threw away;
- **the failover**: seconds until the replica serves the slots, until the outbox grows again;
- **riding through**: the worker group, the scheduler and ``serve`` still run with the same
  processes at the end (no crash loop), how many errors their logs show, and what the HTTP client
  was answered during the failover;
- **the cost of WAIT** (``WAIT 1 <ms>`` after a write, so the write is on the replica before the
  caller hears "ok"): per call, against the same write without it, on the same cluster.

Every customer whose messages are not exactly the journey's is looked up: a key of the killed
master's slots is a loss the replication window explains; anything else is a failure of the design.
"""

from __future__ import annotations

import argparse
import re
import statistics
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
import redis as redis_lib
from redis.crc import key_slot

from orchestrator.store import keys
from orchestrator.store.connect import open_redis
from orchestrator.workers.client import connect
from tests.cluster_server import RedisClusterServers
from tests.drills import support
from tests.drills.sigkill_worker import live_enrollments
from tests.redis_server import RedisServer, free_port

CLI = "from orchestrator.cli import main; main()"
API_SECRET = "failover-drill-secret-0123456789"
#: The canary's key; its slot is looked up, and the canary writes to whichever master owns it.
CANARY = "drill:failover:canary"


# --- the replication window ----------------------------------------------------------------------
class Canary:
    """INCRs one key on one master in a loop, straight to that node; remembers the last value it
    acknowledged.  Stops at the first error (the master is gone)."""

    def __init__(self, node: RedisServer, key: str) -> None:
        self.client = redis_lib.Redis.from_url(node.url, socket_timeout=1)
        self.key = key
        self.acked = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="canary", daemon=True)

    def start(self) -> Canary:
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.acked = int(self.client.incr(self.key))
            except redis_lib.RedisError:
                return
            time.sleep(0.0005)

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.client.close()


class LagSampler:
    """Samples, every ``interval`` seconds, the master's ``master_repl_offset`` and then the replica's
    own ``slave_repl_offset`` (what it has applied): the bytes the replica was behind.  The
    replica's offset as the master reports it (``slave0``) is only refreshed by the replica's
    once-a-second ``REPLCONF ACK``, so it would measure the ACK period, not the lag."""

    def __init__(self, master: RedisServer, replica: RedisServer, interval: float = 0.02) -> None:
        self.master = redis_lib.Redis.from_url(master.url, decode_responses=True, socket_timeout=1)
        self.replica = redis_lib.Redis.from_url(replica.url, decode_responses=True, socket_timeout=1)
        self.interval = interval
        self.samples: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="lag-sampler", daemon=True)

    def start(self) -> LagSampler:
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                written = int(self.master.info("replication")["master_repl_offset"])
                applied = int(self.replica.info("replication")["slave_repl_offset"])
            except redis_lib.RedisError:
                return
            self.samples.append(max(0, written - applied))
            time.sleep(self.interval)

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.master.close()
        self.replica.close()


@dataclass
class Window:
    """What the replica was missing when its master died."""

    lag_samples: int = 0
    lag_median_bytes: float = 0.0
    lag_max_bytes: int = 0
    lag_last_bytes: int = 0  # the last sample before the kill
    canary_acked: int = 0  # the last value the killed master acknowledged
    canary_found: int = 0  # what the promoted replica holds

    @property
    def canary_lost(self) -> int:
        return max(0, self.canary_acked - self.canary_found)

    @property
    def empty(self) -> bool:
        return self.canary_lost == 0 and self.lag_max_bytes == 0


# --- the HTTP front door during the failover ------------------------------------------------------
class HttpClient:
    """Tracks one new customer every ``every`` seconds through ``loyaloop serve``, retrying any
    answer but 202 (and any transport error) with the same event id, 0.1 s apart, up to 30 s."""

    def __init__(self, base: str, ids: list[str], every: float = 0.1) -> None:
        self.base = base
        self.ids = ids
        self.every = every
        self.statuses: Counter[str] = Counter()
        self.accepted: list[str] = []
        self.slowest = 0.0  # seconds from a customer's first try until its 202
        self.thread = threading.Thread(target=self._run, name="http-client", daemon=True)

    def start(self) -> HttpClient:
        self.thread.start()
        return self

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {API_SECRET}"}
        with httpx.Client(base_url=self.base, timeout=5, headers=headers) as client:
            for customer_id in self.ids:
                began = time.monotonic()
                body = {"customer_id": customer_id, "event": "drill.started", "event_id": f"start-{customer_id}"}
                while time.monotonic() - began < 30:
                    try:
                        status = str(client.post("/v1/track", json=body).status_code)
                    except httpx.TransportError as exc:
                        status = type(exc).__name__
                    self.statuses[status] += 1
                    if status == "202":
                        self.accepted.append(customer_id)
                        self.slowest = max(self.slowest, time.monotonic() - began)
                        break
                    time.sleep(0.1)
                time.sleep(self.every)

    def join(self, timeout: float) -> None:
        self.thread.join(timeout)


# --- the result -----------------------------------------------------------------------------------
@dataclass
class Survivor:
    """One long-running process at the end of the run."""

    name: str
    alive: bool
    same_children: bool  # the worker processes it started with are the ones still running
    errors: int  # tracebacks in its log
    warnings: int  # lines naming an outage it retried


@dataclass
class FailoverResult:
    customers: int
    http_customers: int
    expected: int
    received: int = 0
    lost: int = 0
    duplicated: int = 0
    unexpected: int = 0
    live_left: int = 0
    at_messages: int = 0
    killed_port: int = 0
    promoted_port: int = 0
    promoted_after: float = 0.0  # seconds from SIGKILL until every node said cluster_state:ok again
    #: Seconds from SIGKILL until a customer whose keys were on the killed master got a message again
    #: (the other masters' customers are served throughout).
    resumed_after: float = 0.0
    total_seconds: float = 0.0
    window: Window = field(default_factory=Window)
    http_statuses: dict[str, int] = field(default_factory=dict)
    http_accepted: int = 0
    http_slowest: float = 0.0
    survivors: list[Survivor] = field(default_factory=list)
    #: Customers whose messages are not exactly the journey's, by whether their keys lived on the
    #: killed master (explained by the replication window) or elsewhere (not explained).
    off_on_killed: list[str] = field(default_factory=list)
    off_elsewhere: list[str] = field(default_factory=list)
    wait_cost_us: tuple[float, float] = (0.0, 0.0)  # median µs per SET, per SET + WAIT 1
    timed_out: str = ""
    machine: str = ""

    @property
    def ridden_through(self) -> bool:
        return all(proc.alive and proc.same_children for proc in self.survivors)

    @property
    def explained(self) -> bool:
        """Every customer finished exactly, or sits on the killed master while the window was open."""
        if self.off_elsewhere or self.unexpected:
            return False
        return not self.off_on_killed or not self.window.empty


def run(
    customers: int = 10_000,
    *,
    http_customers: int = 30,
    node_timeout_ms: int = 1500,
    processes: int = 1,
    threads: int = 8,
    wait: str = "2s",
    kill_at: float = 1 / 3,
    timeout: float = 900.0,
    log: Any = print,
) -> FailoverResult:
    """The drill; see the module docstring.  ``kill_at``: the share of messages out before the kill."""
    cluster = RedisClusterServers(replicas=1, node_timeout_ms=node_timeout_ms).start()
    queue = support.start_redis()
    try:
        return _drill(cluster, queue.url, customers, http_customers, processes, threads, wait, kill_at, timeout, log)
    finally:
        queue.close()
        cluster.cleanup()


def _drill(
    cluster: RedisClusterServers,
    broker_url: str,
    customers: int,
    http_customers: int,
    processes: int,
    threads: int,
    wait: str,
    kill_at: float,
    timeout: float,
    log: Any,
) -> FailoverResult:
    env = {
        "LOYALOOP_BROKER_URL": broker_url,
        "LOYALOOP_API_KEYS": f"drill:{API_SECRET}",
        "LOYALOOP_HEARTBEAT_MS": "3000",
        "LOYALOOP_TIMER_LEASE": "5",
        "LOYALOOP_SEND_LEASE": "5",
    }
    space = support.make_workspace(cluster.url, {"drill": support.THREE_STEP.format(wait=wait)}, extra_env=env)
    settings = space.settings()
    client = open_redis(settings)
    ids = support.customer_ids(customers)
    via_http = support.customer_ids(http_customers, prefix="h")
    everyone = ids + via_http
    support.seed_profiles(client, everyone)
    expected = len(everyone) * len(support.THREE_STEP_SENDS)
    result = FailoverResult(customers, http_customers, expected, machine=support.describe_machine())
    worker = support.start_worker(space, processes=processes, threads=threads)
    scheduler = support.Proc([support.PYTHON, "-c", CLI, "scheduler", "--idle", "0.05"], space.env(),
                             space.root / "scheduler.log")  # fmt: skip
    port = free_port()
    serve = support.Proc([support.PYTHON, "-c", CLI, "serve", "--port", str(port), "--workers", "1"], space.env(),
                         space.root / "serve.log")  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    procs = {"worker": worker, "scheduler": scheduler, "serve": serve}
    canary: Canary | None = None
    sampler: LagSampler | None = None
    try:
        support.wait_for(lambda: _ready(base), 60, what="loyaloop serve ready")
        children = sorted(worker.children())
        lp = connect(settings)
        started = time.monotonic()
        for customer_id in ids:
            lp.track(customer_id, "drill.started", {}, event_id=f"start-{customer_id}")
        support.close_api(lp)
        log(f"queued {customers:,} events in {time.monotonic() - started:.1f} s")

        victim = cluster.primaries()[0]
        replica = cluster.replica_of(victim)
        assert replica is not None, "the cluster was started without replicas"
        result.killed_port, result.promoted_port = victim.port, replica.port
        doomed = cluster.slots_of(victim)
        canary_key = _key_on(doomed)
        sampler = LagSampler(victim, replica).start()
        canary = Canary(victim, canary_key).start()

        mark = int(expected * kill_at)
        support.wait_for(support.outbox_reaches(space.outbox, mark), timeout, what=f"{mark} messages")
        http = HttpClient(base, via_http).start()
        time.sleep(0.5)  # the HTTP client is tracking when the master dies
        result.at_messages = support.count_lines(space.outbox)
        sampler.halt()
        cluster.kill(victim)
        killed = time.monotonic()
        canary.halt()
        clock = time.strftime("%H:%M:%S")
        log(f"{clock} SIGKILL master :{victim.port} at {result.at_messages:,}/{expected:,} messages")
        result.promoted_after = cluster.wait_promoted(victim)
        log(f"replica :{replica.port} promoted, cluster ok {result.promoted_after:.2f} s after the kill")
        result.window = _window(sampler, canary, replica, canary_key)
        support.wait_for(lambda: _served_again(space, result.at_messages, doomed), timeout, interval=0.05,
                         what="the killed master's customers served again")  # fmt: skip
        result.resumed_after = time.monotonic() - killed
        log(f"the killed master's customers served again {result.resumed_after:.2f} s after the kill")
        http.join(timeout=timeout)
        result.http_statuses = dict(http.statuses)
        result.http_accepted = len(http.accepted)
        result.http_slowest = http.slowest
        try:
            support.wait_for(support.outbox_reaches(space.outbox, expected), timeout, what="every message")
            support.wait_for(lambda: live_enrollments(client, everyone) == 0, 60, interval=0.5, what="finished")
            time.sleep(1.0)  # anything still re-driving would land now
        except TimeoutError as exc:
            result.timed_out = str(exc)
        result.total_seconds = time.monotonic() - started
        _count(result, space, client, everyone, doomed)
        result.survivors = [_survivor(name, proc, children if name == "worker" else None)
                            for name, proc in procs.items()]  # fmt: skip
        result.wait_cost_us = wait_cost(cluster)
        return result
    finally:
        for helper in (canary, sampler):
            if helper is not None:
                helper.halt()
        for proc in procs.values():
            proc.stop()
        client.close()


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def _served_again(space: support.Workspace, after: int, doomed: set[int]) -> bool:
    """Whether a message past the first ``after`` went to a customer of the ``doomed`` slots."""
    fresh = support.outbox_lines(space.outbox)[after:]
    return any(key_slot(keys.profile(line["customer_id"]).encode()) in doomed for line in fresh)


def _key_on(slots: set[int]) -> str:
    """A canary key whose slot is one of ``slots``."""
    for n in range(100_000):
        key = f"{CANARY}:{n}"
        if key_slot(key.encode()) in slots:
            return key
    raise AssertionError("no canary key found for the master's slots")


def _window(sampler: LagSampler, canary: Canary, replica: RedisServer, key: str) -> Window:
    samples = sampler.samples[-250:] or [0]  # the last five seconds before the kill
    reader = redis_lib.Redis.from_url(replica.url)
    try:
        found = int(reader.get(key) or 0)
    finally:
        reader.close()
    return Window(len(samples), statistics.median(samples), max(samples), samples[-1], canary.acked, found)


def _count(
    result: FailoverResult, space: support.Workspace, client: Any, everyone: list[str], doomed: set[int]
) -> None:
    counted = support.tally(space.outbox, everyone, support.THREE_STEP_SENDS)
    result.received = counted.received
    result.lost, result.duplicated, result.unexpected = (
        len(counted.lost),
        len(counted.duplicated),
        len(counted.unexpected),
    )
    result.live_left = live_enrollments(client, everyone)
    off = sorted({c for c, _ in counted.lost} | {c for c, _, _ in counted.duplicated})
    for customer_id in off:
        on_killed = key_slot(keys.profile(customer_id).encode()) in doomed
        (result.off_on_killed if on_killed else result.off_elsewhere).append(customer_id)


def _survivor(name: str, proc: support.Proc, children: list[int] | None) -> Survivor:
    alive = proc.alive()
    same = children is None or sorted(proc.children()) == children
    text = proc.log.read_text(errors="replace") if proc.log.exists() else ""
    errors = len(re.findall(r"^Traceback", text, flags=re.M))
    warnings = len(re.findall(r"outage|ClusterDown|TryAgain|MOVED|Moved", text))
    return Survivor(name, alive, same, errors, warnings)


def wait_cost(cluster: RedisClusterServers, calls: int = 2000) -> tuple[float, float]:
    """Median µs per ``SET`` on a master with a replica, and per ``SET`` followed by ``WAIT 1 1000``
    (the write is on the replica before the caller goes on), measured alternately in one loop."""
    master = cluster.primaries()[0]
    client = redis_lib.Redis.from_url(master.url)
    key = _key_on(cluster.slots_of(master))
    plain: list[float] = []
    waited: list[float] = []
    try:
        for n in range(calls):
            began = time.perf_counter()
            client.set(key, n)
            plain.append(time.perf_counter() - began)
            began = time.perf_counter()
            client.set(key, n)
            acked = client.execute_command("WAIT", 1, 1000)  # type: ignore[no-untyped-call]
            waited.append(time.perf_counter() - began)
            assert int(acked) >= 1, "WAIT timed out: the replica did not acknowledge"
    finally:
        client.close()
    return statistics.median(plain) * 1e6, statistics.median(waited) * 1e6


def report(result: FailoverResult) -> str:
    window = result.window
    lines = [
        f"Failover drill — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {result.machine}",
        f"  customers {result.customers:,} (+{result.http_customers} tracked over HTTP during the failover), "
        f"messages expected {result.expected:,}, in the outbox {result.received:,}",
        f"  lost {result.lost}, duplicated {result.duplicated}, unexpected {result.unexpected}, "
        f"enrollments left live {result.live_left}",
        f"  SIGKILL master :{result.killed_port} at {result.at_messages:,} messages; replica :{result.promoted_port} "
        f"promoted and cluster ok after {result.promoted_after:.2f} s; "
        f"its customers served again after {result.resumed_after:.2f} s",
        f"  replication window before the kill: lag median {window.lag_median_bytes:.0f} B, "
        f"max {window.lag_max_bytes} B, last {window.lag_last_bytes} B ({window.lag_samples} samples, 20 ms apart)",
        f"  canary: {window.canary_acked:,} INCRs acknowledged by the killed master, {window.canary_found:,} on the "
        f"promoted replica: {window.canary_lost} acknowledged writes lost",
        f"  HTTP: {result.http_accepted}/{result.http_customers} tracks accepted, answers {result.http_statuses}, "
        f"slowest 202 {result.http_slowest:.2f} s after the first try",
    ]
    for proc in result.survivors:
        lines.append(
            f"  {proc.name}: {'alive' if proc.alive else 'DEAD'}, "
            f"{'same processes' if proc.same_children else 'processes replaced'}, "
            f"{proc.errors} tracebacks, {proc.warnings} outage lines in its log"
        )
    lines.append(
        f"  customers off the journey: {len(result.off_on_killed)} on the killed master's slots "
        f"{result.off_on_killed[:5]}, {len(result.off_elsewhere)} elsewhere {result.off_elsewhere[:5]}"
    )
    plain, waited = result.wait_cost_us
    lines.append(f"  WAIT 1: SET {plain:.0f} µs, SET + WAIT {waited:.0f} µs per call (median of 2,000, loopback)")
    lines.append(f"  whole run {result.total_seconds:.1f} s")
    if result.timed_out:
        lines.append(f"  {result.timed_out}")
    verdict = result.ridden_through and result.explained and not result.timed_out
    lines.append("  PASS: rode through; every customer finished or is explained" if verdict else "  FAIL")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--http-customers", type=int, default=30)
    parser.add_argument("--node-timeout-ms", type=int, default=1500, help="cluster-node-timeout")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--wait", default="2s", help="the journey's two waits")
    parser.add_argument("--timeout", type=float, default=900.0, help="seconds to wait for every message")
    args = parser.parse_args()
    result = run(
        args.customers,
        http_customers=args.http_customers,
        node_timeout_ms=args.node_timeout_ms,
        processes=args.processes,
        threads=args.threads,
        wait=args.wait,
        timeout=args.timeout,
    )
    print(report(result))
    assert result.ridden_through and result.explained and not result.timed_out, "the failover was not ridden through"


if __name__ == "__main__":
    main()
