"""One customer's story as a timeline: what ``loyaloop explain`` prints and the console's customer
page shows, built by one piece of code for every place a story is kept.

* :class:`StoreStory` reads it from Redis (production, and ``loyaloop console`` after ``loyaloop
  demo``): the customer's newest events (:mod:`orchestrator.store.event_log`, those no journey
  listens to and those refused marked so), the journal (ends of runs, every held send with its
  reason, support staff's actions; :mod:`orchestrator.store.journal`), the runs it names and the
  live ones (their entry times), the frequency-cap send log with each message's provider feedback,
  and the consent history.
* :class:`FolderStory` reads it from a simulation's output (``loyaloop simulate --out DIR``):
  ``runs.jsonl``, ``decisions.jsonl``, ``messages.jsonl``, plus the simulated events when given.

Both answer :meth:`Story.read`: the timeline (oldest first) and the customer's finished runs
(newest first).  Nothing here shows an address or a message body beyond
what the simulation itself wrote (a subject line).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import redis

from orchestrator.engine.enrollment import Enrollment
from orchestrator.errors import InputError
from orchestrator.gate.caps import SEP
from orchestrator.gate.consent import consent_history
from orchestrator.runtime.journal import ENDINGS
from orchestrator.store import Store, event_log, journal, keys
from orchestrator.store.run_codec import split_runs

#: Why a run ended when support staff removed the customer (``Runtime.end_run``'s reason).
REMOVED = "removed"
#: Sends read back from the send log (the newest) for a timeline.
MAX_SENDS = 100


@dataclass(frozen=True)
class Moment:
    """One row of the timeline: when (ISO-8601), what kind, which journey and step, what it says."""

    at: str
    kind: str
    journey_id: str
    step_id: str
    text: str


@dataclass(frozen=True)
class EndedRun:
    """A finished run: its journey and version, when it entered and ended, and how."""

    run_id: str
    journey_id: str
    version: str
    entered_at: datetime | None
    ended_at: datetime | None
    how: str


@dataclass(frozen=True)
class Told:
    """A customer's story: the timeline (oldest first) and the finished runs still kept (newest end first)."""

    moments: list[Moment]
    ended: list[EndedRun]


class Story(Protocol):
    """Where a customer's story is kept."""

    def read(self, customer_id: str) -> Told:
        """The customer's timeline and finished runs (empty when nothing is kept about them)."""


def how_it_ended(status: str, reason: str | None, by: str = "") -> str:
    """A run's end in words: ``goal reached``, ``exited (unsubscribed)``, ``removed by staff (ana)``."""
    if status == "exited" and reason == REMOVED:
        return f"removed by staff ({by})" if by else "removed by staff"
    words = ENDINGS.get(status, status)
    return f"{words} ({reason})" if reason and reason != status else words


def ordered(moments: Iterable[tuple[int, Moment]]) -> list[Moment]:
    """Moments sorted by time (ties in the given order rank), oldest first."""

    def key(item: tuple[int, Moment]) -> tuple[datetime, int]:
        return _moment_time(item[1].at), item[0]

    return [moment for _rank, moment in sorted(moments, key=key)]


def _moment_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return datetime.min.replace(tzinfo=UTC)
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


# --- from Redis ----------------------------------------------------------------------------------
def journal_moment(entry: Mapping[str, str]) -> tuple[int, Moment]:
    """A journal entry as a timeline row."""
    kind, at = entry.get("kind", ""), entry.get("at", "")
    journey, step, run = entry.get("journey", ""), entry.get("step", ""), entry.get("run", "")
    if kind in ("entered", "entered_holdout"):
        return 1, Moment(at, kind, journey, "", f"run {run}")
    if kind == "ended":
        outcome = entry.get("outcome", "")
        return 4, Moment(at, outcome or kind, journey, "", f"run {run}: {how_it_ended(outcome, entry.get('reason'))}")
    if kind == "held":
        channel = f"{entry['channel']}: " if entry.get("channel") else ""
        until = f" until {entry['until']}" if entry.get("until") else ""
        return 2, Moment(at, entry.get("outcome", kind), journey, step, f"{channel}{entry.get('reason', '')}{until}")
    if kind == "holdout":
        return 2, Moment(at, "holdout", journey, step, entry.get("reason", ""))
    if kind == "staff":
        what = entry.get("action", "")
        detail = ", ".join(f"{name} {entry[name]}" for name in ("channel", "run") if entry.get(name))
        return 5, Moment(
            at, "staff", journey, "", f"{entry.get('user', '?')}: {what}" + (f" ({detail})" if detail else "")
        )
    return 6, Moment(at, kind or "note", journey, step, entry.get("reason", ""))


