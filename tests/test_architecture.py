"""The layout is the architecture: layers without cycles, docs that name real modules, the public
names users touch kept stable (docs/architecture.md)."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import sys
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("cli", "simulate", "http", "workers", "runtime", "gate", "store", "engine", "language")
DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])


def _cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), i.e. import cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for imported in graph.find_modules_directly_imported_by(module):
            if imported not in index:
                visit(imported)
                low[module] = min(low[module], low[imported])
            elif imported in on_stack:
                low[module] = min(low[module], index[imported])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    # The walk recurses once per module on a path; the limit is put back so that no later test
    # (JSON nesting limits rely on it) runs with a raised one.
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10_000))
    try:
        for module in sorted(graph.modules):
            if module not in index:
                visit(module)
    finally:
        sys.setrecursionlimit(limit)
    return found


def test_no_module_imports_itself_back_through_others() -> None:
    """No import cycle anywhere in orchestrator or channels, function-level imports included."""
    graph = grimp.build_graph("orchestrator", "channels")
    assert _cycles(graph) == []


def test_the_cycle_finder_finds_a_cycle() -> None:
    """The check above can fail: a graph with a cycle is reported."""
    graph = grimp.ImportGraph()
    for name in ("a", "a.b", "a.c"):
        graph.add_module(name)
    graph.add_import(importer="a.b", imported="a.c")
    graph.add_import(importer="a.c", imported="a.b")
    assert _cycles(graph) == [["a.b", "a.c"]]


def test_no_module_imports_orchestrator_inside_a_function() -> None:
    """Imports of our own modules sit at module level, where import-linter and readers see them."""
    late = [
        f"{path.relative_to(ROOT)}:{number}"
        for path in [*(ROOT / "orchestrator").rglob("*.py"), *(ROOT / "channels").rglob("*.py")]
        for number, line in enumerate(path.read_text().splitlines(), start=1)
        if re.match(r"\s+(from orchestrator[. ]|import orchestrator|from channels)", line)
        and "TYPE_CHECKING" not in line
    ]
    assert late == []


@pytest.mark.parametrize("layer", LAYERS)
def test_each_layer_says_what_it_owns_and_may_import(layer: str) -> None:
    module = importlib.import_module(f"orchestrator.{layer}")
    doc = module.__doc__ or ""
    assert len(doc) > 100 and "import" in doc, f"orchestrator/{layer}/__init__.py needs a docstring saying its rules"


def test_modules_stay_small_and_have_telling_names() -> None:
    """No room over ~450 lines; no grab-bag module names."""
    too_big = {}
    bad_names = []
    for path in [*(ROOT / "orchestrator").rglob("*.py"), *(ROOT / "channels").rglob("*.py")]:
        lines = len(path.read_text().splitlines())
        if lines > 460:
            too_big[str(path.relative_to(ROOT))] = lines
        if path.stem in {"utils", "helpers", "common", "misc"}:
            bad_names.append(str(path.relative_to(ROOT)))
    assert too_big == {}
    assert bad_names == []


def _documented_names() -> set[str]:
    names: set[str] = set()
    for doc in DOCS:
        names.update(re.findall(r"\borchestrator(?:\.[A-Za-z_][A-Za-z0-9_]*)+", doc.read_text()))
    return names


def _resolves(dotted: str) -> bool:
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            found: object = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(found, attribute):
                return False
            found = getattr(found, attribute)
        return True
    return False


def test_every_module_named_in_the_docs_imports() -> None:
    """A dotted ``orchestrator.…`` name in README.md or docs/ is a module or an attribute of one."""
    names = _documented_names() - {"orchestrator.worker"}  # imports only with REDIS_URL set (a worker)
    assert len(names) > 10
    assert sorted(name for name in names if not _resolves(name)) == []


def test_every_path_named_in_the_docs_exists() -> None:
    """A path such as ``orchestrator/runtime/delivery.py`` or ``tests/gate/test_caps.py`` in the docs exists."""
    paths: set[str] = set()
    for doc in DOCS:
        paths.update(
            re.findall(r"\b(?:orchestrator|channels|tests)/[A-Za-z0-9_/.-]*\.(?:py|lua|md|json)\b", doc.read_text())
        )
    assert len(paths) > 10
    assert sorted(path for path in paths if not (ROOT / path).exists()) == []


def test_the_public_names_users_touch_are_stable() -> None:
    """The console script, the worker module, the plugin API and the built-in channels' entry points."""
    distribution = importlib.metadata.distribution("loyaloop")
    scripts = {ep.name: ep.value for ep in distribution.entry_points if ep.group == "console_scripts"}
    assert scripts == {"loyaloop": "orchestrator.cli:main"}
    plugins = {ep.name: ep.value for ep in distribution.entry_points if ep.group == "loyaloop"}
    assert plugins == {
        "email": "channels.email",
        "sms": "channels.sms",
        "push": "channels.push",
        "outbox": "channels.outbox",
        "webhook": "channels.webhook",
    }
    assert callable(importlib.import_module("orchestrator.cli").main)
    assert importlib.util.find_spec("orchestrator.worker") is not None
    hookspecs = importlib.import_module("orchestrator.hookspecs")
    assert hookspecs.hookimpl.project_name == "loyaloop"
    message = importlib.import_module("orchestrator.message")
    for name in ("Message", "Receipt", "Channel", "sms_segments"):
        assert hasattr(message, name)
    errors = importlib.import_module("orchestrator.errors")
    for name in ("LoyaloopError", "TransientError", "PermanentError", "ConfigurationError"):
        assert issubclass(getattr(errors, name), Exception)


def test_plugin_authors_get_types() -> None:
    """``py.typed`` ships in the package, so mypy checks a plugin against our hook and message types."""
    files = importlib.metadata.distribution("loyaloop").files or []
    shipped = {str(f) for f in files}
    assert (ROOT / "orchestrator" / "py.typed").exists()
    assert any(name.endswith("py.typed") for name in shipped) or _editable()


def _editable() -> bool:
    """An editable install lists no package files; the source tree is what is imported."""
    return Path(importlib.import_module("orchestrator").__file__ or "").is_relative_to(ROOT)
