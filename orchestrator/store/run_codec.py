"""How a run (an enrollment with its pending send and live timer) is written in Redis: a few short strings.

A million customers waiting in timers must cost under 400 bytes of Redis each (issue 3), and a
user's Redis runs with its default settings.  Redis keeps a hash as one compact listpack (a few
bytes per field) while it has at most 128 fields and no field or value longer than 64 bytes
(``hash-max-listpack-entries`` / ``-value``); past that it becomes a hash table, several times
bigger, and stays one.  So a live run is a handful of short strings in the customer's ``runs``
hash (see :func:`orchestrator.store.keys.runs`):

* ``<run>`` — the **core**: ``rev|handle|status|step|version|journey|sent|flags``, trailing empty
  slots dropped, e.g. ``1|1|w|pause|e88dc7322641``.  ``rev`` is the compare-and-set key; the
  ``handle`` (the smallest number no other live run of the customer holds) names the run's other
  parts, so their field names are three bytes, not a run id; ``status`` is one letter
  (:data:`STATUS_CODES`); ``step`` empty for None; ``journey`` empty when the run id is
  ``<journey>-<key>`` (what :func:`orchestrator.engine.run_ids.run_id_for` makes); ``sent`` empty for
  0; ``flags`` ``h`` for a holdout, ``g`` for the programme-wide control group.  The fields
  without ``|`` are the customer's live runs.
* ``<handle>|m`` — the **moments**: ``entered|updated|wait|timer``, e.g.
  ``1795779746.315284||=|2592000``.  ``entered`` in epoch seconds (exact to the microsecond),
  ``updated`` in seconds after it (empty: the same moment).  ``timer`` (the live timer, used to
  cancel it) is ``[<revision>:]<due>``, the revision left out when it is the run's own; ``<due>``
  is seconds after ``updated`` when that is exact, else ``!`` and the epoch float as Python
  writes it, with an ``@<entered>@<updated>`` suffix when it was written against other times (a
  timer kept across such a change, which the runtime never makes).  ``wait`` (``wait_until``) is
  empty for None, ``=`` for "the timer's due time", ``=<due>`` for the due time of a timer moved
  since (:meth:`Store.set_timer_field`), or seconds after ``updated``.
* ``<handle>|t`` — the trigger's properties (JSON), only when there are any.
* ``<handle>|o`` — the outcomes, ``step=outcome,…`` (JSON when a name will not fit that shape).
* ``<handle>|x`` — JSON of the rarely set parts under one-letter names (``e`` trigger event id,
  ``w`` awaited event name, ``a`` awaited event's properties, ``r`` exit reason), and, under their
  own names, any field the core or moments cannot hold exactly (a step id with ``|``, a datetime
  that is naive or not in UTC).
* ``<handle>|s`` — the pending send while the run is ``sending``:
  ``step|channels|template|on_capped|recipient|key|holdout`` (recipient empty for the run's own
  customer, key empty for ``<run>:<step>``), or its JSON when a part will not fit that shape.

The customer id is the key's own.  A finished run keeps the same strings in its own hash (fields
``r`` for the core, then ``m``, ``t``, ``o``, ``x``, ``s``; see
:func:`orchestrator.store.keys.finished_run`).  Every field of an enrollment round-trips exactly (tested
with hypothesis); the one rule is that run ids and journey ids are not empty and hold no ``|``
(timer members already split on it).

Each value stays far under 64 bytes for the shipped journeys, also after sends and with an event's
id; trigger properties of more than ~60 bytes of JSON (a big order event) make that customer's
hash a hash table — correct, just a few hundred bytes bigger.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import pydantic_core

from orchestrator.engine.enrollment import Enrollment, SendAction, Status

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO = timedelta(microseconds=1)
STATUS_CODES: dict[str, str] = {
    "active": "a",
    "waiting": "w",
    "sending": "s",
    "completed": "c",
    "converted": "v",
    "exited": "x",
    "failed": "f",
}
_STATUS_OF: dict[str, Status] = {
    "a": "active",
    "w": "waiting",
    "s": "sending",
    "c": "completed",
    "v": "converted",
    "x": "exited",
    "f": "failed",
}
#: ``<run>|x`` names of the rarely set fields.
_RARE = {
    "trigger_event_id": "e",
    "waiting_for": "w",
    "awaited_event": "a",
    "exit_reason": "r",
}
_RARE_OF = {short: name for name, short in _RARE.items()}
#: The parts of a run after its core, in the order of :class:`RunParts`.
PART_NAMES = ("m", "t", "o", "x", "s")


@dataclasses.dataclass(frozen=True)
class StoredEnrollment:
    """An enrollment as stored, with its pending send and live timer (``revision``, due epoch)."""

    enrollment: Enrollment
    send: SendAction | None
    timer: tuple[int, float] | None


@dataclasses.dataclass(frozen=True)
class RunParts:
    """The strings a run is stored as; an empty one is not stored."""

    core: str
    moments: str = ""
    trigger: str = ""
    outcomes: str = ""
    extra: str = ""
    send: str = ""


# --- numbers ----------------------------------------------------------------------------------
def micros(moment: datetime) -> int:
    """Microseconds since the epoch (naive taken as UTC, as everywhere in the runtime)."""
    aware = moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
    return (aware - EPOCH) // _MICRO


def from_micros(value: int) -> datetime:
    return EPOCH + timedelta(microseconds=value)


def seconds_text(value: int) -> str:
    """Microseconds as decimal seconds, exactly, without trailing zeros (``2592000``, ``-0.5``)."""
    sign = "-" if value < 0 else ""
    whole, fraction = divmod(abs(value), 1_000_000)
    if not fraction:
        return f"{sign}{whole}"
    return f"{sign}{whole}.{fraction:06d}".rstrip("0")


def parse_seconds(text: str) -> int:
    """The inverse of :func:`seconds_text`."""
    negative = text.startswith("-")
    whole, _, fraction = (text[1:] if negative else text).partition(".")
    value = int(whole) * 1_000_000 + (int(fraction.ljust(6, "0")) if fraction else 0)
    return -value if negative else value


def _utc(moment: datetime | None) -> bool:
    return moment is not None and moment.tzinfo is not None and moment.utcoffset() == timedelta(0)


def _plain(text: str | None) -> bool:
    return text is not None and "|" not in text


def _json(value: Any) -> str:
    # The serializer model_dump_json uses (NaN and infinities become null, as they always did).
    return pydantic_core.to_json(value, inf_nan_mode="null").decode()


def derived_journey(run_id: str) -> str:
    """The journey a run id of the shape ``<journey>-<key>`` names ("" for other run ids)."""
    return run_id.rsplit("-", 1)[0] if "-" in run_id else ""


def check_ids(run_id: str, journey_id: str) -> None:
    if not run_id or "|" in run_id or not journey_id or "|" in journey_id:
        raise ValueError(f"run id {run_id!r} and journey id {journey_id!r} must be non-empty and hold no '|'")


# --- timers -----------------------------------------------------------------------------------
#: Past this many seconds (2255-06-05) ``due * 1_000_000`` passes 2**53 and is no longer computed
#: exactly, so a due epoch's microseconds cannot be recovered by multiplying: such a due stays
#: absolute and is compared the way it is decoded (hypothesis found a 2256 wait read back 1 µs early).
EXACT_SECONDS = 2**53 / 1_000_000


def due_text(due: float, base: int | None) -> str:
    """A timer's due epoch relative to ``base`` (microseconds) when exact, else absolute (``!``)."""
    if base is not None and due == due and abs(due) < EXACT_SECONDS:  # (a NaN or a huge float stays absolute)
        whole = round(due * 1_000_000)
        if whole / 1_000_000 == due:
            return seconds_text(whole - base)
    return f"!{due!r}"


