"""The real redis-server fixture answers, so every Redis test runs against the real thing."""

import redis


def test_redis_fixture_is_a_real_server(redis_client: redis.Redis) -> None:
    info = redis_client.info("server")
    assert info["redis_version"]
    assert redis_client.set("k", "v") and redis_client.get("k") == "v"
