"""HTTP intake (issue 6): ``POST /v1/track`` under wrk, beside a bare ASGI hello-world, same run.

The harness's adapter over ``tests.benchmarks.bench_http`` (which starts its own redis-server,
``loyaloop serve`` and the hello-world under the same uvicorn runner, and loads both with wrk),
used until that module exposes ``run(quick, redis_url=None) -> list[Figure]`` itself.
"""

from __future__ import annotations

import inspect
from typing import Any

from tests.benchmarks import bench_http
from tests.benchmarks.harness import Figure

WORKERS = 2
CONNECTIONS = 16


def run(quick: bool) -> list[Figure]:
    seconds = 5 if quick else 15
    options: dict[str, Any] = {"workers": WORKERS, "threads": 2, "levels": [CONNECTIONS], "seconds": seconds}
    if "rounds" in inspect.signature(bench_http.run).parameters:
        options["rounds"] = 1 if quick else 3  # the median round is reported
    found = bench_http.run(**options)
    results, queued = found[0], found[1]
    track = next(r for r in results if r.label == "/v1/track")
    hello = next(r for r in results if r.label == "hello-world")
    setting = f"{WORKERS} uvicorn workers, {CONNECTIONS} connections, {seconds} s"
    return [
        Figure(
            "http",
            f"/v1/track requests/s ({setting})",
            track.rps,
            "req/s",
            hello.rps,
            "hello req/s",
            float(bench_http.TARGET_RPS),
            ">=",
            note=f"{track.errors} errors, {queued:,} queued",
        ),
        Figure(
            "http",
            "/v1/track p99 latency",
            track.p99_ms,
            "ms",
            hello.p99_ms,
            "hello ms",
            bench_http.TARGET_P99_MS,
            "<=",
            note=f"p50 {track.p50_ms:.1f} ms",
        ),
    ]
