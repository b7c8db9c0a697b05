"""Voucher pools on a real Redis: codes loaded once, handed out once, the same code on a retry."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import redis

from orchestrator.store.vouchers import Stock, Vouchers


def test_loading_skips_codes_loaded_before_free_or_handed_out(redis_client: redis.Redis) -> None:
    pool = Vouchers(redis_client)
    assert pool.load("birthday", ["A-1", "A-2", "A-3"]) == 3
    assert pool.hand_out("birthday", "run-1:gift") == "A-1"
    assert pool.load("birthday", ["A-1", "A-3", "A-4"]) == 1  # A-1 was given, A-3 is free: only A-4 is new
    assert pool.stock("birthday") == Stock(free=3, given=1)


def test_a_key_keeps_its_code_and_an_empty_pool_gives_none(redis_client: redis.Redis) -> None:
    pool = Vouchers(redis_client)
    pool.load("birthday", ["A-1", "A-2"])
    assert pool.hand_out("birthday", "run-1:gift") == "A-1"
    assert pool.hand_out("birthday", "run-1:gift") == "A-1"  # a retry or another worker: the same code
    assert pool.hand_out("birthday", "run-2:gift") == "A-2"
    assert pool.hand_out("birthday", "run-3:gift") is None
    assert pool.given("birthday", "run-2:gift") == "A-2" and pool.given("birthday", "run-3:gift") is None
    assert pool.hand_out("birthday", "run-1:gift") == "A-1"  # still theirs with the pool empty


def test_no_code_goes_to_two_runs_when_many_workers_ask_at_once(redis_client: redis.Redis) -> None:
    """600 runs ask for one of 500 codes from 8 threads, each twice: 500 runs get one code each,
    every code once, and 100 runs get none."""
    pool = Vouchers(redis_client)
    pool.load("birthday", [f"C-{n:04d}" for n in range(500)])
    keys = [f"run-{n}:gift" for n in range(600)] * 2
    with ThreadPoolExecutor(8) as workers:
        answers = list(workers.map(lambda key: (key, pool.hand_out("birthday", key)), keys))
    by_key: dict[str, set[str | None]] = {}
    for key, code in answers:
        by_key.setdefault(key, set()).add(code)
    given = [codes for codes in by_key.values() if codes != {None}]
    assert len(given) == 500 and all(len(codes) == 1 for codes in given)
    assert len({next(iter(codes)) for codes in given}) == 500
    assert pool.stock("birthday") == Stock(free=0, given=500)
