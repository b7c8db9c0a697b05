"""The queue's broker, wherever ``LOYALOOP_BROKER_URL`` says it lives: one Redis or RabbitMQ.

* ``redis://…`` — Dramatiq's ``RedisBroker`` (:class:`ClosingRedisBroker`).  It runs multi-key
  scripts over keys without a hash tag, so it needs a single Redis: the state's own when that is a
  single Redis (the default), a small separate one when the state is a cluster.
* ``amqp://…`` — Dramatiq's own ``RabbitmqBroker``, publishing with confirms.  RabbitMQ hands a
  consumer's unacknowledged messages back the moment its connection drops (a SIGKILLed worker's
  socket is closed by the kernel), so the heartbeats and dead-worker sweep the Redis broker needs
  have nothing to do there: :func:`needs_sweep` says so.

The namespace (``LOYALOOP_NAMESPACE``) names the queues, so two deployments can share one broker: the
default ``lp`` keeps the names Loyaloop always used (Dramatiq namespace ``loyaloop``, queues
``loyaloop-events`` …), any other ``ns`` gives ``loyaloop-ns`` and ``loyaloop-ns-events`` ….
Reachability is checked when the broker is built, so a wrong URL is one line at start-up.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import dramatiq
import pika
import redis
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker

from orchestrator.errors import ConfigurationError
from orchestrator.settings import Settings, without_password
from orchestrator.workers.closing_broker import ClosingRedisBroker

DEFAULT_NAMESPACE = "lp"
#: Seconds a start-up probe waits for the broker.
PROBE_TIMEOUT = 5.0


def dramatiq_namespace(namespace: str) -> str:
    """Dramatiq's key namespace on a Redis broker."""
    return "loyaloop" if namespace == DEFAULT_NAMESPACE else f"loyaloop-{namespace}"


def queue_name(base: str, namespace: str) -> str:
    """``loyaloop-events`` in the default namespace, ``loyaloop-<ns>-events`` in another."""
    if namespace == DEFAULT_NAMESPACE:
        return base
    return base.replace("loyaloop-", f"loyaloop-{namespace}-", 1)


def is_amqp(url: str) -> bool:
    return urlsplit(url).scheme.lower() in ("amqp", "amqps")


def queue_url(settings: Settings) -> str:
    """Where the queue lives (see :attr:`Settings.queue_url`); refused when nowhere."""
    url = settings.queue_url
    if not url:
        raise ConfigurationError(
            "no queue: set LOYALOOP_BROKER_URL=redis://host:port/0 or amqp://user:password@host:5672/%2F"
        )
    return url


def build_queue_broker(settings: Settings, *, sweeper: bool = False, probe: bool = True) -> dramatiq.Broker:
    """The broker on the settings' queue URL; ``sweeper`` builds the Redis broker whose every command
    does maintenance (see :func:`orchestrator.workers.broker.dead_worker_sweeper`)."""
    url = queue_url(settings)
    if is_amqp(url):
        if probe:
            probe_rabbitmq(url)
        return RabbitmqBroker(url=url, confirm_delivery=True, middleware=[] if sweeper else None)
    options: dict[str, Any] = {
        "url": url,
        "namespace": dramatiq_namespace(settings.namespace),
        "heartbeat_timeout": settings.heartbeat_ms,
        "maintenance_chance": 1_000_000 if sweeper else settings.maintenance_chance,
    }
    if sweeper:
        options["middleware"] = []
    broker = ClosingRedisBroker(**options)
    if probe:
        probe_redis(broker, url)
    return broker


def needs_sweep(broker: dramatiq.Broker) -> bool:
    """Only a Redis broker keeps a dead worker's messages until someone sweeps."""
    return isinstance(broker, RedisBroker)


def probe_redis(broker: RedisBroker, url: str) -> None:
    try:
        broker.client.ping()
    except redis.RedisError as exc:
        raise ConfigurationError(
            f"cannot reach the queue's Redis at {without_password(url)!r} ({type(exc).__name__}); is it running? "
            "(LOYALOOP_BROKER_URL, or REDIS_URL when that is unset)"
        ) from None


def probe_rabbitmq(url: str) -> None:
    parameters = pika.URLParameters(url)
    parameters.socket_timeout = parameters.blocked_connection_timeout = PROBE_TIMEOUT
    parameters.connection_attempts = 1
    try:
        pika.BlockingConnection(parameters).close()
    except pika.exceptions.AMQPError as exc:
        raise ConfigurationError(
            f"cannot reach RabbitMQ at LOYALOOP_BROKER_URL={without_password(url)!r} ({type(exc).__name__}); "
            "is it running, and are the user, password and vhost right?"
        ) from None


def queue_depths(broker: dramatiq.Broker, queues: Iterable[str]) -> dict[str, int]:
    """Messages on each queue (delayed ones included), through the broker's own API: on Redis its
    ``qsize`` command (waiting and in flight), on RabbitMQ the queues' ready counts (what a consumer
    holds unacknowledged is not counted there)."""
    depths: dict[str, int] = {}
    for queue in queues:
        if isinstance(broker, RabbitmqBroker):
            ready, delayed, _dead = broker.get_queue_message_counts(queue)
            depths[queue] = ready + delayed
        elif isinstance(broker, RedisBroker):
            depths[queue] = int(broker.do_qsize(queue))
        else:
            depths[queue] = sum(len(broker.queues.get(name, ())) for name in (queue, f"{queue}.DQ"))
    return depths


def dead_letter_counts(broker: dramatiq.Broker, queues: Iterable[str]) -> dict[str, int]:
    """Messages that gave up after their retries, per queue, where the broker keeps them: a Redis
    broker in its namespace's ``<queue>.XQ`` sorted set, RabbitMQ in the ``<queue>.XQ`` queue, the
    embedded broker in memory."""
    counts: dict[str, int] = {}
    for queue in queues:
        if isinstance(broker, RabbitmqBroker):
            _ready, _delayed, dead = broker.get_queue_message_counts(queue)
            counts[queue] = dead
        elif isinstance(broker, RedisBroker):
            counts[queue] = int(broker.client.zcard(f"{broker.namespace}:{queue}.XQ"))
        else:
            counts[queue] = len(getattr(broker, "dead_letters_by_queue", {}).get(queue, ()))
    return counts