def event_moment(entry: Mapping[str, Any]) -> tuple[int, Moment]:
    """An event log entry as a timeline row (first among rows of the same moment: it causes them):
    ``event``, or ``unknown_event`` (no journey listens to it) or ``refused_event`` (bad input)."""
    properties = entry.get("p")
    text = str(entry.get("n", ""))
    if isinstance(properties, dict) and properties:
        text += f" {json.dumps(properties, sort_keys=True)}"
    if entry.get("i"):
        text += f" (id {entry['i']})"
    mark = entry.get("k", "")
    if mark == "unknown":
        text += ": no journey listens to this event"
    elif mark == "refused":
        text += f": refused ({entry.get('r') or 'bad input'}), not applied"
    kind = f"{mark}_event" if mark in ("unknown", "refused") else "event"
    return 0, Moment(_iso(float(entry["t"]) / 1000), kind, "", "", text)


def feedback_text(status: Mapping[str, str]) -> str:
    """A message's provider feedback: ``delivered (processed 10:00, delivered 10:01)`` or ``no report``."""
    if not status.get("status"):
        return "no report"
    times = sorted(
        (float(value), name[: -len("_at")])
        for name, value in status.items()
        if name.endswith("_at") and value.replace(".", "", 1).isdigit()
    )
    steps = ", ".join(f"{name} {datetime.fromtimestamp(at, UTC):%Y-%m-%d %H:%M}" for at, name in times)
    return f"{status['status']} ({steps})" if steps else status["status"]


class StoreStory:
    """A customer's story from Redis: the journal, the send log with provider feedback, consent history."""

    def __init__(self, client: redis.Redis, store: Store | None = None) -> None:
        self.client = client
        self.store = store if store is not None else Store(client)

    def read(self, customer_id: str) -> Told:
        pipe = self.client.pipeline(transaction=False)
        pipe.lrange(keys.journal(customer_id), -journal.MAX_ENTRIES, -1)
        pipe.zrange(keys.send_log(customer_id), -MAX_SENDS, -1, withscores=True)
        pipe.hgetall(keys.runs(customer_id))
        pipe.lrange(keys.event_log(customer_id), 0, -1)
        raw, sends, runs_hash, events = pipe.execute()
        entries = journal.parse(raw)
        ended = list(dict.fromkeys(e["run"] for e in reversed(entries) if e.get("kind") == "ended" and e.get("run")))
        live = sorted(split_runs(runs_hash)[0])
        runs = [stored.enrollment for stored in self.store.get_enrollments(customer_id, [*live, *ended])]
        moments = self._moments(customer_id, entries, sends, runs, event_log.parse(events))
        return Told(moments, self._ended(runs, entries))

    def _moments(
        self,
        customer_id: str,
        entries: list[dict[str, str]],
        sends: list[tuple[str, float]],
        runs: list[Enrollment],
        events: list[dict[str, Any]],
    ) -> list[Moment]:
        rows = [event_moment(event) for event in events]
        rows.extend(journal_moment(entry) for entry in entries)
        for run in runs:  # entries into journeys: the runs keep their entry time
            at = run.entered_at.isoformat()
            for kind in ("entered", "entered_holdout") if run.holdout else ("entered",):
                rows.append((1, Moment(at, kind, run.journey_id, "", f"run {run.run_id}")))
        rows.extend(self._sends(sends))
        for change in consent_history(self.client, customer_id):
            source = change.get("source", "")
            if source.startswith("console:"):
                continue  # the journal's staff entry says it, with the user
            granted = "given" if change.get("granted") == "1" else "withdrawn"
            try:
                at = _iso(float(change.get("at", "")))
            except ValueError:
                continue
            rows.append((5, Moment(at, "consent", "", "", f"{change.get('channel', '')} consent {granted} ({source})")))
        return ordered(rows)

    def _sends(self, sends: list[tuple[str, float]]) -> list[tuple[int, Moment]]:
        parsed = [(member.split(SEP), score) for member, score in sends]
        pipe = self.client.pipeline(transaction=False)
        for parts, _score in parsed:
            pipe.hgetall(keys.message_status(parts[0]))
        statuses = pipe.execute() if parsed else []
        rows: list[tuple[int, Moment]] = []
        for (parts, score), status in zip(parsed, statuses, strict=True):
            key = parts[0]
            channel, category = (parts[1], parts[2]) if len(parts) == 4 else ("", "")
            if channel and key.endswith(f":{channel}") and key.count(":") >= 2:
                key = key[: -len(channel) - 1]  # a fallback channel's key is <run>:<step>:<channel>
            run_id, _, step_id = key.rpartition(":")
            journey = run_id.rsplit("-", 1)[0] if run_id else ""
            text = f"{channel} ({category}): provider {feedback_text(status)}"
            rows.append((3, Moment(_iso(score / 1000), "sent", journey, step_id, text)))
        return rows

    def _ended(self, runs: list[Enrollment], entries: list[dict[str, str]]) -> list[EndedRun]:
        by = {
            e["run"]: e.get("user", "")
            for e in entries
            if e.get("kind") == "staff" and e.get("action") == "journey.remove" and e.get("run")
        }
        found = [run for run in runs if run.finished]
        return sorted((_ended(run, by.get(run.run_id, "")) for run in found), key=_newest, reverse=True)


