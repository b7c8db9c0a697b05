"""Carrying out an ``action`` step: the shop's endpoint called once per run and step.

The step travels the send path (the engine's ``SendAction`` on the ``action`` channel, the run in
``sending``), so it gets the same exactly-once machinery: the call is claimed under a lease before
it is made, marked done after, re-driven by the send lease if the worker dies, and carries the
run-and-step ``Idempotency-Key`` so an endpoint that honours it applies a repeat once.  It does
not go through the fatigue gate (it is not a message to the customer), but it does share the
endpoint's rate limit with every worker.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from orchestrator.engine import render_value
from orchestrator.engine.enrollment import Enrollment, SendAction
from orchestrator.errors import ConfigurationError, PermanentError, TemplateError, TransientError
from orchestrator.language.journey import ActionStep, Journey
from orchestrator.language.profile import Profile
from orchestrator.language.render import build_context
from orchestrator.message import ActionCall, ActionKind
from orchestrator.runtime.retry import backoff_delay
from orchestrator.settings import Settings
from orchestrator.store import Store, keys
from orchestrator.store.ratelimit import Rate, RateLimiter, retry_after
from orchestrator.store.saved import SavedResponses

log = logging.getLogger("loyaloop.actions")

#: Longest a worker thread waits for an endpoint's rate limit before re-queueing the call.
MAX_RATE_SLEEP = 1.0

CallOutcome = Literal["sent", "failed", "retry", "busy", "done"]


@dataclass(frozen=True)
class CallResult:
    """How the call went: ``stat`` is what the step's counters record (``sent:action`` …)."""

    outcome: CallOutcome
    stat: str | None = None
    retry_at: datetime | None = None
    done_outcome: str | None = None
    writes: Callable[[Any], None] | None = None


def endpoint_limiter(client: Any, settings: Settings) -> RateLimiter:
    """One shared bucket per endpoint with a ``rate_limit`` (bursts of one second's worth)."""
    rates = {
        f"endpoint:{name}": Rate(spec.rate_limit, max(1, int(spec.rate_limit)))
        for name, spec in settings.endpoints.items()
        if spec.rate_limit is not None
    }
    return RateLimiter(client, key=keys.rate_limit, rates=rates)


def body_of(step: ActionStep, ctx: dict[str, Any]) -> dict[str, Any]:
    """The JSON object a step sends: a mapping's values rendered one by one (types kept), or one
    template text that must render a JSON object.  Raises :class:`TemplateError` otherwise."""
    if isinstance(step.body, dict):
        return {key: _rendered(value, ctx) for key, value in step.body.items()}
    text = render_value(step.body, ctx)
    if isinstance(text, dict):
        return text
    try:
        value = json.loads(str(text))
    except ValueError as exc:
        raise TemplateError(f"the body of step {step.id!r} did not render valid JSON: {exc.args[0]}") from None
    if not isinstance(value, dict):
        raise TemplateError(f"the body of step {step.id!r} rendered JSON that is not an object")
    return value


def _rendered(value: Any, ctx: dict[str, Any]) -> Any:
    if isinstance(value, dict):
        return {key: _rendered(item, ctx) for key, item in value.items()}
    if isinstance(value, list):
        return [_rendered(item, ctx) for item in value]
    return render_value(value, ctx)


def endpoint_problems(journeys: dict[str, Journey], settings: Settings, kinds: dict[str, ActionKind]) -> list[str]:
    """One line per endpoint the journeys call that could not be called now, naming the journey and
    step that call it, the endpoint, and what to set (the environment variable with its URL or
    secret): a process that would make those calls refuses to start on any of them, so a missing
    ``LOYALTY_LEDGER_URL`` is found at deploy time, not as failed calls days later.

    Checked once per endpoint (the kind's ``target``, when it has one, reads its configuration);
    every step calling a broken endpoint is named on its one line."""
    callers: dict[str, list[tuple[str, str]]] = {}
    for journey in sorted(journeys.values(), key=lambda j: j.id):
        for step in journey.steps:
            if isinstance(step, ActionStep):
                callers.setdefault(step.action, []).append((journey.id, step.id))
    problems = []
    for endpoint, steps in sorted(callers.items()):
        try:
            _configured(endpoint, settings, kinds)
        except ConfigurationError as exc:
            (journey_id, step_id), others = steps[0], steps[1:]
            also = f" (also {', '.join(f'{j}/{s}' for j, s in others)})" if others else ""
            problems.append(
                f"journey {journey_id!r} step {step_id!r}{also} calls endpoint {endpoint!r}, which cannot be "
                f"called: {exc}"
            )
    return problems


