"""Reading the YAML files marketers write, keeping where every key and value came from.

Pydantic knows *what* is wrong with a journey but not *where* it is; ruamel.yaml's round-trip
loader knows the line and column of every node.  :class:`YamlDocument` keeps both halves: plain
Python data for validation and a map from each data path (``("steps", 2, "template")``) to its
position, so a problem found anywhere later can point an editor at the right character.

Tabs, duplicate keys and syntax errors are refused here with their position, because YAML's own
messages ("found character '\\t' that cannot start any token") do not tell a marketer what to do.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq, TaggedScalar
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from orchestrator.errors import Problem, ValidationFailed

#: A path into the data: mapping keys and list indexes, outermost first.
DataPath = tuple[Any, ...]
Position = tuple[int, int]

#: More nodes than this (an alias bomb, a generated monster) is refused rather than expanded.
MAX_NODES = 50_000
MAX_DEPTH = 60


@dataclass
class YamlDocument:
    """The data of one YAML file plus the 1-based position of every key and value in it."""

    path: str
    data: Any
    values: dict[DataPath, Position] = field(default_factory=dict)
    keys: dict[DataPath, Position] = field(default_factory=dict)

    def where(self, data_path: DataPath) -> Position:
        """Position of the value at ``data_path``, or of its nearest ancestor that has one."""
        for end in range(len(data_path), -1, -1):
            found = self.values.get(tuple(data_path[:end]))
            if found is not None:
                return found
        return (1, 1)

    def key_where(self, data_path: DataPath) -> Position:
        """Position of the key naming ``data_path`` (falls back to the value, then its ancestors)."""
        found = self.keys.get(tuple(data_path))
        return found if found is not None else self.where(data_path)

    def problem(self, data_path: DataPath, message: str, hint: str = "", *, at_key: bool = False) -> Problem:
        """A :class:`Problem` located at a data path of this document."""
        line, column = self.key_where(data_path) if at_key else self.where(data_path)
        return Problem(self.path, line, column, message, hint)

    def get(self, data_path: DataPath) -> Any:
        """The data at a path, or None when the path does not exist."""
        node = self.data
        for part in data_path:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return None
        return node


class _TooBig(Exception):
    pass


def _tab_problems(path: str, text: str) -> list[Problem]:
    problems = []
    for number, line in enumerate(text.splitlines(), start=1):
        indent = line[: len(line) - len(line.lstrip(" \t"))]
        if "\t" in indent:
            problems.append(
                Problem(
                    path,
                    number,
                    indent.index("\t") + 1,
                    "a tab is used for indentation; YAML only allows spaces",
                    "replace the tab with spaces (set your editor to insert spaces)",
                )
            )
    return problems


def _syntax_problem(path: str, exc: YAMLError) -> Problem:
    if isinstance(exc, MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        what = " ".join(part for part in (exc.problem, exc.context and f"({exc.context})") if part)
        line, column = (mark.line + 1, mark.column + 1) if mark is not None else (1, 1)
        if "duplicate key" in (exc.problem or ""):
            return Problem(path, line, column, what, "each key may appear only once in a mapping; remove or merge one")
        return Problem(
            path,
            line,
            column,
            f"YAML syntax error: {what}",
            "check indentation, colons after keys and quotes around text containing ': ' or '#'",
        )
    return Problem(path, 1, 1, f"YAML syntax error: {exc}", "check the file is valid YAML")


def _position(container: Any, key: Any, *, is_key: bool) -> Position | None:
    try:
        if isinstance(container, CommentedMap):
            line, column = container.lc.key(key) if is_key else container.lc.value(key)
        else:
            line, column = container.lc.item(key)
    except (KeyError, IndexError, TypeError, AttributeError):
        return None
    return (line + 1, column + 1)


def _plain(node: Any, doc: YamlDocument, here: DataPath, budget: list[int]) -> Any:
    budget[0] -= 1
    if budget[0] < 0 or len(here) > MAX_DEPTH:
        raise _TooBig
    if isinstance(node, CommentedMap):
        result: dict[Any, Any] = {}
        for key, value in node.items():
            plain_key = _plain_scalar(key)
            child = (*here, plain_key)
            for store, is_key in ((doc.keys, True), (doc.values, False)):
                found = _position(node, key, is_key=is_key)
                if found is not None:
                    store[child] = found
            result[plain_key] = _plain(value, doc, child, budget)
        return result
    if isinstance(node, CommentedSeq):
        items = []
        for index, value in enumerate(node):
            child = (*here, index)
            found = _position(node, index, is_key=False)
            if found is not None:
                doc.values[child] = found
            items.append(_plain(value, doc, child, budget))
        return items
    return _plain_scalar(node)


def _plain_scalar(node: Any) -> Any:
    if isinstance(node, TaggedScalar):
        return node.value
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    if isinstance(node, dt.datetime):
        return dt.datetime.fromisoformat(node.isoformat())
    if isinstance(node, dt.date):
        return dt.date(node.year, node.month, node.day)
    if isinstance(node, tuple | list):  # complex keys
        return tuple(_plain_scalar(part) for part in node)
    return node


def parse_yaml(text: str, path: str) -> YamlDocument:
    """Parse one YAML document, refusing tabs, duplicate keys and syntax errors with a position."""
    problems = _tab_problems(path, text)
    if problems:
        raise ValidationFailed(problems)
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        raw = yaml.load(text)
    except YAMLError as exc:
        raise ValidationFailed([_syntax_problem(path, exc)]) from None
    except RecursionError:
        raise ValidationFailed([Problem(path, 1, 1, "the YAML is nested too deeply", "flatten the file")]) from None
    except Exception as exc:  # the parser's own bugs must not surface as tracebacks to a marketer
        message = f"YAML could not be read: {type(exc).__name__}: {exc}"
        raise ValidationFailed([Problem(path, 1, 1, message, "check the file is valid YAML")]) from None
    doc = YamlDocument(path=path, data=None)
    first = _first_content_line(text)
    doc.values[()] = (first, 1)
    try:
        doc.data = _plain(raw, doc, (), [MAX_NODES])
    except (_TooBig, RecursionError):
        raise ValidationFailed(
            [Problem(path, 1, 1, "the YAML is too large or nested too deeply", "split it or remove aliases")]
        ) from None
    return doc


def _first_content_line(text: str) -> int:
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if stripped and not stripped.startswith("#") and stripped != "---":
            return number
    return 1


def read_file_text(path: Path, display: str | None = None) -> tuple[bytes, str]:
    """A file's bytes (a journey's version hashes them) and its UTF-8 text.

    Unreadable or non-UTF-8 files are problems, not tracebacks.
    """
    shown = display or str(path)
    try:
        content = path.read_bytes()
    except OSError as exc:
        raise ValidationFailed([Problem(shown, 1, 1, f"cannot read the file: {exc.strerror}")]) from None
    try:
        return content, content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationFailed(
            [Problem(shown, 1, 1, f"the file is not UTF-8 text ({exc.reason})", "save it as UTF-8")]
        ) from None


def read_yaml_file(path: Path, display: str | None = None) -> YamlDocument:
    """Read and parse a file; unreadable or non-UTF-8 files are problems, not tracebacks."""
    shown = display or str(path)
    _, text = read_file_text(path, shown)
    return parse_yaml(text, shown)


def walk_paths(doc: YamlDocument) -> Iterator[DataPath]:
    """Every data path that has a position (used by tests and by the fuzzing harness)."""
    yield from doc.values


def load_settings_file(path: Path) -> dict[str, Any]:
    """Read ``settings.yaml`` into a dict; YAML problems raise :class:`ValidationFailed` with positions."""
    doc = read_yaml_file(path)
    if doc.data is None:
        return {}
    if not isinstance(doc.data, dict):
        raise ValidationFailed([doc.problem((), "expected a mapping of settings at the top of the file")])
    return dict(doc.data)
