"""A customer's journal: the part of their story no other key keeps.

Redis already holds a customer's live runs (with their entry time), finished runs (for
``FINISHED_TTL``), frequency-cap send log, provider feedback and consent history.  What it did not
keep is *why* a send was held (the cap rule, the quiet hours and until when, the missing consent),
which runs ended (a finished run's own hash cannot be found without its id), and what support
staff did.  The journal is a list per customer (``keys.journal``, in the customer's hash tag) of
compact JSON entries with those facts and nothing else: no address, no message body.  It keeps
the newest :data:`MAX_ENTRIES` and expires :data:`~orchestrator.store.scripts.FINISHED_TTL` after
its last entry, like the finished runs it points at.

A list, not a stream: a Redis stream allocates a whole node on its first entry (about 4.4 KB a
customer, measured), a short list about 350 bytes.  And entries into journeys are not written at
all (the runs themselves keep their entry time), so a customer who only entered a journey and
waits costs no journal: the ~400-byte budget of a waiting customer (issue 3) is untouched.

An entry is a flat mapping of text: ``at`` (ISO-8601 UTC), ``kind`` (``ended``, ``held``,
``holdout``, ``staff``) and any of ``journey``, ``run``, ``step``, ``channel``, ``outcome``,
``reason``, ``rule``, ``until``, ``user``, ``action``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

import redis

from orchestrator.store import keys
from orchestrator.store.scripts import FINISHED_TTL

#: Entries kept per customer (the oldest are dropped).
MAX_ENTRIES = 500
#: The fields an entry may carry; anything else is dropped before it is written.
FIELDS = ("at", "kind", "journey", "run", "step", "channel", "outcome", "reason", "rule", "until", "user", "action")


def append(pipe: Any, customer_id: str, entries: Iterable[Mapping[str, str]]) -> int:
    """Queue ``entries`` on ``pipe`` (one RPUSH, LTRIM and EXPIRE); returns how many."""
    name = keys.journal(customer_id)
    texts = [
        json.dumps({field: str(entry[field]) for field in FIELDS if entry.get(field)}, separators=(",", ":"))
        for entry in entries
    ]
    if texts:
        pipe.rpush(name, *texts)
        pipe.ltrim(name, -MAX_ENTRIES, -1)
        pipe.expire(name, FINISHED_TTL)
    return len(texts)


def write(client: redis.Redis, customer_id: str, entries: Iterable[Mapping[str, str]]) -> None:
    """Append ``entries`` in one round trip."""
    pipe = client.pipeline(transaction=False)
    if append(pipe, customer_id, entries):
        pipe.execute()


def read(client: redis.Redis, customer_id: str, count: int = MAX_ENTRIES) -> list[dict[str, str]]:
    """The newest ``count`` entries, oldest first."""
    found: Any = client.lrange(keys.journal(customer_id), -count, -1)
    return parse(found)


def parse(raw: Iterable[str | bytes]) -> list[dict[str, str]]:
    """Entries as LRANGE returns them; one that is not a JSON object of text is skipped."""
    entries: list[dict[str, str]] = []
    for text in raw:
        try:
            entry = json.loads(text)
        except ValueError:
            continue
        if isinstance(entry, dict):
            entries.append({str(k): str(v) for k, v in entry.items() if k in FIELDS})
    return entries
