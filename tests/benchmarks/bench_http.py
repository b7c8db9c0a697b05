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

from tests.redis_server import RedisServer, free_port

API_KEY = "bench-key-0123456789abcdef"
TRACK_BODY = '{"customer_id": "bench-customer", "event": "order.placed", "properties": {"total": 42.5, "sku": "A-1"}}'
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
    requests: int
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text.strip()).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def parse_wrk(label: str, output: str) -> Result:
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
    return Result(label, total, rps, p50, p99, errors)


def wrk_script(directory: Path) -> Path:
    script = directory / "post.lua"
    body = TRACK_BODY.replace("\\", "\\\\").replace('"', '\\"')
    script.write_text(
        'wrk.method = "POST"\n'
        f'wrk.body = "{body}"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        f'wrk.headers["Authorization"] = "Bearer {API_KEY}"\n',
        encoding="utf-8",
    )
    return script


def wait_until_up(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
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


def load(label: str, url: str, script: Path, *, threads: int, connections: int, seconds: int) -> Result:
    # A short warm-up so both servers are measured hot (imports, pools, first connections).
    subprocess.run(["wrk", "-t1", "-c4", "-d1s", "-s", str(script), url], check=True, capture_output=True)
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script), url]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return parse_wrk(label, output)


def run(*, workers: int, threads: int, connections: int, seconds: int) -> list[Result]:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install wrk)")
    python = sys.executable
    results: list[Result] = []
    redis_server = RedisServer().start()
    work = Path(tempfile.mkdtemp(prefix="loyaloop-bench-http-"))
    script = wrk_script(work)
    env = {
        **os.environ,
        "REDIS_URL": redis_server.url,
        "LOYALOOP_API_KEYS": f"bench:{API_KEY}",
        "LOYALOOP_API_RATE": "1000000",
        "LOYALOOP_API_BURST": "1000000",
        "PROMETHEUS_MULTIPROC_DIR": str(work / "metrics"),
    }
    (work / "metrics").mkdir()
    try:
        port = free_port()
        cli = [python, "-c", "from orchestrator.cli import main; main()"]
        serve = [*cli, "serve", "--port", str(port), "--workers", str(workers)]
        process = start([*serve, "--no-access-log", "--log-level", "warning"], env, work / "serve.log")
        try:
            wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
            results.append(
                load("/v1/track (loyaloop serve)", f"http://127.0.0.1:{port}/v1/track", script,
                     threads=threads, connections=connections, seconds=seconds)
            )  # fmt: skip
        finally:
            stop(process)
        port = free_port()
        # Served exactly as `loyaloop serve` serves the app: the same uvicorn runner and options.
        runner = (
            "from orchestrator.http.server import run_uvicorn; "
            f"run_uvicorn('tests.benchmarks.bench_http:hello', port={port}, workers={workers}, "
            "access_log=False, log_level='warning', proxy_headers=True, server_header=False)"
        )
        bare = [python, "-c", runner]
        process = start(bare, env, work / "hello.log")
        try:
            wait_until_up(f"http://127.0.0.1:{port}/", process)
            results.append(
                load("bare ASGI hello-world (uvicorn)", f"http://127.0.0.1:{port}/", script,
                     threads=threads, connections=connections, seconds=seconds)
            )  # fmt: skip
        finally:
            stop(process)
    finally:
        redis_server.cleanup()
        shutil.rmtree(work, ignore_errors=True)
    return results


def report(results: list[Result], *, workers: int, threads: int, connections: int, seconds: int) -> str:
    lines = [
        f"uvicorn workers: {workers}; wrk: {threads} threads, {connections} connections, {seconds} s; "
        f"{os.cpu_count()} CPUs; Python {platform.python_version()}",
        "",
        "| endpoint | requests | requests/s | p50 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(f"| {r.label} | {r.requests:,} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.errors} |")
    track = results[0]
    verdict = "meets" if track.rps >= TARGET_RPS and track.p99_ms < TARGET_P99_MS and not track.errors else "MISSES"
    lines += ["", f"/v1/track {verdict} the target (≥ {TARGET_RPS:,} req/s, p99 < {TARGET_P99_MS:g} ms, no errors)."]
    if len(results) > 1:
        lines.append(f"/v1/track reaches {track.rps / results[1].rps:.0%} of the bare hello-world's throughput.")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="3-second runs (a smoke test, not a measurement)")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes for both servers")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--seconds", type=int, default=15)
    args = parser.parse_args(argv)
    seconds = 3 if args.quick else args.seconds
    results = run(workers=args.workers, threads=args.threads, connections=args.connections, seconds=seconds)
    print(report(results, workers=args.workers, threads=args.threads, connections=args.connections, seconds=seconds))
    track = results[0]
    return 0 if track.errors == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
