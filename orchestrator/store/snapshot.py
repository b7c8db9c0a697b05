"""A whole Loyaloop database as one JSON file: how ``loyaloop demo``'s in-process state outlives it.

The demo runs on an in-process Redis that is gone when the command ends; ``loyaloop console``
wants to show what it did.  :func:`dump` writes every ``lp:`` key (strings, hashes, lists, sets,
sorted sets and streams, with their time to live) and :func:`load` puts them into another Redis,
so the console reads the demo's customers, runs, send logs and stats exactly as the workers left
them.  It is meant for the private databases of a demo or a simulation (the dump streams, so a
simulation of tens of thousands of customers fits), not for backups: a real deployment points the
console at its Redis.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import redis

from orchestrator.errors import InputError
from orchestrator.store import keys

FORMAT = "loyaloop-snapshot/1"


#: Keys read per round trip while dumping: the file is written chunk by chunk, so a simulation of
#: tens of thousands of customers does not hold its whole database in memory twice over.
DUMP_CHUNK = 500


def dump(client: redis.Redis, path: Path, meta: dict[str, str] | None = None) -> int:
    """Write every Loyaloop key of ``client`` (decoding responses) to ``path``; returns how many.
    ``meta`` is kept beside the keys (the demo's simulated time, read back by :func:`meta`).

    Two round trips per chunk of keys (their types and times to live, then their values), each
    chunk written as it is read: the same bytes as serialising the whole list at once."""
    names = sorted(client.scan_iter(match=f"{keys.PREFIX}:*", count=1000))
    count = 0
    temporary = path.with_name(path.name + ".tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(f'{{"format": {json.dumps(FORMAT)}, "meta": {json.dumps(meta or {})}, "keys": [')
        for start in range(0, len(names), DUMP_CHUNK):
            for item in _items(client, names[start : start + DUMP_CHUNK]):
                handle.write((", " if count else "") + json.dumps(item))
                count += 1
        handle.write("]}")
    os.replace(temporary, path)
    return count


def _items(client: redis.Redis, names: list[str]) -> list[dict[str, Any]]:
    """The keys' entries in the file, in ``names``' order; a key gone or of another type is left out."""
    pipe = client.pipeline(transaction=False)
    for key in names:
        pipe.type(key)
        pipe.pttl(key)
    described = pipe.execute()
    kinds: list[tuple[str, str, Any]] = []
    pipe = client.pipeline(transaction=False)
    for index, key in enumerate(names):
        kind, ttl = described[2 * index], described[2 * index + 1]
        read = _READERS.get(kind)
        if read is None:
            continue
        read(pipe, key)
        kinds.append((key, kind, ttl))
    values = pipe.execute() if kinds else []
    items: list[dict[str, Any]] = []
    for (key, kind, ttl), value in zip(kinds, values, strict=True):
        if kind == "set":
            value = sorted(value)
        elif kind == "zset":
            value = [[member, score] for member, score in value]
        elif kind == "stream":
            value = [[entry_id, fields] for entry_id, fields in value]
        items.append({"key": key, "type": kind, "value": value, "pttl": ttl if isinstance(ttl, int) and ttl > 0 else 0})
    return items


#: How each kind of key is read onto a pipeline.
_READERS: dict[str, Any] = {
    "string": lambda pipe, key: pipe.get(key),
    "hash": lambda pipe, key: pipe.hgetall(key),
    "list": lambda pipe, key: pipe.lrange(key, 0, -1),
    "set": lambda pipe, key: pipe.smembers(key),
    "zset": lambda pipe, key: pipe.zrange(key, 0, -1, withscores=True),
    "stream": lambda pipe, key: pipe.xrange(key),
}


def _read(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the state file {str(path)!r}: {exc}", field="state") from exc
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise InputError(
            f"{str(path)!r} is not a Loyaloop state file (expected format {FORMAT!r}); "
            "write one with `loyaloop demo --state FILE`",
            field="state",
        )
    return data


def meta(path: Path) -> dict[str, str]:
    """What :func:`dump` kept beside the keys (empty when nothing)."""
    found = _read(path).get("meta")
    return {str(k): str(v) for k, v in found.items()} if isinstance(found, dict) else {}


def load(client: redis.Redis, path: Path) -> int:
    """Put the keys of a :func:`dump` file into ``client`` (replacing keys of the same name)."""
    data = _read(path)
    pipe = client.pipeline(transaction=False)
    for item in data["keys"]:
        key, kind, value = item["key"], item["type"], item["value"]
        pipe.delete(key)
        if kind == "string":
            pipe.set(key, value)
        elif kind == "hash" and value:
            pipe.hset(key, mapping=value)
        elif kind == "list" and value:
            pipe.rpush(key, *value)
        elif kind == "set" and value:
            pipe.sadd(key, *value)
        elif kind == "zset" and value:
            pipe.zadd(key, {member: score for member, score in value})
        elif kind == "stream":
            for entry_id, fields in value:
                pipe.xadd(key, fields, id=entry_id)
        if item.get("pttl"):
            pipe.pexpire(key, int(item["pttl"]))
    pipe.execute()
    return len(data["keys"])
