"""Drill: SIGKILL the worker three times while customers run a journey of three messages and a ledger call.

Run: ``python -m tests.drills.sigkill_worker [--customers 10000] [--kills 3] [--processes 1] [--threads 8]``

A real ``dramatiq orchestrator.worker`` process group (master and worker processes) is killed with
SIGKILL — no graceful shutdown, prefetched messages and claimed sends orphaned — when the outbox
reaches evenly spaced fractions of the expected messages, and a fresh worker is started at once
(what a process supervisor does).  A scheduler process fires the journey's waits throughout.

Passes when every customer received exactly the journey's three messages (checked from the outbox:
zero lost, zero duplicated), the journey's action step credited every customer in the loyalty
ledger exactly once (the reference receiver, on loopback in this process, checks each signature and
applies each ``Idempotency-Key`` once; a repeat after a kill is counted and absorbed) and the second
message shows the ledger's answer (see ``tests/drills/ledger.py``), every enrollment finished, no
worker error was logged, and the exact
measurement record (``Store.version_figures``) says what happened, no more and no less: one entrant
per customer, each step reached once per customer, each send counted once on its channel, and the
one order every customer places during the kills counted once with its value.  It also
reports how often the channel was called again for a send already written (a re-drive after a
kill, absorbed by the idempotency key), and how long recovery took.
"""

from __future__ import annotations

import argparse
import signal
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from orchestrator.cli.reference_receiver import Receiver
from orchestrator.runtime.event_queue import EventQueue
from orchestrator.store import Store, keys
from orchestrator.store.connect import open_redis
from orchestrator.store.run_codec import split_runs
from orchestrator.workers.client import connect
from tests.drills import ledger, support


@dataclass
class KillRecord:
    at_messages: int
    resumed_after: float  # seconds from SIGKILL until the outbox grew again (new worker up and sending)


@dataclass
class SigkillResult:
    customers: int
    expected: int
    received: int
    lost: int
    duplicated: int
    unexpected: int
    kills: list[KillRecord] = field(default_factory=list)
    tail_after_last_kill: float = 0.0  # seconds from the last SIGKILL until the last message landed
    total_seconds: float = 0.0
    channel_calls: int = 0  # the runtime's per-step "sent" counters (best effort, see report())
    live_left: int = 0
    machine: str = ""
    timed_out: str = ""
    orphaned: dict[str, int] = field(default_factory=dict)  # messages left in dead workers' Dramatiq ack sets
    #: Figures of the measurement record that differ from the ground truth: name → (found, expected).
    miscounted: dict[str, tuple[float, float]] = field(default_factory=dict)
    #: Seconds the tracked events took to be all handled after the last run finished (a killed
    #: drainer's shard waits for its lease to run out and the scheduler's re-drive).
    events_waited: float = 0.0
    #: What the ledger endpoint received, against one credit per customer.
    actions: ledger.LedgerTally | None = None

    @property
    def exact(self) -> bool:
        clean = self.lost == 0 and self.duplicated == 0 and self.unexpected == 0 and self.live_left == 0
        return clean and not self.miscounted and self.actions is not None and self.actions.exact


#: The order every drill customer places right after entering (a KPI event: it ends no run).
ORDER_TOTAL = 12.5


def miscounted_figures(client: Any, customers: int) -> dict[str, tuple[float, float]]:
    """The measurement record against the ground truth of the drill: each customer entered once,
    reached every step once, got each send once on its channel, and placed one order."""
    (figures,) = Store(client).version_figures("drill")
    arms = figures.arm_totals()
    steps = figures.step_totals()
    found: dict[str, float] = {f"arm {arm} entrants": counts.entrants for arm, counts in arms.items()}
    treated = arms.get("treated")
    found["orders"] = treated.orders if treated else 0
    found["order revenue"] = treated.order_revenue_sum if treated else 0
    for step_id in ledger.STEPS:
        found[f"{step_id} reached"] = steps.get(step_id, {}).get("reached", 0)
    for step_id, channel in (*support.THREE_STEP_SENDS, ("credit", "action")):
        found[f"{step_id} sent"] = steps.get(step_id, {}).get("sent", 0)
        found[f"{step_id} sent:{channel}"] = steps.get(step_id, {}).get(f"sent:{channel}", 0)
    expected: dict[str, float] = {name: customers for name in found}
    expected["order revenue"] = customers * ORDER_TOTAL
    expected.update({f"arm {arm} entrants": 0 for arm in arms if arm != "treated"})
    return {name: (found[name], expected[name]) for name in found if found[name] != expected[name]}


def live_enrollments(client: Any, ids: list[str]) -> int:
    pipe = client.pipeline(transaction=False)
    for customer_id in ids:
        pipe.hgetall(keys.runs(customer_id))
    return sum(len(split_runs(fields)[0]) for fields in pipe.execute())


def orphaned_messages(client: Any) -> dict[str, int]:
    """Messages still held in Dramatiq's per-worker ack sets (prefetched by a worker that died)."""
    found: dict[str, int] = {}
    for key in client.scan_iter(match="loyaloop:__acks__.*", count=1000):
        queue = key.rsplit(".", 1)[-1]
        found[queue] = found.get(queue, 0) + int(client.scard(key))
    return {queue: count for queue, count in found.items() if count}