def parse_due(text: str, base: int | None) -> tuple[float, datetime | None]:
    """A due text as (epoch float, the datetime a ``=`` wait means, None when there is none)."""
    if text.startswith("!"):
        due = float(text[1:])
        try:
            return due, datetime.fromtimestamp(due, UTC)
        except (OverflowError, OSError, ValueError):
            return due, None
    relative, _, other = text.partition("@")
    if other:  # a timer kept across a change of the run's entry or update time: its own base
        entered, _, updated = other.partition("@")
        origin: int | None = parse_seconds(entered) + (parse_seconds(updated) if updated else 0)
    else:
        origin = base
    if origin is None:
        raise ValueError(f"timer due {text!r} is relative but the run has no entry time")
    whole = origin + parse_seconds(relative)
    try:
        moment: datetime | None = from_micros(whole)
    except OverflowError:
        moment = None
    return whole / 1_000_000, moment


def _same_moment(due: float, moment: datetime) -> bool:
    """Whether a timer's due epoch is exactly ``moment`` (to the microsecond, as decoding gives it)."""
    if due != due or abs(due) >= 1e15:  # a NaN or a huge float is never a wait's moment
        return False
    if abs(due) >= EXACT_SECONDS:
        try:
            return datetime.fromtimestamp(due, UTC) == moment
        except (OverflowError, OSError, ValueError):
            return False
    whole = round(due * 1_000_000)
    if whole / 1_000_000 == due:
        return whole == micros(moment)
    try:
        return datetime.fromtimestamp(due, UTC) == moment
    except (OverflowError, OSError, ValueError):
        return False


