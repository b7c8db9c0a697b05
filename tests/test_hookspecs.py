"""The hook contract is whole: every hook documented with its exact signature, and exercised by a test."""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator import hookspecs

REPO = Path(__file__).resolve().parents[1]
DOCS = REPO / "docs" / "plugins.md"
PLUGIN_TESTS = REPO / "tests" / "test_plugins.py"


def hooks() -> dict[str, Callable[..., Any]]:
    return {
        name: function
        for name, function in vars(hookspecs).items()
        if name.startswith("loyaloop_") and callable(function) and hasattr(function, "loyaloop_spec")
    }


def signature(function: Callable[..., Any]) -> str:
    """``name(param: Type, ...) -> Return`` exactly as written in hookspecs.py (annotations stay strings)."""
    annotations = dict(function.__annotations__)
    returns = annotations.pop("return")
    params = ", ".join(f"{name}: {annotations[name]}" for name in inspect.signature(function).parameters)
    return f"{function.__name__}({params}) -> {returns}"


def test_the_contract_has_the_hooks_the_runtime_calls() -> None:
    """The hook names other parts of Loyaloop rely on are all there."""
    assert set(hooks()) >= {
        "loyaloop_configure",
        "loyaloop_register_channels",
        "loyaloop_prepare_message",
        "loyaloop_message_sent",
        "loyaloop_message_failed",
        "loyaloop_template_filters",
        "loyaloop_template_globals",
    }


def test_every_hook_has_a_docstring() -> None:
    """Each hook says in its docstring when it is called and what it must do."""
    for name, function in hooks().items():
        assert function.__doc__ and len(function.__doc__.strip()) > 40, name


def test_every_hook_is_documented_with_its_exact_signature() -> None:
    """docs/plugins.md has a heading with each hook's exact signature, and documents no hook that does not exist."""
    text = DOCS.read_text(encoding="utf-8")
    headings = re.findall(r"^### `(loyaloop_\w+\(.*\) -> .*)`$", text, flags=re.MULTILINE)
    assert sorted(headings) == sorted(signature(function) for function in hooks().values())


def test_every_hook_is_exercised_by_a_plugin_test() -> None:
    """tests/test_plugins.py implements every hook in a test plugin (and so calls it)."""
    text = PLUGIN_TESTS.read_text(encoding="utf-8")
    missing = [name for name in hooks() if not re.search(rf"def {name}\(", text)]
    assert missing == []
