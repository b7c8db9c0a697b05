"""How long to wait before trying a failed send again.

Full jitter (a uniform draw between 0 and the capped exponential) spreads the retries of a large
cohort that failed together, so a provider's brief outage does not come back as a synchronized
thundering herd.  A provider's own ``Retry-After`` is a floor: we never come back earlier than it
asked, but jitter is still added on top so the herd stays spread.
"""

from __future__ import annotations

import random

#: The first retry waits up to this many seconds; each further attempt doubles the ceiling.
BASE_DELAY = 1.0
#: No computed delay exceeds this (a provider's Retry-After may, up to MAX_RETRY_AFTER).
MAX_DELAY = 300.0
#: A Retry-After beyond this is treated as this: a misconfigured header must not park a send for days.
MAX_RETRY_AFTER = 3600.0


def backoff_delay(
    attempt: int,
    retry_after: float | None = None,
    *,
    base: float = BASE_DELAY,
    cap: float = MAX_DELAY,
    rng: random.Random | None = None,
) -> float:
    """Seconds to wait before retry number ``attempt`` (1 for the first retry).

    Without ``retry_after`` the result is uniform in ``[0, min(cap, base * 2 ** (attempt - 1))]``.
    With it, the result is ``retry_after`` (clamped to ``MAX_RETRY_AFTER``) plus that same jitter,
    scaled down to at most a quarter of ``retry_after`` so honouring the provider stays close to
    what it asked for.
    """
    if attempt < 1:
        raise ValueError(f"attempt must be 1 or more, got {attempt!r}")
    draw = (rng or random).random()
    ceiling = min(cap, base * 2.0 ** min(attempt - 1, 62))
    jitter = draw * ceiling
    if retry_after is None or retry_after <= 0:
        return jitter
    floor = min(float(retry_after), MAX_RETRY_AFTER)
    return floor + min(jitter, floor / 4)
