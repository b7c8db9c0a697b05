"""Checks of the steps that reach the shop's systems: ``action`` endpoints and bodies, voucher pools,
and what action steps keep for later templates (``save_as``)."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

from orchestrator.errors import Problem
from orchestrator.language.journey import ActionStep, Journey
from orchestrator.language.located import did_you_mean
from orchestrator.language.template_checks import CheckContext
from orchestrator.language.yamlfile import DataPath, YamlDocument


def saved_names(journey: Journey) -> frozenset[str]:
    """What the journey's action steps keep for later templates (``step.<save_as>``)."""
    return frozenset(step.save_as for step in journey.steps if isinstance(step, ActionStep) and step.save_as)


def body_texts(body: Any, here: DataPath) -> Iterator[tuple[DataPath, str]]:
    """The templated strings of an action body, with where each is written."""
    if isinstance(body, str):
        if "{{" in body or "{%" in body:
            yield here, body
    elif isinstance(body, dict):
        for key, value in body.items():
            yield from body_texts(value, (*here, key))
    elif isinstance(body, list):
        for index, value in enumerate(body):
            yield from body_texts(value, (*here, index))


_EXPRESSION = re.compile(r"\{\{.*?\}\}", re.DOTALL)
_STATEMENT = re.compile(r"\{%.*?%\}", re.DOTALL)


def action_problems(step: ActionStep, doc: YamlDocument, here: DataPath, ctx: CheckContext) -> list[Problem]:
    """The endpoint must be declared; a body written as one template text must be a JSON object
    once its ``{{ … }}`` are filled in (a shape check: the values are the runtime's)."""
    problems: list[Problem] = []
    if ctx.endpoints is not None and step.action not in ctx.endpoints:
        hint = did_you_mean(step.action, ctx.endpoints) or (
            f"declared endpoints: {', '.join(sorted(ctx.endpoints))}"
            if ctx.endpoints
            else "declare it in settings.yaml under 'endpoints:' (its URL comes from the environment)"
        )
        problems.append(doc.problem((*here, "action"), f"unknown endpoint {step.action!r}", hint))
    if isinstance(step.body, str):
        shape = _STATEMENT.sub("", _EXPRESSION.sub("0", step.body))
        try:
            parsed = json.loads(shape)
        except ValueError as exc:
            problems.append(
                doc.problem(
                    (*here, "body"),
                    f"the body is not JSON once its {{{{ … }}}} are filled in: {exc.args[0]}",
                    'write the body as a YAML mapping (values may be templates), or quote strings: "{{ x }}"',
                )
            )
        else:
            if not isinstance(parsed, dict):
                problems.append(doc.problem((*here, "body"), "the body must be a JSON object ({...})"))
    return problems


def voucher_pool_problems(pool: str, doc: YamlDocument, path: DataPath, ctx: CheckContext) -> list[Problem]:
    """A send step's voucher pool must be declared in settings (where its kind and stock live)."""
    if ctx.vouchers is None or pool in ctx.vouchers:
        return []
    hint = did_you_mean(pool, ctx.vouchers) or (
        f"declared pools: {', '.join(sorted(ctx.vouchers))}"
        if ctx.vouchers
        else "declare it in settings.yaml under 'vouchers:', e.g. vouchers: {" + pool + ": {kind: pool}}"
    )
    return [doc.problem(path, f"unknown voucher pool {pool!r}", hint)]
