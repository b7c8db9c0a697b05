"""Simulation benchmark: ``python -m tests.benchmarks.bench_simulate [--customers N --orders N --months N]``.

Writes a synthetic history (tests/simulate/make_history.py; the default is the target's size:
25,000 customers, 70,000 orders, 18 months), simulates it through every shipped journey with the
chosen private backend and prints one JSON line: lines, track events, messages, wall seconds,
events per second, peak resident memory of this process and of the private redis-server.

It also splits this process's processor time in two (tests/benchmarks/store_meter.py): what went
into the store's round trips, and the rest (engine, gate, rendering, codec, recorder), which no
faster store could remove; with the private server's own processor time beside them.  ``--out``
writes the simulation's files, so two runs can be compared byte for byte.  The ratio to the
production event path is taken against ``bench_runtime``'s event → outbox figure measured on the
same machine (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from orchestrator.simulate.backend import BACKENDS, chosen, private_redis
from orchestrator.simulate.simulation import load_setup, simulate_on, write_output
from orchestrator.simulate.source import read_history
from tests.benchmarks.store_meter import store_meter
from tests.simulate.make_history import history, lines_text


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="loyaloop simulate benchmark")
    parser.add_argument("--customers", type=int, default=25_000)
    parser.add_argument("--orders", type=int, default=70_000)
    parser.add_argument("--months", type=int, default=18)
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    parser.add_argument("--out", type=Path, help="write messages.jsonl, decisions.jsonl, … here")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "history.jsonl"
        path.write_text("".join(lines_text(history(args.customers, args.orders, args.months))), encoding="utf-8")
        began = time.perf_counter()
        lines = read_history(path).lines
        read = time.perf_counter() - began
    setup = load_setup(None, None, 0)
    began = time.perf_counter()
    last = [began]

    def progress(now: datetime, fed: int) -> None:
        # A line a minute on stderr: how far a long run got, even if it is stopped before the end.
        if time.perf_counter() - last[0] >= 60:
            last[0] = time.perf_counter()
            elapsed = last[0] - began
            print(f"{elapsed:6.0f}s virtual {now:%Y-%m-%d} lines {fed}/{len(lines)}", file=sys.stderr, flush=True)

    with private_redis(args.backend) as client, store_meter() as meter:
        cpu = time.process_time()
        result = simulate_on(setup, lines, client, until=lines[-1].at, progress=progress)
        cpu = time.process_time() - cpu
        server = _server_figures(client) if chosen(args.backend) == "redis-server" else {}
    if args.out is not None:
        write_output(args.out, result)
    events = sum(1 for line in lines if line.kind == "track")
    print(
        json.dumps(
            {
                "customers": args.customers,
                "orders": args.orders,
                "months": args.months,
                "backend": chosen(args.backend),
                "lines": len(lines),
                "events": events,
                "messages": len(result.recorder.messages),
                "held": len(result.recorder.decisions),
                "stops": result.stats.stops,
                "read_seconds": round(read, 1),
                "simulate_seconds": round(result.stats.seconds, 1),
                "events_per_second": round(events / result.stats.seconds),
                "cpu_seconds": round(cpu, 1),
                "round_trips": meter.calls,
                "round_trip_cpu_seconds": round(meter.cpu, 1),
                "round_trip_wall_seconds": round(meter.wall, 1),
                "rest_cpu_seconds": round(cpu - meter.cpu, 1),
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
                **server,
            }
        )
    )


def _server_figures(client: Any) -> dict[str, float]:
    """The private redis-server's own processor time and memory peak, read before it stops."""
    cpu, memory = client.info("cpu"), client.info("memory")
    return {
        "redis_cpu_seconds": round(float(cpu["used_cpu_user"]) + float(cpu["used_cpu_sys"]), 1),
        "redis_peak_mb": round(int(memory["used_memory_peak"]) / 2**20),
        "redis_rss_mb": round(int(memory["used_memory_rss"]) / 2**20),
    }


if __name__ == "__main__":
    main()