def run(
    customers: int = 10_000,
    *,
    kills: int = 3,
    processes: int = 1,
    threads: int = 8,
    wait: str = "2s",
    heartbeat_ms: int = 5000,
    module: str = "orchestrator.worker",
    send_lease: float | None = None,
    timer_lease: float = 30.0,
    maintenance_chance: int | None = None,
    timeout: float = 600.0,
    log: Any = print,
    state_url: str | None = None,
    broker_url: str | None = None,
) -> SigkillResult:
    """``state_url``/``broker_url``: the state elsewhere (``redis+cluster://…``) and the queue on a
    given broker (``redis://…`` or ``amqp://…``); by default both on a Redis started here.
    The ledger's reference receiver runs in this process on loopback for the whole drill."""
    with ledger.receiver() as receiver:
        if state_url is not None:
            options = {"kills": kills, "processes": processes, "threads": threads, "wait": wait, "log": log,
                       "heartbeat_ms": heartbeat_ms, "module": module, "send_lease": send_lease, "timeout": timeout,
                       "timer_lease": timer_lease, "maintenance_chance": maintenance_chance}  # fmt: skip
            return _run_elsewhere(state_url, broker_url, customers, receiver, **options)
        redis = support.start_redis()
        env = {"LOYALOOP_HEARTBEAT_MS": str(heartbeat_ms), "LOYALOOP_TIMER_LEASE": str(timer_lease)}
        env.update(ledger.environment(receiver))
        if send_lease is not None:
            env["LOYALOOP_SEND_LEASE"] = str(send_lease)
        if maintenance_chance is not None:
            env["LOYALOOP_MAINTENANCE_CHANCE"] = str(maintenance_chance)
        space = _workspace(redis.url, wait, env)
        try:
            return _drill(space, redis.client, lambda: support.api(redis.url), receiver, customers, kills, processes,
                          threads, module, timer_lease, timeout, log)  # fmt: skip
        finally:
            redis.close()


def _workspace(state_url: str, wait: str, env: dict[str, str]) -> support.Workspace:
    """The drill's folder: its journey (three messages and the ledger call), templates and settings."""
    space = support.make_workspace(state_url, {"drill": ledger.journey(wait)}, settings=ledger.SETTINGS, extra_env=env)
    ledger.add_templates(space)
    return space


def _run_elsewhere(
    state_url: str, broker_url: str | None, customers: int, receiver: Receiver, **options: Any
) -> SigkillResult:
    """:func:`run` with the state at ``state_url`` and the queue at ``broker_url``."""
    env = {"LOYALOOP_HEARTBEAT_MS": str(options["heartbeat_ms"]), "LOYALOOP_TIMER_LEASE": str(options["timer_lease"])}
    env.update(ledger.environment(receiver))
    if options["send_lease"] is not None:
        env["LOYALOOP_SEND_LEASE"] = str(options["send_lease"])
    if options["maintenance_chance"] is not None:
        env["LOYALOOP_MAINTENANCE_CHANCE"] = str(options["maintenance_chance"])
    if broker_url:
        env["LOYALOOP_BROKER_URL"] = broker_url
    space = _workspace(state_url, options["wait"], env)
    settings = space.settings()
    client = open_redis(settings)

    def producer() -> Any:
        return connect(settings)  # its own client: the drill closes it once the events are in

    try:
        return _drill(space, client, producer, receiver, customers, options["kills"], options["processes"],
                      options["threads"], options["module"], options["timer_lease"], options["timeout"],
                      options["log"])  # fmt: skip
    finally:
        client.close()


