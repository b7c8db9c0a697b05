"""Lua lives in ``.lua`` files next to the module that runs it, read once when that module is imported.

A module ``orchestrator/<layer>/<module>.py`` keeps its scripts as ``<module>.<part>.lua`` beside
it (``store/timers.claim.lua``, ``gate/caps.gate.lua``): editors and linters see Lua as Lua, and a
script reads from top to bottom in one file.  A script may be made of several parts, shared
``local function`` definitions first (``scripts.split.lua``) and the part that runs them last; the
parts are joined in the order given.  Files are read with :mod:`importlib.resources`, so they are
found in an installed wheel too (``pyproject.toml`` packages ``**/*.lua``).
"""

from __future__ import annotations

from importlib import resources

from orchestrator.store.batch import Script

#: Every ``.lua`` file read so far, as (package, file name): a test checks that none is left unread.
LOADED: set[tuple[str, str]] = set()


def source(module: str, *parts: str) -> str:
    """The text of ``module``'s Lua parts, joined in order (``module`` is the caller's ``__name__``)."""
    if not parts:
        raise ValueError(f"no Lua part named for {module!r}; pass the part names, e.g. source(__name__, 'claim')")
    package, _, stem = module.rpartition(".")
    texts: list[str] = []
    for part in parts:
        name = f"{stem}.{part}.lua"
        texts.append(resources.files(package).joinpath(name).read_text(encoding="utf-8"))
        LOADED.add((package, name))
    return "".join(texts)


def script(module: str, *parts: str) -> Script:
    """:func:`source` as a :class:`~orchestrator.store.batch.Script` (run by EVALSHA, reloaded on NOSCRIPT)."""
    return Script(source(module, *parts))
