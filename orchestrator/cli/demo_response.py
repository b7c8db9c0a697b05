"""How the demo's synthetic customers answer messages, so ``loyaloop report`` has an effect to find.

Some journeys *work* in this world: a customer who got one of their messages buys (or opens the app)
more often than one who did not.  Others do nothing at all: the customer does what the story had
them do anyway.  Held-out customers get no message, so they never react, and the difference between
the arms is the journey's true lift — known here, to be found back by the statistics.

Reactions are drawn from a hash of (journey, customer), not from the story's random generator: the
worker threads deliver in no fixed order, and the demo must tell the same story every run.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.engine.bucketing import bucket

#: Journey → (the event a customer who got its message may do, the chance in percent).  Journeys
#: not listed (birthday, VIP, referral) have no effect at all in the demo's world.
RESPONSES: dict[str, tuple[str, int]] = {
    "welcome": ("order.placed", 40),
    "replenishment": ("order.placed", 45),
    "winback": ("order.placed", 30),
    "activation": ("app.opened", 50),
}


@dataclass(order=True)
class Happening:
    """One thing a synthetic customer does at a simulated moment (from the story, or a reaction)."""

    at: datetime
    order: int
    kind: str = field(compare=False)
    customer_id: str = field(compare=False)
    payload: dict[str, Any] = field(compare=False, default_factory=dict)


@dataclass
class Responder:
    """Reads the outbox as it grows and plans each treated customer's reaction, once per journey."""

    outbox: Path
    offset: int = 0
    reacted: set[tuple[str, str]] = field(default_factory=set)
    counter: int = 10**9

    def reactions(self, now: datetime, order: Callable[[str, int], dict[str, Any]]) -> list[Happening]:
        """New messages since the last call, each turned into a reaction when the journey works."""
        if not self.outbox.exists():
            return []
        with self.outbox.open(encoding="utf-8") as handle:
            handle.seek(self.offset)
            lines = handle.readlines()
            self.offset = handle.tell()
        found: list[Happening] = []
        # Worker threads append in no fixed order: sorted by key, the reactions of one step of the
        # clock get their numbers (the order id, hence the product and its replenishment) the same
        # way every run.
        messages = sorted((json.loads(line) for line in lines if line.strip()), key=_message_order)
        for message in messages:
            journey_id, customer_id = message.get("journey_id", ""), message.get("customer_id", "")
            response = RESPONSES.get(journey_id)
            if response is None or (journey_id, customer_id) in self.reacted:
                continue
            self.reacted.add((journey_id, customer_id))
            kind, percent = response
            if bucket("demo-response", journey_id, customer_id) >= percent:
                continue
            hours = 1 + bucket("demo-delay", journey_id, customer_id, size=72)
            self.counter += 1
            payload = order(customer_id, self.counter) if kind == "order.placed" else {"platform": "ios"}
            found.append(Happening(now + timedelta(hours=hours), self.counter, kind, customer_id, payload))
        return found


def merge(story: list[Happening], position: int, reactions: list[Happening]) -> None:
    """Insert reactions into the sorted story after ``position`` (what already happened stays put)."""
    for reaction in reactions:
        bisect.insort(story, reaction, lo=position)


def _message_order(message: dict[str, Any]) -> tuple[str, ...]:
    fields = ("sent_at", "journey_id", "customer_id", "idempotency_key")
    return tuple(str(message.get(name, "")) for name in fields)
