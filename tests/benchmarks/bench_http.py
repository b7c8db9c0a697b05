"""Benchmark: ``POST /v1/track`` requests/s and p99 latency, beside a bare ASGI hello-world.

Run: ``.venv/bin/python -m tests.benchmarks.bench_http`` (``--quick`` for a short smoke run).

Everything runs on loopback: a throw-away redis-server, ``loyaloop serve`` (the real app: bearer
auth, the Redis rate limiter, validation, the runtime's intake enqueueing onto the Dramatiq
RedisBroker) and the same uvicorn serving a bare ASGI app that reads the body and answers 200.
Both are loaded by ``wrk`` with the same POST, connections, threads and duration, one after the
other, so the hello-world row is the ceiling of "uvicorn on this machine" and the gap is what
Loyaloop costs.  No worker consumes the queue during the run: this measures the front door only.

The machine has two cores shared by uvicorn, redis-server and wrk, so absolute numbers are
modest; the targets are ≥ 2,000 requests/s and p99 < 25 ms for ``/v1/track``.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import redis

from orchestrator.runtime.event_queue import EventQueue
from orchestrator.store import keys
from tests.benchmarks.harness import require_tool
from tests.redis_server import RedisServer, free_port

API_KEY = "bench-key-0123456789abcdef"
TARGET_RPS = 2000
TARGET_P99_MS = 25.0


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The yardstick: a bare ASGI app that reads the request body and answers a tiny JSON 200."""
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"application/json")]})
    await send({"type": "http.response.body", "body": b'{"hello":"world"}'})


@dataclass
class Result:
    label: str
    connections: int
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(label: str, connections: int, output: str) -> Result:
    """Requests/s, p50, p99 and non-2xx count from ``wrk --latency`` output."""
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = int(bad.group(1)) if bad else 0
    if socket_errors:
        errors += sum(int(part) for part in socket_errors.groups())
    return Result(label, connections, total, rps, p50, p99, errors)


#: wrk script: every request a new event id (as a well-behaved client sends) for one of 1,000 customers,
#: so the duplicate check and the per-customer keys are exercised as in production.
WRK_SCRIPT = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
local counter = 0
local prefix = tostring(math.random(1, 1000000000))
request = function()
  counter = counter + 1
  local body = string.format(
    '{"customer_id": "bench-%%d", "event": "order.placed", "event_id": "e-%%s-%%d", '
    .. '"properties": {"total": 42.5, "sku": "A-1"}}', counter %% 1000, prefix, counter)
  return wrk.format(nil, nil, nil, body)
