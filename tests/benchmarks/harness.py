"""The benchmark harness: one Redis, every scenario, one table of figures against their targets.

A scenario is a function ``run(quick: bool, redis_url: str | None = None) -> list[Figure]``.  The
area modules (``bench_caps``, ``bench_runtime``, ``bench_http``) are asked first: when one exposes
``run`` with that signature the harness uses it, otherwise it falls back to its own implementation
in ``scenarios_<name>.py``, written against the same public APIs.  Each figure carries the baseline
measured in the same run, so the ratio means something on whatever machine it ran; absolute
targets come from the issues.  Two kinds of baseline: the *naive design* a user would otherwise
write (one bare Dramatiq no-op message per event, a plain ``INCR`` loop, a hello-world ASGI app),
and the *physical limit* of the same work (pipelined ``INCR``: what one Redis core does when
nothing but the command itself costs), against which the gate's rate and the event path's Redis
CPU per event are set.

Scenarios that share the harness's Redis flush it before they start; a scenario that needs a
differently configured server (AOF, a private one) starts its own.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import platform
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import redis

Compare = Literal["ratio>=", "ratio<=", ">=", "<="]


@dataclass(frozen=True)
class Figure:
    """One measured figure with its same-run baseline and its target.

    ``compare`` says how the target reads: ``ratio>=`` (value / baseline at least ``target``),
    ``ratio<=``, or an absolute ``>=`` / ``<=`` on the value.  ``target=None`` is a figure reported
    for information (no pass/fail).
    """

    scenario: str
    name: str
    value: float
    unit: str
    baseline: float | None = None
    baseline_name: str = ""
    target: float | None = None
    compare: Compare = ">="
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.baseline is None or self.baseline == 0:
            return None
        return self.value / self.baseline

    @property
    def passed(self) -> bool | None:
        if self.target is None:
            return None
        if self.compare == "ratio>=":
            return self.ratio is not None and self.ratio >= self.target
        if self.compare == "ratio<=":
            return self.ratio is not None and self.ratio <= self.target
        if self.compare == ">=":
            return self.value >= self.target
        return self.value <= self.target

    def target_text(self) -> str:
        if self.target is None:
            return "—"
        if self.compare.startswith("ratio"):
            return f"{self.compare[5:]} {self.target:g}x baseline"
        return f"{self.compare} {fmt(self.target)} {self.unit}"


#: Plot data a scenario may leave for the harness: name → (x label, y label, {series: [(x, y)]}).
PLOTS: dict[str, tuple[str, str, dict[str, list[tuple[float, float]]]]] = {}


def add_plot_point(plot: str, x_label: str, y_label: str, series: str, x: float, y: float) -> None:
    _, _, lines = PLOTS.setdefault(plot, (x_label, y_label, {}))
    lines.setdefault(series, []).append((x, y))


ScenarioFn = Callable[..., list[Figure]]


class Skipped(SystemExit):
    """A scenario cannot run here (a tool or server is missing): the harness reports it as
    ``skipped: <why>`` and carries on; run on its own, a bench module exits with the reason.
    A ``SystemExit`` so that a bench module's own command line prints the reason, not a traceback."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


def require_tool(name: str, install: str) -> None:
    """Skip the scenario when ``name`` is not on the PATH, saying how to install it."""
    import shutil

    if shutil.which(name) is None:
        raise Skipped(f"{name} is not installed ({install}, or run `bash tests/run.sh --bench`)")


@dataclass(frozen=True)
class Scenario:
    """A named scenario: the area module asked first, then this harness's own implementation."""

    name: str
    title: str
    owner: tuple[str, str] | None  # (module, function) in the area's bench module
    fallback: tuple[str, str]

    def resolve(self) -> tuple[ScenarioFn, str]:
        """The function to call and where it came from."""
        if self.owner is not None:
            module_name, attribute = self.owner
            try:
                module = importlib.import_module(module_name)
            except ImportError:
                module = None
            function = getattr(module, attribute, None) if module is not None else None
            if callable(function) and "quick" in inspect.signature(function).parameters:
                return function, f"{module_name}.{attribute}"
        module_name, attribute = self.fallback
        return getattr(importlib.import_module(module_name), attribute), f"{module_name}.{attribute}"


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        "caps",
        "cap decisions per second",
        ("tests.benchmarks.bench_caps", "run"),
        ("tests.benchmarks.scenarios_caps", "run"),
    ),
    Scenario(
        "event",
        "event → send rate and latency",
        ("tests.benchmarks.bench_runtime", "run_event"),
        ("tests.benchmarks.scenarios_runtime", "run_event"),
    ),
    Scenario(
        "cohort",
        "cohort fan-out",
        ("tests.benchmarks.bench_runtime", "run_cohort"),
        ("tests.benchmarks.scenarios_runtime", "run_cohort"),
    ),
    Scenario(
        "workers",
        "throughput vs worker processes",
        None,
        ("tests.benchmarks.scenarios_runtime", "run_workers"),
    ),
    Scenario(
        "timers",
        "timers at N waiting customers",
        ("tests.benchmarks.bench_runtime", "run_timers"),
        ("tests.benchmarks.scenarios_timers", "run"),
    ),
    Scenario(
        "cluster",
        "event path and cohort: 3-master cluster vs one Redis",
        None,
        ("tests.benchmarks.scenarios_cluster", "run"),
    ),
    Scenario(
        "http",
        "HTTP intake",
        ("tests.benchmarks.bench_http", "run"),
        ("tests.benchmarks.scenarios_http", "run"),
    ),
)


