"""The exact measurement record in Redis: counts per journey version, arm, entry day and step, and
each entry's open measurement window.  See docs/measuring.md, "How the counts are kept".

Counts are written only by the scripts that move a customer's state (the compare-and-set of a run,
the script that marks an event counted), so they are as exact as that state.  A script may touch
only keys of one Cluster slot, so a journey version's counts are **sharded per slot**: the shard
``lp:fig:{<tag>}:<journey>:<version>`` carries a tag chosen to hash to the slot of the customers
it counts (:func:`slot_tag`).  The reader sums the shards listed in ``lp:fig:index``, which is
written (idempotently) on the same pipeline just before the script that first counts in a shard.

Fields of a shard hash: ``a|<arm>|<entry day>|<figure>`` (an :class:`ArmCounts` field) and
``s|<step>|<day>|<outcome>``.  A window (hash ``lp:c:{<customer>}:win``, field run id) is one
string of ``|``-separated slots, in the order of :data:`WINDOW_SLOTS`.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from typing import Any

from redis.crc import key_slot

from orchestrator.engine.measuring import Hit, Tally, Window, day_of
from orchestrator.measure.figures import ArmCounts, VersionFigures
from orchestrator.store import keys
from orchestrator.store.scripts import SEEN_TTL
from orchestrator.store.stats import JourneyStore

#: Redis Cluster's number of hash slots.
SLOTS = 16384

WINDOW_SLOTS = (
    "journey",
    "version",
    "arms",
    "day",
    "entered",
    "goal_window",
    "kpi_window",
    "expires",
    "trigger_event",
    "first_sent",
    "converted",
    "revenue",
    "converted_after_message",
    "orders",
    "order_revenue",
    "redeemed",
    "nps_answered",
)


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


def shard_key(customer_id: str, journey_id: str, version: str) -> str:
    return keys.figures(slot_tag(customer_id), journey_id, version)


def index_member(customer_id: str, journey_id: str, version: str) -> str:
    return f"{journey_id}|{version}|{slot_tag(customer_id)}"


def _escape(text: str) -> str:
    return text.replace("%", "%25").replace("|", "%7C").replace(",", "%2C")


def _unescape(text: str) -> str:
    return text.replace("%2C", ",").replace("%7C", "|").replace("%25", "%")


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def encode_window(window: Window) -> str:
    slots = [
        window.journey_id,
        window.version,
        ",".join(window.arms),
        window.day,
        repr(window.entered),
        _number(window.goal_window),
        _number(window.kpi_window),
        repr(window.expires),
        _escape(window.trigger_event_id),
        "" if window.first_sent is None else repr(window.first_sent),
        "1" if window.converted else "0",
        _number(window.revenue),
        "1" if window.converted_after_message else "0",
        str(window.orders),
        _number(window.order_revenue),
        "1" if window.redeemed else "0",
        "1" if window.nps_answered else "0",
    ]
    return "|".join(slots)


def decode_window(text: str) -> Window:
    s = text.split("|")
    return Window(
        journey_id=s[0],
        version=s[1],
        arms=tuple(s[2].split(",")),
        day=s[3],
        entered=float(s[4]),
        goal_window=float(s[5]),
        kpi_window=float(s[6]),
        expires=float(s[7]),
        trigger_event_id=_unescape(s[8]),
        first_sent=float(s[9]) if s[9] else None,
        converted=s[10] == "1",
        revenue=float(s[11]),
        converted_after_message=s[12] == "1",
        orders=int(s[13]),
        order_revenue=float(s[14]),
        redeemed=s[15] == "1",
        nps_answered=s[16] == "1",
    )


def decode_windows(fields: dict[str, str]) -> dict[str, Window]:
    """The windows of a windows hash (its ``d|…`` fields are the marks of deferred sends)."""
    return {run_id: decode_window(text) for run_id, text in fields.items() if "|" not in run_id}


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
    def of(cls, tally: Tally | None) -> FigureArgs:
        if not tally:
            return NO_FIGURES
        window = tally.window
        if window is not None and tally.first_sent is not None:
            window = replace(window, first_sent=tally.first_sent)
        return cls(
            figures_text(tally),
            encode_window(window) if window is not None else "",
            repr(tally.first_sent) if tally.first_sent is not None and window is None else "",
            tally.split_arm or "",
        )

    def args(self, now: float) -> list[str]:
        return [self.text, self.window, self.first_sent, self.split_arm, repr(now)]


NO_FIGURES = FigureArgs()


def hit_args(hit: Hit) -> list[str]:
    return [
        hit.run_id,
        "1" if hit.goal else "0",
        _number(hit.value),
        "1" if hit.non_numeric else "0",
        "1" if hit.order else "0",
        _number(hit.order_value),
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
        names = [keys.windows(customer_id), keys.seen_events(customer_id)]
        args: list[str] = [event_id, repr(at), str(SEEN_TTL)]
        for hit in hits:
            window = windows[hit.run_id]
            names.append(shard_key(customer_id, window.journey_id, window.version))
            args.extend(hit_args(hit))
        self.evalsha(pipe, "measure", names, args)

    def open_windows(self, customer_id: str) -> dict[str, Window]:
        return decode_windows(self.redis.hgetall(keys.windows(customer_id)))

    def version_figures(self, journey_id: str | None = None) -> list[VersionFigures]:
        """Every version of every journey (or of ``journey_id``) with its exact counts, summed over
        the slot shards; name, category, holdout and step order from the stored journey version."""
        shards: dict[tuple[str, str], list[str]] = {}
        for member in self.redis.smembers(keys.figures_index()):
            journey, version, tag = member.split("|")
            if journey_id is None or journey == journey_id:
                shards.setdefault((journey, version), []).append(tag)
        for journey, version in self.journey_ids().items():
            if journey_id is None or journey == journey_id:
                shards.setdefault((journey, version), [])
        ordered = sorted(shards)
        pipe = self.redis.pipeline(transaction=False)
        for journey, version in ordered:
            for tag in shards[(journey, version)]:
                pipe.hgetall(keys.figures(tag, journey, version))
        replies = iter(pipe.execute() if any(shards.values()) else [])
        result: list[VersionFigures] = []
        for journey, version in ordered:
            figures = VersionFigures(journey_id=journey, version=version)
            stored = self.load_journey(journey, version)
            if stored is not None:
                figures.name = stored.name
                figures.category = stored.category
                figures.holdout_percent = stored.holdout
                figures.step_order = [step.id for step in stored.steps]
            for _tag in shards[(journey, version)]:
                _add(figures, next(replies))
            result.append(figures)
        return result


def _add(figures: VersionFigures, fields: dict[str, str]) -> None:
    for name, raw in fields.items():
        kind, _, rest = name.partition("|")
        if kind == "a":
            arm, day, figure = rest.rsplit("|", 2)
            counts = figures.arms.setdefault(arm, {}).setdefault(day, ArmCounts())
            if figure in ArmCounts.model_fields:
                current = getattr(counts, figure)
                setattr(counts, figure, current + (float(raw) if isinstance(current, float) else int(raw)))
        elif kind == "s":
            step, day, outcome = rest.split("|", 2)
            outcomes = figures.steps.setdefault(step, {}).setdefault(day, {})
            outcomes[outcome] = outcomes.get(outcome, 0) + int(raw)
