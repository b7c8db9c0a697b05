"""An enrollment (one customer's run through one journey) and the actions the engine asks for.

The engine is a pure function from (journey, enrollment, profile, signal, now) to a new enrollment
plus a list of actions; the runtime carries the actions out.  Keeping these types here, apart from
both, is what lets the engine stay free of I/O and the runtime stay free of journey logic.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeGuard, get_args

from pydantic import BaseModel, ConfigDict, Field

Status = Literal["active", "waiting", "sending", "completed", "converted", "exited", "failed"]
#: ``failed``: the run reached its end (or its ``exit: true`` step) but its last send failed (a
#: template that could not render, a provider's permanent refusal, after every fallback).
FINISHED: frozenset[str] = frozenset({"completed", "converted", "exited", "failed"})


class Enrollment(BaseModel):
    """State of one run.  ``revision`` grows by one on every change: the store's compare-and-set key.

    ``journey_version`` pins the journey the customer entered on, so editing a journey never
    strands someone mid-way: they finish on the version they started.
    """

    model_config = ConfigDict(extra="forbid")

    run_id: str
    journey_id: str
    journey_version: str
    customer_id: str
    status: Status = "active"
    step_id: str | None = None
    entered_at: datetime
    updated_at: datetime
    holdout: bool = False
    #: In the programme-wide control group (``global_holdout``): held like a holdout, counted apart.
    control: bool = False
    trigger: dict[str, Any] = Field(default_factory=dict)
    #: The id of the event that started the run: a redelivery of that very event must not end it
    #: (as a goal, an exit or a restart) right after it began.
    trigger_event_id: str | None = None
    #: When waiting: the due time of the timer and, for an event wait, the event name.
    wait_until: datetime | None = None
    waiting_for: str | None = None
    #: Properties of the awaited event (``wait: {event: …}``) once it arrived: later steps see them
    #: as ``event`` on top of the trigger's, even after further waits.
    awaited_event: dict[str, Any] | None = None
    #: Per step, the outcome of its send (``sent``, ``capped``, …) for branches and reports.
    outcomes: dict[str, str] = Field(default_factory=dict)
    sent: int = 0
    exit_reason: str | None = None
    revision: int = 0

    @property
    def finished(self) -> bool:
        return self.status in FINISHED


# ----------------------------------------------------------------------------------------------
# Signals: why the engine is being asked to move an enrollment.


@dataclass(frozen=True)
class Started:
    """The customer just entered; run from the first step."""


@dataclass(frozen=True)
class TimerFired:
    """The timer set for ``revision`` came due (a stale revision is ignored by the engine)."""

    revision: int


@dataclass(frozen=True)
class EventArrived:
    """An event for this customer arrived (goals, ``exit_when`` and event waits look at it)."""

    name: str
    properties: dict[str, Any]
    event_id: str
    timestamp: datetime


DeliveryOutcomeName = Literal[
    "sent", "capped", "deferred", "suppressed", "no_consent", "no_address", "failed", "undeliverable", "holdout"
]
_DELIVERY_OUTCOMES: frozenset[str] = frozenset(get_args(DeliveryOutcomeName))


def is_delivery_outcome(name: str) -> TypeGuard[DeliveryOutcomeName]:
    """Whether ``name`` (read back from Redis, say) is an outcome the engine knows."""
    return name in _DELIVERY_OUTCOMES


#: What one channel's attempt at a send came to: the outcomes a channel can reach, plus the
#: attempt's own (``retry`` after a transient failure, ``no_channel`` when no plugin provides the
#: channel, ``template_error`` when the message could not be rendered, ``voucher_empty`` when the
#: step's voucher pool had no code left).
ChannelOutcomeName = Literal[
    "sent",
    "capped",
    "deferred",
    "suppressed",
    "no_consent",
    "no_address",
    "failed",
    "retry",
    "no_channel",
    "template_error",
    "voucher_empty",
]
_CHANNEL_OUTCOMES: frozenset[str] = frozenset(get_args(ChannelOutcomeName))


def _is_channel_outcome(name: str) -> TypeGuard[ChannelOutcomeName]:
    return name in _CHANNEL_OUTCOMES


@dataclass(frozen=True)
class ChannelOutcome:
    """An outcome on one channel, counted in the journey's stats as ``<outcome>:<channel>``
    (``sent:email``) under the step, and read back by ``loyaloop status`` and the demo report.

    This class is the only place that text is written (``str()``) and read (:meth:`parse`), so a
    misspelt outcome is a type error rather than a counter nobody reads.
    """

    outcome: ChannelOutcomeName
    channel: str

    def __str__(self) -> str:
        return f"{self.outcome}:{self.channel}"

    @classmethod
    def parse(cls, text: str) -> ChannelOutcome | None:
        """The outcome ``text`` names, or None for any other stat (``sent``, ``branch:vip``, ``cap_deferred``)."""
        outcome, sep, channel = text.partition(":")
        if sep and channel and _is_channel_outcome(outcome):
            return cls(outcome, channel)
        return None


#: Outcomes that do not decide a send: the enrollment stays in ``sending`` and the runtime
#: re-drives the delivery later (quiet hours, ``on_capped: defer``).  Every other outcome moves on.
NON_FINAL_OUTCOMES: frozenset[str] = frozenset({"deferred"})


@dataclass(frozen=True)
class Delivered:
    """The send at ``step_id`` was decided: ``outcome`` says how (``sent``, ``capped``, …)."""

    step_id: str
    outcome: DeliveryOutcomeName
    channel: str | None = None


Signal = Started | TimerFired | EventArrived | Delivered


# ----------------------------------------------------------------------------------------------
# Actions: what the runtime must carry out, in order.


#: The channel name a :class:`SendAction` carries for an ``action`` step (its ``template`` is the
#: endpoint's name): the runtime calls the endpoint instead of a channel plugin.
ACTION_CHANNEL = "action"


@dataclass(frozen=True)
class SendAction:
    """Hand a message to the deliver actor; the enrollment sits in ``sending`` until it answers."""

    step_id: str
    channels: tuple[str, ...]
    template: str
    on_capped: Literal["skip", "defer", "exit"]
    recipient_id: str
    idempotency_key: str
    holdout: bool = False


@dataclass(frozen=True)
class ScheduleTimer:
    """Wake the enrollment at ``due`` (a durable timer, not a Dramatiq delay)."""

    due: datetime
    revision: int


@dataclass(frozen=True)
class CancelTimer:
    """The enrollment no longer waits (goal reached, event arrived): drop its timer."""


@dataclass(frozen=True)
class UpdateProfile:
    """Set or increment attributes on a profile (``customer_id`` may be another customer)."""

    customer_id: str
    set: dict[str, Any] = field(default_factory=dict)
    increment: dict[str, float] = field(default_factory=dict)
    #: The ``update`` step that asked for it: with the run id, the key that applies it once (not
    #: part of equality: two updates that change the same things are the same update).
    step_id: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Record:
    """Count something for reports: ``stat`` per journey and step (``entered``, ``branch:…``)."""

    step_id: str | None
    stat: str
    #: The channel of a decided send's outcome (``sent`` on ``email``), for the per-channel figures.
    channel: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class Finish:
    """The enrollment ended: ``completed``, ``converted``, ``exited`` or ``failed`` with a reason."""

    status: Literal["completed", "converted", "exited", "failed"]
    reason: str


Action = SendAction | ScheduleTimer | CancelTimer | UpdateProfile | Record | Finish


@dataclass(frozen=True)
class Decision:
    """The engine's answer: the enrollment to store (compare-and-set) and the actions to run."""

    enrollment: Enrollment
    actions: tuple[Action, ...]
    #: The steps this decision ran, in order (each counted as ``reached`` in the measurement record).
    reached: tuple[str, ...] = field(default=(), compare=False)
