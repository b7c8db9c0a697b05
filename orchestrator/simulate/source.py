"""Reading a shop's event history for ``loyaloop simulate``: JSONL as ``loyaloop import`` reads it,
or CSV with a column mapping, checked line by line with the checks every door runs
(:mod:`orchestrator.language.inputs`).

What a bad line does depends on whether something sensible can still be simulated:

- a line that is not JSON, lacks a field, has a bad id or an unparseable timestamp is skipped
  with a warning naming ``file:line`` (the rest of the history is still worth simulating);
- an event name that no journey and no catalogue entry knows is simulated all the same (a journey
  may not need it) and reported once per name with its count;
- an empty file, a file with no usable line, a CSV mapping naming a column the header lacks, or a
  line further out of time order than the tolerance is an :class:`InputError`: nothing sensible
  can be simulated from it, so the command stops with the reason and exit 1.

Lines out of order within the tolerance (exports often interleave a few sources) are sorted,
stably, so lines with the same timestamp keep the file's order.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from orchestrator.errors import InputError
from orchestrator.language.inputs import (
    check_customer_id,
    check_event,
    check_event_id,
    check_properties,
    check_timestamp,
    parse_import_line,
)

#: How far back in time a line may be from the latest line before it and still be sorted in.
DEFAULT_TOLERANCE = timedelta(hours=1)
#: The fields a CSV mapping may fill (``properties.<name>`` besides).
CSV_FIELDS = ("customer_id", "event", "timestamp", "event_id")


@dataclass(frozen=True, slots=True)
class Line:
    """One usable line of the history: an event to track or attributes to identify."""

    number: int
    at: datetime
    kind: Literal["track", "identify"]
    customer_id: str
    event: str = ""
    properties: dict[str, Any] = field(default_factory=dict)
    event_id: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass
class History:
    """The sorted lines, and what was said about the ones left out."""

    path: Path
    lines: list[Line]
    warnings: list[str] = field(default_factory=list)
    #: Lines read (blank ones excluded), usable or not.
    read: int = 0


def parse_mapping(text: str | None) -> dict[str, str]:
    """``customer_id=cust,event=type,timestamp=ts,properties.amount=value`` → field → column."""
    if not text:
        return {}
    mapping: dict[str, str] = {}
    for part in text.split(","):
        target, sep, column = part.partition("=")
        target, column = target.strip(), column.strip()
        if not sep or not target or not column:
            raise InputError(f"--map entry {part!r} is not field=column, e.g. customer_id=cust", field="map")
        if target not in CSV_FIELDS and not (target.startswith("properties.") and len(target) > len("properties.")):
            raise InputError(
                f"--map field {target!r} is not one of {', '.join(CSV_FIELDS)} or properties.<name>", field="map"
            )
        mapping[target] = column
    for needed in ("customer_id", "event", "timestamp"):
        if needed not in mapping:
            raise InputError(f"--map must say which column holds {needed!r} (e.g. {needed}=<column>)", field="map")
    return mapping


def read_history(
    path: Path,
    *,
    mapping: dict[str, str] | None = None,
    tolerance: timedelta = DEFAULT_TOLERANCE,
    seed: int = 0,
) -> History:
    """Read and check a history (CSV when ``mapping`` is given or the file ends in ``.csv``)."""
    is_csv = bool(mapping) or path.suffix.lower() == ".csv"
    if is_csv and not mapping:
        raise InputError(
            f"{path}: a CSV history needs --map, e.g. --map customer_id=cust,event=type,timestamp=ts", field="map"
        )
    history = History(path, [])
    records = _csv_records(path, mapping or {}) if is_csv else _jsonl_records(path)
    undated: list[tuple[int, dict[str, Any]]] = []
    for number, record in records:
        history.read += 1
        if isinstance(record, InputError):
            history.warnings.append(f"{path}:{number}: {record} (line skipped)")
            continue
        try:
            line = _line(number, record, seed)
        except InputError as exc:
            history.warnings.append(f"{path}:{number}: {exc} (line skipped)")
            continue
        if line is None:
            undated.append((number, record))
        else:
            history.lines.append(line)
    if history.read == 0:
        raise InputError(f"{path}: the file is empty; there is no history to simulate", field="path")
    _check_order(path, history.lines, tolerance)
    history.lines.sort(key=lambda line: line.at)
    if not history.lines and not undated:
        raise InputError(
            f"{path}: none of its {history.read} lines could be used (see the warnings above); nothing to simulate",
            field="path",
        )
    # An identify line without a timestamp describes the customer from the start of the history.
    start = history.lines[0].at if history.lines else datetime(1970, 1, 1, tzinfo=UTC)
    profiles = [_identify(number, record, start) for number, record in undated]
    history.lines[:0] = profiles
    return history


def read_profiles(path: Path, start: datetime) -> list[Line]:
    """A ``--profiles`` file: JSONL identify lines (``type`` may be left out), applied at the start
    of the history (or at their own ``timestamp``).  A bad line is an error: profiles decide every
    consent and address, so a simulation on half of them would mislead."""
    lines: list[Line] = []
    for number, record in _jsonl_records(path):
        if isinstance(record, InputError):
            raise InputError(f"{path}:{number}: {record}", field="profiles")
        record.setdefault("type", "identify")
        try:
            if record["type"] != "identify":
                raise InputError(f"type {record['type']!r} is not 'identify' in a profiles file", field="type")
            line = _identify(number, record, start)
        except InputError as exc:
            raise InputError(f"{path}:{number}: {exc}", field="profiles") from None
        lines.append(line)
    return lines


def unknown_events(lines: Iterable[Line], known: set[str]) -> Counter[str]:
    """How many lines name each event that no journey and no catalogue entry mentions."""
    return Counter(line.event for line in lines if line.kind == "track" and line.event not in known)


# --- the two formats -------------------------------------------------------------------------------
def _jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any] | InputError]]:
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            try:
                yield number, parse_import_line(raw)
            except InputError as exc:
                yield number, exc


def _csv_records(path: Path, mapping: dict[str, str]) -> Iterator[tuple[int, dict[str, Any] | InputError]]:
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None:
            return
        columns = {name.strip(): index for index, name in enumerate(header)}
        for target, column in mapping.items():
            if column not in columns:
                raise InputError(
                    f"{path}:1: --map {target}={column} names column {column!r}, which the header does not have "
                    f"(columns: {', '.join(repr(name) for name in columns)})",
                    field="map",
                )
        for row in reader:
            number = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                yield number, InputError(f"the row has {len(row)} cells, the header {len(header)}", field="line")
                continue
            record: dict[str, Any] = {"type": "track", "properties": {}}
            for target, column in mapping.items():
                cell = row[columns[column]]
                if target.startswith("properties."):
                    if cell != "":
                        record["properties"][target.removeprefix("properties.")] = _cell_value(cell)
                elif cell != "":
                    record[target] = cell
            yield number, record


def _cell_value(cell: str) -> Any:
    """A CSV cell keeps its type when it reads as JSON (``42.5``, ``true``), else stays text."""
    try:
        return json.loads(cell)
    except json.JSONDecodeError:
        return cell


# --- one line ----------------------------------------------------------------------------------------
def _line(number: int, record: dict[str, Any], seed: int) -> Line | None:
    """A checked line; None for an identify line without a timestamp (placed at the start)."""
    kind = record.get("type", "track")
    if kind == "identify":
        if record.get("timestamp") is None:
            return None
        return _identify(number, record, None)
    customer_id = check_customer_id(record.get("customer_id"))
    name = check_event(record.get("event"))
    properties = check_properties(record.get("properties"))
    given = record.get("event_id")
    event_id = check_event_id(given) if given is not None else f"sim{seed}-{number}"
    if record.get("timestamp") is None:
        raise InputError("the line has no 'timestamp'; a simulation needs the time of every event", field="timestamp")
    at = check_timestamp(record.get("timestamp"), datetime.now(UTC), max_future=None)
    return Line(number, at, "track", customer_id, name, properties, event_id)


def _identify(number: int, record: dict[str, Any], start: datetime | None) -> Line:
    customer_id = check_customer_id(record.get("customer_id"))
    attributes = record.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise InputError(f"'attributes' must be an object, got {type(attributes).__name__}", field="attributes")
    raw = record.get("timestamp")
    at = check_timestamp(raw, datetime.now(UTC), max_future=None) if raw is not None else start
    assert at is not None
    return Line(number, at, "identify", customer_id, attributes=dict(attributes))


def _check_order(path: Path, lines: list[Line], tolerance: timedelta) -> None:
    """Refuse a line further back in time than ``tolerance`` from the latest line before it."""
    latest: Line | None = None
    for line in lines:
        if latest is not None and latest.at - line.at > tolerance:
            raise InputError(
                f"{path}:{line.number}: the line's time {line.at.isoformat()} is {latest.at - line.at} before line "
                f"{latest.number}'s ({latest.at.isoformat()}), more than the tolerance of {tolerance}; sort the file "
                "by time (or raise --tolerance)",
                field="timestamp",
            )
        if latest is None or line.at > latest.at:
            latest = line