# --- enrollments ------------------------------------------------------------------------------
def encode_run(
    enrollment: Enrollment,
    send: SendAction | None,
    timer: tuple[int, float] | Literal["keep"] | None,
) -> RunParts:
    """The strings ``enrollment`` is stored as (the core without its revision and handle, which the
    compare-and-set script puts in front).  ``timer="keep"`` leaves the timer slot for the script
    to copy from the stored run (so no ``=`` wait may point at it)."""
    e = enrollment
    check_ids(e.run_id, e.journey_id)
    extra: dict[str, Any] = {}
    for name, short in _RARE.items():
        value = getattr(e, name)
        if value is not None:
            extra[short] = value
    core = [STATUS_CODES[e.status], "", "", "", "", ""]
    if e.step_id is None:
        pass
    elif e.step_id and _plain(e.step_id):
        core[1] = e.step_id
    else:
        extra["step_id"] = e.step_id
    if _plain(e.journey_version):
        core[2] = e.journey_version
    else:
        extra["journey_version"] = e.journey_version
    if derived_journey(e.run_id) != e.journey_id:
        core[3] = e.journey_id
    core[4] = str(e.sent) if e.sent else ""
    core[5] = ("h" if e.holdout else "") + ("g" if e.control else "")

    moments = ["", "", "", ""]
    entered = micros(e.entered_at) if _utc(e.entered_at) else None
    updated = micros(e.updated_at) if entered is not None and _utc(e.updated_at) else None
    if entered is not None:
        moments[0] = seconds_text(entered)
    else:
        extra["entered_at"] = e.entered_at
    if updated is not None and entered is not None:
        moments[1] = seconds_text(updated - entered) if updated != entered else ""
    else:
        extra["updated_at"] = e.updated_at
    live_timer = None if e.finished or timer == "keep" else timer
    if live_timer is not None:
        text = due_text(live_timer[1], updated)
        moments[3] = text if live_timer[0] == e.revision else f"{live_timer[0]}:{text}"
    if e.wait_until is not None:
        if live_timer is not None and _utc(e.wait_until) and _same_moment(live_timer[1], e.wait_until):
            moments[2] = "="
        elif updated is not None and _utc(e.wait_until):
            moments[2] = seconds_text(micros(e.wait_until) - updated)
        else:
            extra["wait_until"] = e.wait_until
    return RunParts(
        core=_joined(core),
        moments=_joined(moments) or "|",  # never empty: a live run's handle is taken while it exists
        trigger=_json(e.trigger) if e.trigger else "",
        outcomes=encode_outcomes(e.outcomes),
        extra=_json(extra) if extra else "",
        send=encode_send(send, e.customer_id, e.run_id) if send is not None else "",
    )


def _joined(slots: list[str]) -> str:
    while slots and not slots[-1]:
        slots.pop()
    return "|".join(slots)


def decode_run(customer_id: str, run_id: str, values: Sequence[str | None]) -> StoredEnrollment:
    """The inverse of :func:`encode_run`: ``values`` are the core (with revision and handle) and
    the parts in the order of :data:`PART_NAMES`."""
    core_text, moments_text, trigger, outcomes, extra, send = values
    core = (core_text or "").split("|")
    core += [""] * (8 - len(core))
    revision = int(core[0])
    moments = (moments_text or "").split("|")
    moments += [""] * (4 - len(moments))
    entered = parse_seconds(moments[0]) if moments[0] else None
    updated = entered + parse_seconds(moments[1]) if entered is not None and moments[1] else entered
    timer: tuple[int, float] | None = None
    timer_moment: datetime | None = None
    if moments[3]:
        owner, colon, text = moments[3].partition(":")
        if not colon:
            owner, text = "", moments[3]
        due, timer_moment = parse_due(text, updated)
        timer = (int(owner) if owner else revision, due)
    wait = moments[2]
    wait_until: datetime | None = None
    if wait == "=":
        wait_until = timer_moment
    elif wait.startswith("="):
        wait_until = parse_due(wait[1:], updated)[1]
    elif wait and updated is not None:
        wait_until = from_micros(updated + parse_seconds(wait))
    fields: dict[str, Any] = {
        "run_id": run_id,
        "journey_id": core[5] or derived_journey(run_id),
        "journey_version": core[4],
        "customer_id": customer_id,
        "status": _STATUS_OF[core[2]],
        "step_id": core[3] or None,
        "entered_at": from_micros(entered) if entered is not None else None,
        "updated_at": from_micros(updated) if updated is not None else None,
        "holdout": "h" in core[7],
        "control": "g" in core[7],
        "trigger": pydantic_core.from_json(trigger) if trigger else {},
        "wait_until": wait_until,
        "outcomes": decode_outcomes(outcomes) if outcomes else {},
        "sent": int(core[6]) if core[6] else 0,
        "revision": revision,
    }
    if extra:
        for name, value in pydantic_core.from_json(extra).items():
            fields[_RARE_OF.get(name, name)] = value
    return StoredEnrollment(
        Enrollment.model_validate(fields),
        decode_send(send, customer_id, run_id) if send else None,
        timer,
    )