end
"""


def wrk_script(directory: Path) -> Path:
    script = directory / "post.lua"
    script.write_text(WRK_SCRIPT % {"key": API_KEY}, encoding="utf-8")
    return script


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"server at {url} did not start within {timeout:g}s")


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as handle:
        return subprocess.Popen(command, env=env, stdout=handle, stderr=subprocess.STDOUT)


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def load(label: str, url: str, *, script: Path, threads: int, connections: int, seconds: int) -> Result:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return parse_wrk(label, connections, output)


def launch(
    command: list[str], env: dict[str, str], log: Path, script: Path, path: str
) -> tuple[subprocess.Popen[bytes], int]:
    """Start a server on a free port, wait for it, warm it up (imports, pools, first connections)."""
    port = free_port()
    process = start([part.replace("{port}", str(port)) for part in command], env, log)
    try:
        wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
    except RuntimeError as exc:
        stop(process)
        raise RuntimeError(f"{exc}; its log ends with:\n{log.read_text(errors='replace')[-2000:]}") from None
    subprocess.run(
        ["wrk", "-t1", "-c4", "-d1s", "-s", str(script), f"http://127.0.0.1:{port}{path}"], capture_output=True
    )
    return process, port


def median_row(rows: list[Result]) -> Result:
    """The round with the median throughput, its errors replaced by the total over all rounds."""
    ordered = sorted(rows, key=lambda r: r.rps)
    middle = ordered[len(ordered) // 2]
    return Result(middle.label, middle.connections, middle.requests, middle.rps, middle.p50_ms, middle.p99_ms,
                  sum(r.errors for r in rows))  # fmt: skip


def run(*, workers: int, threads: int, levels: list[int], seconds: int, rounds: int) -> tuple[list[Result], int, int]:
    """Both servers up at once, loaded in alternation (track, hello, track, hello …) so the two see the
    same contention from whatever else the machine runs; ``rounds`` repeats, the median kept.

    Returns the rows, the events found on the workers' queue and the 202s answered in all rounds.
    """
    require_tool("wrk", "apt-get install wrk")
    python = sys.executable
    redis_server = RedisServer().start()
    work = Path(tempfile.mkdtemp(prefix="loyaloop-bench-http-"))
    (work / "metrics").mkdir()
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "LOYALOOP_API_KEYS": f"bench:{API_KEY}",
        "LOYALOOP_API_RATE": "1000000",
        "LOYALOOP_API_BURST": "1000000",
        "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
        "LOYALOOP_JOURNEYS": str(work / "journeys"),
    }
    script = wrk_script(work)
    serve = [python, "-c", "from orchestrator.cli import main; main()", "serve", "--port", "{port}"]
    serve += ["--workers", str(workers), "--no-access-log", "--log-level", "warning"]
    # The yardstick is served exactly as `loyaloop serve` serves the app: same uvicorn runner and options.
    hello_runner = (
        "from orchestrator.http.server import run_uvicorn; "
        "run_uvicorn('tests.benchmarks.bench_http:hello', port={port}, "
        f"workers={workers}, access_log=False, log_level='warning', proxy_headers=True, server_header=False)"
    )
    processes: list[subprocess.Popen[bytes]] = []
    try:
        client = redis.Redis.from_url(redis_server.url)
        track, track_port = launch(serve, env, work / "serve.log", script, "/v1/track")
        processes.append(track)
        hello_process, hello_port = launch([python, "-c", hello_runner], env, work / "hello.log", script, "/")
        processes.append(hello_process)
        events = EventQueue(redis.Redis.from_url(redis_server.url, decode_responses=True))
        client.delete(*(keys.event_queue(shard) for shard in range(events.shards)))  # forget the warm-up
        options: dict[str, Any] = {"script": script, "threads": threads, "seconds": seconds}
        rows: dict[tuple[str, int], list[Result]] = {}
        for _ in range(rounds):
            for level in levels:
                for label, url in (
                    ("/v1/track", f"http://127.0.0.1:{track_port}/v1/track"),
                    ("hello-world", f"http://127.0.0.1:{hello_port}/"),
                ):
                    rows.setdefault((label, level), []).append(load(label, url, connections=level, **options))
        queued = events.depth()
        accepted = sum(
            r.requests - r.errors for (label, _), results in rows.items() if label == "/v1/track" for r in results
        )
        client.close()
    finally:
        for process in processes:
            stop(process)
        redis_server.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    ordered = [median_row(rows[(label, level)]) for label in ("/v1/track", "hello-world") for level in levels]
    return ordered, queued, accepted


def report(
    results: list[Result],
    queued: int,
    accepted: int,
    *,
    workers: int,
    threads: int,
    seconds: int,
    rounds: int,
    load: tuple[float, float],
) -> str:
    lines = [
        f"uvicorn workers: {workers} (httptools, uvloop); wrk: {threads} threads, {seconds} s per row, "
        f"median of {rounds} round(s); {os.cpu_count()} CPUs shared by server, redis-server and wrk; "
        f"Python {platform.python_version()}; load average before/after: {load[0]:.1f}/{load[1]:.1f}",
        "",
        "| endpoint | connections | requests | requests/s | p50 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        cells = [r.label, str(r.connections), f"{r.requests:,}", f"{r.rps:,.0f}", f"{r.p50_ms:.2f}", f"{r.p99_ms:.2f}"]
        lines.append("| " + " | ".join([*cells, str(r.errors)]) + " |")
    lines.append("")
    hello = {r.connections: r for r in results if r.label == "hello-world"}
    for r in results:
        if r.label != "/v1/track":
            continue
        ok = r.rps >= TARGET_RPS and r.p99_ms < TARGET_P99_MS and not r.errors
        share = f", {r.rps / hello[r.connections].rps:.0%} of hello-world" if r.connections in hello else ""
        lines.append(f"- {r.connections} connections: {'meets' if ok else 'misses'} the target{share}")
    verdict = "every 202 was enqueued" if queued >= accepted else "MISSING EVENTS"
    lines.append(
        f"- 202 answers counted by wrk: {accepted:,}; events on the workers' queue: {queued:,} ({verdict}; "
        "the queue also holds requests still in flight when wrk stopped counting)"
    )
    lines.append(f"- target: ≥ {TARGET_RPS:,} requests/s with p99 < {TARGET_P99_MS:g} ms and no errors")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="one 3-second round at 16 connections (a smoke test)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes for both servers")
    parser.add_argument("--connections", default="8,16,32", help="comma-separated wrk connection counts")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--seconds", type=int, default=5, help="seconds per row")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per row (the median is reported)")
    args = parser.parse_args(argv)
    seconds, rounds = (3, 1) if args.quick else (args.seconds, args.rounds)
    levels = [16] if args.quick else [int(part) for part in args.connections.split(",")]
    before = os.getloadavg()[0]
    results, queued, accepted = run(
        workers=args.workers, threads=args.threads, levels=levels, seconds=seconds, rounds=rounds
    )
    load = (before, os.getloadavg()[0])
    print(
        report(
            results,
            queued,
            accepted,
            workers=args.workers,
            threads=args.threads,
            seconds=seconds,
            rounds=rounds,
            load=load,
        )
    )
    return 0 if all(r.errors == 0 for r in results) and queued >= accepted else 1


if __name__ == "__main__":
    raise SystemExit(main())
