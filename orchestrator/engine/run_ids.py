"""Run ids: deterministic ones for entries, and the pseudo run ids date-trigger and update timers carry."""

from __future__ import annotations

import hashlib

from orchestrator.engine.localtime import resolve_zone
from orchestrator.language.profile import Profile

DATE_RUN_PREFIX = "@date:"
#: The pseudo run id of the timer that re-drives a revision's profile updates after a crash.
UPDATE_RUN_PREFIX = "@update:"


def date_timer_run(journey_id: str, year: int) -> str:
    """The pseudo run id a date-trigger timer carries (``@date:<journey>:<year>``)."""
    return f"{DATE_RUN_PREFIX}{journey_id}:{year}"


def home_zone(profile: Profile, default: str) -> str:
    """The zone a customer's local-time broadcast fires in (the default when theirs is unknown)."""
    return str(resolve_zone(profile.timezone, default).key)


def run_id_for(journey_id: str, customer_id: str, key: str) -> str:
    """A deterministic run id: the same event (or fire time) entering twice is the same run.

    The customer is part of it because run ids make idempotency keys, which must be unique
    across customers (the outbox and providers drop a repeated key).
    """
    digest = hashlib.sha256(f"{journey_id}\0{customer_id}\0{key}".encode()).hexdigest()[:16]
    return f"{journey_id}-{digest}"
