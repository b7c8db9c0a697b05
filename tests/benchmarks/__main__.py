"""``python -m tests.benchmarks [--quick] [--only NAME ...] [--plots DIR] [--markdown FILE]``

Starts its own redis-server on a loopback port, runs each scenario (caps, event, cohort, workers,
timers, cluster, http), and prints one table: figure, value, baseline measured in the same run, ratio,
target, pass/fail.  ``--quick`` runs every scenario at a size that finishes in under a minute.
A scenario that cannot run here (``wrk`` missing, no ``redis-server``) is reported as
``skipped: <why>`` and the table still prints.  Exit status 1 when a figure misses its target or a
scenario breaks, else 2 when a scenario was skipped (0 with ``--allow-skips``), else 0.
``bash tests/run.sh --bench`` installs what the benchmarks need (redis-server, wrk).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime

from tests.benchmarks import harness


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes: each scenario under a minute")
    parser.add_argument(
        "--only", nargs="+", metavar="NAME", help=f"run only these: {', '.join(s.name for s in harness.SCENARIOS)}"
    )
    parser.add_argument("--plots", metavar="DIR", help="write the PNG plots here (e.g. docs/img)")
    parser.add_argument("--markdown", metavar="FILE", help="also write the table as Markdown to FILE")
    parser.add_argument("--allow-skips", action="store_true", help="exit 0, not 2, when a scenario could not run here")
    parser.add_argument("--replot", metavar="DIR", help="only redraw the PNGs in DIR from the data saved beside them")
    args = parser.parse_args(argv)
    if args.replot:
        subtitle = harness.load_plots(args.replot)
        for path in harness.write_plots(args.replot, subtitle):
            print(f"plot: {path}")
        return 0

    from rich.console import Console

    console = Console() if sys.stdout.isatty() else Console(width=180)
    started = time.monotonic()
    when = datetime.now(UTC)
    machine = harness.machine()
    outcomes = harness.run_all(args.only, args.quick, log=lambda line: console.print(line, highlight=False))
    command = "python -m tests.benchmarks" + " ".join(["", *(sys.argv[1:] if argv is None else argv)])
    title = f"Loyaloop benchmarks — {when:%Y-%m-%d %H:%M} UTC — {'quick' if args.quick else 'full'} sizes"
    console.print(harness.table(outcomes, title))
    console.print(f"machine: {machine}")
    console.print(f"command: {command}   ({time.monotonic() - started:.0f} s)")
    if args.plots:
        subtitle = f"{when:%Y-%m-%d} · {'quick' if args.quick else 'full'} sizes · {machine.split(', load')[0]}"
        for path in harness.write_plots(args.plots, subtitle):
            console.print(f"plot: {path}")
    if args.markdown:
        with open(args.markdown, "w", encoding="utf-8") as handle:
            handle.write(f"{title}\n\nMachine: {machine}\n\nCommand: `{command}`\n\n")
            handle.write(harness.markdown(outcomes) + "\n")
    for outcome in outcomes:
        if outcome.skipped:
            console.print(f"skipped {outcome.scenario.name}: {outcome.skipped}", highlight=False)
    return harness.exit_status(outcomes, allow_skips=args.allow_skips)


if __name__ == "__main__":
    sys.exit(main())
