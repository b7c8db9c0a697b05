"""The runtime's witness in production: every end of a run and every held send goes into the
customer's journal (:mod:`orchestrator.store.journal`), which the console's customer page and
``loyaloop explain`` read back as a timeline.

It is the :class:`~orchestrator.runtime.attempts.Observer` production runs with (``loyaloop
simulate`` puts its recorder in its place: a simulation's story is in its output files).  The
words for a held send (:func:`held`) are shared with that recorder, so a simulation and production
explain a cap or a quiet-hour deferral the same way.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

import redis

from orchestrator.engine.enrollment import Decision, Enrollment, Finish, Record, SendAction
from orchestrator.language.journey import Journey
from orchestrator.runtime.attempts import AttemptResult
from orchestrator.store import journal

log = logging.getLogger("loyaloop.journal")

#: Attempt outcomes that are a decision not to send (now).
HELD = frozenset({"capped", "deferred", "suppressed", "no_consent", "no_address", "failed"})
#: What a run's end is called, by its status (``exited`` with reason ``removed``: support staff).
ENDINGS = {"converted": "goal reached", "completed": "completed", "exited": "exited", "failed": "failed"}


@dataclass(frozen=True)
class Held:
    """Why a send was held: ``reason`` in words, ``rule`` the blocking cap rule, ``until`` when
    it is tried again (ISO-8601, empty when never)."""

    reason: str
    rule: str = ""
    until: str = ""


def held(result: AttemptResult, channel: str) -> Held:
    """The reason for a held attempt (``result.outcome`` in :data:`HELD`), from the gate's decision."""
    gate = result.gate
    reason = gate.reason if gate is not None and gate.reason else _fallback(result.outcome, channel)
    rule = gate.reason if gate is not None and gate.rule is not None else ""
    until = result.retry_at.isoformat() if result.retry_at is not None else ""
    if result.outcome == "deferred" and gate is not None and gate.outcome == "quiet":
        reason = f"quiet hours ({gate.reason})" if gate.reason else "quiet hours"
    return Held(reason, rule, until)


def _fallback(outcome: str, channel: str) -> str:
    if outcome == "failed":
        return "the template failed to render for this customer"
    if outcome == "no_address":
        return f"no channel named {channel!r} is installed"
    return outcome


def decision_entries(decision: Decision, now: datetime) -> list[dict[str, str]]:
    """The journal entries of a stored decision: holdout steps and the run's end.  Entries into a
    journey are not written: the run keeps its entry time (and a waiting customer no journal)."""
    entries: list[dict[str, str]] = []
    base: dict[str, str] = {}
    for action in decision.actions:
        # Most decisions (a cohort's entries) have nothing to write: the common fields are built
        # only for the first entry there is.
        if not base and (isinstance(action, Finish) or (isinstance(action, Record) and action.stat == "holdout")):
            run = decision.enrollment
            base = {"at": now.isoformat(), "journey": run.journey_id, "run": run.run_id}
        if isinstance(action, Record) and action.stat == "holdout" and action.step_id is not None:
            entries.append(
                base
                | {
                    "kind": "holdout",
                    "step": action.step_id,
                    "reason": "the customer is in the journey's holdout group: nothing is sent",
                }
            )
        elif isinstance(action, Finish):
            entries.append(base | {"kind": "ended", "outcome": action.status, "reason": action.reason or ""})
    return entries


class Journal:
    """Writes what the runtime decides into each customer's journal; thread-safe (the client is).

    A journal write that fails is logged and dropped: the journal explains, it never decides, so
    it must not turn a stored decision into a retried one."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

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
    ) -> None:
        if result.outcome not in HELD:
            return
        why = held(result, channel)
        entry = {
            "at": now.isoformat(),
            "kind": "held",
            "journey": journey.id,
            "run": enrollment.run_id,
            "step": send.step_id,
            "channel": channel,
            "outcome": result.outcome,
            "reason": why.reason,
            "rule": why.rule,
            "until": why.until,
        }
        self._write(send.recipient_id, [entry])

    def stored(self, decision: Decision, now: datetime) -> None:
        entries = decision_entries(decision, now)
        if entries:
            self._write(decision.enrollment.customer_id, entries)

    def _write(self, customer_id: str, entries: list[dict[str, str]]) -> None:
        try:
            journal.write(self.client, customer_id, entries)
        except redis.RedisError as exc:
            log.warning("journal entry not written (%s)", type(exc).__name__)
