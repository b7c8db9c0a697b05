"""Warnings for journeys that load but will not do what they say: ``loyaloop validate`` prints them
(``warning: file:line:col: …``) without failing, since each may be what the marketer wants.

- **A setting with no effect**: a transactional journey's ``quiet_hours`` (transactional sends skip
  quiet hours unless ``settings.yaml`` says ``transactional_quiet_hours: true``) or ``caps``
  (transactional sends are never capped).
- **A cap that holds back the journey's own next send**: two sends of one journey, on the default
  path, closer than a cap window that counts both (fallbacks included: an SMS step's e-mail
  fallback meets the e-mail cap), so the second is capped for every customer who got the first.
- **An optional field used without a default**: a template uses ``profile.x`` or ``event.x`` that
  the catalogue marks ``optional: true`` without ``| default(...)`` or ``is defined``, so the send
  fails for every customer without it.

The settings' values are passed in (this layer does not read the settings).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path

from jinja2 import TemplateSyntaxError, nodes

from orchestrator.errors import Problem
from orchestrator.language.catalogue import Catalogue
from orchestrator.language.journey import (
    CapRule,
    EventTrigger,
    ExitStep,
    Journey,
    SendStep,
    WaitForEvent,
    WaitStep,
)
from orchestrator.language.render import template_files
from orchestrator.language.sandbox import GuardedEnvironment, references
from orchestrator.language.timeparse import format_duration
from orchestrator.language.yamlfile import YamlDocument

__all__ = ["cap_collisions", "journey_advice", "optional_field_uses", "settings_without_effect"]


def journey_advice(
    journey: Journey,
    doc: YamlDocument,
    *,
    caps: list[CapRule],
    transactional_quiet_hours: bool,
    catalogue: Catalogue | None,
    templates_dir: Path,
    env: GuardedEnvironment,
) -> list[Problem]:
    """Every warning for one loaded journey."""
    found = settings_without_effect(journey, doc, transactional_quiet_hours=transactional_quiet_hours)
    found += cap_collisions(journey, doc, journey.caps if journey.caps is not None else caps)
    if catalogue is not None:
        found += optional_field_uses(journey, catalogue, templates_dir, env)
    return found


def settings_without_effect(journey: Journey, doc: YamlDocument, *, transactional_quiet_hours: bool) -> list[Problem]:
    if journey.category != "transactional":
        return []
    found: list[Problem] = []
    if journey.quiet_hours is not None and not transactional_quiet_hours:
        found.append(
            doc.problem(
                ("quiet_hours",),
                "quiet_hours has no effect on a transactional journey: transactional sends skip quiet hours",
                "set 'transactional_quiet_hours: true' in settings.yaml to hold them too, "
                "make the journey 'category: marketing', or remove the key",
                at_key=True,
            )
        )
    if journey.caps is not None:
        found.append(
            doc.problem(
                ("caps",),
                "caps has no effect on a transactional journey: transactional sends are never capped",
                "make the journey 'category: marketing' or remove the key",
                at_key=True,
            )
        )
    return found


def _default_path(journey: Journey) -> Iterator[tuple[int, SendStep | timedelta | None]]:
    """The steps from the first along ``next``: a send, a fixed wait's duration, or None for a step
    whose timing cannot be known (a local-time or event wait, a branch, a split)."""
    seen: set[str] = set()
    step_id: str | None = journey.first_step_id
    index = {step.id: position for position, step in enumerate(journey.steps)}
    while step_id is not None and step_id not in seen:
        seen.add(step_id)
        step = journey.step(step_id)
        if isinstance(step, ExitStep):
            return
        if isinstance(step, SendStep):
            yield index[step_id], step
        elif isinstance(step, WaitStep) and isinstance(step.wait, timedelta):
            yield index[step_id], step.wait
        elif isinstance(step, WaitStep) or not hasattr(step, "update"):
            yield index[step_id], None
        step_id = journey.next_step_id(step_id)


def _counts(rule: CapRule, journey: Journey, channel: str) -> bool:
    if rule.channel not in ("any", channel):
        return False
    if rule.category is not None and rule.category != journey.category:
        return False
    return rule.tag is None or rule.tag in journey.tags


def cap_collisions(journey: Journey, doc: YamlDocument, caps: Iterable[CapRule]) -> list[Problem]:
    """A send whose channel (or fallback) a cap rule will already have filled with the journey's own
    earlier sends in the window, for every customer who got them."""
    if journey.category == "transactional":
        return []
    rules = [rule for rule in caps if rule.max >= 1]
    found: list[Problem] = []
    earlier: list[tuple[timedelta, SendStep]] = []  # (time since the journey's start, send)
    elapsed = timedelta(0)
    for position, item in _default_path(journey):
        if item is None:
            earlier, elapsed = [], timedelta(0)  # unknown timing: compare nothing across it
        elif isinstance(item, timedelta):
            elapsed += item
        else:
            problem = _collision(journey, doc, position, item, elapsed, earlier, rules)
            if problem is not None:
                found.append(problem)
            earlier.append((elapsed, item))
    return found


def _collision(
    journey: Journey,
    doc: YamlDocument,
    position: int,
    step: SendStep,
    elapsed: timedelta,
    earlier: list[tuple[timedelta, SendStep]],
    rules: list[CapRule],
) -> Problem | None:
    for channel in step.channels:
        for rule in rules:
            if not _counts(rule, journey, channel):
                continue
            # Sends that certainly used a slot: the earlier steps' first channels.
            within = [
                (at, prior)
                for at, prior in earlier
                if elapsed - at < rule.window and _counts(rule, journey, prior.send)
            ]
            if len(within) < rule.max:
                continue
            at, prior = within[-1]
            role = "" if channel == step.send else "fallback "
            scope = "any channel" if rule.channel == "any" else rule.channel
            return doc.problem(
                ("steps", position, "send" if channel == step.send else "fallback"),
                f"step {step.id!r} sends its {role}{channel} {format_duration(elapsed - at)} after step "
                f"{prior.id!r}, but the cap rule '{rule.max} on {scope} per {format_duration(rule.window)}' "
                f"then holds it back for every customer who got step {prior.id!r}",
                f"wait at least {format_duration(rule.window)} between them, use another channel, "
                "or give the journey its own 'caps'",
            )
    return None


def optional_field_uses(
    journey: Journey, catalogue: Catalogue, templates_dir: Path, env: GuardedEnvironment
) -> list[Problem]:
    """Uses of catalogue fields marked ``optional: true`` without a default, in the journey's templates."""
    optional = {"profile": {name for name, spec in catalogue.profile.items() if spec.optional}}
    events = [journey.trigger.event] if isinstance(journey.trigger, EventTrigger) else []
    events += [s.wait.event for s in journey.steps if isinstance(s, WaitStep) and isinstance(s.wait, WaitForEvent)]
    optional["event"] = {
        name
        for event in events
        if event in catalogue.events
        for name, spec in catalogue.events[event].properties.items()
        if spec.optional
    }
    optional["trigger"] = optional["event"]
    found: list[Problem] = []
    for step in journey.steps:
        if not isinstance(step, SendStep):
            continue
        for channel in step.channels:
            for item in template_files(templates_dir, channel, step.template):
                found += _unguarded(item.path, item.loader_name, env, optional)
    return list(dict.fromkeys(found))


