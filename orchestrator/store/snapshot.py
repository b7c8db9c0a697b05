"""A whole Loyaloop database as one JSON file: how ``loyaloop demo``'s in-process state outlives it.

The demo runs on an in-process Redis that is gone when the command ends; ``loyaloop console``
wants to show what it did.  :func:`dump` writes every ``lp:`` key (strings, hashes, lists, sets,
sorted sets and streams, with their time to live) and :func:`load` puts them into another Redis,
so the console reads the demo's customers, runs, send logs and stats exactly as the workers left
them.  It is meant for demo-sized databases (a few thousand customers), not for backups: a real
deployment points the console at its Redis.
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


def dump(client: redis.Redis, path: Path, meta: dict[str, str] | None = None) -> int:
    """Write every Loyaloop key of ``client`` (decoding responses) to ``path``; returns how many.
    ``meta`` is kept beside the keys (the demo's simulated time, read back by :func:`meta`)."""
    items: list[dict[str, Any]] = []
    for key in sorted(client.scan_iter(match=f"{keys.PREFIX}:*", count=1000)):
        kind = client.type(key)
        value: Any
        if kind == "string":
            value = client.get(key)
        elif kind == "hash":
            value = client.hgetall(key)
        elif kind == "list":
            value = client.lrange(key, 0, -1)
        elif kind == "set":
            value = sorted(client.smembers(key))
        elif kind == "zset":
            pairs: list[tuple[str, float]] = client.zrange(key, 0, -1, withscores=True)  # type: ignore[assignment]
            value = [[member, score] for member, score in pairs]
        elif kind == "stream":
            value = [[entry_id, fields] for entry_id, fields in client.xrange(key)]  # type: ignore[union-attr]
        else:
            continue
        ttl = client.pttl(key)
        items.append({"key": key, "type": kind, "value": value, "pttl": ttl if isinstance(ttl, int) and ttl > 0 else 0})
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps({"format": FORMAT, "meta": meta or {}, "keys": items}), encoding="utf-8")
    os.replace(temporary, path)
    return len(items)


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
