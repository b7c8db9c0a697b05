"""The typed model of a journey: what the loader builds and the engine executes. No I/O here.

YAML keys map one to one onto these fields (``if`` and ``else`` are spelled ``if_`` / ``else_`` in
Python).  Every model forbids unknown keys so a typo is an error with a suggestion, not a silently
ignored line.  A step's kind is the one kind key it carries (``send``, ``wait``, ``branch``,
``split``, ``update``, ``exit``), which keeps the YAML short for marketers.
"""

from __future__ import annotations

from datetime import time, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainSerializer,
    Tag,
    WithJsonSchema,
    field_validator,
    model_validator,
)

from orchestrator.language.timeparse import format_duration, parse_duration, parse_local_time, parse_weekday

IDENTIFIER = r"^[a-z][a-z0-9_]*$"
EVENT_NAME = r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$"
#: Where a number sits in an event: ``properties.amount`` (or just ``amount``), dotted names only.
VALUE_PATH = r"^[a-zA-Z_][a-zA-Z0-9_]*(\.[a-zA-Z_][a-zA-Z0-9_]*)*$"


def _duration(value: Any) -> timedelta:
    return value if isinstance(value, timedelta) else parse_duration(value)


def _local_time(value: Any) -> time:
    return value if isinstance(value, time) else parse_local_time(value)


def _weekday(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else parse_weekday(value)


Duration = Annotated[
    timedelta,
    BeforeValidator(_duration),
    PlainSerializer(format_duration, return_type=str),
    Field(json_schema_extra={"type": "string", "pattern": r"^(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?$"}),
]
LocalTime = Annotated[
    time,
    BeforeValidator(_local_time),
    PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str),
    Field(json_schema_extra={"type": "string", "pattern": r"^([01]\d|2[0-3]):[0-5]\d$"}),
]
Weekday = Annotated[
    int,
    BeforeValidator(_weekday),
    Field(ge=0, le=6),
    WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "string",
                    "pattern": "^([Mm]on(day)?|[Tt]ue(sday)?|[Ww]ed(nesday)?|[Tt]hu(rsday)?|[Ff]ri(day)?"
                    "|[Ss]at(urday)?|[Ss]un(day)?)$",
                },
                {"type": "integer", "minimum": 0, "maximum": 6},
            ]
        }
    ),
]
StepId = Annotated[str, Field(pattern=IDENTIFIER, max_length=64)]
EventName = Annotated[str, Field(pattern=EVENT_NAME, max_length=128)]
Expression = Annotated[str, Field(min_length=1, max_length=2000)]
ChannelName = Annotated[str, Field(pattern=IDENTIFIER, max_length=64)]


