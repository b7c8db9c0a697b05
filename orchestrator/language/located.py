"""Turn pydantic's validation errors into problems a marketer can act on, at the right line.

Pydantic reports an error at a *location* such as ``("steps", 3, "send", "templte")``, which mixes
data keys with the names of union branches (``send`` is the step-kind tag here).  We resolve that
location against the YAML data to find the node the marketer actually wrote, show the bad value
with ``!r``, suggest the closest allowed key for typos, and fold the noise of union branches that
never stood a chance into the one error that explains the mistake.
"""

from __future__ import annotations

import difflib
import types
import typing
from typing import Any, Union

from pydantic import BaseModel, ValidationError

from orchestrator.errors import Problem
from orchestrator.language.yamlfile import DataPath, YamlDocument

#: Error types that only say "this branch of a union wants another shape" — weak evidence.
_SHAPE_ERRORS = {
    "literal_error",
    "string_type",
    "dict_type",
    "model_type",
    "model_attributes_type",
    "int_type",
    "int_parsing",
    "float_type",
    "float_parsing",
    "bool_type",
    "bool_parsing",
    "list_type",
    "none_required",
    "is_instance_of",
    "timedelta_type",
    "time_type",
    "union_tag_invalid",
}

_PATTERN_WORDS = {
    r"^[a-z][a-z0-9_]*$": "lower-case letters, digits and underscores, starting with a letter (e.g. 'first_email')",
    r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$": "a dotted event name in lower case (e.g. 'order.placed')",
    r"^[a-z0-9_][a-z0-9_/-]*$": "a template name in lower case: letters, digits, '_', '-' and '/' (e.g. 'welcome')",
}

MAX_SHOWN = 80


