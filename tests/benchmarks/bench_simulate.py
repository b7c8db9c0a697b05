"""Simulation benchmark: ``python -m tests.benchmarks.bench_simulate [--customers N --orders N --months N]``.

Writes a synthetic history (tests/simulate/make_history.py; the default is the target's size:
25,000 customers, 70,000 orders, 18 months), simulates it through every shipped journey with the
chosen private backend and prints one JSON line: lines, track events, messages, wall seconds,
events per second, peak resident memory.  The ratio to the production event path is taken against
``bench_runtime``'s event → outbox figure measured on the same machine (docs/benchmarks.md).
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

from orchestrator.simulate.backend import BACKENDS, chosen
from orchestrator.simulate.simulation import load_setup, simulate
from orchestrator.simulate.source import read_history
from tests.simulate.make_history import history, lines_text


def main() -> None:
    parser = argparse.ArgumentParser(description="loyaloop simulate benchmark")
    parser.add_argument("--customers", type=int, default=25_000)
    parser.add_argument("--orders", type=int, default=70_000)
    parser.add_argument("--months", type=int, default=18)
    parser.add_argument("--backend", choices=BACKENDS, default="auto")
    args = parser.parse_args()
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

    result = simulate(setup, lines, until=lines[-1].at, backend=args.backend, progress=progress)
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
                "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            }
        )
    )


if __name__ == "__main__":
    main()
