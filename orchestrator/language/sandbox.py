"""The Jinja2 sandbox every condition and template runs in, and its static guard.

Jinja2's ``ImmutableSandboxedEnvironment`` already refuses ``''.__class__`` at run time, but only
when the line runs for a real customer.  Marketers' text is untrusted, so we also refuse escape
attempts *statically*: the parsed template is walked before it is ever compiled, and any dunder,
``mro`` or ``__globals__`` access is a validation error with a line number.  The same walk finds
the ``profile.x`` / ``event.y`` references that the catalogue check needs.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError
from jinja2.parser import Parser
from jinja2.sandbox import ImmutableSandboxedEnvironment

#: Attribute names that lead out of the sandbox even without a leading underscore.
UNSAFE_ATTRIBUTES = frozenset(
    {
        "mro",
        "func_globals",
        "func_code",
        "f_globals",
        "f_locals",
        "f_back",
        "f_builtins",
        "gi_frame",
        "gi_code",
        "cr_frame",
        "cr_code",
        "ag_frame",
        "ag_code",
        "tb_frame",
        "tb_next",
        "co_code",
    }
)
_DUNDER = re.compile(r"^__\w*__$")
#: Filters and tests that look attributes up by a string argument.
_ATTRIBUTE_FILTERS = frozenset(
    {"attr", "map", "selectattr", "rejectattr", "sort", "groupby", "sum", "unique", "min", "max", "dictsort"}
)


def _walk(tree: nodes.Node, kinds: tuple[type[nodes.Node], ...]) -> Iterator[Any]:
    """The tree itself and every descendant of those kinds (``find_all`` skips the root)."""
    if isinstance(tree, kinds):
        yield tree
    yield from tree.find_all(kinds)


def _unsafe_name(name: Any) -> bool:
    return isinstance(name, str) and (name.startswith("_") or name in UNSAFE_ATTRIBUTES)


def unsafe_accesses(tree: nodes.Node) -> list[tuple[int, str]]:
    """``(line, description)`` for every attempt to reach Python internals in a parsed template."""
    found: list[tuple[int, str]] = []
    reported: set[int] = set()  # ids of constants already reported as an attribute name
    for node in _walk(tree, (nodes.Getattr, nodes.Getitem, nodes.Filter, nodes.Test, nodes.Const, nodes.Name)):
        line = node.lineno or 1
        if isinstance(node, nodes.Getattr) and _unsafe_name(node.attr):
            found.append((line, f"access to {node.attr!r}"))
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const) and _unsafe_name(node.arg.value):
            found.append((line, f"access to {node.arg.value!r}"))
            reported.add(id(node.arg))
        elif isinstance(node, nodes.Filter | nodes.Test) and node.name in _ATTRIBUTE_FILTERS:
            for argument in [*node.args, *(kw.value for kw in node.kwargs)]:
                if isinstance(argument, nodes.Const) and _unsafe_name(argument.value):
                    found.append((line, f"access to {argument.value!r} through the {node.name!r} filter"))
                    reported.add(id(argument))
        elif (
            isinstance(node, nodes.Const)
            and id(node) not in reported
            and isinstance(node.value, str)
            and _DUNDER.match(node.value)
        ):
            found.append((line, f"the internal name {node.value!r}"))
        elif isinstance(node, nodes.Name) and _unsafe_name(node.name) and node.name != "_":
            found.append((line, f"the internal name {node.name!r}"))
    unique: dict[tuple[int, str], None] = dict.fromkeys(found)
    return list(unique)


@dataclass(frozen=True)
class Reference:
    """A use of ``root.field`` (or ``root['field']``) in an expression or template."""

    root: str
    field: str
    line: int
    #: True for ``root['field']``; ``root.items`` finds the mapping's method, not the key.
    subscript: bool = False


def references(tree: nodes.Node) -> Iterator[Reference]:
    """Every ``name.attr`` / ``name['key']`` whose base is a plain variable."""
    for node in _walk(tree, (nodes.Getattr, nodes.Getitem)):
        if isinstance(node, nodes.Getattr) and isinstance(node.node, nodes.Name):
            yield Reference(node.node.name, node.attr, node.lineno or 1)
        elif (
            isinstance(node, nodes.Getitem)
            and isinstance(node.node, nodes.Name)
            and isinstance(node.arg, nodes.Const)
            and isinstance(node.arg.value, str)
        ):
            yield Reference(node.node.name, node.arg.value, node.lineno or 1, subscript=True)


def first_use(tree: nodes.Node, name: str) -> int:
    """Line of the first load of a variable (for locating an undefined-variable problem)."""
    for node in tree.find_all(nodes.Name):
        if node.name == name and node.ctx == "load":
            return node.lineno or 1
    return 1


def _days(count: float) -> timedelta:
    return timedelta(days=float(count))


def _hours(count: float) -> timedelta:
    return timedelta(hours=float(count))


def _minutes(count: float) -> timedelta:
    return timedelta(minutes=float(count))


def _weeks(count: float) -> timedelta:
    return timedelta(weeks=float(count))


#: Globals every sandbox has: durations for date arithmetic (``now + days(7)``).
TIME_GLOBALS: dict[str, Callable[[float], timedelta]] = {
    "days": _days,
    "hours": _hours,
    "minutes": _minutes,
    "weeks": _weeks,
}


class GuardedEnvironment(ImmutableSandboxedEnvironment):
    """An immutable sandbox that also refuses escape attempts when a template is parsed."""

    def __init__(self, **options: Any) -> None:
        options.setdefault("undefined", StrictUndefined)
        super().__init__(**options)
        self.globals.update(TIME_GLOBALS)

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        unsafe = unsafe_accesses(tree)
        if unsafe:
            line, what = unsafe[0]
            where = f"{name or 'expression'}, line {line}"
            raise SecurityError(f"{where}: {what} is not allowed in templates or conditions")
        return tree

    def parse_expression(self, source: str) -> nodes.Expr:
        """Parse a condition (no ``{{ }}``) to its syntax tree, refusing trailing junk."""
        parser = Parser(self, source, state="variable")
        expression = parser.parse_expression()
        if not parser.stream.eos:
            raise TemplateSyntaxError("unexpected text after the expression", parser.stream.current.lineno)
        return expression

    def compile_expression(self, source: str, undefined_to_none: bool = True) -> TemplateExpression:
        unsafe = unsafe_accesses(self.parse_expression(source))
        if unsafe:
            raise SecurityError(f"condition {source!r}: {unsafe[0][1]} is not allowed in templates or conditions")
        return super().compile_expression(source, undefined_to_none)