def call(function: ScenarioFn, quick: bool, redis_url: str) -> list[Figure]:
    """Call a scenario, handing it the harness's Redis when it accepts one."""
    parameters = inspect.signature(function).parameters
    if "redis_url" in parameters:
        return function(quick, redis_url=redis_url)
    return function(quick)


@dataclass
class Outcome:
    scenario: Scenario
    source: str
    figures: list[Figure] = field(default_factory=list)
    seconds: float = 0.0
    error: str = ""
    skipped: str = ""


def run_all(names: Sequence[str] | None, quick: bool, log: Callable[[str], None] = print) -> list[Outcome]:
    """Start a redis-server, run the chosen scenarios in order, and return what each measured."""
    from tests.redis_server import RedisServer

    chosen = [s for s in SCENARIOS if not names or s.name in names]
    unknown = set(names or ()) - {s.name for s in SCENARIOS}
    if unknown:
        raise SystemExit(f"unknown scenario(s) {sorted(unknown)}; choose from {[s.name for s in SCENARIOS]}")
    try:
        server = RedisServer().start()
    except (RuntimeError, OSError) as exc:  # no redis-server: nothing can run, but say so per scenario
        log(f"  no Redis: {exc}")
        return [Outcome(scenario, scenario.fallback[0], skipped=f"no Redis: {exc}") for scenario in chosen]
    client = redis.Redis.from_url(server.url)
    outcomes: list[Outcome] = []
    try:
        for scenario in chosen:
            function, source = scenario.resolve()
            outcome = Outcome(scenario, source)
            log(f"[{datetime.now(UTC):%H:%M:%S}] {scenario.name}: {scenario.title} ({source})")
            client.flushall()
            started = time.monotonic()
            try:
                outcome.figures = call(function, quick, server.url)
            except Skipped as exc:
                outcome.skipped = exc.reason
                log(f"  skipped: {exc.reason}")
            except (Exception, SystemExit) as exc:  # one broken scenario must not hide the others' figures
                outcome.error = f"{type(exc).__name__}: {exc}"
                log(f"  failed: {outcome.error}\n{traceback.format_exc(limit=-4)}")
            outcome.seconds = time.monotonic() - started
            outcomes.append(outcome)
    finally:
        client.close()
        server.cleanup()
    return outcomes


#: Exit statuses of ``python -m tests.benchmarks``.
EXIT_OK, EXIT_FAILED, EXIT_SKIPPED = 0, 1, 2


def exit_status(outcomes: Sequence[Outcome], *, allow_skips: bool = False) -> int:
    """1 when a figure missed its target or a scenario broke; else 2 when a scenario was skipped
    (unless ``allow_skips``); else 0."""
    if any(o.error for o in outcomes) or any(f.passed is False for o in outcomes for f in o.figures):
        return EXIT_FAILED
    if any(o.skipped for o in outcomes) and not allow_skips:
        return EXIT_SKIPPED
    return EXIT_OK


def fmt(value: float | None) -> str:
    if value is None:
        return "—"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    if magnitude >= 10:
        return f"{value:.1f}"
    if magnitude >= 0.01 or value == 0:
        return f"{value:.2f}"
    return f"{value:.2g}"


def table(outcomes: Sequence[Outcome], title: str) -> Any:
    """The one table: figure, value, baseline, ratio, target, pass/fail."""
    from rich.table import Table

    grid = Table(title=title, title_justify="left")
    for column, justify in (
        ("scenario", "left"),
        ("figure", "left"),
        ("value", "right"),
        ("baseline (same run)", "right"),
        ("ratio", "right"),
        ("target", "left"),
        ("result", "left"),
    ):
        grid.add_column(column, justify=justify)  # type: ignore[arg-type]
    for outcome in outcomes:
        if outcome.error:
            grid.add_row(outcome.scenario.name, outcome.error[:80], "", "", "", "", "[red]error[/red]")
            continue
        if outcome.skipped:
            grid.add_row(outcome.scenario.name, outcome.scenario.title, "", "", "", "", f"skipped: {outcome.skipped}")
            continue
        for figure in outcome.figures:
            baseline = f"{fmt(figure.baseline)} {figure.baseline_name}".strip() if figure.baseline is not None else "—"
            ratio = f"{figure.ratio:.2f}x" if figure.ratio is not None else "—"
            verdict = {True: "[green]pass[/green]", False: "[red]FAIL[/red]", None: "info"}[figure.passed]
            name = figure.name + (f" ({figure.note})" if figure.note else "")
            grid.add_row(
                figure.scenario,
                name,
                f"{fmt(figure.value)} {figure.unit}",
                baseline,
                ratio,
                figure.target_text(),
                verdict,
            )
    return grid


