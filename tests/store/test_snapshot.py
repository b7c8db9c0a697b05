"""A database saved with ``snapshot.dump`` comes back key for key, type for type, with its TTLs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from orchestrator.errors import InputError
from orchestrator.store import snapshot
from orchestrator.workers.embedded import in_process_redis


def test_every_kind_of_key_round_trips(redis_client: redis.Redis, tmp_path: Path) -> None:
    source = in_process_redis()
    source.set("lp:string", "v")
    source.hset("lp:hash", mapping={"a": "1", "b": "2"})
    source.rpush("lp:list", "x", "y", "x")
    source.sadd("lp:set", "p", "q")
    source.zadd("lp:zset", {"m1": 1.5, "m2": 1700000000000})
    source.xadd("lp:stream", {"channel": "email", "granted": "0"}, id="1-1")
    source.xadd("lp:stream", {"channel": "sms", "granted": "1"}, id="2-0")
    source.set("lp:expiring", "soon", px=600_000)
    source.set("other:key", "not ours")
    path = tmp_path / "state.json"
    assert snapshot.dump(source, path, {"now": "2026-01-05T06:00:00+00:00"}) == 7
    assert snapshot.meta(path) == {"now": "2026-01-05T06:00:00+00:00"}
    redis_client.set("lp:list", "replaced")
    assert snapshot.load(redis_client, path) == 7
    assert redis_client.get("lp:string") == "v"
    assert redis_client.hgetall("lp:hash") == {"a": "1", "b": "2"}
    assert redis_client.lrange("lp:list", 0, -1) == ["x", "y", "x"]
    assert redis_client.smembers("lp:set") == {"p", "q"}
    assert redis_client.zrange("lp:zset", 0, -1, withscores=True) == [("m1", 1.5), ("m2", 1700000000000.0)]
    assert redis_client.xrange("lp:stream") == [
        ("1-1", {"channel": "email", "granted": "0"}),
        ("2-0", {"channel": "sms", "granted": "1"}),
    ]
    assert 0 < redis_client.pttl("lp:expiring") <= 600_000
    assert redis_client.get("other:key") is None


def test_a_file_that_is_not_a_snapshot_is_refused(redis_client: redis.Redis, tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"hello": 1}', encoding="utf-8")
    with pytest.raises(InputError, match="not a Loyaloop state file"):
        snapshot.load(redis_client, path)
    with pytest.raises(InputError, match="cannot read"):
        snapshot.load(redis_client, tmp_path / "missing.json")


def test_a_dump_of_many_chunks_is_one_json_document_in_key_order(
    redis_client: redis.Redis, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Written chunk by chunk, the file is still the one document ``json.dumps`` would write for the
    whole list: every key once, sorted, with its value and time to live."""
    monkeypatch.setattr(snapshot, "DUMP_CHUNK", 3)
    for index in range(10):
        redis_client.hset(f"lp:c:{{c{index}}}:profile", mapping={"n": str(index)})
    redis_client.sadd("lp:set", "b", "a")
    redis_client.set("lp:gone-soon", "x", px=60_000)
    path = tmp_path / "state.json"
    assert snapshot.dump(redis_client, path, {"now": "t"}) == 12
    text = path.read_text(encoding="utf-8")
    document = json.loads(text)
    assert text == json.dumps(document)
    assert [item["key"] for item in document["keys"]] == sorted(item["key"] for item in document["keys"])
    assert {"key": "lp:set", "type": "set", "value": ["a", "b"], "pttl": 0} in document["keys"]
    assert next(item for item in document["keys"] if item["key"] == "lp:gone-soon")["pttl"] > 0
    assert document["meta"] == {"now": "t"}