def _ended(run: Enrollment, by: str = "") -> EndedRun:
    how = how_it_ended(run.status, run.exit_reason, by)
    return EndedRun(run.run_id, run.journey_id, run.journey_version, run.entered_at, run.updated_at, how)


def _newest(run: EndedRun) -> datetime:
    return run.ended_at or datetime.min.replace(tzinfo=UTC)


# --- from a simulation's files -------------------------------------------------------------------
def read_rows(folder: Path, name: str, customer_id: str) -> list[dict[str, Any]]:
    """The rows of ``folder/name`` (JSON lines) about ``customer_id``."""
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


class FolderStory:
    """A customer's story from a simulation's output folder; ``events`` gives the simulated events
    of a customer as moments (from the history file, which this layer does not parse)."""

    def __init__(self, folder: Path, events: Callable[[str], list[Moment]] | None = None) -> None:
        self.folder = folder
        self.events = events

    def read(self, customer_id: str) -> Told:
        return Told(self.moments(customer_id), self.ended_runs(customer_id))

    def moments(self, customer_id: str) -> list[Moment]:
        rows: list[tuple[int, Moment]] = [(0, moment) for moment in (self.events(customer_id) if self.events else [])]
        for row in read_rows(self.folder, "runs.jsonl", customer_id):
            reason = f" ({row['reason']})" if row.get("reason") and row["reason"] != row["what"] else ""
            moment = Moment(row["at"], row["what"], row["journey_id"], "", f"run {row['run_id']}{reason}")
            rows.append((1 if row["what"].startswith("entered") else 4, moment))
        for row in read_rows(self.folder, "decisions.jsonl", customer_id):
            until = f" until {row['until']}" if row.get("until") else ""
            channel = f"{row['channel']}: " if row.get("channel") else ""
            text = f"{channel}{row['reason']}{until}"
            rows.append((2, Moment(row["at"], row["outcome"], row["journey_id"], row["step_id"], text)))
        for row in read_rows(self.folder, "messages.jsonl", customer_id):
            what = row.get("subject") or row.get("first_line") or ""
            text = f"{row['channel']} {row['template']}: {what}"
            rows.append((3, Moment(row["at"], "sent", row["journey_id"], row["step_id"], text)))
        return ordered(rows)

    def ended_runs(self, customer_id: str) -> list[EndedRun]:
        runs = read_rows(self.folder, "runs.jsonl", customer_id)
        entered = {row["run_id"]: row["at"] for row in runs if row["what"].startswith("entered")}
        ended = [
            EndedRun(
                row["run_id"],
                row["journey_id"],
                "",
                _moment_time(entered[row["run_id"]]) if row["run_id"] in entered else None,
                _moment_time(row["at"]),
                how_it_ended(row["what"], row.get("reason")),
            )
            for row in runs
            if not row["what"].startswith("entered")
        ]
        return sorted(ended, key=_newest, reverse=True)
