"""A customer's recent events: the answer to "why didn't I get…" that only the events can give.

The journal (:mod:`orchestrator.store.journal`) tells what the runtime decided; this list tells
what the customer *sent*: the newest :data:`MAX_EVENTS` events the runtime applied to them, an
event no journey listens to (a typo'd name) and one refused as bad input included, each marked as
such.  One list per customer (``keys.event_log``, in the customer's hash tag, so it rides on the
pipeline that closes the customer's batch: no round trip of its own), trimmed to the newest
:data:`MAX_EVENTS` and expiring :data:`~orchestrator.store.scripts.SEEN_TTL` after the last event,
like the event ids kept against redelivery.

Memory is bounded per customer: at most :data:`MAX_EVENTS` entries of at most about 300 bytes
(names, ids and property values are cut, at most :data:`MAX_PROPERTIES` properties are kept).
Measured on Redis 7 (docs/console.md): a customer's first event costs about 230 bytes (no
properties, a short id) to 400 bytes (a UUID and three properties) with the key, a full list 1.4
to 3.2 KB, about what the event ids kept against redelivery (``keys.seen_events``) already cost.

An entry is compact JSON: ``t`` epoch milliseconds, ``n`` the event's name, ``i`` its id, ``k``
``unknown`` or ``refused`` (absent for an event a journey listens to), ``p`` the kept properties,
``r`` why it was refused.  Personal data may be in the properties: the runtime blanks anything that
looks like an address before it gets here (:mod:`orchestrator.runtime.event_record`), and nothing
here logs an entry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.store import keys
from orchestrator.store.scripts import SEEN_TTL

#: Events kept per customer (the oldest are dropped).
MAX_EVENTS = 20
#: Properties kept per event (the first by name), and the longest text kept of a name or value.
MAX_PROPERTIES = 3
MAX_TEXT = 40
#: The fields an entry may carry.
FIELDS = ("t", "n", "i", "k", "p", "r")


def entry_text(entry: Mapping[str, Any]) -> str:
    """One entry as stored: only :data:`FIELDS`, empty ones left out."""
    return json.dumps({name: entry[name] for name in FIELDS if entry.get(name)}, separators=(",", ":"))


def append(pipe: Any, customer_id: str, texts: list[str]) -> None:
    """Queue ``texts`` (from :func:`entry_text`) on ``pipe``: one RPUSH, LTRIM and EXPIRE."""
    if not texts:
        return
    name = keys.event_log(customer_id)
    pipe.rpush(name, *texts)
    pipe.ltrim(name, -MAX_EVENTS, -1)
    pipe.expire(name, SEEN_TTL)


def append_many(pipe: Any, entries: Iterable[tuple[str, str]]) -> None:
    """Queue (customer id, text) pairs, each customer's in one RPUSH, in the given order."""
    by_customer: dict[str, list[str]] = {}
    for customer_id, text in entries:
        by_customer.setdefault(customer_id, []).append(text)
    for customer_id, texts in by_customer.items():
        append(pipe, customer_id, texts)


def parse(raw: Iterable[str | bytes]) -> list[dict[str, Any]]:
    """Entries as LRANGE returns them (oldest first); one that does not decode is skipped."""
    entries: list[dict[str, Any]] = []
    for text in raw:
        try:
            entry = json.loads(text)
        except ValueError:
            continue
        if isinstance(entry, dict) and isinstance(entry.get("t"), int | float) and entry.get("n"):
            entries.append({name: entry[name] for name in FIELDS if name in entry})
    return entries
