"""One attempt at a journey's send: gate → render → plugins → channel, with fallback channels.

Kept apart from :mod:`orchestrator.runtime.runtime` because it is the only place that talks to providers,
and the only place where "at most once" has to be earned: the send is claimed in Redis (with a
lease) before the channel is called and marked done right after, so a redelivered Dramatiq message
or a re-driven timer finds ``done`` and never calls the provider again.  If a worker dies between
the provider's answer and the ``done`` mark, the claim's lease expires and the send is tried once
more with the *same* idempotency key, which providers and the outbox use to drop the repeat.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import pluggy

from orchestrator import engine, metrics, plugins
from orchestrator.engine.enrollment import (
    ACTION_CHANNEL,
    ChannelOutcome,
    DeliveryOutcomeName,
    Enrollment,
    SendAction,
    is_delivery_outcome,
)
from orchestrator.errors import ConfigurationError, PermanentError, TemplateError, TransientError
from orchestrator.gate import consent, unsubscribe
from orchestrator.gate.policy import Gate, GateDecision, SendRequest
from orchestrator.language.journey import ActionStep, Journey
from orchestrator.language.profile import Profile
from orchestrator.language.render import Renderer, build_context
from orchestrator.message import ActionKind, Channel, Message
from orchestrator.runtime.actions import ActionCaller, endpoint_limiter
from orchestrator.runtime.attempts import AttemptOutcomeName, AttemptResult, AttemptStat, Observer
from orchestrator.runtime.retry import backoff_delay
from orchestrator.runtime.vouchers import VoucherCode, VoucherDesk
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.store.ratelimit import RateLimiter
from orchestrator.store.saved import SavedResponses
from orchestrator.store.vouchers import Vouchers

log = logging.getLogger(__name__)

#: Transient failures of one send before it is given up as ``failed``.
MAX_ATTEMPTS = 6
#: A rate-limit wait shorter than this is slept in the worker; a longer one becomes a timer.
MAX_RATE_SLEEP = 1.0
#: Outcomes after which the step's fallback channel is tried.
#: Channel outcomes that are failures of the send, counted as ``failed`` in ``/metrics`` (the
#: stats keep the cause: ``template_error:push``) and in the step and gate tables.
FAILED_AS: dict[str, str] = {"template_error": "failed", "voucher_empty": "failed"}
FALL_THROUGH: frozenset[DeliveryOutcomeName] = frozenset({"no_address", "no_consent", "suppressed", "failed"})


def signing_secret(settings: Settings, *, in_process: bool = False) -> bytes:
    """The unsubscribe signing secret: ``LOYALOOP_SECRET_KEY``, refused when short.

    Unset, it is a :class:`ConfigurationError`, since a link signed with a key made up at start-up
    stops working at the next restart while the customer's consent lives on in Redis.  The one
    exception is a runtime on an in-process Redis (``in_process``: ``loyaloop demo`` without
    ``REDIS_URL``), whose state dies with the process and whose links therefore cannot outlive it:
    it signs with a random key of its own, and says so in the log.
    """
    if in_process and (settings.secret_key is None or not settings.secret_key.get_secret_value()):
        log.info("LOYALOOP_SECRET_KEY is not set: unsubscribe links are signed with a key for this process only")
        return secrets.token_bytes(32)
    return unsubscribe.secret_bytes(settings)


class Delivery:
    """Carries out sends for one worker process; safe to share between its threads."""

    def __init__(
        self,
        *,
        settings: Settings,
        store: Store,
        channels: dict[str, Channel],
        gate: Gate,
        renderer: Renderer,
        pm: pluggy.PluginManager,
        ratelimiter: RateLimiter | None = None,
        secret: bytes | None = None,
        claim_lease: float = 60.0,
        max_attempts: int = MAX_ATTEMPTS,
        vouchers: Vouchers | None = None,
        action_kinds: dict[str, ActionKind] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.channels = channels
        self.gate = gate
        self.renderer = renderer
        self.pm = pm
        self.ratelimiter = ratelimiter
        self.secret = secret if secret is not None else signing_secret(settings)
        self.claim_lease = claim_lease
        self.max_attempts = max_attempts
        self.vouchers = VoucherDesk(settings, vouchers or Vouchers(store.redis), self.secret)
        self.caller = (
            None
            if action_kinds is None
            else ActionCaller(
                settings=settings,
                store=store,
                kinds=action_kinds,
                limiter=endpoint_limiter(store.redis, settings),
                claim_lease=claim_lease,
                max_attempts=max_attempts,
            )
        )
        self.saved = SavedResponses(store.redis)
        #: Told of every attempt when set (see :class:`Observer`): ``build_runtime`` sets the journal.
        self.observer: Observer | None = None

    def attempt(
        self,
        journey: Journey,
        enrollment: Enrollment,
        send: SendAction,
        *,
        now: datetime,
        profile: Profile | None = None,
        claimed: str | None = None,
        decided: GateDecision | None = None,
    ) -> AttemptResult:
        """Try the step's channels in order until one sends, defers, or all are used up.

        Stats are collected as the attempt goes and handed back in ``notes`` for the caller to
        write with its next pipeline (no round trip of their own).  ``decided`` is the gate's
        decision on the first channel's request (:meth:`first_request`) when the caller asked
        the gate for a whole batch of sends in one round trip.
        """
        if profile is None or profile.id != send.recipient_id:
            profile = self.store.get_profile(send.recipient_id) or Profile(id=send.recipient_id)
        if send.channels == (ACTION_CHANNEL,):
            return self._call(journey, enrollment, send, profile, now, send.idempotency_key == claimed)
        notes: list[tuple[str, str | None, str, int]] = []
        outcomes: list[AttemptOutcomeName] = []
        for position, name in enumerate(send.channels):
            key = send.idempotency_key if position == 0 else f"{send.idempotency_key}:{name}"
            given = decided if position == 0 else None
            result = self._one(journey, enrollment, send, profile, name, key, now, notes, key == claimed, given)
            if self.observer is not None:
                self.observer.attempted(
                    journey=journey, enrollment=enrollment, send=send, channel=name, key=key, result=result, now=now
                )
            if result.retry_at is not None or result.outcome not in FALL_THROUGH:
                return replace(result, notes=tuple(notes))
            outcomes.append(result.outcome)
        if len(outcomes) == 1:
            return AttemptResult(outcomes[0], send.channels[0], notes=tuple(notes))
        if "failed" in outcomes:
            # A channel was tried and failed (template, provider, empty voucher pool): the send
            # failed, rather than finding no way to reach the customer.
            failed_on = send.channels[len(outcomes) - 1 - outcomes[::-1].index("failed")]
            return AttemptResult("failed", failed_on, notes=tuple(notes))
        return AttemptResult("undeliverable", notes=tuple(notes))  # the engine counts the step's outcome

    def _call(
        self, journey: Journey, enrollment: Enrollment, send: SendAction, profile: Profile, now: datetime, claimed: bool
    ) -> AttemptResult:
        """An ``action`` step: the endpoint called instead of a channel (see runtime/actions.py)."""
        if self.caller is None:
            raise ConfigurationError("this runtime was built without action kinds; build it with build_runtime")
        result = self.caller.call(journey, enrollment, send, profile, now, claimed)
        notes = ((journey.id, send.step_id, result.stat, 1),) if result.stat else ()
        if result.outcome == "done":
            return AttemptResult(_done(result.done_outcome or "sent", send.idempotency_key), ACTION_CHANNEL)
        if result.outcome in ("retry", "busy"):
            return AttemptResult(result.outcome, ACTION_CHANNEL, retry_at=result.retry_at, notes=notes)
        outcome: AttemptOutcomeName = "sent" if result.outcome == "sent" else "failed"
        return AttemptResult(outcome, ACTION_CHANNEL, notes=notes, writes=result.writes)

    def _one(
        self,
        journey: Journey,
        enrollment: Enrollment,
        send: SendAction,
        profile: Profile,
        name: str,
        key: str,
        now: datetime,
        notes: list[tuple[str, str | None, str, int]],
        claimed: bool = False,
        decided: GateDecision | None = None,
    ) -> AttemptResult:
        def note(stat: ChannelOutcome | AttemptStat) -> None:
            notes.append((journey.id, send.step_id, str(stat), 1))
            if isinstance(stat, ChannelOutcome):
                if stat.outcome == "retry":
                    metrics.retry(stat.channel)
                else:
                    metrics.send(journey.id, stat.channel, FAILED_AS.get(stat.outcome, stat.outcome))

        channel = self.channels.get(name)
        if channel is None:
            note(ChannelOutcome("no_channel", name))
            return AttemptResult("no_address", name)
        address = profile.address(channel.address_field)
        request = _request(journey, send, profile, name, channel, key, address)
        decision = decided if decided is not None else self.gate.check(request, now=now)
        if claimed and decision.outcome != "allowed":
            self.store.release_delivery(profile.id, key)  # claimed in advance, but not sent now
        if decision.outcome == "quiet":
            note(ChannelOutcome("deferred", name))
            note("deferred")
            return AttemptResult("deferred", name, retry_at=decision.retry_at, gate=decision)
        if decision.outcome == "capped":
            if send.on_capped == "defer":
                until = self.gate.defer_until(decision, request, now, self.settings.defer_max)
                if until is not None:
                    note(ChannelOutcome("deferred", name))
                    note("cap_deferred")
                    return AttemptResult("deferred", name, retry_at=until, gate=decision)
            note(ChannelOutcome("capped", name))
            return AttemptResult("capped", name, gate=decision)
        if decision.outcome != "allowed":
            note(ChannelOutcome(decision.outcome, name))
            return AttemptResult(decision.outcome, name, gate=decision)
        assert address is not None
        return self._send(journey, enrollment, send, profile, channel, address, key, now, note, claimed)

    def _send(
        self,
        journey: Journey,
        enrollment: Enrollment,
        send: SendAction,
        profile: Profile,
        channel: Channel,
        address: str,
        key: str,
        now: datetime,
        note: Callable[[ChannelOutcome | AttemptStat], None],
        claimed: bool = False,
    ) -> AttemptResult:
        name = channel.name
        started = time.monotonic()
        state, detail = ("claimed", "") if claimed else self._claim(profile.id, key, now)
        if state == "done":
            return AttemptResult(_done(detail, key), name)
        if state == "busy":
            return AttemptResult("busy", name, retry_at=datetime.fromtimestamp(float(detail), now.tzinfo))
        if self.ratelimiter is not None:
            wait = self.ratelimiter.acquire(name)
            if wait > MAX_RATE_SLEEP:
                self.store.release_delivery(profile.id, key)
                note("rate_limited")
                return AttemptResult("rate_limited", name, retry_at=now + timedelta(seconds=wait))
            if wait > 0 and not self.ratelimiter.wait(name, max_wait=MAX_RATE_SLEEP):
                self.store.release_delivery(profile.id, key)
                return AttemptResult("rate_limited", name, retry_at=now + timedelta(seconds=MAX_RATE_SLEEP))
        voucher = self.vouchers.code_for(journey, send.step_id, enrollment.run_id)
        if voucher is not None and voucher.code is None:
            self.gate.release(profile.id, key)
            self.store.finish_delivery(profile.id, key, "failed")
            note(ChannelOutcome("voucher_empty", name))
            return AttemptResult("failed", name)
        if voucher is not None and voucher.fallback:
            note("voucher_fallback")
        try:
            message = self._message(journey, enrollment, send, profile, channel, address, key, now, voucher)
        except TemplateError as exc:
            log.warning(template_failure(journey.id, send.step_id, name, send.template, exc))
            self.gate.release(profile.id, key)
            self.store.finish_delivery(profile.id, key, "failed")
            note(ChannelOutcome("template_error", name))
            return AttemptResult("failed", name)
        try:
            receipt = channel.send(message)
        except TransientError as exc:
            self.store.release_delivery(profile.id, key)
            plugins.notify_failed(self.pm, message, exc)
            attempts = self.store.delivery_attempt(profile.id, key)
            note(ChannelOutcome("retry", name))
            if attempts >= self.max_attempts:
                self.gate.release(profile.id, key)
                self.store.finish_delivery(profile.id, key, "failed")
                note(ChannelOutcome("failed", name))
                return AttemptResult("failed", name)
            # Timed from the provider's answer: a rate-limit wait or a slow call came before it.
            delay = (time.monotonic() - started) + backoff_delay(attempts, exc.retry_after)
            return AttemptResult("retry", name, retry_at=now + timedelta(seconds=delay))
        except PermanentError as exc:
            self.gate.release(profile.id, key)
            self.store.finish_delivery(profile.id, key, "failed")
            plugins.notify_failed(self.pm, message, exc)
            self._permanent(profile, channel, address, exc)
            note(ChannelOutcome("failed", name))
            return AttemptResult("failed", name)

        def done(pipe: Any) -> None:
            self.store.finish_delivery(profile.id, key, "sent", pipe)
            self.store.remember_provider_message(
                receipt.provider_message_id,
                customer_id=profile.id,
                run_id=enrollment.run_id,
                step_id=send.step_id,
                channel=name,
                key=key,
                pipe=pipe,
            )

        plugins.notify_sent(self.pm, message, receipt)
        note(ChannelOutcome("sent", name))
        return AttemptResult("sent", name, writes=done)

    def first_request(self, journey: Journey, send: SendAction, profile: Profile) -> SendRequest | None:
        """The gate request of the send's first channel (None when no such channel is installed),
        for a caller that decides many sends with one ``Gate.check_many``."""
        channel = self.channels.get(send.channels[0])
        if channel is None:
            return None
        address = profile.address(channel.address_field)
        return _request(journey, send, profile, send.channels[0], channel, send.idempotency_key, address)

    def _claim(self, customer_id: str, key: str, now: datetime) -> tuple[str, str]:
        return self.store.claim_delivery(customer_id, key, now=now.timestamp(), lease=self.claim_lease)

    def _message(
        self,
        journey: Journey,
        enrollment: Enrollment,
        send: SendAction,
        profile: Profile,
        channel: Channel,
        address: str,
        key: str,
        now: datetime,
        voucher: VoucherCode | None = None,
    ) -> Message:
        headers: dict[str, str] = {}
        link = ""
        if journey.category == "marketing":
            # Issued at the runtime's moment: production's now, the simulated one in a demo or
            # simulation (so the same story renders byte for byte the same).
            token = unsubscribe.make_token(self.secret, profile.id, channel.name, journey.id, issued_at=now)
            link = unsubscribe.unsubscribe_url(self.settings.public_url, token)
            if channel.address_field == "email":
                headers = unsubscribe.unsubscribe_headers(self.settings.public_url, token)
        ctx = build_context(
            profile.context(),
            # The same ``event`` conditions see (engine/context.py): an awaited event over the trigger.
            event={**enrollment.trigger, **(enrollment.awaited_event or {})},
            trigger=enrollment.trigger,
            journey_id=journey.id,
            journey_name=journey.name,
            step_id=send.step_id,
            now=now,
            unsubscribe_url=link,
            voucher=voucher.context() if voucher is not None else None,
            # The run's own answers, kept under the run's customer: a message sent `to:` another
            # customer (the referred friend) reads them too.
            saved=self.saved.for_run(enrollment.customer_id, enrollment.run_id) if _saves(journey) else None,
        )
        locale = profile.locale or self.settings.default_locale
        content = self.renderer.render(channel.name, send.template, locale, ctx)
        message = Message(
            idempotency_key=key,
            channel=channel.name,
            customer_id=profile.id,
            journey_id=journey.id,
            step_id=send.step_id,
            run_id=enrollment.run_id,
            category=journey.category,
            locale=content.locale,
            to=address,
            body=content.body,
            subject=content.subject,
            html=content.html,
            title=content.title,
            data=dict(content.data),
            headers=headers,
            metadata={"run_id": enrollment.run_id, "step_id": send.step_id, "idempotency_key": key},
            categories=(journey.id, send.step_id),
        )
        prepared = plugins.prepare_message(self.pm, message, profile.context(), journey.id)
        return replace(prepared, idempotency_key=key, customer_id=profile.id)

    def _permanent(self, profile: Profile, channel: Channel, address: str, error: PermanentError) -> None:
        """Act on what the provider said: suppress the address, withdraw consent, drop a dead token."""

        if error.suppress:
            consent.suppress(self.store.redis, address, error.code or error.reason[:80])
        if error.withdraw_consent:
            consent.set_consent(self.store.redis, profile.id, channel.consent_key, False, source="provider")
        if error.remove_address:
            self.store.change_profile(profile.id, lambda p: _without_address(p, channel.address_field, address))


def template_failure(journey_id: str, step_id: str, channel: str, template: str, exc: TemplateError) -> str:
    """The worker's log line for a send that could not be rendered: journey, step, template and
    the missing field with the template's file and line — never the message's values, which may
    be personal data (an address, a name)."""
    head = f"template failed: journey {journey_id}, step {step_id}, template {channel}/{template}"
    if exc.field is not None:
        return f"{head}: {exc.field} is missing ({exc.where}); the send counts as failed"
    cause = type(exc.__cause__).__name__ if exc.__cause__ is not None else "TemplateError"
    return f"{head}: {exc.where or 'render'} failed ({cause}); the send counts as failed"


def _done(outcome: str, key: str) -> DeliveryOutcomeName:
    """The outcome a finished send was marked ``done`` with (``sent`` or ``failed``)."""
    if not is_delivery_outcome(outcome):
        raise ValueError(f"send {key!r} is marked done with {outcome!r}, which is not a delivery outcome")
    return outcome


def _request(
    journey: Journey, send: SendAction, profile: Profile, name: str, channel: Channel, key: str, address: str | None
) -> SendRequest:
    return SendRequest(
        customer_id=profile.id,
        channel=name,
        category=journey.category,
        journey_id=journey.id,
        journey_tags=tuple(journey.tags),
        priority=journey.priority,
        idempotency_key=key,
        address=address,
        consent=dict(profile.consent),
        timezone=profile.timezone,
        quiet_hours_override=journey.quiet_hours,
        caps_override=journey.caps,
        step_id=send.step_id,
        consent_key=channel.consent_key,
    )


def _without_address(profile: Profile, field: str, address: str) -> Profile:
    if field == "push_token":
        profile.push_tokens = [token for token in profile.push_tokens if token != address]
    elif field in ("email", "phone"):
        setattr(profile, field, None)
    else:
        profile.attributes.pop(field, None)
    return profile


def template_context(profile: Profile, enrollment: Enrollment, journey: Journey, now: datetime) -> dict[str, Any]:
    """The engine's context, for callers that render outside a send (``render`` previews)."""
    return engine.context(profile, enrollment, None, now, journey)


def _saves(journey: Journey) -> bool:
    """Whether any step of the journey keeps an endpoint's answer (only then is there one to read)."""
    return any(isinstance(step, ActionStep) and step.save_as for step in journey.steps)
