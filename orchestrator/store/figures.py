"""The exact measurement record in Redis: counts per journey version, arm, entry day and step, and
each entry's open measurement window.  See docs/measuring.md, "How the counts are kept".

Counts are written only by the scripts that move a customer's state (the compare-and-set of a run,
the script that marks an event counted), so they are as exact as that state.  A journey version's
counts live in the hash ``lp:fig:{<tag>}:<journey>:<version>``.  On a server that enforces Cluster
slots a script may touch only keys of one slot, so there the counts are **sharded per slot**: the
tag is chosen to hash to the slot of the customers it counts (:func:`slot_tag`).  A single Redis
has no slots, and a version keeps **one** shard (tag :data:`ONE_SHARD`): a cohort chunk then adds
its entrants' counts to one hash in a few commands (scripts.cas_many.lua).  The reader sums the
shards listed in ``lp:fig:index``, which is written (idempotently) on the same pipeline just before
the script that first counts in a shard; counts written under either layout are read alike.

Fields of a shard hash: ``a|<arm>|<entry day>|<figure>`` (an :class:`ArmCounts` field) and
``s|<step>|<day>|<outcome>``.  A window is the field ``~|<run>`` of the customer's runs hash (it
outlives the run there, and costs that small hash a few dozen bytes, not a key of its own): one
string of ``|``-separated slots, described in ``scripts.lib_figures.lua``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from typing import Any, Literal

from redis.crc import key_slot

from orchestrator.engine.enrollment import Decision
from orchestrator.engine.measuring import Hit, Tally, Window, base36, day_of, entry_shape
from orchestrator.measure.figures import CONTROL, HOLDOUT, TREATED, ArmCounts, VersionFigures
from orchestrator.store import keys
from orchestrator.store.base import Outline
from orchestrator.store.run_codec import derived_journey
from orchestrator.store.scripts import SEEN_TTL
from orchestrator.store.stats import JourneyStore

#: Redis Cluster's number of hash slots.
SLOTS = 16384
#: The tag of a journey version's one shard on a server without slots (no hex number: never a slot's).
ONE_SHARD = "all"

#: A window's arm codes (split arms are written out).
ARM_CODES = {TREATED: "t", HOLDOUT: "h", CONTROL: "c"}
_ARMS = {code: arm for arm, code in ARM_CODES.items()}
#: The prefix of a window's field in the customer's runs hash.
WINDOW_FIELD = "~|"


@cache
def _tags() -> tuple[str, ...]:
    """A short tag per slot (hex numbers, the first that hashes there): ~0.2 s once per process."""
    found: dict[int, str] = {}
    number = 0
    while len(found) < SLOTS:
        tag = format(number, "x")
        found.setdefault(key_slot(tag.encode()), tag)
        number += 1
    return tuple(found[slot] for slot in range(SLOTS))


def slot_tag(customer_id: str) -> str:
    """The tag of the figures shard in the customer's own Cluster slot."""
    return _tags()[key_slot(keys.profile(customer_id).encode())]


def shard_tag(customer_id: str, *, slotted: bool) -> str:
    """The tag of the shard that counts the customer: the slot's where scripts are held to one slot,
    else the version's one shard."""
    return _tags()[key_slot(keys.profile(customer_id).encode())] if slotted else ONE_SHARD


def shard_key(customer_id: str, journey_id: str, version: str, *, slotted: bool) -> str:
    return keys.figures(shard_tag(customer_id, slotted=slotted), journey_id, version)


def index_member(tag: str, journey_id: str, version: str) -> str:
    return f"{journey_id}|{version}|{tag}"


def _amount(value: float) -> str:
    return "" if not value else (str(int(value)) if float(value).is_integer() else repr(float(value)))


def _flag(value: bool) -> str:
    return "1" if value else ""


def encode_window(window: Window, run_id: str) -> str:
    """A window as the ``~|<run>`` field of the runs hash holds it (slots in scripts.lib_figures.lua);
    the journey is left out when the run id names it, like the run's own core."""
    entered = int(window.entered)
    slots = [
        window.version,
        ",".join(ARM_CODES.get(arm, arm) for arm in window.arms),
        base36(entered),
        base36(int(window.goal_window)),
        base36(int(window.kpi_window)),
        window.trigger_tag,
        "" if window.first_sent is None else str(max(0, int(window.first_sent - entered))),
        _flag(window.converted),
        _amount(window.revenue),
        _flag(window.converted_after_message),
        _amount(window.orders),
        _amount(window.order_revenue),
        _flag(window.redeemed),
        _flag(window.nps_answered),
        "" if derived_journey(run_id) == window.journey_id else window.journey_id,
    ]
    while slots and not slots[-1]:
        slots.pop()
    return "|".join(slots)


