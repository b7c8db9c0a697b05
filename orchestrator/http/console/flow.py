"""A journey drawn as a flow: its YAML as a graphviz graph, laid out server-side into SVG.

Why graphviz: ``dot`` lays out directed graphs with branches that rejoin (a wait-for-event's two
exits, a branch's ``else``) without crossings in the common cases, it is one Debian package, and its
SVG needs no JavaScript to show.  The graph is built from the journey model alone; each step's node
carries the counters the runtime keeps for that step (``<step>:<stat>`` in the journey's stats), so
what a marketer reads on a node is exactly what ``loyaloop status`` reports.

Labels are graphviz HTML-like labels built here with every value XML-escaped: journey files are
written by people, and a condition such as ``{{ profile.tier == "gold" }}`` must show as text.
Each step's node gets the SVG id ``step-<id>``, so tests and links can find it.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from functools import lru_cache

import graphviz

from orchestrator.engine.enrollment import ChannelOutcome
from orchestrator.language.journey import (
    BranchStep,
    DateTrigger,
    EventTrigger,
    ExitStep,
    Journey,
    ScheduleTrigger,
    SendStep,
    SplitStep,
    UpdateStep,
    WaitAt,
    WaitForEvent,
    WaitStep,
    WaitUntil,
)
from orchestrator.language.timeparse import format_duration

WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
END = "_end"
EXIT = "_exit"
TRIGGER = "_trigger"
#: The send outcomes shown on a send node, in this order: label → outcomes summed over channels.
SEND_FIGURES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("sent", ("sent",)),
    ("capped", ("capped",)),
    ("deferred", ("deferred",)),
    ("no consent", ("no_consent", "suppressed")),
    ("no address", ("no_address",)),
    ("failed", ("failed", "template_error", "voucher_empty")),
)


@dataclass(frozen=True)
class NodeFigures:
    """What a node shows: ``(label, count)`` pairs, every one read from the journey's stats."""

    step_id: str
    figures: tuple[tuple[str, int], ...]

    def get(self, label: str) -> int:
        return dict(self.figures).get(label, 0)


def step_figures(
    journey: Journey, stats: Mapping[str, int], reached: Mapping[str, int] | None = None
) -> dict[str, NodeFigures]:
    """Per node id, its figures from the stats: the trigger's entries and holdouts, each send's
    outcomes summed over channels (plus ``held`` for the holdout group; a send that found no
    channel to reach the customer, ``undeliverable``, shows through its channels' own reasons —
    no consent, suppressed, no address — never as failed), every other step's own counters
    (``timeout``, ``event``, ``branch:…``, ``split:…``, ``updated``) as recorded.  A step that
    recorded nothing shows nothing.

    ``reached`` (step → runs that reached it, from the measurement records) puts a ``reached``
    figure first on every step; the journey stats alone do not count it."""
    by_step: dict[str, dict[str, int]] = {}
    for key, count in stats.items():
        step, _, stat = key.partition(":")
        by_step.setdefault(step, {})[stat] = int(count)
    journey_stats = by_step.get("_journey", {})
    found = {
        TRIGGER: NodeFigures(
            TRIGGER, (("entered", journey_stats.get("entered", 0)), ("held", journey_stats.get("holdout", 0)))
        ),
        END: NodeFigures(
            END, (("completed", journey_stats.get("completed", 0)), ("failed", journey_stats.get("failed", 0)))
        ),
        EXIT: NodeFigures(
            EXIT, (("converted", journey_stats.get("converted", 0)), ("exited", journey_stats.get("exited", 0)))
        ),
    }
    for item in journey.steps:
        own = by_step.get(item.id, {})
        if isinstance(item, SendStep):
            per_outcome: dict[str, int] = {}
            for stat, count in own.items():
                outcome = ChannelOutcome.parse(stat)
                if outcome is not None:
                    per_outcome[outcome.outcome] = per_outcome.get(outcome.outcome, 0) + count
            figures = [(label, sum(per_outcome.get(name, 0) for name in names)) for label, names in SEND_FIGURES]
            figures.append(("held", own.get("holdout", 0)))
            found[item.id] = NodeFigures(item.id, _with_reached(reached, item.id, figures))
        else:
            found[item.id] = NodeFigures(item.id, _with_reached(reached, item.id, sorted(own.items())))
    return found


