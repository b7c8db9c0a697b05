"""The imperative shell around the engine: carries a Decision out against Redis and the channels.

The engine decides, this package does.  Every transition is stored with a compare-and-set on the
enrollment revision *before* its effects are released (a send enqueued, a profile updated), so a
Dramatiq message delivered twice or a timer fired twice finds a newer revision and does nothing.
Timers are written *before* the compare-and-set: a timer for a revision that never got stored is
stale and harmless, while the reverse order could lose a wake-up in a crash.

An enrollment in ``sending`` always has a timer (the send lease): if the worker delivering it dies,
the timer fires after the lease and the send is re-driven — without waiting for Dramatiq to notice
the dead worker.  The same timer is moved to the end of quiet hours, a freed cap slot, or a retry
after a transient failure.

Decisions are carried out in :mod:`orchestrator.runtime.transitions`, entries in
:mod:`~orchestrator.runtime.entries`, events in :mod:`~orchestrator.runtime.events`, timers and
sends in :mod:`~orchestrator.runtime.timer_firing`, and batches of events (with their entries and
sends) in :mod:`~orchestrator.runtime.batch`.  :mod:`orchestrator.runtime.compose` builds one.
"""

from __future__ import annotations

from orchestrator.runtime.batch import BatchRunner


class Runtime(BatchRunner):
    """Everything a worker needs to run journeys; one per process, shared by its threads."""

    def close(self) -> None:
        """Stop the sender threads, waiting for sends under way; call it once the workers using
        this runtime have stopped (a later slow send would be refused).  The Redis client is the
        caller's to close.  Closing twice is harmless."""
        self.senders.shutdown(wait=True)
