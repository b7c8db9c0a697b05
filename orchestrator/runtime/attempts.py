"""What one attempt at a send comes to (:class:`AttemptResult`), and the optional witness told of
every attempt and every stored decision (:class:`Observer`: production writes each customer's
journal through one, ``loyaloop simulate`` puts its recorder in its place).  Kept apart from
:mod:`orchestrator.runtime.delivery`, which carries the attempts out and re-exports these names."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from orchestrator.engine.enrollment import (
    Decision,
    Delivered,
    DeliveryOutcomeName,
    Enrollment,
    SendAction,
    is_delivery_outcome,
)
from orchestrator.gate.policy import GateDecision
from orchestrator.language.journey import Journey

#: An attempt's outcome: a final one for the engine, or why it must be tried again at ``retry_at``.
AttemptOutcomeName = DeliveryOutcomeName | Literal["retry", "busy", "rate_limited"]
#: Stats an attempt counts under the step without a channel (the per-channel ones are ChannelOutcome).
AttemptStat = Literal["deferred", "cap_deferred", "rate_limited", "voucher_fallback"]


@dataclass(frozen=True)
class AttemptResult:
    """The send's final outcome (for the engine), or ``retry_at`` when it must be tried again later."""

    outcome: AttemptOutcomeName
    channel: str | None = None
    retry_at: datetime | None = None
    #: Stats to count (journey, step, stat, amount): the caller writes them with its next pipeline.
    notes: tuple[tuple[str, str | None, str, int], ...] = ()
    #: Writes that must happen whatever comes next (the ``done`` mark of a sent message); the
    #: caller queues them on the pipeline that stores the step's outcome.
    writes: Callable[[Any], None] | None = field(default=None, compare=False)
    #: The gate's decision when the gate stopped or deferred the send (why, for an observer).
    gate: GateDecision | None = field(default=None, compare=False)

    def delivered(self, step_id: str) -> Delivered:
        """The engine's signal for a decided send (one without ``retry_at``)."""
        if self.retry_at is not None or not is_delivery_outcome(self.outcome):
            raise ValueError(
                f"the attempt at step {step_id!r} ended {self.outcome!r} (retry at {self.retry_at!r}), which decides "
                "nothing yet; schedule it again at retry_at instead of telling the engine"
            )
        return Delivered(step_id, self.outcome, self.channel)


class Observer(Protocol):
    """A witness of what the runtime decides (production's is the customer journal,
    :class:`orchestrator.runtime.journal.Journal`; ``loyaloop simulate`` sets its recorder).  It is
    told after the fact, from the calls production makes, and must neither raise nor mutate what it
    is given; a worker's threads share it, so it must be thread-safe.

    :meth:`attempted` follows each channel's attempt at a send (``result.gate`` says why the gate
    stopped or deferred it); :meth:`stored` follows each decision whose compare-and-set won (its
    ``Record`` actions say ``entered``, ``holdout``…, its ``Finish`` how the run ended), so a stale
    decision is never reported.
    """

    def attempted(
        self,
        *,
        journey: Journey,
        enrollment: Enrollment,
        send: SendAction,
        channel: str,
        key: str,
        result: AttemptResult,
        now: datetime,
    ) -> None: ...

    def stored(self, decision: Decision, now: datetime) -> None: ...
