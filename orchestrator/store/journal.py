"""A customer's journal: the part of their story no other key keeps.

Redis already holds a customer's live runs, finished runs (for ``FINISHED_TTL``), frequency-cap
send log, provider feedback and consent history.  What it did not keep is *why* a send was held
(the cap rule, the quiet hours and until when, the missing consent), when a run entered and
ended, and what support staff did.  The journal is a stream per customer (``keys.journal``, in the
customer's hash tag) of short entries with those facts and nothing else: no address, no message
body.  It is trimmed to about :data:`MAX_ENTRIES` and expires :data:`~orchestrator.store.scripts.FINISHED_TTL`
after its last entry, like the finished runs it points at.

An entry is a flat mapping of text: ``at`` (ISO-8601 UTC), ``kind`` (``entered``,
``entered_holdout``, ``ended``, ``held``, ``holdout``, ``staff``) and any of ``journey``, ``run``,
``step``, ``channel``, ``outcome``, ``reason``, ``rule``, ``until``, ``user``, ``action``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import redis

from orchestrator.store import keys
from orchestrator.store.scripts import FINISHED_TTL

#: Entries kept per customer (approximately: Redis trims whole stream nodes, ``MAXLEN ~``).
MAX_ENTRIES = 500
#: The fields an entry may carry; anything else is dropped before it is written.
FIELDS = ("at", "kind", "journey", "run", "step", "channel", "outcome", "reason", "rule", "until", "user", "action")


def append(pipe: Any, customer_id: str, entries: Iterable[Mapping[str, str]]) -> int:
    """Queue ``entries`` on ``pipe`` (one XADD each, then one EXPIRE); returns how many."""
    name = keys.journal(customer_id)
    count = 0
    for entry in entries:
        fields = {field: str(entry[field]) for field in FIELDS if entry.get(field)}
        pipe.xadd(name, fields, maxlen=MAX_ENTRIES, approximate=True)
        count += 1
    if count:
        pipe.expire(name, FINISHED_TTL)
    return count


def write(client: redis.Redis, customer_id: str, entries: Iterable[Mapping[str, str]]) -> None:
    """Append ``entries`` in one round trip."""
    pipe = client.pipeline(transaction=False)
    if append(pipe, customer_id, entries):
        pipe.execute()


def read(client: redis.Redis, customer_id: str, count: int = MAX_ENTRIES) -> list[dict[str, str]]:
    """The newest ``count`` entries, oldest first."""
    found: Any = client.xrevrange(keys.journal(customer_id), count=count)
    return [{_text(k): _text(v) for k, v in fields.items()} for _id, fields in reversed(found)]


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value
