"""The capacity model's arithmetic and the CPU meters it reads (docs/scaling.md)."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from tests.benchmarks import capacity
from tests.benchmarks.capacity import Assumptions, Costs
from tests.benchmarks.cpu_meters import group_cpu, own_cpu, process_cpu

#: 86.4 M events a day is a mean of 1,000 events/s: round figures to check by hand.
DAILY = 86_400_000


def test_a_core_does_a_million_microseconds_a_second_at_full_load() -> None:
    assert capacity.per_core(250) == pytest.approx(4_000)
    assert capacity.per_core(250, 0.7) == pytest.approx(2_800)


def test_each_primary_adds_its_share_of_the_cluster_cost() -> None:
    """300 µs of Redis CPU per event in all: each primary at 70 % adds 0.7e6 / 300 events/s."""
    cluster = Costs(400, 200, redis_per_event=300, redis_per_entrant=150, primaries=3, busiest_share=0.4)
    assert capacity.per_primary(cluster, 0.7) == pytest.approx(2_333.3, rel=1e-4)
    assert capacity.per_primary(cluster, 0.7, per_entrant=True) == pytest.approx(4_666.7, rel=1e-4)


def test_the_plan_takes_the_peak_and_cohorts_and_leaves_headroom() -> None:
    """Peak 10x a 1,000/s mean = 10,000 events/s and 5,000 entrants/s: 1.25 worker cores and
    0.6 of a Redis core busy, so 2 worker processes (at most 70 % each) and one Redis."""
    plan = capacity.plan(DAILY, Costs(100, 50, 50, 20), Assumptions(peak_to_mean=10, entrants_per_event=0.5))
    assert plan.peak_events == pytest.approx(10_000) and plan.peak_entrants == pytest.approx(5_000)
    assert plan.worker_cores == pytest.approx(1.25)
    assert (plan.workers, plan.primaries) == (2, 1)


def test_a_cluster_is_chosen_only_when_one_primary_is_not_enough_and_at_its_own_cost() -> None:
    single = Costs(100, 50, redis_per_event=60, redis_per_entrant=20)  # 0.7 core at the peak: one Redis
    cluster = Costs(120, 60, redis_per_event=90, redis_per_entrant=40, primaries=3, busiest_share=0.4)
    small = capacity.choose(DAILY, single, cluster)
    assert small.single and small.primaries == 1 and small.worker_cores == pytest.approx(1.25)
    big = capacity.choose(2 * DAILY, single, cluster)
    # 20,000 x 90 + 10,000 x 40 µs = 2.2 cores, the busiest primary 1.2x its even share: 2.64 / 0.7
    assert not big.single and big.primaries == 4
    assert big.worker_cores == pytest.approx(3.0)  # 20,000 x 120 + 10,000 x 60 µs
    queue = capacity.plan(DAILY, Costs(1, 1, 1, 1, queue_per_event=20, queue_per_entrant=10))
    assert queue.queue_cores == pytest.approx(0.25)


def test_the_meters_read_cpu_time_not_wall_time() -> None:
    """A sleeping second costs no CPU; a spinning process group's CPU is read from /proc."""
    before = own_cpu()
    time.sleep(0.3)
    assert own_cpu() - before < 0.1
    # It spins until it has used 0.3 s of CPU (read in 10 ms ticks), however long the shared cores take to give it that.
    spin = "import os, time\nwhile time.process_time() < 0.3: pass\nos.pause()"
    spinner = subprocess.Popen([sys.executable, "-c", spin], start_new_session=True)
    try:
        deadline = time.monotonic() + 30
        while process_cpu(spinner.pid) < 0.28 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert 0.28 <= process_cpu(spinner.pid) < 0.6  # its CPU, whatever the wall time it took
        assert group_cpu(spinner.pid) == pytest.approx(process_cpu(spinner.pid), abs=0.05)  # ns vs ticks
        assert group_cpu(os.getpgid(0)) < own_cpu() + 60  # our own group: not the spinner's
    finally:
        spinner.kill()
        spinner.wait()
