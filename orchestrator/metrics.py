"""Prometheus metrics of the runtime: events in, enrollments, sends by channel and outcome, timer lag.

Created lazily, on first use: Dramatiq's Prometheus middleware (turned on in the worker with
``LOYALOOP_METRICS=1``) sets ``PROMETHEUS_MULTIPROC_DIR`` only after the worker process boots, and
``prometheus_client`` decides between in-process and multi-process values when a metric is made.
Labels never carry a customer id, an address or anything personal: only journey, step, channel,
outcome.  The same figures are also counted in Redis (``loyaloop status``), which every process
shares.
"""

from __future__ import annotations

import threading
from typing import Any

_lock = threading.Lock()
_metrics: dict[str, Any] = {}


def _build() -> dict[str, Any]:
    from prometheus_client import Counter, Histogram

    return {
        "events": Counter("loyaloop_events_total", "Events handled by workers.", ["outcome"]),
        "enrollments": Counter("loyaloop_enrollments_total", "Customers entering a journey.", ["journey"]),
        "sends": Counter(
            "loyaloop_sends_total", "Send decisions by channel and outcome.", ["journey", "channel", "outcome"]
        ),
        "retries": Counter("loyaloop_send_retries_total", "Transient send failures retried later.", ["channel"]),
        "timers": Counter("loyaloop_timers_fired_total", "Durable timers claimed by schedulers."),
        "not_replicated": Counter(
            "loyaloop_intake_not_replicated_total",
            "Intake calls told 'not confirmed' (resend with the same ids): too few replicas confirmed "
            "their writes within LOYALOOP_INTAKE_REPLICA_TIMEOUT_MS.",
            ["door"],
        ),
        "lag": Histogram(
            "loyaloop_timer_lag_seconds",
            "How late a timer was claimed after its due time.",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 60, 300),
        ),
    }


def get(name: str) -> Any:
    """The metric called ``name`` (see :func:`_build`), created on first use."""
    if not _metrics:
        with _lock:
            if not _metrics:
                _metrics.update(_build())
    return _metrics[name]


def event(outcome: str, amount: int = 1) -> None:
    get("events").labels(outcome).inc(amount)


def entered(journey_id: str, count: int = 1) -> None:
    if count:
        get("enrollments").labels(journey_id).inc(count)


def send(journey_id: str, channel: str, outcome: str) -> None:
    get("sends").labels(journey_id, channel, outcome).inc()


def retry(channel: str) -> None:
    get("retries").labels(channel).inc()


def not_replicated(door: str) -> None:
    """An intake call (``door``: ``track``, ``batch``, ``import``) whose writes too few replicas confirmed."""
    get("not_replicated").labels(door).inc()


def timers_fired(count: int, lag_seconds: float) -> None:
    if count:
        get("timers").inc(count)
        get("lag").observe(max(0.0, lag_seconds))