def shown(value: Any) -> str:
    """``repr`` of a bad value, shortened so one problem stays one line."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def closest(word: str, choices: typing.Iterable[str], cutoff: float = 0.6) -> str | None:
    """The choice most like ``word``, or None when nothing is close enough.

    A dotted or underscored name is also compared by its parts (``signup`` against the
    ``signed_up`` of ``customer.signed_up``), since producers drop a namespace more often than
    they misspell one.
    """
    word = str(word)
    best: tuple[float, str] | None = None
    for choice in sorted(set(choices)):
        parts = [choice, *choice.split("."), choice.replace("_", "").replace(".", "")]
        score = max(difflib.SequenceMatcher(None, word, part).ratio() for part in parts if part)
        if score >= cutoff and (best is None or score > best[0]):
            best = (score, choice)
    return best[1] if best else None


def did_you_mean(word: str, choices: typing.Iterable[str]) -> str:
    """``did you mean 'template'?`` or an empty string when nothing is close."""
    close = closest(word, choices)
    return f"did you mean {close!r}?" if close else ""


def _resolve(node: Any, loc: tuple[Any, ...]) -> tuple[int, DataPath]:
    """The longest walk through ``node`` that ``loc`` allows, skipping union/tag labels."""
    if not loc:
        return 0, ()
    head, rest = loc[0], loc[1:]
    best = _resolve(node, rest)
    child = _child(node, head)
    if child is not _MISSING:
        count, path = _resolve(child, rest)
        if count + 1 > best[0]:
            return count + 1, (head, *path)
    return best


_MISSING = object()


def _child(node: Any, key: Any) -> Any:
    """``node[key]`` for a mapping key or list index the data has, else ``_MISSING`` (never raises)."""
    if isinstance(node, dict):
        try:
            return node.get(key, _MISSING)
        except TypeError:  # an unhashable key
            return _MISSING
    if isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
        return node[key]
    return _MISSING


_PRIMITIVE_LABELS = frozenset({"str", "int", "float", "bool", "list", "dict", "none", "timedelta", "time", "datetime"})


def _looks_like_label(part: Any) -> bool:
    return isinstance(part, str) and (
        "[" in part or "(" in part or "-" in part or part[:1].isupper() or part in _PRIMITIVE_LABELS
    )


def _label_index(data: Any, loc: tuple[Any, ...]) -> int | None:
    """Where in ``loc`` the first union-branch label is: a part that is not in the data and looks like one."""
    node = data
    for index, part in enumerate(loc):
        child = _child(node, part)
        if child is not _MISSING:
            node = child
        elif _looks_like_label(part):
            return index
    return None


def _fold_unions(errors: list[dict[str, Any]], data: Any) -> list[dict[str, Any]]:
    """Keep, for each union, only the branch that best explains the input."""
    groups: dict[tuple[Any, ...], dict[Any, list[dict[str, Any]]]] = {}
    order: list[tuple[Any, ...] | int] = []
    singles: dict[int, dict[str, Any]] = {}
    for index, error in enumerate(errors):
        loc = tuple(error["loc"])
        label_at = _label_index(data, loc)
        if label_at is None:
            singles[index] = error
            order.append(index)
            continue
        prefix = loc[:label_at]
        if prefix not in groups:
            groups[prefix] = {}
            order.append(prefix)
        groups[prefix].setdefault(loc[label_at], []).append(error)
    result: list[dict[str, Any]] = []
    for key in order:
        if isinstance(key, int):
            result.append(singles[key])
            continue
        branches = list(groups[key].values())
        if len(branches) == 1:
            result.extend(branches[0])
            continue
        specific = [b for b in branches if any(e["type"] not in _SHAPE_ERRORS for e in b)]
        if specific:
            chosen = specific[0]
            others = [
                e["msg"]
                for b in branches
                if b is not chosen
                for e in b
                if e["type"] == "literal_error" and isinstance(e.get("input"), str)
            ]
            if others:
                chosen = [dict(chosen[0], also=others[0]), *chosen[1:]]
            result.extend(chosen)
            continue
        deepest = max(branches, key=lambda b: max(len(e["loc"]) for e in b))
        if all(len(e["loc"]) == len(key) + 1 for b in branches for e in b):
            messages = list(dict.fromkeys(_lower_first(e["msg"]) for b in branches for e in b))
            merged = dict(branches[0][0], msg=" or ".join(messages), type="union_mismatch")
            result.append(merged)
        else:
            result.extend(deepest)
    return result


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def model_at(root: type[BaseModel], data: Any, data_path: DataPath) -> type[BaseModel] | None:
    """The model class that validates the mapping at ``data_path`` (for key suggestions)."""
    candidates: list[type[BaseModel]] = [root]
    node = data
    for part in data_path:
        model = _pick(candidates, node)
        if model is not None and isinstance(part, str) and _field(model, part) is not None:
            candidates = _models_in(_field(model, part))
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return _pick(candidates, node)


def _pick(candidates: list[type[BaseModel]], node: Any) -> type[BaseModel] | None:
    if not isinstance(node, dict) or not candidates:
        return None
    keys = {key for key in node if isinstance(key, str)}

    def overlap(model: type[BaseModel]) -> int:
        return len(keys & allowed_keys(model))

    best = max(candidates, key=overlap)
    return best if overlap(best) or len(candidates) == 1 else None


#: Fields the loader computes; suggesting them to a marketer would only mislead.
COMPUTED_KEYS = frozenset({"version"})


def allowed_keys(model: type[BaseModel]) -> set[str]:
    """The YAML keys a model accepts (aliases such as ``if`` rather than ``if_``)."""
    return {info.alias or name for name, info in model.model_fields.items()} - COMPUTED_KEYS


def _field(model: type[BaseModel], key: str) -> Any:
    for name, info in model.model_fields.items():
        if (info.alias or name) == key:
            return info.annotation
    return None


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    origin = typing.get_origin(annotation)
    if origin is None:
        return []
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _models_in(args[0])
    found: list[type[BaseModel]] = []
    if origin in (Union, types.UnionType, list, dict, tuple):
        for arg in args:
            found.extend(m for m in _models_in(arg) if m not in found)
    return found


def problems_from(exc: ValidationError, doc: YamlDocument, root: type[BaseModel]) -> list[Problem]:
    """One located problem per distinct mistake in ``exc``."""
    problems: list[Problem] = []
    seen: set[tuple[int, int, str]] = set()
    for error in _fold_unions([dict(e) for e in exc.errors(include_url=False)], doc.data):
        problem = _problem(error, doc, root)
        identity = (problem.line, problem.column, problem.message)
        if identity not in seen:
            seen.add(identity)
            problems.append(problem)
    return problems


def _problem(error: dict[str, Any], doc: YamlDocument, root: type[BaseModel]) -> Problem:
    loc = tuple(error["loc"])
    kind = error["type"]
    _, path = _resolve(doc.data, loc)
    value = error.get("input")
    name = next((part for part in reversed(path) if isinstance(part, str)), "")
    label = f"{name}: " if name else ""
    if kind == "extra_forbidden":
        key = path[-1] if path else loc[-1]
        parent = path[:-1]
        model = model_at(root, doc.data, parent)
        choices = allowed_keys(model) if model else set()
        hint = (
            did_you_mean(str(key), choices)
            or _belongs_elsewhere(root, str(key), model)
            or (f"allowed keys here: {', '.join(sorted(choices))}" if choices else "remove this key")
        )
        where = f" in {_describe(model)}" if model else ""
        return doc.problem(path, f"unknown key {key!r}{where}", hint, at_key=True)
    if kind == "missing":
        missing = loc[-1]
        while path and not isinstance(doc.get(path), dict):
            path = path[:-1]
        model = model_at(root, doc.data, path)
        where = f" in {_describe(model)}" if model else ""
        return doc.problem(path, f"missing required key {missing!r}{where}", f"add '{missing}: …'", at_key=False)
    message = error["msg"]
    if kind == "value_error":
        message = message.removeprefix("Value error, ")
        text = (
            message if shown(value) in message or isinstance(value, dict | list) else f"{message}, got {shown(value)}"
        )
        hint = f"or: {_lower_first(error['also'])}" if error.get("also") else ""
        if "; " in text:
            text, _, advice = text.partition("; ")
            hint = "; ".join(part for part in (advice, hint) if part)
        return doc.problem(path, f"{label}{text}", hint)
    if kind in {"step_kind", "trigger_kind", "wait_kind"}:
        hint = ""
        if isinstance(value, dict):
            kinds = {
                "step_kind": ("send", "wait", "branch", "split", "update", "exit"),
                "trigger_kind": ("event", "schedule", "date"),
            }.get(kind, ("until", "event", "at"))
            present = [key for key in value if key in kinds]
            if len(present) > 1:
                message = f"{message}, but it has {len(present)}: {', '.join(repr(k) for k in present)}"
                hint = "split it into one step per kind" if kind == "step_kind" else "keep only one"
            else:
                for key in value:
                    hint = hint or did_you_mean(str(key), kinds)
        else:
            message = f"{message}, got {shown(value)}"
        return doc.problem(path, message, hint)
    if kind == "string_pattern_mismatch":
        pattern = str(error.get("ctx", {}).get("pattern", ""))
        words = _PATTERN_WORDS.get(pattern, f"text matching {pattern}")
        on_key = bool(loc) and loc[-1] == "[key]"  # a mapping key (event name, field name) is wrong
        return doc.problem(path, f"{label}{shown(value)} is not valid here", f"write {words}", at_key=on_key)
    return doc.problem(path, f"{label}{_lower_first(message)}, got {shown(value)}")


def _all_models(root: type[BaseModel]) -> list[type[BaseModel]]:
    found = [root]
    for model in found:
        for info in model.model_fields.values():
            found.extend(m for m in _models_in(info.annotation) if m not in found)
    return found


def _belongs_elsewhere(root: type[BaseModel], key: str, here: type[BaseModel] | None) -> str:
    """``'on_timeout' belongs in a 'wait: event' mapping`` when a key is right but misplaced."""
    homes = [m for m in _all_models(root) if m is not here and key in allowed_keys(m)]
    if not homes:
        return ""
    return f"{key!r} belongs in {' or '.join(_describe(m) for m in homes[:2])}: check its indentation"


def _describe(model: type[BaseModel] | None) -> str:
    if model is None:
        return "this mapping"
    words = {
        "Journey": "the journey",
        "SendStep": "a send step",
        "WaitStep": "a wait step",
        "BranchStep": "a branch step",
        "SplitStep": "a split step",
        "UpdateStep": "an update step",
        "ExitStep": "an exit step",
        "WaitUntil": "a 'wait: until' mapping",
        "WaitForEvent": "a 'wait: event' mapping",
        "WaitAt": "a 'wait: at' mapping",
        "BranchCase": "a branch case",
        "SplitArm": "a split arm",
        "ProfileUpdate": "an update",
        "EventTrigger": "an event trigger",
        "ScheduleTrigger": "a schedule trigger",
        "DateTrigger": "a date trigger",
        "Goal": "a goal",
        "QuietWindow": "a quiet window",
        "FieldSpec": "a field (type, description, example, optional, items)",
        "EventSpec": "an event (description, properties)",
        "Catalogue": "the catalogue",
        "CapRule": "a cap rule",
        "Settings": "the settings",
    }
    if model.__name__ in words:
        return words[model.__name__]
    # Never an internal class name: "FooBar" reads as "a foo bar mapping".
    spaced = "".join(f" {c.lower()}" if c.isupper() else c for c in model.__name__).strip()
    return f"a {spaced} mapping"
