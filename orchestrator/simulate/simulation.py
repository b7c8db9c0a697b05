"""One simulation end to end: settings and journeys from files, a private in-process Redis, the
production runtime with recorder channels, the driver's loop, and the output files.

The simulator reads nothing from the environment: not ``REDIS_URL`` (a simulation must never
write its virtual months into a real Redis), not the providers' credentials (no channel is built;
recorders stand in), not ``LOYALOOP_SECRET_KEY`` (unsubscribe links are signed with a key derived
from ``--seed``, so two runs render byte for byte the same).  Provider rate limits are left out:
they pace a provider's API in wall-clock time, and change what a customer gets only by seconds.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from orchestrator import plugins
from orchestrator.language.catalogue import Catalogue
from orchestrator.language.journey import Journey
from orchestrator.language.loader import load_catalogue_for, load_journeys
from orchestrator.measure.figures import VersionFigures
from orchestrator.measure.render_html import render_html
from orchestrator.measure.render_text import render_json, render_table
from orchestrator.measure.report import build_report
from orchestrator.runtime.compose import build_runtime, freeze_startup_objects
from orchestrator.settings import Settings, load_settings
from orchestrator.simulate.backend import Backend, private_redis
from orchestrator.simulate.calendar import calendar
from orchestrator.simulate.driver import DirectPump, Driver, Progress, RunStats
from orchestrator.simulate.recorder import Recorder
from orchestrator.simulate.source import Line
from orchestrator.store import snapshot
from orchestrator.workers.embedded import EMBEDDED_SHARDS, SimClock


@dataclass
class Setup:
    """What a simulation runs: settings and journeys (one version of them), and the event names
    they know (for the unknown-event warning)."""

    settings: Settings
    journeys: dict[str, Journey]
    known_events: set[str]


@dataclass
class Result:
    recorder: Recorder
    stats: RunStats
    #: The measurement record the runtime kept during the run (what ``loyaloop report`` reads).
    figures: list[VersionFigures] = field(default_factory=list)
    #: The simulated period's first and last UTC days (the report's entry days).
    period: tuple[date, date] | None = None

    @property
    def messages(self) -> list[dict[str, Any]]:
        return self.recorder.sorted_messages()

    @property
    def decisions(self) -> list[dict[str, Any]]:
        return self.recorder.sorted_decisions()


def load_setup(journeys_dir: Path | None, templates_dir: Path | None, seed: int) -> Setup:
    """Settings and journeys from their folders only (see the module docstring for why no env)."""
    env = {"LOYALOOP_TEMPLATES": str(templates_dir)} if templates_dir is not None else {}
    settings = load_settings(journeys_dir, env=env)
    settings = settings.model_copy(
        update={"secret_key": SecretStr(f"loyaloop-simulate-seed-{seed:020d}"), "rate_limits": {}, "redis_url": None}
    )
    journeys = load_journeys(settings.journeys_dir, settings.templates_dir)
    catalogue = load_catalogue_for(settings.journeys_dir)
    return Setup(settings, journeys, known_events(journeys.values(), catalogue))


def known_events(journeys: Iterable[Journey], catalogue: Catalogue | None) -> set[str]:
    """Every event name a journey mentions (trigger, goals, exits, waits) or the catalogue lists."""
    names: set[str] = set(catalogue.events) if catalogue is not None else set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "event" and isinstance(item, str):
                    names.add(item)
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for journey in journeys:
        walk(journey.model_dump(mode="json"))
    return names


def simulate(
    setup: Setup,
    lines: list[Line],
    *,
    until: datetime,
    backend: Backend = "auto",
    progress: Progress | None = None,
    warn: Callable[[str], None] = lambda text: None,
    state: Path | None = None,
    meta: dict[str, str] | None = None,
) -> Result:
    """Run ``lines`` (sorted by time) through the production runtime on a private Redis.

    ``state``: where to keep that Redis's keys when the run ends (with ``meta`` beside them), so
    ``loyaloop console --simulation DIR`` can show the simulated customers after the run."""
    with private_redis(backend) as client:
        result = simulate_on(setup, lines, client, until=until, progress=progress, warn=warn)
        if state is not None:
            state.parent.mkdir(parents=True, exist_ok=True)
            snapshot.dump(client, state, {"now": until.isoformat(), **(meta or {})})
        return result


def simulate_on(
    setup: Setup,
    lines: list[Line],
    client: Any,
    *,
    until: datetime,
    progress: Progress | None = None,
    warn: Callable[[str], None] = lambda text: None,
) -> Result:
    """The run of :func:`simulate` on a Redis the caller provides and looks at afterwards (the
    benchmark reads the private server's processor time and memory there); it must be empty."""
    clock = SimClock(lines[0].at if lines else until)
    recorder = Recorder(clock)
    runtime = build_runtime(
        setup.settings,
        client,
        journeys=setup.journeys,
        clock=clock,
        pm=plugins.get_plugin_manager(),
        channels=recorder.channels(),
        timer_shards=EMBEDDED_SHARDS,
        in_process=True,
        action_kinds=recorder.action_kinds(setup.settings.endpoints),
    )
    runtime.delivery.observer = recorder
    freeze_startup_objects()  # as a worker does: journeys and templates live as long as the run
    try:
        pump = DirectPump(runtime, client, clock, plugins.consent_channels(runtime.delivery.channels))
        stats = Driver(pump, clock, setup.journeys, warn=warn).run(lines, until=until, progress=progress)
        figures = runtime.store.version_figures()
    finally:
        runtime.close()
    first = lines[0].at if lines else until
    return Result(recorder, stats, figures, (first.astimezone(UTC).date(), until.astimezone(UTC).date()))


def write_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> int:
    count = 0
    with path.open("w", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
            count += 1
    return count


#: The file in a simulation's ``--out`` folder that keeps its private Redis for ``loyaloop console``.
STATE_FILE = "state.json"


def write_output(out: Path, result: Result) -> dict[str, Any]:
    """``messages.jsonl``, ``decisions.jsonl``, ``runs.jsonl``, ``calendar.json`` and the
    proof-of-effect report of the simulated period (``report.txt``, ``report.json``,
    ``report.html``: what ``loyaloop report`` shows for production) in ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    messages, decisions = result.messages, result.decisions
    write_jsonl(out / "messages.jsonl", messages)
    write_jsonl(out / "decisions.jsonl", decisions)
    write_jsonl(out / "runs.jsonl", result.recorder.sorted_runs())
    cal = calendar(messages, decisions)
    (out / "calendar.json").write_text(json.dumps(cal, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    report = build_report(result.figures, *(result.period or (None, None)))
    (out / "report.txt").write_text(render_table(report), encoding="utf-8")
    (out / "report.json").write_text(render_json(report), encoding="utf-8")
    (out / "report.html").write_text(render_html(report), encoding="utf-8")
    return cal
