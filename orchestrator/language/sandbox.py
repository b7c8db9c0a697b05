"""The Jinja2 sandbox every condition and template runs in, and its static guard.

Jinja2's ``ImmutableSandboxedEnvironment`` already refuses ``''.__class__`` at run time, but only
when the line runs for a real customer.  Marketers' text is untrusted, so we also refuse escape
attempts *statically*: the parsed template is walked before it is ever compiled, and any dunder,
``mro`` or ``__globals__`` access is a validation error with a line number.  The same walk finds
the ``profile.x`` / ``event.y`` references that the catalogue check needs.

Untrusted text must not be able to cost a worker either: every loop, repetition, power, padding,
join and output goes through :mod:`orchestrator.language.limits` (sizes refused before they are
allocated, a time and iteration budget per message).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, Undefined, nodes
from jinja2.environment import TemplateExpression
from jinja2.exceptions import SecurityError
from jinja2.filters import FILTERS
from jinja2.parser import Parser
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.visitor import NodeTransformer

from orchestrator.language import limits

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


def _wrap_filters(filters: dict[str, Any]) -> None:
    """The built-in filters that pad, join or replace check what they would build."""
    center, indent, join, replace, format_ = (
        FILTERS[name] for name in ("center", "indent", "join", "replace", "format")
    )

    def bounded_center(value: Any, width: int = 80) -> str:
        limits.check_repeat(" ", width)
        return str(center(value, width))

    def bounded_indent(value: Any, width: int | str = 4, *args: Any, **kwargs: Any) -> str:
        if isinstance(width, int):
            limits.check_repeat(" ", width * max(1, str(value).count("\n") + 1))
        return str(limits.check_built(indent(value, width, *args, **kwargs), "indenting"))

    def bounded_join(eval_ctx: Any, value: Any, d: str = "", attribute: Any = None) -> str:
        items = list(value) if not isinstance(value, str) else value
        limits.check_built([items, d * max(0, len(items) - 1)], "joining")
        return str(join(eval_ctx, items, d, attribute))

    def bounded_replace(eval_ctx: Any, s: str, old: str, new: str, count: int | None = None) -> str:
        text = str(s)
        times = text.count(str(old)) if old else len(text) + 1
        limits.check_built([text, str(new) * min(times, count if count is not None else times)], "replacing")
        return str(replace(eval_ctx, s, old, new, count))

    def bounded_format(value: str, *args: Any, **kwargs: Any) -> str:
        limits.check_widths(value)
        _no_starred_width(value, args)
        return str(format_(value, *args, **kwargs))

    bounded_join.jinja_pass_arg = join.jinja_pass_arg  # type: ignore[attr-defined]
    bounded_replace.jinja_pass_arg = replace.jinja_pass_arg  # type: ignore[attr-defined]
    filters.update(
        center=bounded_center, indent=bounded_indent, join=bounded_join, replace=bounded_replace, format=bounded_format
    )


#: A ``format`` specification taking its width from an argument (``{:>{w}}``).
_NESTED_SPEC = re.compile(r":[^{}]*\{")


def _no_starred_width(format_string: Any, args: Any) -> None:
    """``'%*d' % (300000000, 1)`` takes its width from the arguments."""
    if isinstance(format_string, str) and ("*" in format_string or _NESTED_SPEC.search(format_string)):
        values = args if isinstance(args, tuple | list) else [args]
        for value in values:
            if isinstance(value, int) and not isinstance(value, bool):
                limits.check_repeat(" ", value)


class _LoopBudget(NodeTransformer):
    """Rewrites every ``{% for x in items %}`` to iterate over ``bounded_iter(items)`` and every
    ``a ~ b`` to check the size of what it joined."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Call(nodes.EnvironmentAttribute("bounded_iter"), [node.iter], [], None, None)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        return nodes.Call(nodes.EnvironmentAttribute("bounded_concat"), [node], [], None, None)


