"""Benchmark: server time of every console page with 100,000 customers and the 9 shipped journeys.

Run: ``.venv/bin/python -m tests.benchmarks.bench_console`` (``--customers 2000`` for a quick run).

A throw-away redis-server on loopback is seeded the honest way first: ``loyaloop demo``'s own run
(300 synthetic customers, 120 simulated days, through the real actors, gate and channels) is saved
with :mod:`orchestrator.store.snapshot` and loaded.  Those customers' keys (profile, consent and its
history, runs, send log, seen events …) are then copied with ``DUMP``/``RESTORE`` under new ids until
there are ``--customers`` of them, so every customer has the shape a real one has.  The console is
served by uvicorn; an ASGI wrapper times each request from its first byte in to its last byte out
(server time), and each page is asked for ``--rounds`` times after two warm-up requests.

The target is 100 ms server time per page.  The console is built as ``loyaloop serve`` builds it:
with the measurement records' reader and the report's lift panels, so the calendar reads the
records.  ``--send-logs`` leaves the records out, as a console without them would run: the calendar
then adds up every customer's send log in a thread beside the requests; its first request, which
starts that reading, is timed as a page, and the reading's own duration is printed apart.
"""

from __future__ import annotations

import argparse
import re
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import redis

from orchestrator.cli.demo_run import run_demo
from orchestrator.http.console import create_console
from orchestrator.http.console.auth import User, hash_password
from orchestrator.http.console.lift import record_sources
from orchestrator.language.journey import Journey
from orchestrator.language.loader import load_journeys
from orchestrator.settings import Settings, load_settings
from orchestrator.store import Store, keys, snapshot
from tests.http.helpers import serve
from tests.redis_server import RedisServer

TARGET_MS = 100.0
PASSWORD = "benchmark passphrase"


class Timed:
    """An ASGI wrapper keeping each request's server time (ms) by path."""

    def __init__(self, app: Callable[..., Awaitable[None]]) -> None:
        self.app = app
        self.times: dict[str, list[float]] = {}

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        await self.app(scope, receive, send)
        self.times.setdefault(scope["path"], []).append((time.perf_counter() - started) * 1000)


def seed(client: redis.Redis, url: str, customers: int, folder: Path) -> tuple[int, float]:
    """The demo's state, then its customers copied up to ``customers``; (keys copied, seconds)."""
    settings = load_settings().model_copy(update={"outbox_path": folder / "outbox.jsonl"})
    journeys = load_journeys(settings.journeys_dir, settings.templates_dir, vouchers=settings.vouchers)
    state = folder / "state.json"
    run_demo(settings, journeys, customers=300, days=120, seed=7, state=state)
    snapshot.load(client, state)
    started = time.perf_counter()
    raw = redis.Redis.from_url(url)  # bytes: DUMP payloads are binary
    pattern = re.compile(rb"^lp:c:\{([^}]*)\}:(.*)$")
    by_customer: dict[bytes, list[tuple[bytes, bytes]]] = {}
    for key in raw.scan_iter(match=b"lp:c:{*", count=1000):
        found = pattern.match(key)
        if found:
            by_customer.setdefault(found.group(1), []).append((found.group(2), raw.dump(key) or b""))
    templates = sorted(by_customer.items())
    copied = 0
    pipe = raw.pipeline(transaction=False)
    for index in range(customers - len(templates)):
        _source, parts = templates[index % len(templates)]
        customer = f"bench-{index:06d}".encode()
        for suffix, payload in parts:
            pipe.restore(b"lp:c:{" + customer + b"}:" + suffix, 0, payload, replace=True)
            copied += 1
        if copied % 20_000 < len(parts):
            pipe.execute()
    pipe.execute()
    raw.close()
    return copied, time.perf_counter() - started


#: Pages whose first request is also timed on a console just built (no reading of the records kept
#: yet, not even the calendar's): the overview reads every journey's records and builds the report.
COLD = ("/", "/journeys/welcome", "/calendar")


def log_in(http: httpx.Client) -> None:
    """Log the benchmark's viewer in (its session cookie stays on ``http``)."""
    token = re.search(r'name="csrf" value="([^"]+)"', http.get("/login").text)
    assert token is not None
    answer = http.post("/login", data={"user": "bench", "password": PASSWORD, "csrf": token.group(1)})
    assert answer.status_code == 303, answer.text


