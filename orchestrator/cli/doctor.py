"""``loyaloop doctor``: every start-up check plus the live state of a deployment, in one report.

Each check answers ``ok``, ``warn`` or ``fail`` with one line of detail that names the fix; the
command exits 1 when any check failed (warnings do not), and ``--json`` prints the same report for
monitoring.  Nothing here changes Redis: the stalled-shard check reads the shard lists and their
leases instead of running the scheduler's re-drive.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import click
import dramatiq
import redis
from pika.exceptions import AMQPError

from orchestrator.errors import ConfigurationError
from orchestrator.runtime.event_queue import EventQueue
from orchestrator.runtime.readiness import Readiness, check_startup, is_outbox
from orchestrator.runtime.unknown_events import unknown_events
from orchestrator.settings import Settings, load_settings
from orchestrator.store import Store, keys
from orchestrator.store.connect import open_redis
from orchestrator.store.vouchers import Vouchers
from orchestrator.workers.actors import QUEUES
from orchestrator.workers.broker import build_broker
from orchestrator.workers.queue_broker import dead_letter_counts, is_amqp, queue_name, queue_url

Status = Literal["ok", "warn", "fail"]
#: Clock skew between this machine and Redis: above WARN a timer fires visibly early or late,
#: above FAIL caps windows, quiet hours and leases disagree between processes.
SKEW_WARN, SKEW_FAIL = 0.5, 5.0
#: Seconds to wait for Redis before calling it unreachable.
TIMEOUT = 3.0


@dataclass(frozen=True)
class Check:
    """One line of the report."""

    name: str
    status: Status
    detail: str


def redis_checks(client: redis.Redis, now: Callable[[], float] = time.time) -> list[Check]:
    """Reachable, version, persistence (AOF), and clock skew against Redis' ``TIME``."""
    try:
        server = client.info("server")
        persistence = client.info("persistence")
        seconds, micros = client.time()
    except redis.RedisError as exc:
        return [
            Check("redis", "fail", f"cannot reach Redis at REDIS_URL ({type(exc).__name__}: {exc}); is it running?")
        ]
    found = [Check("redis", "ok", f"reachable, version {server.get('redis_version', '?')}")]
    if int(persistence.get("aof_enabled", 0)):
        found.append(Check("persistence", "ok", "AOF on"))
    else:
        found.append(
            Check(
                "persistence",
                "warn",
                "AOF is off: a Redis restart loses every write since the last snapshot (runs, timers, "
                "consent); run `CONFIG SET appendonly yes` and set `appendonly yes` in redis.conf",
            )
        )
    skew = now() - (int(seconds) + int(micros) / 1e6)
    detail = f"this machine is {abs(skew):.3f}s {'ahead of' if skew >= 0 else 'behind'} Redis"
    if abs(skew) >= SKEW_FAIL:
        found.append(Check("clock", "fail", f"{detail}; sync both clocks with NTP (timers and caps use them)"))
    elif abs(skew) >= SKEW_WARN:
        found.append(Check("clock", "warn", f"{detail}; sync both clocks with NTP"))
    else:
        found.append(Check("clock", "ok", detail))
    return found


def broker_check(settings: Settings) -> tuple[Check, dict[str, int]]:
    """The queue broker answers (its own connection, as workers make it: a Redis or RabbitMQ
    broker probes itself when built), and its dead letters per queue."""
    queues = tuple(queue_name(queue, settings.namespace) for queue in QUEUES)
    try:
        broker = build_broker(settings)
        try:
            dead = dead_letter_counts(broker, queues)
        finally:
            broker.close()
    except ConfigurationError as exc:  # the broker's own start-up probe (Redis or RabbitMQ)
        return Check("broker", "fail", str(exc)), {}
    except (redis.RedisError, OSError, AMQPError, dramatiq.errors.ConnectionError) as exc:
        return Check("broker", "fail", f"the queue broker cannot be read ({type(exc).__name__}: {exc})"), {}
    kind = "RabbitMQ" if is_amqp(queue_url(settings)) else "Redis"
    return Check("broker", "ok", f"{kind} queue broker reachable (queues {', '.join(queues)})"), dead