def _unguarded(path: Path, name: str, env: GuardedEnvironment, optional: dict[str, set[str]]) -> list[Problem]:
    try:
        tree = env.parse(path.read_text(encoding="utf-8"), name, str(path))
    except (OSError, UnicodeDecodeError, TemplateSyntaxError):
        return []  # the template checks report these
    guarded = _guarded(tree)
    return [
        Problem(
            str(path),
            ref.line,
            1,
            f"{ref.root}.{ref.field} is optional in the catalogue and used without a default: "
            "the send fails for every customer without it",
            f"write {{{{ {ref.root}.{ref.field} | default('') }}}} or wrap it in "
            f"{{% if {ref.root}.{ref.field} is defined %}}…{{% endif %}}",
        )
        for ref in references(tree)
        if ref.field in optional.get(ref.root, set()) and (ref.root, ref.field) not in guarded
    ]


def _guarded(tree: nodes.Node) -> set[tuple[str, str]]:
    """Fields that get a default or are tested with ``defined`` somewhere in the template."""
    found: set[tuple[str, str]] = set()
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        if node.name in ("default", "d", "defined", "undefined") and node.node is not None:
            found.update((ref.root, ref.field) for ref in references(node.node))
            if isinstance(node.node, nodes.Getattr | nodes.Getitem):
                base = node.node
                if isinstance(base.node, nodes.Name):
                    field = base.attr if isinstance(base, nodes.Getattr) else getattr(base.arg, "value", "")
                    found.add((base.node.name, str(field)))
    return found