def encode_outcomes(outcomes: Mapping[str, str]) -> str:
    """``step=outcome,…`` (step ids and outcome names are identifiers), else JSON."""
    if not outcomes:
        return ""
    if all(
        step and not step.startswith("{") and "=" not in step and "," not in step and "," not in outcome
        for step, outcome in outcomes.items()
    ):
        return ",".join(f"{step}={outcome}" for step, outcome in outcomes.items())
    return _json(outcomes)


def decode_outcomes(text: str) -> dict[str, str]:
    if text.startswith("{"):
        return dict(pydantic_core.from_json(text))
    return dict(item.partition("=")[::2] for item in text.split(","))


def parse_run(customer_id: str, run_id: str, values: Sequence[str | None]) -> StoredEnrollment | None:
    """A run from its stored strings (core, then the parts of :data:`PART_NAMES`), None if absent."""
    if not values or not values[0]:
        return None
    return decode_run(customer_id, run_id, values)


# --- sends ------------------------------------------------------------------------------------
def encode_send(send: SendAction, customer_id: str, run_id: str) -> str:
    recipient = "" if send.recipient_id == customer_id else send.recipient_id
    key = "" if send.idempotency_key == f"{run_id}:{send.step_id}" else send.idempotency_key
    texts = (send.step_id, send.template, send.on_capped, recipient, key)
    plain = (
        send.step_id
        and not send.step_id.startswith("{")
        and all(_plain(text) for text in texts)
        and all(channel and _plain(channel) and "," not in channel for channel in send.channels)
        and (send.recipient_id or recipient)
        and (send.idempotency_key or key)
    )
    if not plain:
        data = {f.name: getattr(send, f.name) for f in dataclasses.fields(SendAction)}
        return _json(data)
    slots = [send.step_id, ",".join(send.channels), send.template, send.on_capped, recipient, key]
    slots.append("h" if send.holdout else "")
    while not slots[-1]:
        slots.pop()
    return "|".join(slots)


def decode_send(text: str, customer_id: str, run_id: str) -> SendAction:
    if text.startswith("{"):
        data = pydantic_core.from_json(text)
        data["channels"] = tuple(data["channels"])
        return SendAction(**data)
    slots = text.split("|")
    slots += [""] * (7 - len(slots))
    step_id = slots[0]
    return SendAction(
        step_id=step_id,
        channels=tuple(slots[1].split(",")) if slots[1] else (),
        template=slots[2],
        on_capped=slots[3],  # type: ignore[arg-type]
        recipient_id=slots[4] or customer_id,
        idempotency_key=slots[5] or f"{run_id}:{step_id}",
        holdout=slots[6] == "h",
    )


# --- the customer's index ---------------------------------------------------------------------
def split_runs(fields: Mapping[str, str]) -> tuple[dict[str, str], dict[str, datetime]]:
    """A ``runs`` hash read whole: live runs (run id → journey id) and last entries (journey → time).

    The same reading as the ``read`` scripts' (see :mod:`orchestrator.store.scripts`).
    """
    live: dict[str, str] = {}
    last: dict[str, datetime] = {}
    for name, value in fields.items():
        if name.startswith("|"):
            last[name[1:]] = from_micros(int(value))
        elif "|" not in name:
            slots = value.split("|", 6)
            live[name] = (slots[5] if len(slots) > 5 else "") or derived_journey(name)
    return live, last


def entry_times(raw: Mapping[str, str]) -> dict[str, datetime]:
    """Last entries as the scripts return them (journey → epoch microseconds)."""
    return {journey: from_micros(int(value)) for journey, value in raw.items()}