def _configured(endpoint: str, settings: Settings, kinds: dict[str, ActionKind]) -> None:
    spec = settings.endpoints.get(endpoint)
    if spec is None:
        raise ConfigurationError("it is not declared in settings.yaml under 'endpoints:'")
    kind = kinds.get(spec.kind)
    if kind is None:
        known = ", ".join(sorted(kinds)) or "none"
        raise ConfigurationError(f"its kind {spec.kind!r} is provided by no plugin (installed kinds: {known})")
    target = getattr(kind, "target", None)
    if callable(target):
        target(spec.model_dump())


class ActionCaller:
    """Calls the endpoints of one worker process; safe to share between its threads."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        kinds: dict[str, ActionKind],
        limiter: RateLimiter | None,
        claim_lease: float,
        max_attempts: int,
    ) -> None:
        self.settings = settings
        self.store = store
        self.kinds = kinds
        self.limiter = limiter
        self.claim_lease = claim_lease
        self.max_attempts = max_attempts
        self.saved = SavedResponses(store.redis)

    def check(self, journeys: dict[str, Journey]) -> None:
        """Every endpoint a journey calls is declared, of a known kind, and configured (its
        environment set): a worker refuses to start otherwise, rather than fail at the first call."""
        problems = endpoint_problems(journeys, self.settings, self.kinds)
        if problems:
            raise ConfigurationError("\n".join(problems))

    def _config(self, endpoint: str) -> dict[str, Any]:
        spec = self.settings.endpoints.get(endpoint)
        if spec is None:
            raise ConfigurationError(f"endpoint {endpoint!r} is not declared in settings.yaml under 'endpoints:'")
        return spec.model_dump()

    def _kind(self, endpoint: str) -> ActionKind:
        kind_name = self._config(endpoint)["kind"]
        kind = self.kinds.get(kind_name)
        if kind is None:
            known = ", ".join(sorted(self.kinds)) or "none"
            raise ConfigurationError(
                f"endpoint {endpoint!r} is of kind {kind_name!r}, which no plugin provides ({known})"
            )
        return kind

    def call(
        self,
        journey: Journey,
        enrollment: Enrollment,
        send: SendAction,
        profile: Profile,
        now: datetime,
        claimed: bool,
    ) -> CallResult:
        step = journey.step(send.step_id)
        assert isinstance(step, ActionStep)
        key = send.idempotency_key
        customer = enrollment.customer_id
        if not claimed:
            state, detail = self.store.claim_delivery(customer, key, now=now.timestamp(), lease=self.claim_lease)
            if state == "done":
                return CallResult("done", done_outcome=detail)
            if state == "busy":
                return CallResult("busy", retry_at=datetime.fromtimestamp(float(detail), now.tzinfo))
        if self.limiter is not None:
            wait = self.limiter.acquire(f"endpoint:{step.action}")
            if wait > MAX_RATE_SLEEP:
                self.store.release_delivery(customer, key)
                return CallResult("retry", "rate_limited", retry_at=now + timedelta(seconds=retry_after(wait)))
            if wait > 0 and not self.limiter.wait(f"endpoint:{step.action}", max_wait=MAX_RATE_SLEEP):
                self.store.release_delivery(customer, key)
                return CallResult("retry", "rate_limited", retry_at=now + timedelta(seconds=MAX_RATE_SLEEP))
        saved = self.saved.for_run(customer, enrollment.run_id)
        ctx = build_context(
            profile.context(),
            trigger=enrollment.trigger,
            journey_id=journey.id,
            journey_name=journey.name,
            step_id=step.id,
            now=now,
            saved=saved,
        )
        extra = {"event": {**enrollment.trigger, **(enrollment.awaited_event or {})}}
        try:
            body = body_of(step, {**ctx, **extra})
        except TemplateError as exc:
            log.warning("action body failed", extra={"journey": journey.id, "step": step.id, "error": str(exc)})
            self.store.finish_delivery(customer, key, "failed")
            return CallResult("failed", "failed:action")
        request = ActionCall(step.action, key, customer, journey.id, step.id, enrollment.run_id, body)
        try:
            reply = self._kind(step.action).call(request, self._config(step.action))
        except TransientError as exc:
            self.store.release_delivery(customer, key)
            attempts = self.store.delivery_attempt(customer, key)
            if attempts >= self.max_attempts:
                self.store.finish_delivery(customer, key, "failed")
                log.warning("action failed after retries", extra={"journey": journey.id, "step": step.id})
                return CallResult("failed", "failed:action")
            delay = backoff_delay(attempts, exc.retry_after)
            return CallResult("retry", "retry:action", retry_at=now + timedelta(seconds=delay))
        except PermanentError as exc:
            self.store.finish_delivery(customer, key, "failed")
            log.warning("action refused", extra={"journey": journey.id, "step": step.id, "error": str(exc)})
            return CallResult("failed", "failed:action")

        def done(pipe: Any) -> None:
            if step.save_as is not None and reply.data is not None:
                self.saved.save(customer, enrollment.run_id, step.save_as, reply.data, pipe)
            self.store.finish_delivery(customer, key, "sent", pipe)

        return CallResult("sent", "sent:action", writes=done)
