"""Conditions (``if:``, ``audience``, trigger filters) as sandboxed Jinja2 expressions.

One language for conditions and templates: marketers learn it once.  Everything runs in a
``SandboxedEnvironment`` with ``StrictUndefined``: a condition is untrusted input, and a typo in
a field name must fail loudly rather than quietly evaluate to false.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, UndefinedError
from jinja2.exceptions import SecurityError

from orchestrator.errors import TemplateError
from orchestrator.language import limits
from orchestrator.language.sandbox import GuardedEnvironment


@lru_cache(maxsize=1)
def environment() -> GuardedEnvironment:
    """The one sandbox conditions run in (templates get their own, with autoescape).

    Escape attempts (``''.__class__``) are refused when an expression is compiled, before it
    ever runs, as well as by the sandbox at run time.
    """
    return GuardedEnvironment(undefined=StrictUndefined, autoescape=False)


def add_extensions(
    filters: Mapping[str, Callable[..., Any]] | None = None, globals: Mapping[str, Any] | None = None
) -> None:
    """Make plugins' filters and globals (the ``loyaloop_template_*`` hooks) usable in conditions.

    Called once at start-up by whoever builds the plugin manager; the same names are then valid
    in a branch's ``if:`` as in a template.  Already compiled expressions are dropped so none
    keeps a stale view of the environment.
    """
    env = environment()
    env.filters.update(filters or {})
    env.globals.update(globals or {})
    _compiled.cache_clear()


@lru_cache(maxsize=4096)
def _compiled(expression: str) -> Any:
    return environment().compile_expression(expression, undefined_to_none=False)


def check_syntax(expression: str) -> str | None:
    """Return a readable syntax error for the expression, or None when it parses."""
    try:
        _compiled(expression)
    except TemplateSyntaxError as exc:
        return exc.message or str(exc)
    except SecurityError as exc:
        return str(exc)
    return None


def evaluate(expression: str, context: dict[str, Any]) -> Any:
    """Evaluate an expression against ``context`` (``profile``, ``event``, ``trigger``, ``now``)."""
    try:
        with limits.budget(f"condition {expression!r}", limits.CONDITION_SECONDS):
            return _compiled(expression)(**context)
    except limits.RenderLimitExceeded as exc:
        raise TemplateError(f"condition {expression!r} is too costly: {exc}") from exc
    except RecursionError as exc:
        raise TemplateError(f"condition {expression!r} nests too deeply") from exc
    except TemplateSyntaxError as exc:
        raise TemplateError(f"condition {expression!r} does not parse: {exc.message}") from exc
    except UndefinedError as exc:
        raise TemplateError(f"condition {expression!r}: {exc.message}") from exc
    except SecurityError as exc:
        raise TemplateError(f"condition {expression!r} tried something unsafe: {exc}") from exc
    except (TypeError, ValueError, ArithmeticError, LookupError) as exc:
        raise TemplateError(f"condition {expression!r} failed: {exc}") from exc


def holds(expression: str | None, context: dict[str, Any]) -> bool:
    """True when there is no condition or it evaluates truthy."""
    return expression is None or bool(evaluate(expression, context))
