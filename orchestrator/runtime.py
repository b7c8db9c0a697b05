"""The imperative shell around the engine: carries a Decision out against Redis and the channels.

The engine decides, this module does.  Every transition is stored with a compare-and-set on the
enrollment revision *before* its effects are released (a send enqueued, a profile updated), so a
Dramatiq message delivered twice or a timer fired twice finds a newer revision and does nothing.
Timers are written *before* the compare-and-set: a timer for a revision that never got stored is
stale and harmless, while the reverse order could lose a wake-up in a crash.

An enrollment in ``sending`` always has a timer (the send lease): if the worker delivering it dies,
the timer fires after the lease and the send is re-driven — without waiting for Dramatiq to notice
the dead worker.  The same timer is moved to the end of quiet hours, a freed cap slot, or a retry
after a transient failure.

This module is the public face: decisions are carried out in ``runtime_decisions``, entries in
``runtime_entry``, events in ``runtime_events``, timers and sends in ``runtime_timers``, and
batches of events (with their entries and sends) in ``runtime_batch``.
"""

from __future__ import annotations

from orchestrator.journey_book import JourneyBook
from orchestrator.run_ids import DATE_RUN_PREFIX, UPDATE_RUN_PREFIX, date_timer_run, home_zone, run_id_for
from orchestrator.runtime_batch import BatchRunner
from orchestrator.runtime_decisions import CAS_ATTEMPTS, SEND_LEASE, Clock, Dispatcher, pending_updates, utc_now


class Runtime(BatchRunner):
    """Everything a worker needs to run journeys; one per process, shared by its threads."""


# The wiring lives in its own module; importing it from here keeps ``runtime.build_runtime`` working.
from orchestrator.wiring import CachedRenderer, build_runtime  # noqa: E402

__all__ = [
    "CAS_ATTEMPTS",
    "DATE_RUN_PREFIX",
    "SEND_LEASE",
    "UPDATE_RUN_PREFIX",
    "CachedRenderer",
    "Clock",
    "Dispatcher",
    "JourneyBook",
    "Runtime",
    "build_runtime",
    "date_timer_run",
    "home_zone",
    "pending_updates",
    "run_id_for",
    "utc_now",
]