def _drill(
    space: Any,
    client: Any,
    producer: Any,
    receiver: Receiver,
    customers: int,
    kills: int,
    processes: int,
    threads: int,
    module: str,
    timer_lease: float,
    timeout: float,
    log: Any,
) -> SigkillResult:
    """The drill proper on a workspace whose state ``client`` reads and whose ``producer()`` tracks."""
    ids = support.customer_ids(customers)
    support.seed_profiles(client, ids)
    expected = customers * len(support.THREE_STEP_SENDS)
    events = EventQueue(client)
    worker = support.start_worker(space, processes=processes, threads=threads, module=module)
    scheduler = support.start_scheduler(space, lease=timer_lease)
    machine = support.describe_machine(client if hasattr(client, "connection_pool") else None)
    result = SigkillResult(customers, expected, 0, 0, 0, 0, machine=machine)
    workers = [worker]
    try:
        lp = producer()
        started = time.monotonic()
        for customer_id in ids:
            lp.track(customer_id, "drill.started", {}, event_id=f"start-{customer_id}")
            lp.track(customer_id, "order.placed", {"total": ORDER_TOTAL}, event_id=f"order-{customer_id}")
        support.close_api(lp)
        log(f"queued {customers:,} events in {time.monotonic() - started:.1f} s")
        marks = [expected * (index + 1) // (kills + 1) for index in range(kills)]
        last_kill = 0.0
        for mark in marks:
            support.wait_for(support.outbox_reaches(space.outbox, mark), timeout, what=f"{mark} messages")
            at = support.count_lines(space.outbox)
            workers[-1].kill(signal.SIGKILL)
            killed = last_kill = time.monotonic()
            workers.append(
                support.start_worker(
                    space, processes=processes, threads=threads, module=module, tag=f"worker{len(workers)}"
                )
            )
            resumed = support.wait_for(
                support.outbox_reaches(space.outbox, at + 1), timeout, interval=0.05, what="sending resumed"
            )
            result.kills.append(KillRecord(at, resumed))
            log(f"SIGKILL at {at:,}/{expected:,} messages; sending resumed {time.monotonic() - killed:.2f} s later")
        try:
            support.wait_for(lambda: support.count_lines(space.outbox) >= expected, timeout, what="every message")
            result.tail_after_last_kill = time.monotonic() - last_kill if last_kill else 0.0
            support.wait_for(lambda: live_enrollments(client, ids) == 0, timeout, interval=0.5, what="finished")
            # Every run can finish while a killed drainer's shard still holds later events (its lease
            # runs out, then the scheduler re-drives it): the orders are only all counted once every
            # tracked event was handled.
            waited = time.monotonic()
            support.wait_for(lambda: events.depth() == 0, timeout, interval=0.2, what="every tracked event handled")
            result.events_waited = time.monotonic() - waited
            time.sleep(1.0)  # anything still re-driving would land now
        except TimeoutError as exc:
            result.timed_out = str(exc)
            result.orphaned = orphaned_messages(client)
        result.total_seconds = time.monotonic() - started
        counted = support.tally(space.outbox, ids, support.THREE_STEP_SENDS)
        result.received = counted.received
        result.lost, result.duplicated, result.unexpected = (
            len(counted.lost),
            len(counted.duplicated),
            len(counted.unexpected),
        )
        stats = client.hgetall(keys.journey_stats("drill"))
        result.channel_calls = sum(int(v) for k, v in stats.items() if ":sent:" in k)
        result.live_left = live_enrollments(client, ids)
        result.miscounted = miscounted_figures(client, customers)
        result.actions = ledger.check(receiver, space.outbox, ids)
        if result.timed_out and not result.orphaned:
            result.orphaned = orphaned_messages(client)
        return result
    finally:
        for proc in workers:
            proc.stop()
        scheduler.stop()


def report(result: SigkillResult) -> str:
    lines = [
        f"SIGKILL drill — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {result.machine}",
        f"  customers {result.customers:,}, messages expected {result.expected:,}, in the outbox {result.received:,}",
        f"  lost {result.lost}, duplicated {result.duplicated}, unexpected {result.unexpected}, "
        f"enrollments left live {result.live_left}",
        f"  per-step 'sent' counters {result.channel_calls:,} (not transactional with the send: "
        "a kill between the two moves the count, never the outbox)",
    ]
    for index, kill in enumerate(result.kills, start=1):
        lines.append(
            f"  kill {index}: at {kill.at_messages:,} messages, sending resumed after {kill.resumed_after:.2f} s"
        )
    tail, total = result.tail_after_last_kill, result.total_seconds
    lines.append(f"  last message {tail:.1f} s after the last kill; whole run {total:.1f} s")
    lines.append(f"  every tracked event handled {result.events_waited:.1f} s after the last run finished")
    if result.actions is not None:
        lines.append(f"  {result.actions.summary()}")
    if result.miscounted:
        lines.append(f"  measurement record off (found, expected): {result.miscounted}")
    else:
        lines.append("  measurement record exact: entrants, steps reached, sends per channel, orders and revenue")
    if result.timed_out:
        lines.append(f"  {result.timed_out}; messages still in Dramatiq ack sets: {result.orphaned or 'none'}")
    passed = "  PASS: every customer got exactly the journey's messages and one ledger credit"
    lines.append(passed if result.exact else "  FAIL")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=3)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--wait", default="2s", help="the journey's two waits")
    parser.add_argument("--heartbeat-ms", type=int, default=5000, help="LOYALOOP_HEARTBEAT_MS for the workers")
    parser.add_argument("--send-lease", type=float, default=None, help="LOYALOOP_SEND_LEASE (default: production 60 s)")
    parser.add_argument("--timer-lease", type=float, default=30.0, help="LOYALOOP_TIMER_LEASE")
    parser.add_argument("--maintenance-chance", type=int, default=None, help="LOYALOOP_MAINTENANCE_CHANCE per million")
    args = parser.parse_args()
    result = run(
        args.customers,
        kills=args.kills,
        processes=args.processes,
        threads=args.threads,
        wait=args.wait,
        heartbeat_ms=args.heartbeat_ms,
        send_lease=args.send_lease,
        timer_lease=args.timer_lease,
        maintenance_chance=args.maintenance_chance,
    )
    print(report(result))
    assert result.exact, "messages were lost or duplicated"


if __name__ == "__main__":
    main()