def dead_letter_check(dead: dict[str, int]) -> Check:
    total = sum(dead.values())
    shown = ", ".join(f"{queue}={count}" for queue, count in dead.items() if count)
    if total:
        return Check("dead letters", "warn", f"{total} Dramatiq messages gave up after their retries ({shown})")
    return Check("dead letters", "ok", "none")


def startup_checks(found: Readiness) -> list[Check]:
    """The start-up check of the workers, as report lines: journeys, settings, channels."""
    checks = [Check("config", "fail", problem) for problem in found.problems]
    checks += [Check("config", "warn", warning) for warning in found.warnings]
    if found.journeys:
        checks.append(Check("journeys", "ok", f"{len(found.journeys)} valid: {found.loaded()}"))
    for name, channel in sorted(found.channels.items()):
        kind = "outbox file" if is_outbox(channel) else type(channel).__name__
        checks.append(Check(f"channel {name}", "ok", kind))
    return checks


def queue_checks(client: redis.Redis, store: Store, settings: Settings) -> list[Check]:
    """Pending and stalled event shards, events kept aside, unknown events."""
    try:
        return _queue_checks(client, store, settings)
    except redis.RedisError as exc:
        return [Check("queues", "fail", f"cannot read the queues ({type(exc).__name__})")]


def _queue_checks(client: redis.Redis, store: Store, settings: Settings) -> list[Check]:
    checks: list[Check] = []
    events = EventQueue(client)
    depths = events.depths()
    pipe = client.pipeline(transaction=False)
    for shard in range(events.shards):
        pipe.exists(keys.event_drain(shard))
    leased = pipe.execute()
    stalled = [shard for shard in range(events.shards) if depths[shard] and not leased[shard]]
    pending = sum(depths)
    if stalled:
        checks.append(
            Check(
                "event shards",
                "warn",
                f"{pending} events pending; shards {stalled} hold events nobody drains: "
                "start `loyaloop scheduler` (it re-drives them) and `loyaloop worker`",
            )
        )
    else:
        checks.append(Check("event shards", "ok", f"{pending} events pending, none stalled"))
    kept = events.dead()
    checks.append(
        Check(
            "kept aside",
            "warn",
            f"{kept} events kept aside in {keys.dead_events()} (see `loyaloop status` for why)",
        )
        if kept
        else Check("kept aside", "ok", "none")
    )
    unknown = unknown_events(store, settings.journeys_dir)
    checks.append(
        Check("unknown events", "warn", "no journey listens to " + ", ".join(map(str, unknown)))
        if unknown
        else Check("unknown events", "ok", "none")
    )
    return checks


def run_checks(settings: Settings, now: Callable[[], float] = time.time) -> list[Check]:
    """Every check, in the order a person fixes things: configuration, Redis, broker, queues."""
    checks = startup_checks(check_startup(settings))
    if not settings.redis_url:
        return checks
    client = open_redis(settings, check=False, socket_timeout=TIMEOUT, socket_connect_timeout=TIMEOUT)
    try:
        live = redis_checks(client, now)
        checks += live
        if live[0].status == "ok":
            broker, dead = broker_check(settings)
            checks.append(broker)
            if broker.status == "ok":
                checks.append(dead_letter_check(dead))
            checks.append(replica_check(client, settings))
            checks += queue_checks(client, Store(client), settings)
            checks += voucher_checks(client, settings)
    finally:
        client.close()
    return checks


def masters_replicas(client: Any) -> dict[str, int]:
    """Online replicas of every master of the state store (``INFO replication``), by node: a
    replica still in its first sync is connected but confirms nothing to ``WAIT``."""
    if isinstance(client, redis.RedisCluster):
        found: dict[str, Any] = client.info("replication", target_nodes=redis.RedisCluster.PRIMARIES)
        if "role" in found:  # one primary: redis-py answers with its info alone
            found = {client.get_primaries()[0].name: found}  # type: ignore[no-untyped-call]
        return {name: _online(info) for name, info in sorted(found.items())}
    return {"the Redis": _online(client.info("replication"))}