class GuardedEnvironment(ImmutableSandboxedEnvironment):
    """An immutable sandbox that refuses escape attempts when a template is parsed, and bounds
    what a template or condition may cost when it runs (:mod:`orchestrator.language.limits`)."""

    intercepted_binops = frozenset({"*", "**", "%", "+"})

    def __init__(self, **options: Any) -> None:
        options.setdefault("undefined", StrictUndefined)
        options.setdefault("finalize", _counted)
        super().__init__(**options)
        self.globals.update(TIME_GLOBALS)
        self.globals.pop("lipsum", None)  # generates any amount of text; no message needs it
        _wrap_filters(self.filters)
        self.bounded_iter = limits.bounded_iter

    @staticmethod
    def bounded_concat(text: str) -> str:
        return str(limits.check_built(text, "joining text with '~'"))

    def _parse(self, source: str, name: str | None, filename: str | None) -> nodes.Template:
        tree = super()._parse(source, name, filename)
        unsafe = unsafe_accesses(tree)
        if unsafe:
            line, what = unsafe[0]
            where = f"{name or 'expression'}, line {line}"
            raise SecurityError(f"{where}: {what} is not allowed in templates or conditions")
        bounded = _LoopBudget().visit(tree)
        assert isinstance(bounded, nodes.Template)
        return bounded

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

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            limits.check_repeat(left, right)
        elif operator == "**":
            limits.check_power(left, right)
        elif operator == "%" and isinstance(left, str):
            limits.check_widths(left)
            _no_starred_width(left, right)
        result = super().call_binop(context, operator, left, right)
        if operator == "+":
            limits.check_built(result, "adding values")
        return result

    def getattr(self, obj: Any, attribute: str) -> Any:
        """``event.items`` is the event's ``items`` when it has one; when it has none, a dict method
        of that name is only reachable by calling it (``event.items()``): anything else (``length``,
        printing, comparing) fails as the undefined field it is, not as "a builtin method has no len"."""
        limits.check_clock()
        if isinstance(obj, dict):
            if attribute in obj:
                return obj[attribute]
            value = super().getattr(obj, attribute)
            if callable(value) and not isinstance(value, Undefined):
                return _MethodOrMissing(value, obj, attribute)
            return value
        return super().getattr(obj, attribute)

    def getitem(self, obj: Any, argument: Any) -> Any:
        """``event['items']`` is a key lookup only, never a dict method (Jinja's own falls back)."""
        limits.check_clock()
        if isinstance(obj, dict) and isinstance(argument, str):
            return obj[argument] if argument in obj else self.undefined(obj=obj, name=argument)
        return super().getitem(obj, argument)

    def call(__self, __context: Context, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        limits.check_clock()
        return super().call(__context, __obj, *args, **kwargs)

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        format_string = value.__self__

        def bounded(*args: Any, **kwargs: Any) -> str:
            limits.check_widths(format_string)
            _no_starred_width(format_string, [*args, *kwargs.values()])
            return wrapped(*args, **kwargs)

        return bounded


class _MethodOrMissing(StrictUndefined):
    """A dict method asked for by a name the data lacks: callable as the method, undefined otherwise."""

    __slots__ = ("_method",)

    def __init__(self, method: Callable[..., Any], obj: Any, name: str) -> None:
        super().__init__(obj=obj, name=name)
        self._method = method

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._method(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        # What the sandbox and Jinja's call path ask of a callable before calling it.
        if name in {"unsafe_callable", "alters_data", "jinja_pass_arg"}:
            raise AttributeError(name)
        return super().__getattr__(name)


def _counted(value: Any) -> Any:
    """Every ``{{ }}`` output passes here: its size counts against the message's budget."""
    if isinstance(value, str):
        limits.count_output(len(value))
    elif isinstance(value, list | tuple | dict | set | frozenset):
        limits.count_output(limits.weight(value, limits.MAX_OUTPUT))
    return value
