"""What ``LOYALOOP_INTAKE_REPLICAS=1`` costs a track, on a master with one replica on loopback.

Run: ``python -m tests.benchmarks.bench_intake_replicas [--calls 2000] [--rounds 5] [--no-http]``

Starts a master and its replica (``redis-server --replicaof``) and times ``calls`` tracks per
setting a round, ``rounds`` rounds, one after the other, interleaving the setting off and on call by
call (a shared machine drifts: interleaving puts the drift on both alike):

* **direct**: ``Loyaloop.track`` (the Python API, the CLI and ``/v1/batch``'s path: the store's
  packer, the ``WAIT`` in the same round trip), drain nudges recorded, not sent;
* **http**: ``POST /v1/track`` to a real ``loyaloop serve`` process per setting (the event loop's
  path), through one keep-alive connection.

Prints the median per-call time of each round and setting and the median of the rounds' medians,
with the load average before and after.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import redis

from orchestrator.errors import NotReplicated
from orchestrator.runtime.intake import Loyaloop
from orchestrator.store.replication import ReplicaWait
from tests.redis_server import free_port
from tests.replicated_server import ReplicatedRedis

SECRET = "bench-secret-0123456789abcdef"
#: ``loyaloop serve`` from this interpreter (the checkout's code, not an installed one).
SERVE = "import sys; from orchestrator.cli import main; sys.exit(main(sys.argv[1:]))"


class Nudges:
    def nudge_drain(self, shard: int) -> None:
        pass

    def nudge_profile(self, customer_id: str) -> None:
        pass


#: Calls the replica did not confirm in time (``NotReplicated``, or a 503), by path.
UNCONFIRMED = {"direct": 0, "http": 0}


def direct_call(client: Loyaloop, n: int) -> float:
    """Seconds of one ``track``."""
    started = time.perf_counter()
    try:
        client.track(f"c{n % 500}", "page.viewed", {"n": n}, event_id=uuid.uuid4().hex)
    except NotReplicated:
        UNCONFIRMED["direct"] += 1
    return time.perf_counter() - started


def http_call(http: httpx.Client, n: int) -> float:
    """Seconds of one ``POST /v1/track``."""
    body = {"customer_id": f"c{n % 500}", "event": "page.viewed", "properties": {"n": n}}
    started = time.perf_counter()
    response = http.post("/v1/track", json=body, headers={"Authorization": f"Bearer {SECRET}"})
    elapsed = time.perf_counter() - started
    if response.status_code == 503 and "may or may not" in response.text:
        UNCONFIRMED["http"] += 1
    elif response.status_code != 202:
        raise RuntimeError(f"POST /v1/track answered {response.status_code}: {response.text}")
    return elapsed


def paired_round(call: Callable[[Any, int], float], targets: dict[int, Any], calls: int) -> dict[int, float]:
    """``calls`` calls to each setting, interleaved call by call (off, on, on, off, …: the machine's
    drift falls on both alike); the median microseconds of each."""
    times: dict[int, list[float]] = {0: [], 1: []}
    for n in range(calls):
        for setting in (0, 1) if n % 2 else (1, 0):
            times[setting].append(call(targets[setting], n))
    return {setting: statistics.median(spent) * 1e6 for setting, spent in times.items()}


@contextmanager
def serving(url: str, replicas: int, folder: Path) -> Iterator[httpx.Client]:
    """A ``loyaloop serve`` process on ``url`` with the setting at ``replicas``."""
    port = free_port()
    log = (folder / f"serve-{replicas}.log").open("wb")
    env = {
        **os.environ,
        "REDIS_URL": url,
        "LOYALOOP_API_KEYS": f"bench:{SECRET}",
        "LOYALOOP_API_RATE": "1000000",
        "LOYALOOP_API_BURST": "1000000",
        "LOYALOOP_JOURNEYS": str(folder),
        "LOYALOOP_INTAKE_REPLICAS": str(replicas),
        "LOYALOOP_INTAKE_REPLICA_TIMEOUT_MS": "250",
    }
    process = subprocess.Popen(
        [sys.executable, "-c", SERVE, "serve", "--port", str(port), "--no-access-log", "--log-level", "warning"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if http.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline or process.poll() is not None:
                    raise RuntimeError(f"loyaloop serve did not start: {(folder / log.name).read_text()}")
                time.sleep(0.1)
            yield http
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-http", action="store_true")
    args = parser.parse_args(argv)
    servers = ReplicatedRedis().start()
    servers.flush()  # (its WAIT also lets a replica that only just linked settle)
    folder = Path(tempfile.mkdtemp(prefix="loyaloop-bench-journeys-"))
    print(f"load average before: {os.getloadavg()}")
    try:
        master = redis.Redis.from_url(servers.url, decode_responses=True)
        clients = {0: Loyaloop(Nudges(), master), 1: Loyaloop(Nudges(), master, replicas=ReplicaWait(1, 250))}
        results: dict[str, dict[int, list[float]]] = {"direct": {0: [], 1: []}, "http": {0: [], 1: []}}
        paired_round(direct_call, clients, 200)  # warm-up: scripts loaded, connections made
        for _ in range(args.rounds):
            for setting, median in paired_round(direct_call, clients, args.calls).items():
                results["direct"][setting].append(median)
        if not args.no_http:
            with serving(servers.url, 0, folder) as off, serving(servers.url, 1, folder) as on:
                doors = {0: off, 1: on}
                paired_round(http_call, doors, 200)
                for _ in range(args.rounds):
                    for setting, median in paired_round(http_call, doors, args.calls).items():
                        results["http"][setting].append(median)
        for path, by_setting in results.items():
            if not by_setting[0]:
                continue
            off_median, on_median = (statistics.median(by_setting[s]) for s in (0, 1))
            print(
                f"{path}: off {off_median:.0f} µs, on {on_median:.0f} µs per call "
                f"(+{on_median - off_median:.0f} µs); rounds off {[round(x) for x in by_setting[0]]}, "
                f"on {[round(x) for x in by_setting[1]]}"
            )
        stats = master.info("commandstats").get("cmdstat_wait", {})
        print(f"WAIT calls on the master: {stats.get('calls', 0)}; not confirmed in time: {UNCONFIRMED}")
        master.close()
    finally:
        print(f"load average after: {os.getloadavg()}")
        servers.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
