"""The simulator's channels and its witness: nothing is sent, everything is written down.

:class:`RecorderChannel` stands in for each channel (same name, address field and consent key,
so the gate asks the same questions of the profile) and keeps the rendered message instead of
calling a provider.  :class:`Recorder` is the runtime's :class:`~orchestrator.runtime.attempts.Observer`:
told of every attempt and every stored decision by the production code itself, it turns them into
the rows of ``messages.jsonl`` (what went out) and ``decisions.jsonl`` (what did not, and why).

Rows are sorted before they are written (virtual time, customer, journey, step, channel), so the
order in which worker threads happened to finish never shows in the files.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from orchestrator.engine.enrollment import Decision, Enrollment, Finish, Record, SendAction
from orchestrator.language.endpoints import Endpoint
from orchestrator.language.journey import Journey
from orchestrator.message import ActionCall, ActionKind, ActionReply, Channel, Message, Receipt
from orchestrator.runtime.attempts import AttemptResult
from orchestrator.runtime.journal import HELD, held
from orchestrator.runtime.runtime import Runtime

#: The built-in channels' shapes (name → address field, consent key), as their plugins register
#: them: the simulator never builds the real channels, so no provider credential is ever read.
BUILTIN_CHANNELS: dict[str, tuple[str, str]] = {
    "email": ("email", "email"),
    "sms": ("phone", "sms"),
    "push": ("push_token", "push"),
    "outbox": ("email", "email"),
}


@dataclass(frozen=True, slots=True)
class MessageRow:
    """A message that would have gone out (a row of ``messages.jsonl``)."""

    at: str
    customer_id: str
    journey_id: str
    step_id: str
    channel: str
    template: str
    locale: str
    subject: str
    first_line: str


@dataclass(frozen=True, slots=True)
class DecisionRow:
    """A send that did not go out, or not yet (a row of ``decisions.jsonl``).

    ``outcome`` is ``capped``, ``deferred`` (``until`` says when it is tried again), ``suppressed``,
    ``no_consent``, ``no_address``, ``failed`` (a template that did not render) or ``holdout``;
    ``rule`` names the cap rule for a cap, ``reason`` says it in words.
    """

    at: str
    customer_id: str
    journey_id: str
    step_id: str
    channel: str
    outcome: str
    reason: str
    rule: str = ""
    until: str = ""


@dataclass(frozen=True, slots=True)
class RunRow:
    """An entry into a journey or the end of a run (for ``explain`` and the reach figures)."""

    at: str
    customer_id: str
    journey_id: str
    run_id: str
    what: str
    reason: str = ""


class RecorderChannel:
    """A channel that keeps the rendered message and tells the recorder (no provider, no network)."""

    def __init__(self, name: str, address_field: str, consent_key: str, keep: Callable[[Message], None]) -> None:
        self.name = name
        self.address_field = address_field
        self.consent_key = consent_key
        self._keep = keep

    def send(self, message: Message) -> Receipt:
        self._keep(message)
        return Receipt(self.name, "simulation", message.idempotency_key)


class Recorder:
    """Collects messages, held sends and run events from a runtime; thread-safe."""

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self.messages: list[MessageRow] = []
        self.decisions: list[DecisionRow] = []
        self.runs: list[RunRow] = []
        self._rendered: dict[str, Message] = {}
        self._lock = threading.Lock()

    # --- wiring ------------------------------------------------------------------------------
    def channels(self, names: Iterable[str] = BUILTIN_CHANNELS) -> dict[str, Channel]:
        """A recorder channel for each built-in channel name."""
        return {name: RecorderChannel(name, *BUILTIN_CHANNELS[name], keep=self._keep) for name in names}

    def action_kinds(self, endpoints: Mapping[str, Endpoint]) -> dict[str, ActionKind]:
        """A stand-in for the kind of every declared endpoint: a simulation never calls the shop."""
        return {spec.kind: RecordedAction(spec.kind) for spec in endpoints.values()}

    def attach(self, runtime: Runtime) -> None:
        """Replace the runtime's channels with recorders and watch its decisions."""
        delivery = runtime.delivery
        delivery.channels.clear()
        delivery.channels.update(self.channels())
        delivery.observer = self

    def _keep(self, message: Message) -> None:
        with self._lock:
            self._rendered[message.idempotency_key] = message

    # --- the Observer protocol ---------------------------------------------------------------
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
        at = now.isoformat()
        if result.outcome == "sent":
            with self._lock:
                message = self._rendered.pop(key, None)
            if message is None:  # sent earlier and found done (a re-driven send): already counted
                return
            subject = message.subject or message.title or ""
            first = next((line.strip() for line in message.body.splitlines() if line.strip()), "")
            row = MessageRow(
                at, send.recipient_id, journey.id, send.step_id, channel, send.template, message.locale, subject, first
            )
            with self._lock:
                self.messages.append(row)
            return
        if result.outcome not in HELD:
            return  # retry / busy / rate-limited: tried again, and recorded then
        why = held(result, channel)
        decision = DecisionRow(
            at, send.recipient_id, journey.id, send.step_id, channel, result.outcome, why.reason, why.rule, why.until
        )
        with self._lock:
            self.decisions.append(decision)

    def stored(self, decision: Decision, now: datetime) -> None:
        enrollment = decision.enrollment
        at = now.isoformat()
        rows: list[DecisionRow] = []
        runs: list[RunRow] = []
        for action in decision.actions:
            if isinstance(action, Record) and action.stat == "holdout" and action.step_id is not None:
                rows.append(
                    DecisionRow(
                        at,
                        enrollment.customer_id,
                        enrollment.journey_id,
                        action.step_id,
                        "",
                        "holdout",
                        "the customer is in the journey's holdout group: nothing is sent",
                    )
                )
            elif isinstance(action, Record) and action.step_id is None and action.stat in ("entered", "holdout"):
                what = "entered" if action.stat == "entered" else "entered_holdout"
                runs.append(RunRow(at, enrollment.customer_id, enrollment.journey_id, enrollment.run_id, what))
            elif isinstance(action, Finish):
                runs.append(
                    RunRow(
                        at,
                        enrollment.customer_id,
                        enrollment.journey_id,
                        enrollment.run_id,
                        action.status,
                        action.reason,
                    )
                )
        if rows or runs:
            with self._lock:
                self.decisions.extend(rows)
                self.runs.extend(runs)

    # --- results -------------------------------------------------------------------------------
    def sorted_messages(self) -> list[dict[str, Any]]:
        return [asdict(row) for row in sorted(self.messages, key=_message_key)]

    def sorted_decisions(self) -> list[dict[str, Any]]:
        return [asdict(row) for row in sorted(self.decisions, key=_decision_key)]

    def sorted_runs(self) -> list[dict[str, Any]]:
        return [asdict(row) for row in sorted(self.runs, key=lambda r: (r.at, r.customer_id, r.journey_id, r.what))]


def _message_key(row: MessageRow) -> tuple[str, ...]:
    return (row.at, row.customer_id, row.journey_id, row.step_id, row.channel)


def _decision_key(row: DecisionRow) -> tuple[str, ...]:
    return (row.at, row.customer_id, row.journey_id, row.step_id, row.channel, row.outcome, row.until)


class RecordedAction:
    """An action kind in a simulation: nothing is called, and the endpoint's declared ``example``
    is the answer (kept when the step says ``save_as``, so later templates render as in previews).
    The call is counted as the real one would be (``sent:action``)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def call(self, call: ActionCall, config: dict[str, Any]) -> ActionReply:
        example = config.get("example")
        return ActionReply(200, dict(example) if isinstance(example, dict) else None)
