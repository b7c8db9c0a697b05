"""The one composition root: a Runtime (or the scheduler's smaller set of parts) wired from settings
and one Redis client: journeys, channels, gate, renderer, timers.

Nothing in the runtime imports this module; workers, the embedded mode and the tests call it.
"""

from __future__ import annotations

import gc
from dataclasses import dataclass
from typing import Any, Protocol

import redis

from orchestrator import plugins
from orchestrator.gate.policy import Gate
from orchestrator.language.journey import Journey
from orchestrator.language.loader import load_journeys
from orchestrator.language.render import Renderer
from orchestrator.message import ActionKind
from orchestrator.runtime.batch import sender_pool
from orchestrator.runtime.delivery import Delivery, signing_secret
from orchestrator.runtime.drain_slots import DrainSlots
from orchestrator.runtime.event_queue import EventQueue
from orchestrator.runtime.journal import Journal
from orchestrator.runtime.journey_book import JourneyBook
from orchestrator.runtime.readiness import marketing_senders
from orchestrator.runtime.referrals import Referrals
from orchestrator.runtime.runtime import Runtime
from orchestrator.runtime.transitions import Clock, Dispatcher, utc_now
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.store.ratelimit import RateLimiter
from orchestrator.store.timers import Timers


class CachedRenderer(Renderer):
    """The renderer with template-file lookups (and compiled templates) remembered per (channel,
    template, locale).

    Looking the files up lists a folder on every render; templates change only with a deploy, and
    a deploy restarts the workers.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # For the same reason Jinja need not stat every template file on every render to see
        # whether it changed (four stat calls per send).
        self.env.auto_reload = False
        self._choices: dict[tuple[str, str, str | None], tuple[str, dict[str, Any]]] = {}

    def choose(self, channel: str, template: str, locale: str | None) -> tuple[str, dict[str, Any]]:
        key = (channel, template, locale)
        found = self._choices.get(key)
        if found is None:
            found = self._choices[key] = super().choose(channel, template, locale)
        return found


def freeze_startup_objects() -> None:
    """Move everything alive now (modules, journeys, compiled templates, schemas) out of the
    garbage collector's reach; a worker calls it once its runtime is built.

    Those objects live as long as the process, yet every full collection walks them all again: in a
    cohort chunk, which allocates tens of thousands of short-lived objects, that was 10-20 % of the
    time.  Collected first, so no garbage is frozen with them.
    """
    gc.collect()
    gc.freeze()


def build_runtime(
    settings: Settings,
    client: Any,
    *,
    journeys: dict[str, Journey] | None = None,
    dispatcher: Dispatcher | None = None,
    clock: Clock = utc_now,
    pm: Any = None,
    channels: dict[str, Any] | None = None,
    timer_lease: float | None = None,
    send_lease: float | None = None,
    timer_shards: int | None = None,
    in_process: bool = False,
    action_kinds: dict[str, ActionKind] | None = None,
    check_endpoints: bool = True,
) -> Runtime:
    """Wire a runtime from settings and a Redis client (``decode_responses=True``).

    The leases are the settings' unless given.  ``in_process`` says the client is a Redis private
    to this process (the embedded mode's), the one case where a missing ``LOYALOOP_SECRET_KEY`` is
    allowed (see :func:`orchestrator.runtime.delivery.signing_secret`), and every send runs in turn
    (the demo and the simulator run on a simulated clock: no machine's speed may order their sends);
    nor is it needed when no
    journey builds an unsubscribe link (no marketing journey sends).  The runtime owns its drain
    slots and sender threads: whoever builds it calls ``Runtime.close`` when done.

    ``action_kinds``: what ``action`` steps call (default: the plugins' kinds; ``loyaloop demo``
    points them at its own loopback receiver, ``simulate`` records instead of calling).  Every
    endpoint the journeys call must be configured before work starts (ConfigurationError naming
    journey, step and variable), unless ``check_endpoints`` is False: a process that never runs a
    step (the console ending runs, ``serve``) needs no endpoint's URL.
    """
    timer_lease = settings.timer_lease if timer_lease is None else timer_lease
    send_lease = settings.send_lease if send_lease is None else send_lease
    if journeys is None:
        journeys = load_journeys(
            settings.journeys_dir, settings.templates_dir, vouchers=settings.vouchers, endpoints=settings.endpoints
        )
    secret = _secret(settings, journeys, in_process=in_process)
    manager = pm if pm is not None else plugins.get_plugin_manager()
    if channels is None:
        channels = plugins.build_channels(settings, manager)
    store = Store(client)
    renderer = CachedRenderer(
        settings.templates_dir,
        default_locale=settings.default_locale,
        filters=plugins.template_filters(manager),
        globals=plugins.template_globals(manager),
    )
    delivery = Delivery(
        settings=settings,
        store=store,
        channels=channels,
        gate=Gate(client, settings),
        renderer=renderer,
        pm=manager,
        ratelimiter=RateLimiter.for_channels(client, settings) if settings.rate_limits else None,
        secret=secret,
        claim_lease=send_lease,
        action_kinds=plugins.build_action_kinds(settings, manager) if action_kinds is None else action_kinds,
    )
    delivery.observer = Journal(client)  # each customer's story, for the console and `loyaloop explain`
    if check_endpoints and delivery.caller is not None:
        delivery.caller.check(journeys)  # an endpoint a journey calls must be configured before work starts
    return Runtime(
        settings=settings,
        store=store,
        timers=Timers(client, lease=timer_lease, shards=timer_shards),
        journeys=JourneyBook(store, journeys),
        delivery=delivery,
        dispatcher=dispatcher,
        clock=clock,
        send_lease=send_lease,
        slots=DrainSlots(settings.batch_slots),
        senders=sender_pool(),
        serial_sends=in_process,
        referrals=Referrals(
            store,
            EventQueue(client),
            window=settings.referral_window,
            nudge=dispatcher.drain if dispatcher is not None else None,
        ),
    )


def _secret(settings: Settings, journeys: dict[str, Journey], *, in_process: bool) -> bytes:
    """The signing secret; with none set and no marketing journey sending, nothing is signed (b"")."""
    key = settings.secret_key
    if not in_process and (key is None or not key.get_secret_value()) and not marketing_senders(journeys):
        return b""
    return signing_secret(settings, in_process=in_process)


class SchedulerParts(Protocol):
    """What a scheduler uses: the store, the timers, the live journeys, the settings and a clock.
    A worker's Runtime has them all; ``loyaloop scheduler`` builds only these (:func:`build_timekeeping`)."""

    @property
    def store(self) -> Store: ...
    @property
    def timers(self) -> Timers: ...
    @property
    def journeys(self) -> JourneyBook: ...
    @property
    def settings(self) -> Settings: ...
    @property
    def clock(self) -> Clock: ...


@dataclass(frozen=True)
class Timekeeping:
    """The scheduler's parts without channels, renderer or gate (no provider SDK is touched)."""

    store: Store
    timers: Timers
    journeys: JourneyBook
    settings: Settings
    clock: Clock = utc_now


def build_timekeeping(
    settings: Settings,
    client: redis.Redis,
    *,
    timer_lease: float | None = None,
    journeys: dict[str, Journey] | None = None,
) -> Timekeeping:
    """The scheduler's parts on a Redis client (``decode_responses=True``); the timer lease is the
    settings' unless given, the journeys those checked at start-up unless None (then loaded)."""
    store = Store(client)
    if journeys is None:
        journeys = load_journeys(
            settings.journeys_dir, settings.templates_dir, vouchers=settings.vouchers, endpoints=settings.endpoints
        )
    return Timekeeping(
        store=store,
        timers=Timers(client, lease=settings.timer_lease if timer_lease is None else timer_lease),
        journeys=JourneyBook(store, journeys),
        settings=settings,
    )
