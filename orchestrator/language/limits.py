"""What one render or condition may cost: time, loop iterations, output, and the size of any value
it builds.

Templates and conditions are untrusted text: without bounds, ``{{ ('a' * 300000000)|length }}``
allocates 300 MB and nested ``range`` loops hold a worker thread for minutes, one customer at a
time.  The sandbox (:mod:`orchestrator.language.sandbox`) routes every costly construct through
the checks here: repetition, powers, concatenation and padding are refused *before* they allocate;
loops, attribute look-ups and calls check the render's :class:`Budget`; output is counted as it is
produced.  What can be seen without running (a constant ``* 300000000``, ``range(10**9)``) is also
refused by ``loyaloop validate`` (:func:`costly_constructs`).

The limits sit far above what a message needs (an e-mail is a few dozen kilobytes, a product list
a few dozen items) and far below what hurts a worker.
"""

from __future__ import annotations

import gc
import re
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from jinja2 import nodes
from jinja2.exceptions import SecurityError

#: Characters (or items) a repetition, padding or concatenation may produce.
MAX_SIZE = 100_000
#: Characters one rendered message may have, all parts together, including text captured by
#: ``{% set %}`` blocks and macros (Gmail clips a message at about 100 kB).
MAX_OUTPUT = 1_000_000
#: Loop iterations one render may run, all loops together.
MAX_ITERATIONS = 10_000
#: Bits an integer power may produce (``2 ** 4096`` is far beyond any price or count).
MAX_POWER_BITS = 4_096
#: Seconds of processor time one message's templates may take (a normal one takes well under a
#: millisecond).  Counted on the rendering thread's own clock, less the garbage collector's passes:
#: a busy machine (the thread waiting for a core) or a collection that happens to fall inside a
#: render (a second or more in a large process, such as a simulation of months) must not fail a
#: message that an idle worker would send; the same history would otherwise tell another story.
MESSAGE_SECONDS = 0.5
#: Seconds one condition may take.
CONDITION_SECONDS = 0.1
#: Loop iterations between two looks at the clock.
_CLOCK_EVERY = 256
#: A width or precision in a ``%`` or ``format`` specification (``%300000000d``, ``{:>9999999}``).
_WIDTH = re.compile(r"(?:%|\{[^{}]*:)[^a-zA-Z%{}]*?(\d+)")


class RenderLimitExceeded(SecurityError):
    """A template or condition went past one of the limits above; the message is not sent."""


class _CollectorTime(threading.local):
    """Processor time the garbage collector took of this thread (its passes run on the thread that
    set them off)."""

    started: float | None = None
    spent: float = 0.0


_collector = _CollectorTime()


def _collector_pass(phase: str, info: dict[str, int]) -> None:
    if phase == "start":
        _collector.started = time.thread_time()
    elif _collector.started is not None:
        _collector.spent += time.thread_time() - _collector.started
        _collector.started = None


gc.callbacks.append(_collector_pass)


def render_clock() -> float:
    """This thread's processor time less its garbage collection: what a render's budget counts."""
    return time.thread_time() - _collector.spent


@dataclass
class Budget:
    """What is left to one render: a deadline (on :func:`render_clock`), loop iterations, output characters."""

    deadline: float
    what: str
    iterations: int = MAX_ITERATIONS
    output: int = MAX_OUTPUT

    def check_clock(self) -> None:
        if render_clock() > self.deadline:
            raise RenderLimitExceeded(f"{self.what} took longer than its time budget; simplify its loops")


_current: ContextVar[Budget | None] = ContextVar("loyaloop_render_budget", default=None)


@contextmanager
def budget(what: str, seconds: float) -> Iterator[Budget]:
    """Run a render or a condition under a fresh budget (nested calls get their own)."""
    spent = Budget(deadline=render_clock() + seconds, what=what)
    token = _current.set(spent)
    try:
        yield spent
    finally:
        _current.reset(token)


def check_clock() -> None:
    """Refuse to go on past the current render's deadline (no-op outside a render)."""
    spent = _current.get()
    if spent is not None:
        spent.check_clock()


def count_output(size: int) -> None:
    """Count characters a render produced (into the message or a captured block); a value too large
    to print is refused even outside a render."""
    if size > MAX_OUTPUT:
        raise RenderLimitExceeded(f"printing a value of more than {MAX_OUTPUT:,} characters")
    spent = _current.get()
    if spent is not None:
        spent.output -= size
        if spent.output < 0:
            raise RenderLimitExceeded(
                f"{spent.what} produced more than {MAX_OUTPUT:,} characters; shorten it or its loops"
            )


def bounded_iter(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every ``{% for %}`` loop runs over this: iterations count against the render's budget."""
    spent = _current.get()
    if spent is None:
        yield from iterable
        return
    for number, item in enumerate(iterable):
        spent.iterations -= 1
        if spent.iterations < 0:
            raise RenderLimitExceeded(
                f"{spent.what} ran more than {MAX_ITERATIONS:,} loop iterations; loop over fewer items"
            )
        if number % _CLOCK_EVERY == 0:
            spent.check_clock()
        yield item


def weight(value: Any, limit: int = MAX_SIZE) -> int:
    """Roughly how many characters ``value`` becomes as text, counted only up to ``limit`` + 1.

    A list repeated 100,000 times costs nothing until it is printed or joined, when each of its
    items becomes text: ``[big] * 100000`` must be refused by the size of ``big`` too.
    """
    if isinstance(value, str | bytes):
        return len(value)
    if isinstance(value, Mapping):
        value = [*value.keys(), *value.values()]
    if isinstance(value, list | tuple | set | frozenset):
        total = len(value)
        for item in value:
            if total > limit:
                break
            total += weight(item, limit - total)
        return total
    return 1


def _refuse_size(size: int, what: str) -> None:
    if size > MAX_SIZE:
        raise RenderLimitExceeded(f"{what} would make {size:,} characters or items; at most {MAX_SIZE:,}")


def check_repeat(left: Any, right: Any) -> None:
    """``'a' * n`` and ``[x] * n``: refused before anything is allocated."""
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, str | bytes | list | tuple) and isinstance(count, int) and not isinstance(count, bool):
            _refuse_size(weight(sequence) * max(count, 0), "repeating a value")