def cold_first(
    client: redis.Redis, settings: Settings, journeys: dict[str, Journey], users: dict[str, User], path: str
) -> float:
    """The server time (ms) of ``path``'s first request on a console of its own, built as the
    benchmark's (without ``serve``'s reading beside start-up)."""
    records, lift = record_sources(Store(client).version_figures)
    timed = Timed(create_console(settings, client, journeys, users, b"c" * 32, figures=records, lift=lift))
    with serve(timed) as base, httpx.Client(base_url=base, timeout=120) as http:
        log_in(http)
        timed.times.clear()
        assert http.get(path).status_code == 200, path
        return timed.times[path][0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--send-logs", action="store_true", help="no measurement records: the calendar scans the logs")
    args = parser.parse_args(argv)
    server = RedisServer().start()
    folder = Path(tempfile.mkdtemp(prefix="loyaloop-bench-console-"))
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        copied, seconds = seed(client, server.url, args.customers, folder)
        profiles = sum(1 for _ in client.scan_iter(match=keys.profile("*"), count=5000))
        print(f"seeded {profiles:,} customers ({copied:,} keys copied in {seconds:.1f} s); {client.dbsize():,} keys")
        settings = load_settings()
        journeys = load_journeys(settings.journeys_dir, settings.templates_dir, vouchers=settings.vouchers)
        users = {"bench": User("bench", hash_password(PASSWORD, n=2**12), "viewer")}
        # As serve and loyaloop console build it: the measurement records and the report's lift on
        # one shared reading (without the reading serve starts beside start-up: every first request is cold).
        records, lift = record_sources(Store(client).version_figures)
        console = create_console(
            settings,
            client,
            journeys,
            users,
            b"b" * 32,
            figures=None if args.send_logs else records,
            lift=None if args.send_logs else lift,
        )
        timed = Timed(console)
        pages = ["/", *(f"/journeys/{journey_id}" for journey_id in sorted(journeys)), "/customers/cust-0001"]
        pages.append(f"/customers/bench-{max(0, args.customers - 300) // 2:06d}")
        rows: list[tuple[str, float, float, float, float]] = []
        with serve(timed) as base, httpx.Client(base_url=base, timeout=120) as http:
            log_in(http)
            timed.times.clear()
            began = time.perf_counter()
            assert http.get("/calendar").status_code == 200
            first_calendar = timed.times["/calendar"][0]
            while "read at" not in http.get("/calendar").text:
                time.sleep(0.5)
            reading_seconds = time.perf_counter() - began
            for path in [*pages, "/calendar"]:
                for _ in range(2):
                    assert http.get(path).status_code == 200, path
                first = timed.times.pop(path, [0.0])[0]
                for _ in range(args.rounds):
                    http.get(path)
                samples = sorted(timed.times[path])
                p95 = samples[max(0, int(len(samples) * 0.95) - 1)]
                rows.append((path, statistics.median(samples), p95, max(samples), first))
        cold = {} if args.send_logs else {path: cold_first(client, settings, journeys, users, path) for path in COLD}
        width = max(len(path) for path, *_ in rows) + 2
        print(
            f"{'page':<{width}} {'median ms':>10} {'p95 ms':>8} {'max ms':>8} {'first ms':>9}  target {TARGET_MS:.0f}"
        )
        for path, median, p95, worst, first in rows:
            verdict = "ok" if p95 <= TARGET_MS else "MISSED"
            print(f"{path:<{width}} {median:>10.1f} {p95:>8.1f} {worst:>8.1f} {first:>9.1f}  {verdict}")
        verdict = "ok" if first_calendar <= TARGET_MS else "MISSED"
        print(f"{'/calendar (first request)':<{width}} {first_calendar:>10.1f} {'':>8} {'':>8}  {verdict}")
        for path, took in cold.items():
            verdict = "ok" if took <= TARGET_MS else "MISSED"
            print(f"{path + ' (cold console)':<{width}} {took:>10.1f} {'':>8} {'':>8}  {verdict}")
        source = "send logs" if args.send_logs else "measurement records"
        print(f"the calendar's first reading ({source}) took {reading_seconds:.1f} s, in the background")
        print("first ms: a page's first request, which reads the records (kept 15 s) and draws the flow")
        print("cold console: the first request of a page on a console just built, nothing read before it")
        missed = any(p95 > TARGET_MS for _path, _median, p95, _worst, _first in rows)
        return 1 if missed else 0
    finally:
        client.close()
        server.cleanup()


if __name__ == "__main__":
    raise SystemExit(main())