def decode_window(text: str, run_id: str) -> Window:
    s = text.split("|")
    s += [""] * (15 - len(s))
    entered = float(int(s[2], 36))
    goal_window, kpi_window = float(int(s[3], 36)), float(int(s[4], 36))
    first_sent = entered + int(s[6]) if s[6] else None
    expires = entered + max(goal_window, kpi_window)
    if first_sent is not None:
        expires = max(expires, first_sent + goal_window)
    return Window(
        journey_id=s[14] or derived_journey(run_id),
        version=s[0],
        arms=tuple(_ARMS.get(code, code) for code in s[1].split(",")),
        day=day_of(datetime.fromtimestamp(entered, UTC)),
        entered=entered,
        goal_window=goal_window,
        kpi_window=kpi_window,
        expires=expires,
        trigger_tag=s[5],
        first_sent=first_sent,
        converted=s[7] == "1",
        revenue=float(s[8] or 0),
        converted_after_message=s[9] == "1",
        orders=int(s[10] or 0),
        order_revenue=float(s[11] or 0),
        redeemed=s[12] == "1",
        nps_answered=s[13] == "1",
    )


def decode_windows(fields: dict[str, str]) -> dict[str, Window]:
    """The windows the ``read`` script returns (run id → window; the trigger slot holds its tag)."""
    return {run_id: decode_window(text, run_id) for run_id, text in fields.items()}


def deferred_text(step_id: str, now: float) -> str:
    """The figures text of one deferred send."""
    return f"s|{step_id}|{day_of(datetime.fromtimestamp(now, UTC))}|deferred\t1"


def figures_text(tally: Tally) -> str:
    """The counts of a tally as the scripts' ``incr`` reads them: ``<field>\\t<amount>`` lines."""
    lines = [f"a|{arm}|{day}|{figure}\t{amount}" for arm, day, figure, amount in tally.arms]
    lines += [f"s|{step}|{day}|{outcome}\t{amount}" for step, day, outcome, amount in tally.steps]
    return "\n".join(lines)


@dataclass(frozen=True)
class FigureArgs:
    """The compare-and-set's measurement arguments (after its 17 others)."""

    text: str = ""
    window: str = ""
    first_sent: str = ""
    split_arm: str = ""

    @classmethod
    def of(cls, tally: Tally | None, run_id: str) -> FigureArgs:
        if not tally:
            return NO_FIGURES
        window = tally.window
        if window is not None and tally.first_sent is not None:
            window = replace(window, first_sent=tally.first_sent)
        return cls(
            figures_text(tally),
            encode_window(window, run_id) if window is not None else "",
            repr(tally.first_sent) if tally.first_sent is not None and window is None else "",
            tally.split_arm or "",
        )

    def args(self) -> list[str]:
        return [self.text, self.window, self.first_sent, self.split_arm]


NO_FIGURES = FigureArgs()


def entry_figures(decisions: Iterable[Decision], tally_of: Callable[[Decision], Tally | None]) -> list[FigureArgs]:
    """The measurement arguments of many decisions that create runs (a cohort chunk), each tallied
    (``tally_of``) and encoded once per shape (:func:`~orchestrator.engine.measuring.entry_shape`)
    and per journey its run id names (a window leaves the journey out when the run id names it):
    the entrants of a chunk mostly share one, and equal arguments make one shape for
    ``cas_many``."""
    made: dict[Hashable, FigureArgs] = {}
    found: list[FigureArgs] = []
    for decision in decisions:
        run_id = decision.enrollment.run_id
        key = (entry_shape(decision), derived_journey(run_id))
        figures = made.get(key)
        if figures is None:
            figures = made[key] = FigureArgs.of(tally_of(decision), run_id)
        found.append(figures)
    return found


def hit_args(hit: Hit) -> list[str]:
    return [
        hit.run_id,
        "1" if hit.goal else "0",
        _amount(hit.value) or "0",
        "1" if hit.non_numeric else "0",
        "1" if hit.order else "0",
        _amount(hit.order_value) or "0",
        "1" if hit.order_non_numeric else "0",
        "1" if hit.redeemed else "0",
        "" if hit.nps is None else str(hit.nps),
    ]