def check_power(left: Any, right: Any) -> None:
    """``10 ** 1000000`` builds a number with a million digits: refused before it is computed."""
    if _too_big_power(left, right):
        raise RenderLimitExceeded(f"{left} ** {right} is too large a number to compute")


def _too_big_power(base: Any, exponent: Any) -> bool:
    numbers = isinstance(base, int) and isinstance(exponent, int)
    return numbers and exponent > 0 and abs(base) > 1 and abs(base).bit_length() * exponent > MAX_POWER_BITS


def check_widths(format_string: Any) -> None:
    """``'%300000000d' % 1`` and ``'{:>300000000}'.format(1)`` pad to the width asked for."""
    if isinstance(format_string, str):
        for width in _WIDTH.findall(format_string):
            _refuse_size(int(width[:7]) if len(width) <= 7 else MAX_SIZE + 1, f"the width {width[:12]!r}")


def check_built(value: Any, what: str) -> Any:
    """A value just built by joining or adding: refused when it is too large to keep or print."""
    if weight(value, MAX_OUTPUT) > MAX_OUTPUT:
        raise RenderLimitExceeded(f"{what} would make more than {MAX_OUTPUT:,} characters")
    return value


# --- what ``loyaloop validate`` can see without running ------------------------------------------


def _const_int(node: nodes.Node) -> int | None:
    if isinstance(node, nodes.Const) and isinstance(node.value, int) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, nodes.Neg) and isinstance(node.node, nodes.Const) and isinstance(node.node.value, int):
        return -node.node.value
    return None


def _range_length(node: nodes.Node) -> int | None:
    """The length of ``range(<constants>)``, or None when it is not one."""
    if not (isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name) and node.node.name == "range"):
        return None
    values = [_const_int(arg) for arg in node.args]
    if not values or any(value is None for value in values) or len(values) > 3:
        return None
    try:
        return len(range(*[int(value) for value in values if value is not None]))
    except (ValueError, OverflowError):
        return None


def _loop_products(node: nodes.Node, outer: int, found: list[tuple[int, str]]) -> None:
    """Walk nested ``for`` loops, multiplying constant ``range`` lengths along each nesting chain."""
    for child in node.iter_child_nodes():
        inner = outer
        if isinstance(child, nodes.For):
            length = _range_length(child.iter)
            if length is not None:
                inner = outer * length
                if inner > MAX_ITERATIONS >= outer:
                    found.append(
                        (
                            child.lineno or 1,
                            f"loops that run {inner:,} times (at most {MAX_ITERATIONS:,} iterations per message)",
                        )
                    )
        _loop_products(child, inner, found)


def costly_constructs(tree: nodes.Node) -> list[tuple[int, str]]:
    """``(line, description)`` of every construct that is bound to exceed a limit when it runs."""
    found: list[tuple[int, str]] = []
    for node in tree.find_all((nodes.Mul, nodes.Pow, nodes.Mod, nodes.Call, nodes.Filter)):
        line = node.lineno or 1
        if isinstance(node, nodes.Mul):
            counts = [_const_int(node.left), _const_int(node.right)]
            if any(count is not None and count > MAX_SIZE for count in counts):
                biggest = max(count for count in counts if count is not None)
                found.append((line, f"repeating a value {biggest:,} times (at most {MAX_SIZE:,})"))
        elif isinstance(node, nodes.Pow):
            base, exponent = _const_int(node.left), _const_int(node.right)
            if _too_big_power(base, exponent):
                found.append((line, f"{base} ** {exponent}, too large a number to compute"))
        elif isinstance(node, nodes.Mod) and isinstance(node.left, nodes.Const):
            found.extend((line, problem) for problem in _width_problems(node.left.value))
        elif isinstance(node, nodes.Call):
            length = _range_length(node)
            if length is not None and length > MAX_SIZE:
                found.append((line, f"range of {length:,} numbers (at most {MAX_SIZE:,})"))
        elif isinstance(node, nodes.Filter):
            if node.name in ("center", "indent") and node.args:
                width = _const_int(node.args[0])
                if width is not None and width > MAX_SIZE:
                    found.append((line, f"the {node.name!r} filter with a width of {width:,} (at most {MAX_SIZE:,})"))
            elif node.name == "format" and isinstance(node.node, nodes.Const):
                found.extend((line, problem) for problem in _width_problems(node.node.value))
    _loop_products(tree, 1, found)
    return list(dict.fromkeys(found))


def _width_problems(text: Any) -> list[str]:
    try:
        check_widths(text)
    except RenderLimitExceeded as exc:
        return [str(exc)]
    return []
