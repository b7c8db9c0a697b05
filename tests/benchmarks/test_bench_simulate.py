"""The simulation benchmark's figures: what its processor-time split counts, and that it runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from tests.benchmarks import bench_simulate
from tests.benchmarks.store_meter import store_meter


def test_meter_counts_each_round_trip_once_and_puts_the_client_back(redis_client: redis.Redis) -> None:
    """A command is one round trip and a pipeline of three is one; leaving restores redis-py."""
    original = redis.Redis.execute_command
    with store_meter() as meter:
        redis_client.set("meter:a", "1")
        redis_client.get("meter:a")
        pipe = redis_client.pipeline(transaction=False)
        pipe.incr("meter:b").incr("meter:b").get("meter:b")
        assert pipe.execute() == [1, 2, "2"]
    assert meter.calls == 3
    assert 0 < meter.cpu <= meter.wall
    assert redis.Redis.execute_command is original
    redis_client.get("meter:a")
    assert meter.calls == 3


def test_bench_prints_the_split_and_writes_the_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A small history: the round trips' share is part of the process's processor time, the
    private server's time and memory are read, and ``--out`` holds every message it counted."""
    out = tmp_path / "out"
    bench_simulate.main(["--customers", "30", "--orders", "80", "--months", "3", "--out", str(out)])
    figures = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert figures["messages"] > 0
    assert figures["round_trips"] > figures["stops"]
    assert 0 < figures["round_trip_cpu_seconds"] <= figures["cpu_seconds"]
    assert figures["rest_cpu_seconds"] == pytest.approx(
        figures["cpu_seconds"] - figures["round_trip_cpu_seconds"], abs=0.11
    )
    assert "redis_cpu_seconds" in figures and figures["redis_peak_mb"] > 0
    lines = (out / "messages.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == figures["messages"]
