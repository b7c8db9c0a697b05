"""What a cohort entrant costs, in CPU time and in machine instructions, for figures that hold on a
shared machine (docs/benchmarks.md, "What measuring costs").

The cohort of ``python -m tests.benchmarks --only cohort`` entered in-process: the cohort journey
(``tests.drills.support.COHORT``, a 30-day wait first), chunks of 500 through
``Runtime.enter_batch``, on a redis-server of its own.  Prints the worker's CPU time, Redis' CPU time
and the wall time per entrant, and checks that the measurement record counted every entrant once.

``--instructions`` runs it under valgrind's callgrind instead (worker and redis-server alike,
instrumented only while the cohort enters): instructions per entrant do not move with the load
of the machine, so two commits compare to a few tenths of a percent where wall-clock rates swing
by tens.  ``--without-counts`` leaves the measurement counts out (the runtime's ``entry_figures``
stubbed), to tell their share from the rest of the path.  ``--profile FILE`` writes a cProfile
(CPU time) of the entering.

Run from the worktree under test; for an older commit, point ``PYTHONPATH`` at its worktree and run
this file by its path::

    PYTHONPATH=$PWD python -m tests.benchmarks.cohort_cost 20000 --rounds 3
    PYTHONPATH=$PWD python -m tests.benchmarks.cohort_cost 3000 --instructions
"""

from __future__ import annotations

import argparse
import cProfile
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import redis

from orchestrator.runtime.compose import build_runtime
from orchestrator.settings import load_settings
from orchestrator.store import Store
from orchestrator.workers.scheduler import COHORT_CHUNK
from tests.drills import support
from tests.redis_server import RedisServer


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("size", type=int, nargs="?", default=20_000, help="entrants per round")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--profile", metavar="FILE", help="write a cProfile (CPU time) of the last round")
    parser.add_argument("--instructions", action="store_true", help="count instructions under callgrind")
    parser.add_argument("--without-counts", action="store_true", help="leave the measurement counts out")
    args = parser.parse_args(argv)
    if args.instructions and not os.environ.get("COHORT_COST_GRINDING"):
        sys.exit(_grind(args))
    if args.without_counts:
        import orchestrator.runtime.entries as entries

        entries.entry_figures = lambda decisions, tally_of: None  # type: ignore[assignment,misc]
    _measure(args)


def _measure(args: argparse.Namespace) -> None:
    grinding = bool(os.environ.get("COHORT_COST_GRINDING"))
    server = RedisServer(extra_args=["--hz", "1", "--dynamic-hz", "no"] if grinding else [])
    if grinding:  # the redis-server under callgrind too (--hz 1: few background ticks to count)
        server.binary = _wrapper(server.binary, Path(os.environ["COHORT_COST_GRINDING"]) / "redis.out")
    server.start()
    client = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        space = support.make_workspace(server.url, {"cohort": support.COHORT})
        os.environ.update(space.env())
        runtime = build_runtime(load_settings(), client)
        rows: list[tuple[float, float, float]] = []
        for round_ in range(args.rounds):
            client.flushall()
            store = Store(client)  # loads the scripts again
            ids = support.customer_ids(args.size + 1, prefix=f"r{round_}c")
            support.seed_profiles(client, ids)
            runtime.enter_batch("cohort", [ids[-1]], "warm-up", {})
            chunks = list(support.chunks(ids[:-1], COHORT_CHUNK))
            profiler = cProfile.Profile(time.process_time) if args.profile else None
            pids = [os.getpid(), int(client.info("server")["process_id"])] if grinding else []
            _callgrind("on", pids)
            redis_before, cpu_before, wall_before = redis_cpu(client), own_cpu(), time.perf_counter()
            if profiler is not None:
                profiler.enable()
            entered = sum(runtime.enter_batch("cohort", chunk, "bench", {}) for chunk in chunks)
            if profiler is not None:
                profiler.disable()
            wall, cpu = time.perf_counter() - wall_before, own_cpu() - cpu_before
            redis_seconds = redis_cpu(client) - redis_before
            _callgrind("off", pids)
            assert entered == args.size, f"{entered} of {args.size} entered"
            if not args.without_counts:
                _check_counts(store, args.size + 1)
            rows.append((cpu, redis_seconds, wall))
            per = [1e6 * value / args.size for value in rows[-1]]
            print(f"round {round_ + 1}: worker {per[0]:.1f} µs, Redis {per[1]:.1f} µs CPU, {per[2]:.1f} µs wall")
            if profiler is not None:
                profiler.dump_stats(args.profile)
        if args.rounds > 1:
            medians = [1e6 * statistics.median(row[i] for row in rows) / args.size for i in range(3)]
            print(f"median: worker {medians[0]:.1f} µs, Redis {medians[1]:.1f} µs CPU, {medians[2]:.1f} µs wall")
        runtime.close()
    finally:
        client.close()
        server.stop()
        server.cleanup()


def own_cpu() -> float:
    """CPU seconds of this process (kept here, not imported: older commits lack tests/benchmarks/cpu_meters)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def redis_cpu(client: redis.Redis) -> float:
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def _check_counts(store: Any, entrants: int) -> None:
    """Every entrant counted once (a commit from before the counts has no record to check)."""
    if not hasattr(store, "version_figures"):
        return
    (found,) = store.version_figures("cohort")
    assert sum(counts.entrants for counts in found.arm_totals().values()) == entrants
    assert found.step_totals()["settle"]["reached"] == entrants


def _wrapper(binary: str, out: Path) -> str:
    script = out.parent / "redis-server-grind.sh"
    script.write_text(
        f'#!/bin/sh\nexec valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file={out} {binary} "$@"\n'
    )
    script.chmod(0o755)
    return str(script)


def _callgrind(state: str, pids: list[int]) -> None:
    for pid in pids:
        subprocess.run(["callgrind_control", "-i", state, str(pid)], capture_output=True, check=True)


def _grind(args: argparse.Namespace) -> int:
    """Run this measurement once more under callgrind; print instructions per entrant."""
    if shutil.which("valgrind") is None:
        print("valgrind is not installed (apt-get install -y valgrind)", file=sys.stderr)
        return 2
    folder = Path(tempfile.mkdtemp(prefix="cohort-cost-"))
    command = [
        "valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={folder / 'worker.out'}",
        sys.executable, __file__, str(args.size), *(["--without-counts"] if args.without_counts else []),
    ]  # fmt: skip
    env = {**os.environ, "COHORT_COST_GRINDING": str(folder), "PYTHONHASHSEED": "0"}
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    if result.returncode:
        print(result.stdout[-3000:], result.stderr[-3000:], file=sys.stderr)
        return result.returncode
    worker, server = (_totals(folder / name) // args.size for name in ("worker.out", "redis.out"))
    print(f"instructions per entrant: worker {worker:,}, Redis {server:,}, both {worker + server:,}")
    shutil.rmtree(folder, ignore_errors=True)
    return 0


def _totals(path: Path) -> int:
    for line in path.read_text().splitlines():
        if line.startswith("totals:"):
            return int(line.split()[1])
    raise ValueError(f"no totals in {path}")


if __name__ == "__main__":
    main()