def _with_reached(
    reached: Mapping[str, int] | None, step_id: str, figures: list[tuple[str, int]]
) -> tuple[tuple[str, int], ...]:
    if reached is None:
        return tuple(figures)
    return (("reached", reached.get(step_id, 0)), *figures)


def _duration(value: timedelta | str) -> str:
    return format_duration(value) if isinstance(value, timedelta) else str(value)


def trigger_text(journey: Journey) -> list[str]:
    trigger = journey.trigger
    if isinstance(trigger, EventTrigger):
        lines = [f"on event {trigger.event}"]
    elif isinstance(trigger, ScheduleTrigger):
        lines = [f"on schedule {trigger.schedule} ({trigger.timezone})"]
    elif isinstance(trigger, DateTrigger):
        lines = [f"on date {trigger.date} at {trigger.at:%H:%M}"]
    else:  # pragma: no cover - the model has no other trigger
        lines = ["trigger"]
    if trigger.if_:
        lines.append(f"if {trigger.if_}")
    if journey.audience:
        lines.append(f"audience {journey.audience}")
    return lines


def _wait_text(step: WaitStep) -> str:
    wait = step.wait
    if isinstance(wait, WaitUntil):
        days = f" on {', '.join(WEEKDAYS[day] for day in wait.weekdays)}" if wait.weekdays else ""
        return f"wait until {wait.until:%H:%M}{days}"
    if isinstance(wait, WaitForEvent):
        condition = f" if {wait.if_}" if wait.if_ else ""
        return f"wait for {wait.event}{condition} (up to {_duration(wait.timeout)})"
    if isinstance(wait, WaitAt):
        before = f", {_duration(wait.before)} before" if wait.before else ""
        return f"wait until {wait.at}{before}"
    return f"wait {_duration(wait)}"


def step_text(step: object) -> tuple[str, list[str]]:
    """(kind, lines describing the step) as drawn on its node."""
    if isinstance(step, SendStep):
        lines = [f"{step.send}: {step.template}"]
        if step.fallback:
            lines.append("fallback " + " → ".join(step.fallback))
        if step.on_capped != "skip":
            lines.append(f"on capped: {step.on_capped}")
        if step.voucher:
            lines.append(f"voucher {step.voucher}")
        return "send", lines
    if isinstance(step, WaitStep):
        return "wait", [_wait_text(step)]
    if isinstance(step, BranchStep):
        return "branch", [f"if {case.if_} → {case.goto}" for case in step.branch]
    if isinstance(step, SplitStep):
        return "split", [f"{arm.name} {arm.percent}% → {arm.goto}" for arm in step.split]
    if isinstance(step, UpdateStep):
        changed = sorted(step.update.set) + sorted(step.update.increment)
        return "update", ["set " + ", ".join(changed)] if changed else []
    if isinstance(step, ExitStep):
        return "exit", [] if step.exit is True else [str(step.exit)]
    return "step", []


def _label(title: str, lines: list[str], figures: tuple[tuple[str, int], ...]) -> str:
    """An HTML-like label: the title, the description lines, then one figure per row; all escaped."""
    rows = [f'<TR><TD ALIGN="LEFT"><B>{html.escape(title)}</B></TD></TR>']
    rows += [f'<TR><TD ALIGN="LEFT">{html.escape(line[:90])}</TD></TR>' for line in lines]
    if figures:
        text = " · ".join(f"{name} {count:,}" for name, count in figures)
        rows.append(f'<TR><TD ALIGN="LEFT"><FONT COLOR="#1d4ed8">{html.escape(text)}</FONT></TD></TR>')
    return '<<TABLE BORDER="0" CELLBORDER="0" CELLSPACING="0">' + "".join(rows) + "</TABLE>>"


