"""Checks that need the whole journey, its templates and the catalogue, not just one field.

The pydantic model validates each value on its own; these checks find what only shows when the
pieces meet: a ``goto`` to a step that does not exist, a step nobody can reach, a loop with no wait
in it (which would message a customer forever), a template part that is missing, a variable the
catalogue does not know, or an attempt to climb out of the sandbox.  Every check appends to the
same list, so the marketer sees every problem in one run.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from croniter import croniter

from orchestrator.errors import Problem
from orchestrator.language.journey import (
    ActionStep,
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
)
from orchestrator.language.located import did_you_mean
from orchestrator.language.reward_checks import action_problems, body_texts, saved_names, voucher_pool_problems
from orchestrator.language.template_checks import (
    CONDITION_NAMES,
    DEFAULT_CHANNELS,
    TEMPLATE_NAMES,
    VOUCHER,
    CheckContext,
    Scope,
    check_source,
    check_template,
    check_template_file,
    check_templates_folder,
)
from orchestrator.language.timeparse import parse_timezone
from orchestrator.language.yamlfile import DataPath, YamlDocument


def check_journey(journey: Journey, doc: YamlDocument, ctx: CheckContext) -> list[Problem]:
    """Every cross-check problem of one validated journey."""
    problems: list[Problem] = []
    duplicates = _step_ids(journey, doc)
    problems += duplicates
    problems += _references(journey, doc)
    if not duplicates:  # with two steps of one id the graph is a guess: fix the ids first
        problems += _reachability(journey, doc)
        problems += _loops(journey, doc)
    problems += _trigger(journey, doc, ctx)
    problems += _events(journey, doc, ctx)
    problems += _expressions(journey, doc, ctx)
    problems += _channels_and_templates(journey, doc, ctx)
    return _unique(problems)


def _unique(problems: Iterable[Problem]) -> list[Problem]:
    return list(dict.fromkeys(problems))


# --- the step graph -----------------------------------------------------------------------------


def _step_ids(journey: Journey, doc: YamlDocument) -> list[Problem]:
    seen: dict[str, int] = {}
    problems = []
    for index, step in enumerate(journey.steps):
        if step.id in seen:
            first_line = doc.where(("steps", seen[step.id], "id"))[0]
            problems.append(
                doc.problem(
                    ("steps", index, "id"),
                    f"duplicate step id {step.id!r} (first used on line {first_line})",
                    "give every step its own id",
                )
            )
        else:
            seen[step.id] = index
    return problems


def _jumps(journey: Journey, index: int) -> Iterator[tuple[DataPath, str]]:
    """Explicit step names a step mentions, with where they are written."""
    step = journey.steps[index]
    here: DataPath = ("steps", index)
    if step.next is not None:
        yield (*here, "next"), step.next
    if isinstance(step, BranchStep):
        for case_index, case in enumerate(step.branch):
            yield (*here, "branch", case_index, "goto"), case.goto
        if step.else_ is not None:
            yield (*here, "else"), step.else_
    if isinstance(step, SplitStep):
        for arm_index, arm in enumerate(step.split):
            yield (*here, "split", arm_index, "goto"), arm.goto
    if isinstance(step, WaitStep) and isinstance(step.wait, WaitForEvent):
        for key in ("on_event", "on_timeout"):
            target = getattr(step.wait, key)
            if target is not None:
                yield (*here, "wait", key), target


def _references(journey: Journey, doc: YamlDocument) -> list[Problem]:
    ids = [step.id for step in journey.steps]
    problems = []
    for index in range(len(journey.steps)):
        for path, target in _jumps(journey, index):
            if target not in ids:
                hint = did_you_mean(target, ids) or f"steps in this journey: {', '.join(ids)}"
                problems.append(doc.problem(path, f"{path[-1]}: there is no step {target!r}", hint))
    return problems


def successors(journey: Journey, index: int) -> list[str]:
    """The steps a step can lead to (a missing target is skipped: it is reported elsewhere)."""
    step = journey.steps[index]
    ids = {s.id for s in journey.steps}
    following = (
        step.next
        if step.next is not None
        else (journey.steps[index + 1].id if index + 1 < len(journey.steps) else None)
    )
    targets: list[str | None]
    if isinstance(step, ExitStep):
        targets = []
    elif isinstance(step, BranchStep):
        targets = [*(case.goto for case in step.branch), step.else_ or following]
    elif isinstance(step, SplitStep):
        targets = [*(arm.goto for arm in step.split)]
    elif isinstance(step, WaitStep) and isinstance(step.wait, WaitForEvent):
        targets = [step.wait.on_event or following, step.wait.on_timeout or following]
    else:
        targets = [following]
    return list(dict.fromkeys(t for t in targets if t is not None and t in ids))


def _graph(journey: Journey) -> dict[str, list[str]]:
    graph: dict[str, list[str]] = {}
    for index, step in enumerate(journey.steps):
        graph.setdefault(step.id, []).extend(successors(journey, index))
    return graph


def _reachability(journey: Journey, doc: YamlDocument) -> list[Problem]:
    graph = _graph(journey)
    reached = {journey.first_step_id}
    todo = [journey.first_step_id]
    while todo:
        for target in graph.get(todo.pop(), []):
            if target not in reached:
                reached.add(target)
                todo.append(target)
    problems = []
    for index, step in enumerate(journey.steps):
        if step.id not in reached:
            problems.append(
                doc.problem(
                    ("steps", index, "id"),
                    f"step {step.id!r} can never be reached",
                    "jump to it with 'goto', 'next', 'else', 'on_event' or 'on_timeout', or remove it",
                )
            )
    return problems


def _components(graph: dict[str, list[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan), iterative so a long journey cannot blow the stack."""
    index_of: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []
    counter = 0
    for root in graph:
        if root in index_of:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child_index = work.pop()
            if child_index == 0:
                index_of[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            children = graph.get(node, [])
            if child_index < len(children):
                work.append((node, child_index + 1))
                child = children[child_index]
                if child not in index_of:
                    work.append((child, 0))
                elif child in on_stack:
                    low[node] = min(low[node], index_of[child])
                continue
            for child in children:
                if child in on_stack:
                    low[node] = min(low[node], low[child])
            if low[node] == index_of[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                result.append(component)
    return result


def _always_waits(step: object) -> bool:
    """A wait that always takes time; ``wait: {at: …}`` does not (a past moment continues at once)."""
    return isinstance(step, WaitStep) and not isinstance(step.wait, WaitAt)


def _loops(journey: Journey, doc: YamlDocument) -> list[Problem]:
    graph = _graph(journey)
    order = {step.id: index for index, step in enumerate(journey.steps)}
    problems = []
    for component in _components(graph):
        looped = len(component) > 1 or component[0] in graph.get(component[0], [])
        if not looped:
            continue
        members = sorted(component, key=order.__getitem__)
        if any(_always_waits(journey.steps[order[m]]) for m in members):
            continue
        path = " → ".join([*members, members[0]])
        problems.append(
            doc.problem(
                ("steps", order[members[0]], "id"),
                f"steps {path} form a loop with no wait in it; a customer would go round it forever",
                "add a wait step (a duration, 'until' or 'event') inside the loop, or leave it with an exit",
            )
        )
    return problems


# --- triggers and events ------------------------------------------------------------------------


def _trigger(journey: Journey, doc: YamlDocument, ctx: CheckContext) -> list[Problem]:
    trigger = journey.trigger
    problems = []
    if isinstance(trigger, ScheduleTrigger):
        if not croniter.is_valid(trigger.schedule):
            problems.append(
                doc.problem(
                    ("trigger", "schedule"),
                    f"schedule: {trigger.schedule!r} is not a cron expression",
                    "write five fields: minute hour day-of-month month weekday, e.g. '0 9 * * mon' (Mondays 09:00)",
                )
            )
        if trigger.timezone not in ("settings", "local"):
            try:
                parse_timezone(trigger.timezone)
            except ValueError as exc:
                problems.append(
                    doc.problem(("trigger", "timezone"), f"timezone: {exc}", "or write 'settings' or 'local'")
                )
    if isinstance(trigger, DateTrigger) and ctx.catalogue is not None:
        known = ctx.catalogue.profile_fields()
        if trigger.date not in known:
            problems.append(
                doc.problem(
                    ("trigger", "date"),
                    f"date: {trigger.date!r} is not a profile field in the catalogue",
                    did_you_mean(trigger.date, known) or "add it under 'profile' in catalogue.yaml",
                )
            )
        elif ctx.catalogue.profile.get(trigger.date) and ctx.catalogue.profile[trigger.date].type not in (
            "date",
            "datetime",
        ):
            problems.append(
                doc.problem(
                    ("trigger", "date"),
                    f"date: profile field {trigger.date!r} is not a date in the catalogue",
                    "use a field of type date or datetime",
                )
            )
    return problems


def _named_events(journey: Journey) -> Iterator[tuple[DataPath, str]]:
    if isinstance(journey.trigger, EventTrigger):
        yield ("trigger", "event"), journey.trigger.event
    for key in ("goals", "exit_when"):
        for index, goal in enumerate(getattr(journey, key)):
            if goal.event is not None:
                yield (key, index, "event"), goal.event
    for index, step in enumerate(journey.steps):
        if isinstance(step, WaitStep) and isinstance(step.wait, WaitForEvent):
            yield ("steps", index, "wait", "event"), step.wait.event


def _events(journey: Journey, doc: YamlDocument, ctx: CheckContext) -> list[Problem]:
    if ctx.catalogue is None or not ctx.catalogue.events:
        return []
    known = set(ctx.catalogue.events)
    return [
        doc.problem(path, f"event: {name!r} is not in the catalogue", _event_hint(name, known, ctx.channels))
        for path, name in _named_events(journey)
        if name not in known
    ]


def _event_hint(name: str, known: set[str], channels: Iterable[str]) -> str:
    """A did-you-mean among the shop's own events: a provider's (``email.delivered``) is offered only
    for a name in that channel's namespace, since ``order.delivered`` is not a typo of it."""
    namespace = name.split(".", 1)[0]
    channel_names = set(channels)
    own = {event for event in known if event.split(".", 1)[0] not in channel_names - {namespace}}
    return did_you_mean(name, own) or "add it under 'events' in catalogue.yaml if it is a new event"


# --- expressions and templates ------------------------------------------------------------------


def _fields_of(ctx: CheckContext, events: Iterable[str | None]) -> set[str] | None:
    if ctx.catalogue is None:
        return None
    fields: set[str] = set()
    for name in events:
        if name is None:
            continue
        known = ctx.catalogue.event_fields(name)
        if known is None:
            return None
        fields |= known
    return fields


def _scopes(journey: Journey, ctx: CheckContext) -> tuple[Scope, Scope, set[str] | None]:
    """(scope at entry, scope inside steps, trigger fields)."""
    trigger_event = journey.trigger.event if isinstance(journey.trigger, EventTrigger) else None
    trigger_fields = _fields_of(ctx, [trigger_event])
    awaited = [s.wait.event for s in journey.steps if isinstance(s, WaitStep) and isinstance(s.wait, WaitForEvent)]
    profile = ctx.catalogue.profile_fields() if ctx.catalogue else None
    entry = Scope(CONDITION_NAMES, trigger_fields, trigger_fields, profile)
    inside = Scope(CONDITION_NAMES, _fields_of(ctx, [trigger_event, *awaited]), trigger_fields, profile)
    return entry, inside, trigger_fields


def _expressions(journey: Journey, doc: YamlDocument, ctx: CheckContext) -> list[Problem]:
    entry, inside, trigger_fields = _scopes(journey, ctx)
    env = ctx.environment()
    found: list[Problem] = []

    def check(path: DataPath, source: str | None, scope: Scope, *, template: bool = False) -> None:
        if source is None:
            return
        found.extend(check_source(env, source, scope, doc, path, template=template))

    if journey.trigger.if_ is not None:
        check(("trigger", "if"), journey.trigger.if_, entry)
    check(("audience",), journey.audience, entry)
    for key in ("goals", "exit_when"):
        for index, goal in enumerate(getattr(journey, key)):
            fields = _fields_of(ctx, [goal.event]) if goal.event else inside.event_fields
            check((key, index, "if"), goal.if_, Scope(CONDITION_NAMES, fields, trigger_fields, inside.profile_fields))
    for index, step in enumerate(journey.steps):
        here: DataPath = ("steps", index)
        if isinstance(step, BranchStep):
            for case_index, case in enumerate(step.branch):
                check((*here, "branch", case_index, "if"), case.if_, inside)
        elif isinstance(step, SendStep):
            check((*here, "to"), step.to, inside)
        elif isinstance(step, UpdateStep):
            check((*here, "update", "to"), step.update.to, inside)
            for name, value in step.update.set.items():
                if isinstance(value, str) and ("{{" in value or "{%" in value):
                    templated = Scope(TEMPLATE_NAMES, inside.event_fields, trigger_fields, inside.profile_fields)
                    check((*here, "update", "set", name), value, templated, template=True)
        elif isinstance(step, ActionStep):
            templated = Scope(
                TEMPLATE_NAMES, inside.event_fields, trigger_fields, inside.profile_fields, saved_names(journey)
            )
            for path, value in body_texts(step.body, (*here, "body")):
                check(path, value, templated, template=True)
            found.extend(action_problems(step, doc, here, ctx))
        elif isinstance(step, WaitStep) and isinstance(step.wait, WaitForEvent):
            fields = _fields_of(ctx, [step.wait.event])
            check(
                (*here, "wait", "if"),
                step.wait.if_,
                Scope(CONDITION_NAMES, fields, trigger_fields, entry.profile_fields),
            )
        elif isinstance(step, WaitStep) and isinstance(step.wait, WaitAt):
            check((*here, "wait", "at"), step.wait.at, inside)
    return found


def _channels_and_templates(journey: Journey, doc: YamlDocument, ctx: CheckContext) -> list[Problem]:
    problems: list[Problem] = []
    # One rule for conditions and templates (engine/context.py): ``event`` is the trigger's
    # properties with an awaited event's laid over them once a wait caught it.
    _, inside, trigger_fields = _scopes(journey, ctx)
    saved = saved_names(journey)
    scope = Scope(TEMPLATE_NAMES, inside.event_fields, trigger_fields, inside.profile_fields, saved)
    for index, step in enumerate(journey.steps):
        if not isinstance(step, SendStep):
            continue
        here: DataPath = ("steps", index)
        step_scope = scope
        if step.voucher is not None:
            step_scope = Scope(
                (*TEMPLATE_NAMES, VOUCHER), scope.event_fields, trigger_fields, scope.profile_fields, saved
            )
            problems += voucher_pool_problems(step.voucher, doc, (*here, "voucher"), ctx)
        places: list[tuple[DataPath, str]] = [((*here, "send"), step.send)]
        places += [((*here, "fallback", i), channel) for i, channel in enumerate(step.fallback)]
        for path, channel in places:
            if channel not in ctx.channels:
                problems.append(
                    doc.problem(
                        path,
                        f"unknown channel {channel!r}",
                        did_you_mean(channel, ctx.channels) or f"known channels: {', '.join(sorted(ctx.channels))}",
                    )
                )
                continue
            problems += check_template(step.template, channel, doc, (*here, "template"), step_scope, ctx)
    if journey.quiet_hours:
        for channel in journey.quiet_hours:
            if channel not in ctx.channels:
                problems.append(
                    doc.problem(
                        ("quiet_hours", channel),
                        f"quiet_hours: unknown channel {channel!r}",
                        did_you_mean(channel, ctx.channels) or f"known channels: {', '.join(sorted(ctx.channels))}",
                    )
                )
    return problems


__all__ = [
    "DEFAULT_CHANNELS",
    "CheckContext",
    "Scope",
    "check_journey",
    "check_template_file",
    "check_templates_folder",
    "successors",
]
