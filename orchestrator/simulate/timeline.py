"""One customer's story from a simulation's files, for ``loyaloop explain CUSTOMER --simulation DIR``:
their events (from the history, when given), entries and ends of runs, every step's decision with
its reason, and the messages that would have gone out, in time order."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import InputError
from orchestrator.simulate.source import Line


@dataclass(frozen=True)
class Moment:
    """One row of the timeline: when, what kind, which journey and step, and what it says."""

    at: str
    kind: str
    journey_id: str
    step_id: str
    text: str


def read_rows(folder: Path, name: str, customer_id: str) -> list[dict[str, Any]]:
    path = folder / name
    if not path.is_file():
        raise InputError(f"{path} does not exist; point --simulation at the --out folder of a simulation", field="path")
    rows: list[dict[str, Any]] = []
    with path.open(encoding="utf-8") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                row = json.loads(raw)
            except json.JSONDecodeError as exc:
                raise InputError(f"{path}:{number}: not JSON ({exc})", field="path") from None
            if row.get("customer_id") == customer_id:
                rows.append(row)
    return rows


def timeline(folder: Path, customer_id: str, events: Iterable[Line] = ()) -> list[Moment]:
    """Every moment of one customer's simulated story, sorted by time (ties: events first)."""
    moments: list[tuple[str, int, Moment]] = []
    for line in events:
        if line.customer_id != customer_id:
            continue
        if line.kind == "identify":
            text = "profile: " + ", ".join(sorted(line.attributes))
            moments.append((line.at.isoformat(), 0, Moment(line.at.isoformat(), "identify", "", "", text)))
        else:
            text = f"{line.event} {json.dumps(line.properties, sort_keys=True)}"
            moments.append((line.at.isoformat(), 0, Moment(line.at.isoformat(), "event", "", "", text)))
    for row in read_rows(folder, "runs.jsonl", customer_id):
        reason = f" ({row['reason']})" if row.get("reason") and row["reason"] != row["what"] else ""
        moment = Moment(row["at"], row["what"], row["journey_id"], "", f"run {row['run_id']}{reason}")
        moments.append((row["at"], 1 if row["what"].startswith("entered") else 4, moment))
    for row in read_rows(folder, "decisions.jsonl", customer_id):
        until = f" until {row['until']}" if row.get("until") else ""
        channel = f"{row['channel']}: " if row.get("channel") else ""
        moment = Moment(
            row["at"], row["outcome"], row["journey_id"], row["step_id"], f"{channel}{row['reason']}{until}"
        )
        moments.append((row["at"], 2, moment))
    for row in read_rows(folder, "messages.jsonl", customer_id):
        what = row.get("subject") or row.get("first_line") or ""
        moment = Moment(
            row["at"], "sent", row["journey_id"], row["step_id"], f"{row['channel']} {row['template']}: {what}"
        )
        moments.append((row["at"], 3, moment))
    moments.sort(key=lambda item: (item[0], item[1]))
    return [moment for _at, _order, moment in moments]
