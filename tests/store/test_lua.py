"""Lua lives in ``.lua`` files beside the modules that run it: each file is read by its module, is
shipped in the wheel, and no Python module carries Lua of its own."""

from __future__ import annotations

import importlib
import tomllib
from importlib import resources
from pathlib import Path
from types import ModuleType

import pytest

import orchestrator
from orchestrator.store import lua
from orchestrator.store.batch import Script

ROOT = Path(orchestrator.__file__).parent
LUA_FILES = sorted(ROOT.rglob("*.lua"))


def owner(path: Path) -> tuple[str, str]:
    """The package a ``.lua`` file sits in and the module its name points at (``caps.gate.lua``: caps)."""
    package = ".".join(("orchestrator", *path.parent.relative_to(ROOT).parts))
    return package, f"{package}.{path.name.split('.')[0]}"


def test_there_are_lua_files() -> None:
    """The scripts moved out of Python (a broken glob would make the other checks pass vacuously)."""
    assert len(LUA_FILES) >= 20


def held(module: ModuleType) -> list[str]:
    """The Lua a module holds at module level: strings and scripts, alone or in a dict."""
    found: list[str] = []
    for value in vars(module).values():
        for item in value.values() if isinstance(value, dict) else [value]:
            if isinstance(item, Script):
                found.append(item.source)
            elif isinstance(item, str):
                found.append(item)
    return found


@pytest.mark.parametrize("path", LUA_FILES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_lua_file_is_read_by_the_module_it_is_named_after(path: Path) -> None:
    """``<module>.<part>.lua`` sits beside ``<module>.py``, which reads it when imported (through
    importlib.resources, as from an installed wheel): no file is left unused or misnamed."""
    package, module = owner(path)
    text = resources.files(package).joinpath(path.name).read_text(encoding="utf-8")
    assert text == path.read_text("utf-8")
    importlib.import_module(module)
    assert (package, path.name) in lua.LOADED


def test_the_wheel_packages_every_lua_file() -> None:
    """``[tool.setuptools.package-data]`` ships every ``.lua`` file of the ``orchestrator`` packages
    (setuptools matches these patterns relative to the package directory)."""
    project = tomllib.loads((ROOT.parent / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]
    assert any(pattern.startswith("orchestrator") for pattern in project["packages"]["find"]["include"])
    patterns = project["package-data"]["orchestrator"]
    shipped = {path for pattern in patterns for path in ROOT.glob(pattern)}
    assert set(LUA_FILES) <= shipped
    for path in LUA_FILES:  # each sits in a package (an __init__.py beside it), which find includes
        assert (path.parent / "__init__.py").is_file()


def test_a_missing_part_names_the_file() -> None:
    """A part that does not exist fails at import, naming the file it looked for."""
    with pytest.raises(FileNotFoundError, match=r"timers\.nope\.lua"):
        lua.source("orchestrator.store.timers", "nope")
    with pytest.raises(ValueError, match="no Lua part"):
        lua.source("orchestrator.store.timers")


def test_no_python_module_carries_lua() -> None:
    """Scripts are ``.lua`` files, not Python strings."""
    inline = [str(path.relative_to(ROOT)) for path in ROOT.rglob("*.py") if "redis.call(" in path.read_text("utf-8")]
    assert inline == []