class FiguresStore(JourneyStore):
    """Writing and reading the measurement record."""

    def measure_event(
        self, pipe: Any, customer_id: str, event_id: str, at: float, hits: list[Hit], windows: dict[str, Window]
    ) -> None:
        """Queue the counting of an event's hits on the customer's windows (once per event)."""
        names = [keys.runs(customer_id), keys.seen_events(customer_id)]
        args: list[str] = [event_id, repr(at), str(SEEN_TTL)]
        for hit in hits:
            window = windows[hit.run_id]
            names.append(shard_key(customer_id, window.journey_id, window.version, slotted=self.slotted))
            args.extend(hit_args(hit))
        self.evalsha(pipe, "measure", names, args)

    def open_windows(self, customer_id: str) -> dict[str, Window]:
        """The customer's measurement windows (closed ones too, until an event drops them)."""
        fields = self.redis.hgetall(keys.runs(customer_id))
        return decode_windows({name[2:]: text for name, text in fields.items() if name.startswith(WINDOW_FIELD)})

    def version_figures(self, journey_id: str | None = None) -> list[VersionFigures]:
        """Every version of every journey (or of ``journey_id``) with its exact counts, summed over
        the slot shards; name, category, holdout and step order from the stored journey version.

        Two round trips whatever the number of versions and shards: the index and the journeys'
        current versions, then every shard with the stored versions not read before (a version
        never changes once stored, so each process reads one once).  The counts are summed as plain
        numbers, each field split once per version and made into :class:`ArmCounts` once per arm
        and day: the console reads this cold on a page's first request."""
        index, current = self.run(
            lambda pipe: (pipe.smembers(keys.figures_index()), pipe.hgetall(keys.journeys_index()))
        )
        shards: dict[tuple[str, str], list[str]] = {}
        for member in index:
            journey, version, tag = member.split("|")
            if journey_id is None or journey == journey_id:
                shards.setdefault((journey, version), []).append(tag)
        for journey, version in current.items():
            if journey_id is None or journey == journey_id:
                shards.setdefault((journey, version), [])
        ordered = sorted(shards)
        for tags in shards.values():
            tags.sort()  # money sums over the shards in one order, whatever order SMEMBERS gave
        outlines = self.outlines
        unknown = [pair for pair in ordered if pair not in outlines]

        def build(pipe: Any) -> None:
            for journey, version in unknown:
                pipe.get(keys.journey_version(journey, version))
            for journey, version in ordered:
                for tag in shards[(journey, version)]:
                    pipe.hgetall(keys.figures(tag, journey, version))

        replies = iter(self.run(build) if unknown or any(shards.values()) else [])
        for pair in unknown:
            _remember(outlines, pair, next(replies))
        result: list[VersionFigures] = []
        for journey, version in ordered:
            figures = VersionFigures(journey_id=journey, version=version)
            outline = outlines.get((journey, version))
            if outline is not None:
                figures.name, figures.category, figures.holdout_percent, steps = outline
                figures.step_order = list(steps)
            tally = _Tally()
            for _tag in shards[(journey, version)]:
                tally.add(next(replies))
            tally.into(figures)
            result.append(figures)
        return result


#: Versions a store remembers the outline of at most (a handful in use; the bound is for a store that had many).
MAX_OUTLINES = 4096


def _remember(outlines: dict[tuple[str, str], Outline], pair: tuple[str, str], raw: str | None) -> None:
    """Keep a stored version's outline (json, not the journey model: four fields are wanted)."""
    if not raw:
        return  # not stored: nothing to remember, the next reading looks again
    try:
        data = json.loads(raw)
        steps = tuple(str(step["id"]) for step in data.get("steps", ()))
        category: Literal["marketing", "transactional"] = (
            "transactional" if data.get("category") == "transactional" else "marketing"
        )
        outline = (str(data["name"]), category, float(data.get("holdout") or 0), steps)
    except (ValueError, KeyError, TypeError):
        return
    if len(outlines) >= MAX_OUTLINES:
        outlines.clear()
    outlines[pair] = outline


class _Tally:
    """One version's counts summed over its shards: first per field as plain numbers (the shards
    of a version hold mostly the same fields), then each distinct field split into arm, day and
    figure or step, day and outcome once."""

    def __init__(self) -> None:
        self.sums: dict[str, float] = {}

    def add(self, fields: dict[str, str]) -> None:
        sums = self.sums
        get = sums.get
        for name, raw in fields.items():
            sums[name] = get(name, 0) + (int(raw) if raw.isdigit() else float(raw))

    def into(self, figures: VersionFigures) -> None:
        arms: dict[tuple[str, str], dict[str, float]] = {}
        steps: dict[str, dict[str, dict[str, int]]] = {}
        for name, total in self.sums.items():
            kind, _, rest = name.partition("|")
            if kind == "a":
                arm, day, figure = rest.rsplit("|", 2)
                if figure in _ARM_FIELDS:
                    arms.setdefault((arm, day), {})[figure] = total
            elif kind == "s":
                step, day, outcome = rest.split("|", 2)
                steps.setdefault(step, {}).setdefault(day, {})[outcome] = int(total)
        for (arm, day), counts in arms.items():
            figures.arms.setdefault(arm, {})[day] = ArmCounts(**counts)
        figures.steps = steps


#: The counts an arm's fields may name (a field of another name, from a newer version, is left out).
_ARM_FIELDS = frozenset(ArmCounts.model_fields)