class Model(BaseModel):
    """Frozen, strict about unknown keys, and populated by YAML names (``if``, ``else``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class EventTrigger(Model):
    """Enter when an event arrives (``event: order.placed``), optionally filtered by ``if``."""

    event: EventName
    if_: Expression | None = Field(default=None, alias="if")


class ScheduleTrigger(Model):
    """Enter the whole ``audience`` on a cron schedule: a broadcast or a cohort.

    ``timezone`` is ``settings`` (the settings' zone: everyone at one instant), ``local`` (each
    customer at the cron time in their own zone) or an IANA zone name.
    """

    schedule: Annotated[str, Field(min_length=9, max_length=120)]
    timezone: str = "settings"
    if_: Expression | None = Field(default=None, alias="if")


class DateTrigger(Model):
    """Enter every year on the month and day of a profile date attribute, at a local time."""

    date: Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$")]
    at: LocalTime = time(9, 0)
    if_: Expression | None = Field(default=None, alias="if")


def _trigger_kind(value: Any) -> str | None:
    if isinstance(value, BaseModel):
        return {EventTrigger: "event", ScheduleTrigger: "schedule", DateTrigger: "date"}.get(type(value))
    if isinstance(value, dict):
        kinds = [key for key in ("event", "schedule", "date") if key in value]
        return kinds[0] if len(kinds) == 1 else None
    return None


Trigger = Annotated[
    Annotated[EventTrigger, Tag("event")]
    | Annotated[ScheduleTrigger, Tag("schedule")]
    | Annotated[DateTrigger, Tag("date")],
    Discriminator(
        _trigger_kind,
        custom_error_type="trigger_kind",
        custom_error_message="a trigger needs exactly one of 'event', 'schedule' or 'date'",
    ),
]


ValuePath = Annotated[str, Field(pattern=VALUE_PATH, max_length=200)]


class Goal(Model):
    """Ends an enrollment as converted: an event (optionally filtered) or a profile condition.

    For proof of effect (docs/measuring.md) a goal event also counts as a conversion of every
    entrant, treated or held out, when it comes ``within`` the window after entry (default: the
    settings' ``measure.goal_window``), worth the number at ``value`` in the event
    (``properties.amount``), whatever became of the run by then.
    """

    event: EventName | None = None
    if_: Expression | None = Field(default=None, alias="if")
    within: Duration | None = None
    value: ValuePath | None = None

    @model_validator(mode="after")
    def _needs_something(self) -> Goal:
        if self.event is None and self.if_ is None:
            raise ValueError("a goal needs an 'event', an 'if' condition, or both")
        return self


class QuietWindow(Model):
    """A daily window in the customer's local time during which a channel stays silent."""

    start: LocalTime
    end: LocalTime

    @model_validator(mode="before")
    @classmethod
    def _from_text(cls, value: Any) -> Any:
        if isinstance(value, str):
            start, sep, end = value.partition("-")
            if not sep:
                raise ValueError(f"{value!r} is not a window; write it as 'HH:MM-HH:MM', e.g. '21:00-08:00'")
            return {"start": start.strip(), "end": end.strip()}
        return value


class CapRule(BaseModel):
    """At most ``max`` messages on ``channel`` (or ``any``) in a rolling ``window``.

    ``category`` or ``tag`` narrow the rule to marketing/transactional sends or journeys carrying
    that tag.  All rules hold together; the strictest one decides.  Used by ``settings.yaml`` and by
    a journey's ``caps`` override, so it lives with the journey model (settings imports journey).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    channel: ChannelName | Literal["any"] = "any"
    window: Duration
    max: Annotated[int, Field(ge=0)]
    category: Literal["marketing", "transactional"] | None = None
    tag: str | None = None


class StepBase(Model):
    """Fields every step has: a unique ``id`` and where to go afterwards (default: the next step)."""

    id: StepId
    next: StepId | None = None
    description: str = ""


class SendStep(StepBase):
    """Send one message; the enrollment waits here until the fatigue gate and channel decided."""

    send: ChannelName
    template: Annotated[str, Field(pattern=r"^[a-z0-9_][a-z0-9_/-]*$", max_length=128)]
    fallback: list[ChannelName] = Field(default_factory=list)
    on_capped: Literal["skip", "defer", "exit"] = "skip"
    to: Expression | None = None
    #: A voucher pool declared in settings: the message's templates read ``{{ voucher.code }}``,
    #: one code per run and step whatever channel carries it.
    voucher: Annotated[str, Field(pattern=IDENTIFIER, max_length=64)] | None = None

    @property
    def channels(self) -> list[str]:
        """The channels to try, in order."""
        return [self.send, *[c for c in self.fallback if c != self.send]]


class WaitUntil(Model):
    """Wait until the next local time of day, optionally only on some weekdays."""

    until: LocalTime
    weekdays: list[Weekday] | None = None


class WaitForEvent(Model):
    """Wait for an event up to ``timeout``; continue at ``on_event`` or ``on_timeout``."""

    event: EventName
    if_: Expression | None = Field(default=None, alias="if")
    timeout: Duration
    on_event: StepId | None = None
    on_timeout: StepId | None = None


class WaitAt(Model):
    """Wait until a moment computed from the customer's data, optionally some time ``before`` it.

    ``at`` is an expression giving an aware datetime or an ISO-8601 string (a naive one is read in
    the customer's time zone), e.g. ``now + days(trigger.items | map(attribute='replenish_days',
    default=0) | select | min)`` for "a few days before the product runs out".  A moment already
    past continues at once; an expression giving nothing (None, empty) ends the enrollment.
    """

    at: Expression
    before: Duration | None = None


def _wait_kind(value: Any) -> str | None:
    if isinstance(value, timedelta | str):
        return "duration"
    for kind, model in (("until", WaitUntil), ("event", WaitForEvent), ("at", WaitAt)):
        if isinstance(value, model) or (isinstance(value, dict) and kind in value):
            return kind
    return None


WaitSpec = Annotated[
    Annotated[Duration, Tag("duration")]
    | Annotated[WaitUntil, Tag("until")]
    | Annotated[WaitForEvent, Tag("event")]
    | Annotated[WaitAt, Tag("at")],
    Discriminator(
        _wait_kind,
        custom_error_type="wait_kind",
        custom_error_message="a wait is a duration such as '2d', or a mapping with 'until', 'event' or 'at'",
    ),
]


class WaitStep(StepBase):
    """Pause the enrollment: a duration (``2d``), a local time, an event with a timeout, or a moment."""

    wait: WaitSpec


class BranchCase(Model):
    """One ``if:`` of a branch and the step it jumps to when true."""

    if_: Expression = Field(alias="if")
    goto: StepId


class BranchStep(StepBase):
    """Take the first case whose condition holds, else ``else`` (default: the next step)."""

    branch: Annotated[list[BranchCase], Field(min_length=1)]
    else_: StepId | None = Field(default=None, alias="else")


class SplitArm(Model):
    """One arm of a random split: a name (for reports), its percent and the step it goes to."""

    name: Annotated[str, Field(pattern=IDENTIFIER)]
    percent: Annotated[int, Field(ge=0, le=100)]
    goto: StepId


class SplitStep(StepBase):
    """A/B/n split, deterministic per customer and step so a re-run takes the same arm."""

    split: Annotated[list[SplitArm], Field(min_length=2)]

    @field_validator("split")
    @classmethod
    def _sums_to_100(cls, arms: list[SplitArm]) -> list[SplitArm]:
        total = sum(arm.percent for arm in arms)
        if total != 100:
            raise ValueError(f"split percentages add up to {total}, not 100; adjust them so they sum to 100")
        return arms


class ProfileUpdate(Model):
    """``set`` writes values (expressions in ``{{ }}`` are rendered); ``increment`` adds numbers."""

    set: dict[Annotated[str, Field(pattern=IDENTIFIER)], Any] = Field(default_factory=dict)
    increment: dict[Annotated[str, Field(pattern=IDENTIFIER)], float] = Field(default_factory=dict)
    to: Expression | None = None

    @model_validator(mode="after")
    def _not_empty(self) -> ProfileUpdate:
        if not self.set and not self.increment:
            raise ValueError("an update needs 'set' or 'increment' (or both)")
        return self


class UpdateStep(StepBase):
    """Change profile attributes: award points, mark a referral rewarded."""

    update: ProfileUpdate


class ActionStep(StepBase):
    """Call one of the shop's own endpoints (credit points, issue a reward, tag a customer).

    ``action`` names an endpoint declared in settings (never a URL: a journey cannot make a
    worker call an arbitrary host).  ``body`` is the JSON sent: a mapping whose string values are
    rendered in the sandbox like ``update`` values (a value that is one ``{{ expression }}`` keeps
    its type), or one template text that must render a JSON object.  ``save_as`` keeps the
    response's JSON on the run, so later templates read it as ``step.<save_as>``.
    """

    action: Annotated[str, Field(pattern=IDENTIFIER, max_length=64)]
    body: dict[str, Any] | Annotated[str, Field(max_length=20_000)] = Field(default_factory=dict)
    save_as: Annotated[str, Field(pattern=IDENTIFIER, max_length=64)] | None = None


class ExitStep(StepBase):
    """End the enrollment here; ``exit`` is true or a reason shown in reports."""

    exit: Literal[True] | Annotated[str, Field(pattern=IDENTIFIER)]


STEP_KINDS = ("send", "wait", "branch", "split", "update", "action", "exit")


def _step_kind(value: Any) -> str | None:
    if isinstance(value, StepBase):
        return next(kind for kind in STEP_KINDS if hasattr(value, kind))
    if isinstance(value, dict):
        kinds = [key for key in STEP_KINDS if key in value]
        return kinds[0] if len(kinds) == 1 else None
    return None


Step = Annotated[
    Annotated[SendStep, Tag("send")]
    | Annotated[WaitStep, Tag("wait")]
    | Annotated[BranchStep, Tag("branch")]
    | Annotated[SplitStep, Tag("split")]
    | Annotated[UpdateStep, Tag("update")]
    | Annotated[ActionStep, Tag("action")]
    | Annotated[ExitStep, Tag("exit")],
    Discriminator(
        _step_kind,
        custom_error_type="step_kind",
        custom_error_message=(
            "a step needs exactly one of 'send', 'wait', 'branch', 'split', 'update', 'action', 'exit'"
        ),
    ),
]


def step_kind(step: StepBase) -> str:
    """The kind key of a built step (``send``, ``wait``, …)."""
    kind = _step_kind(step)
    assert kind is not None
    return kind


class Journey(Model):
    """One lifecycle flow.  ``version`` is set by the loader from the file's content hash."""

    id: Annotated[str, Field(pattern=IDENTIFIER, max_length=64)]
    name: Annotated[str, Field(min_length=1, max_length=200)]
    description: str = ""
    trigger: Trigger
    audience: Expression | None = None
    re_entry: Literal["never", "always", "restart"] | Duration = "never"
    goals: list[Goal] = Field(default_factory=list)
    exit_when: list[Goal] = Field(default_factory=list)
    holdout: Annotated[float, Field(ge=0, le=100)] = 0
    category: Literal["marketing", "transactional"] = "marketing"
    priority: Annotated[int, Field(ge=0, le=100)] = 50
    tags: list[Annotated[str, Field(pattern=IDENTIFIER)]] = Field(default_factory=list)
    quiet_hours: dict[ChannelName, QuietWindow | None] | Literal[False] | None = None
    #: Replaces the settings' cap rules for this journey's sends (``[]`` = no caps); ``None`` keeps them.
    caps: list[CapRule] | None = None
    steps: Annotated[list[Step], Field(min_length=1)]
    version: str = ""

    def step(self, step_id: str) -> StepBase:
        """The step with that id (the loader guarantees every ``goto`` names one)."""
        for candidate in self.steps:
            if candidate.id == step_id:
                return candidate
        raise KeyError(step_id)

    def next_step_id(self, step_id: str) -> str | None:
        """Where a step goes when it does not jump: its ``next``, else the following step."""
        ids = [s.id for s in self.steps]
        position = ids.index(step_id)
        explicit = self.steps[position].next
        if explicit is not None:
            return explicit
        return ids[position + 1] if position + 1 < len(ids) else None

    @property
    def first_step_id(self) -> str:
        return self.steps[0].id