def markdown(outcomes: Sequence[Outcome]) -> str:
    """The same table as Markdown, for docs/benchmarks.md."""
    rows = [
        "| scenario | figure | value | baseline (same run) | ratio | target | result |",
        "|---|---|---:|---:|---:|---|---|",
    ]
    for outcome in outcomes:
        if outcome.error:
            rows.append(f"| {outcome.scenario.name} | error: {outcome.error[:120]} | | | | | error |")
            continue
        if outcome.skipped:
            rows.append(f"| {outcome.scenario.name} | {outcome.scenario.title} | | | | | skipped: {outcome.skipped} |")
            continue
        for figure in outcome.figures:
            baseline = f"{fmt(figure.baseline)} {figure.baseline_name}".strip() if figure.baseline is not None else "—"
            ratio = f"{figure.ratio:.2f}x" if figure.ratio is not None else "—"
            verdict = {True: "pass", False: "**FAIL**", None: "info"}[figure.passed]
            name = figure.name + (f" ({figure.note})" if figure.note else "")
            rows.append(
                f"| {figure.scenario} | {name} | {fmt(figure.value)} {figure.unit} | {baseline} | {ratio} | "
                f"{figure.target_text()} | {verdict} |"
            )
    return "\n".join(rows)


def machine() -> str:
    import shutil
    import subprocess

    version = ""
    binary = shutil.which("redis-server")
    if binary:
        version = subprocess.run([binary, "--version"], capture_output=True, text=True, check=False).stdout.split()[2]
    return (
        f"{platform.machine()}, {os.cpu_count()} CPUs ({_cpu_model()}), Python {platform.python_version()}, "
        f"redis-server {version.removeprefix('v=')}, load average at start {os.getloadavg()[0]:.2f}"
    )


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


#: Titles of the plots the scenarios produce (the name is the PNG's file name).
PLOT_TITLES = {
    "throughput_vs_processes": "Throughput vs dramatiq worker processes (same Redis, same run)",
    "timer_lateness_vs_due": "Timer lateness vs timers due at the same instant (claim + hand-off to workers)",
}


def load_plots(directory: str) -> str:
    """Read the plot data a run left beside its PNGs back into :data:`PLOTS`; returns its subtitle."""
    subtitle = ""
    for name in sorted(os.listdir(directory)):
        if name.endswith(".json") and name[:-5] in PLOT_TITLES:
            with open(os.path.join(directory, name), encoding="utf-8") as handle:
                data = json.load(handle)
            series = {label: [(float(x), float(y)) for x, y in points] for label, points in data["series"].items()}
            PLOTS[name[:-5]] = (data["x"], data["y"], series)
            subtitle = data.get("subtitle", subtitle)
    return subtitle


def write_plots(directory: str, subtitle: str = "") -> list[str]:
    """One PNG per plot the scenarios left in :data:`PLOTS`; returns the paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    os.makedirs(directory, exist_ok=True)
    written = []
    for name, (x_label, y_label, lines) in sorted(PLOTS.items()):
        figure, axes = plt.subplots(figsize=(7, 4.2), dpi=110)
        for series, points in sorted(lines.items()):
            points = sorted(points)
            axes.plot([p[0] for p in points], [p[1] for p in points], marker="o", label=series)
        axes.set_xlabel(x_label)
        axes.set_ylabel(y_label)
        if name.startswith("timer_lateness"):
            axes.set_xscale("log")
            axes.set_yscale("log")
        else:
            axes.set_xticks(sorted({p[0] for points in lines.values() for p in points}))
            axes.set_ylim(bottom=0)
        figure.suptitle(PLOT_TITLES.get(name, name.replace("_", " ")), fontsize=11)
        if subtitle:
            axes.set_title(subtitle, fontsize=8, color="dimgray")
        axes.grid(True, alpha=0.3)
        axes.legend()
        figure.tight_layout()
        path = os.path.join(directory, f"{name}.png")
        figure.savefig(path)
        with open(os.path.join(directory, f"{name}.json"), "w", encoding="utf-8") as handle:
            json.dump({"x": x_label, "y": y_label, "series": lines, "subtitle": subtitle}, handle, indent=1)
        plt.close(figure)
        written.append(path)
    return written
