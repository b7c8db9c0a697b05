"""What a journey's conditions and values see: one context for branches, goals, trigger filters,
``update`` values and templates, so the same name means the same thing everywhere.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import lru_cache
from typing import Any

from jinja2 import Template
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.exceptions import SecurityError

from orchestrator.engine import conditions
from orchestrator.engine.enrollment import Enrollment, EventArrived
from orchestrator.errors import TemplateError
from orchestrator.language.journey import Journey
from orchestrator.language.profile import Profile

__all__ = ["context", "holds_quietly", "render_value"]

_WHOLE_EXPRESSION = re.compile(r"^\s*\{\{(?P<expr>(?:(?!\{\{|\}\}).)*)\}\}\s*$", re.DOTALL)


def context(
    profile: Profile,
    enrollment_or_trigger: Enrollment | dict[str, Any] | None,
    event: EventArrived | dict[str, Any] | None,
    now: datetime | None,
    journey: Journey | None,
) -> dict[str, Any]:
    """The names a condition or template sees: ``profile``, ``event``, ``trigger``, ``now``, ``journey``.

    ``event`` is the event at hand, or the trigger's properties when there is none, so a step
    deep in a journey can still say ``event.total`` about the order that started it.  After an
    event wait, the awaited event's properties are laid over the trigger's (the validator lets
    steps use the fields of both).
    """
    awaited: dict[str, Any] | None = None
    if isinstance(enrollment_or_trigger, Enrollment):
        trigger = dict(enrollment_or_trigger.trigger)
        awaited = enrollment_or_trigger.awaited_event
    else:
        trigger = dict(enrollment_or_trigger or {})
    if isinstance(event, EventArrived):
        properties = dict(event.properties)
    elif event is not None:
        properties = dict(event)
    elif awaited is not None:
        properties = {**trigger, **awaited}
    else:
        properties = dict(trigger)
    return {
        "profile": profile.context(),
        "event": properties,
        "trigger": trigger,
        "now": now,
        "journey": {"id": journey.id, "name": journey.name} if journey is not None else {"id": "", "name": ""},
    }


@lru_cache(maxsize=1024)
def _template(source: str) -> Template:
    return conditions.environment().from_string(source)


def render_value(value: Any, ctx: dict[str, Any]) -> Any:
    """An ``update`` value: strings with ``{{`` (or ``{%``) are rendered in the condition sandbox.

    A value that is exactly one ``{{ expression }}`` keeps the expression's type (so
    ``{{ profile.points + 10 }}`` stores a number); anything else renders to a string.
    """
    if not isinstance(value, str) or ("{{" not in value and "{%" not in value):
        return value
    whole = _WHOLE_EXPRESSION.match(value)
    if whole is not None:
        result = conditions.evaluate(whole.group("expr"), ctx)
        if result is None or isinstance(result, str | int | float | bool | list | dict):
            return result
        return result.isoformat() if isinstance(result, datetime | date) else str(result)
    try:
        return _template(value).render(**ctx)
    except SecurityError as exc:
        raise TemplateError(f"value {value!r} tried something unsafe: {exc}") from exc
    except (JinjaTemplateError, TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateError(f"value {value!r} failed to render: {exc}") from exc


def holds_quietly(expression: str | None, ctx: dict[str, Any]) -> bool:
    """For entry and exit checks: a condition that cannot be evaluated for this customer is not met."""
    try:
        return conditions.holds(expression, ctx)
    except TemplateError:
        return False