def _online(info: dict[str, Any]) -> int:
    """``slave0``, ``slave1``… whose ``state`` is ``online``."""
    replicas = [value for name, value in info.items() if name.startswith("slave") and name[5:].isdigit()]
    return sum(1 for value in replicas if isinstance(value, dict) and value.get("state") == "online")


def replica_check(client: Any, settings: Settings) -> Check:
    """``LOYALOOP_INTAKE_REPLICAS`` against the replicas each master has now: asked for more than a
    master has, every intake call would wait out the timeout and be refused."""
    wanted = settings.intake_replicas
    try:
        masters = masters_replicas(client)
    except redis.RedisError as exc:
        return Check("intake replicas", "fail" if wanted else "warn", f"cannot read INFO replication ({exc})")
    fewest = min(masters.values(), default=0)
    if not wanted:
        have = f"every master has {fewest} or more replica(s)" if fewest else "a master has no replica"
        return Check(
            "intake replicas",
            "ok",
            f"off (LOYALOOP_INTAKE_REPLICAS=0; {have}): an event accepted and not yet replicated is lost "
            "if its master fails; see docs/runtime.md, replicas at the intake",
        )
    short = [f"{name} has {count}" for name, count in masters.items() if count < wanted]
    if short:
        return Check(
            "intake replicas",
            "fail",
            f"LOYALOOP_INTAKE_REPLICAS={wanted} but {', '.join(short)} online replica(s): every intake call "
            f"there waits {settings.intake_replica_timeout_ms} ms and is refused; start the replicas or lower "
            "LOYALOOP_INTAKE_REPLICAS",
        )
    return Check(
        "intake replicas",
        "ok",
        f"{wanted} asked, within {settings.intake_replica_timeout_ms} ms; every master has {fewest} or more online",
    )


def voucher_checks(client: Any, settings: Settings) -> list[Check]:
    """Each loaded voucher pool: fine, running low (below its ``low_stock``), or empty (a send that
    needs a code then fails, or goes out with the pool's fallback code)."""
    checks: list[Check] = []
    for name, spec in sorted(settings.vouchers.items()):
        if spec.kind != "pool":
            continue
        stock = Vouchers(client).stock(name)
        load = f"load codes with `loyaloop vouchers load {name} FILE`"
        if stock.free == 0:
            fallback = f"the fallback code {spec.fallback_code!r} goes out" if spec.fallback_code else "sends fail"
            detail = f"empty ({stock.given} handed out): {fallback}; {load}"
            checks.append(Check(f"vouchers {name}", "fail" if not spec.fallback_code else "warn", detail))
        elif stock.free < spec.low_stock:
            detail = f"{stock.free} codes left (below {spec.low_stock}); {load}"
            checks.append(Check(f"vouchers {name}", "warn", detail))
        else:
            checks.append(Check(f"vouchers {name}", "ok", f"{stock.free} codes left, {stock.given} handed out"))
    return checks


MARK = {"ok": "ok  ", "warn": "WARN", "fail": "FAIL"}


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON (for monitoring).")
def doctor(as_json: bool) -> None:
    """Check a deployment: settings, journeys, channels, Redis (version, AOF, clock skew), the
    broker, the replicas the intake waits for, pending and stalled event shards, dead letters,
    events kept aside and unknown events.

    Exit status 0 when nothing failed (warnings allowed), 1 otherwise.

    \b
    Example:
      REDIS_URL=redis://127.0.0.1:6379/0 loyaloop doctor --json
    """
    checks = run_checks(load_settings())
    failed = any(check.status == "fail" for check in checks)
    if as_json:
        click.echo(json.dumps({"ok": not failed, "checks": [asdict(check) for check in checks]}, indent=2))
    else:
        for check in checks:
            click.echo(f"{MARK[check.status]}  {check.name}: {check.detail}")
        warned = sum(check.status == "warn" for check in checks)
        failures = sum(check.status == "fail" for check in checks)
        click.echo(f"{failures} failed, {warned} warning(s), {len(checks) - failures - warned} ok")
    sys.exit(1 if failed else 0)