def flow_graph(journey: Journey, figures: Mapping[str, NodeFigures]) -> graphviz.Digraph:
    """The journey as a graph: trigger → steps (with their ``next``, branch, split and wait edges)
    → end; goals and ``exit_when`` lead to a node of their own."""
    graph = graphviz.Digraph(name=journey.id, format="svg")
    graph.attr(rankdir="TB", bgcolor="transparent", fontname="sans-serif", nodesep="0.3", ranksep="0.35")
    graph.attr("node", shape="box", style="rounded,filled", fillcolor="#ffffff", color="#64748b", fontname="sans-serif")
    graph.attr("node", fontsize="10")
    graph.attr("edge", color="#64748b", fontname="sans-serif", fontsize="9")

    def node(node_id: str, title: str, lines: list[str], fill: str) -> None:
        shown = figures.get(node_id, NodeFigures(node_id, ()))
        graph.node(node_id, _label(title, lines, shown.figures), id=f"step-{node_id}", fillcolor=fill)

    node(TRIGGER, "trigger", trigger_text(journey), "#e0f2fe")
    fills = {"send": "#ecfdf5", "wait": "#fefce8", "branch": "#f5f3ff", "split": "#f5f3ff", "exit": "#fef2f2"}
    for step in journey.steps:
        kind, lines = step_text(step)
        node(step.id, f"{kind} · {step.id}", lines, fills.get(kind, "#ffffff"))
    node(END, "completed", [], "#f1f5f9")
    outcomes = [f"goal: {goal.event or ''} {goal.if_ or ''}".strip() for goal in journey.goals]
    outcomes += [f"exit when: {rule.event or ''} {rule.if_ or ''}".strip() for rule in journey.exit_when]
    node(EXIT, "goals and exits", outcomes or ["exit steps"], "#fef2f2")

    def target(step_id: str | None) -> str:
        return step_id if step_id is not None else END

    graph.edge(TRIGGER, journey.steps[0].id)
    for step in journey.steps:
        following = step.next if step.next is not None else journey.next_step_id(step.id)
        if isinstance(step, BranchStep):
            for case in step.branch:
                graph.edge(step.id, case.goto, label=graphviz.escape(_short(case.if_)))
            graph.edge(step.id, target(step.else_ if step.else_ is not None else following), label="else")
        elif isinstance(step, SplitStep):
            for arm in step.split:
                graph.edge(step.id, arm.goto, label=graphviz.escape(f"{arm.name} {arm.percent}%"))
        elif isinstance(step, WaitStep) and isinstance(step.wait, WaitForEvent):
            graph.edge(step.id, target(step.wait.on_event or following), label="event")
            graph.edge(step.id, target(step.wait.on_timeout or following), label="timeout")
        elif isinstance(step, ExitStep):
            graph.edge(step.id, EXIT)
        else:
            graph.edge(step.id, target(following))
    if outcomes:
        graph.edge(TRIGGER, EXIT, style="dashed", label="goal / exit_when", constraint="false")
    return graph


def _short(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= 40 else text[:39] + "…"


@lru_cache(maxsize=256)
def _layout(source: str) -> str:
    """dot's SVG for a graph source (the same figures lay out the same way: cached)."""
    svg = str(graphviz.Source(source, format="svg").pipe(encoding="utf-8"))
    start = svg.find("<svg")
    return svg[start:] if start >= 0 else svg


def flow_svg(journey: Journey, stats: Mapping[str, int], reached: Mapping[str, int] | None = None) -> str:
    """The inline ``<svg>`` of the journey with its live figures (no XML prolog or doctype)."""
    return _layout(flow_graph(journey, step_figures(journey, stats, reached)).source)
