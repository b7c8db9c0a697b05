"""The capacity model: from measured CPU per event and per cohort entrant to cores and primaries.

Pure arithmetic on figures measured by ``tests.benchmarks.bench_cluster`` (docs/scaling.md shows
one run's table).  Every assumption is a field of :class:`Assumptions`, printed with the table, so
a shop can put in its own peak ratio and cohort sizes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

SECONDS_A_DAY = 86_400


@dataclass(frozen=True)
class Costs:
    """CPU microseconds one unit of work costs each part, measured in one run."""

    worker_per_event: float
    worker_per_entrant: float
    redis_per_event: float  # state Redis, all primaries together (and the queue on one Redis)
    redis_per_entrant: float
    primaries: int = 1  # how many primaries shared the state in the run
    busiest_share: float = 1.0  # the busiest primary's share of the state CPU in the run
    queue_per_event: float = 0.0  # the queue's own broker when it is apart (Redis or RabbitMQ)
    queue_per_entrant: float = 0.0


@dataclass(frozen=True)
class Assumptions:
    """What the plan assumes about the traffic; each is a choice, stated beside the table."""

    peak_to_mean: float = 10.0  # the busiest second carries this many times the day's mean rate
    entrants_per_event: float = 0.5  # cohort entrants a day per event a day (2 events per customer, 1 cohort)
    target_load: float = 0.70  # a core (worker or Redis primary) is planned to run at most this busy


def per_core(us_per_unit: float, load: float = 1.0) -> float:
    """Units a second one core does at ``load`` when each costs ``us_per_unit`` µs of its CPU."""
    return load * 1e6 / us_per_unit if us_per_unit > 0 else math.inf


def per_primary(costs: Costs, load: float, *, per_entrant: bool = False) -> float:
    """Events (or entrants) a second each primary adds at ``load``: every event costs the cluster
    ``redis_per_event`` µs in all, wherever its slots live, so a primary's 70 % of a core carries
    0.7e6 / that many, with the work split evenly (:func:`plan` adds the measured unevenness)."""
    return per_core(costs.redis_per_entrant if per_entrant else costs.redis_per_event, load)


@dataclass(frozen=True)
class Plan:
    events_a_day: float
    peak_events: float  # events a second at the peak
    peak_entrants: float  # cohort entrants a second at the peak
    worker_cores: float  # worker cores busy at the peak, unrounded
    workers: int  # worker processes (one core each: the GIL) at the target load
    primaries: int  # Redis primaries at the target load
    queue_cores: float  # the queue broker's cores busy at the peak (0 when it is the state Redis)


def plan(events_a_day: float, costs: Costs, assumptions: Assumptions = Assumptions()) -> Plan:
    """Worker processes and Redis primaries for ``events_a_day`` at the assumed peak.

    The cluster's cost per event is taken as measured on ``costs.primaries`` primaries, and the
    busiest primary's share as measured too, scaled to the planned count: on a cluster every
    customer is already its own slot, so more primaries split the same calls further."""
    peak_events = events_a_day / SECONDS_A_DAY * assumptions.peak_to_mean
    peak_entrants = peak_events * assumptions.entrants_per_event
    worker_us = peak_events * costs.worker_per_event + peak_entrants * costs.worker_per_entrant
    redis_us = peak_events * costs.redis_per_event + peak_entrants * costs.redis_per_entrant
    worker_cores = worker_us / 1e6
    workers = max(1, math.ceil(worker_cores / assumptions.target_load))
    unevenness = costs.busiest_share * costs.primaries if costs.primaries > 1 else 1.0
    primaries = max(1, math.ceil(redis_us / 1e6 * unevenness / assumptions.target_load))
    queue_us = peak_events * costs.queue_per_event + peak_entrants * costs.queue_per_entrant
    return Plan(events_a_day, peak_events, peak_entrants, worker_cores, workers, primaries, queue_us / 1e6)


@dataclass(frozen=True)
class Choice(Plan):
    single: bool = True  # one Redis is enough; else the plan is the cluster's


def choose(events_a_day: float, single: Costs, cluster: Costs, assumptions: Assumptions = Assumptions()) -> Choice:
    """One Redis while one primary carries the peak, else a cluster at the cluster's own cost per
    event (higher: one script call per customer, see docs/scaling.md)."""
    alone = plan(events_a_day, single, assumptions)
    if alone.primaries == 1:
        return Choice(**vars(alone), single=True)
    return Choice(**vars(plan(events_a_day, cluster, assumptions)), single=False)
