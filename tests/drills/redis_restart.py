"""Drill: Redis (AOF, ``appendfsync everysec``) goes down in the middle of a run.

Run: ``python -m tests.drills.redis_restart [--customers 2000] [--mode crash|power-loss|both]``

``crash``: customers run a three-step journey (send, wait, send, wait, send) on real workers and a
scheduler.  When every first message is out and the customers sit in their first wait, the drill
counts waiting timers and live enrollments, SIGKILLs redis-server, starts it again on the same port
and directory (AOF replay) and counts again: both must be unchanged.  The run must then finish with
exactly three messages per customer.  A canary client INCRs a counter as fast as it can the whole
time and remembers the last value Redis acknowledged, which measures acknowledged writes lost.

``power-loss``: what ``everysec`` can lose is what the kernel had not written to disk when the
machine died — up to about a second of acknowledged writes.  A killed *process* loses nothing (its
writes are in the page cache), so the drill simulates the machine: it copies the AOF files while
the run is busy, lets the run go on for one more second, SIGKILLs redis-server, puts the copied
files back and restarts.  The canary shows how many acknowledged writes vanished.  The system's
answer is idempotent re-drive: producers replay what they sent in the last seconds with the same
event ids (the intake drops ids it has seen), workers and schedulers re-drive from the rolled-back
state, and every send carries its idempotency key so the outbox (and any provider honouring the key)
drops a message written in the lost second and sent again.  Then the outbox must still hold exactly
three messages per customer.
"""

from __future__ import annotations

import argparse
import shutil
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis as redis_lib

from orchestrator.store import keys
from orchestrator.store.timers import Timers
from tests.drills import support
from tests.drills.sigkill_worker import live_enrollments, orphaned_messages

CANARY = "drill:canary"


class Canary:
    """INCRs one key in a loop; remembers the last value Redis acknowledged."""

    def __init__(self, url: str) -> None:
        self.client = redis_lib.Redis.from_url(url, socket_timeout=1)
        self.acked = 0
        self.writes = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Canary:
        self.thread.start()
        return self

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.acked = int(self.client.incr(CANARY))
                self.writes += 1
            except redis_lib.RedisError:
                return  # the server went away: ``acked`` is the last acknowledged value
            time.sleep(0.0005)

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(timeout=5)
        self.client.close()


@dataclass
class RestartResult:
    mode: str
    customers: int
    timers_before: int = 0
    timers_after: int = 0
    live_before: int = 0
    live_after: int = 0
    canary_acked: int = 0
    canary_persisted: int = 0
    canary_rate: float = 0.0  # acknowledged canary writes per second before the outage
    downtime: float = 0.0
    resumed_after: float = 0.0  # seconds from restart until the outbox grew again
    replayed: int = 0
    received: int = 0
    lost: int = 0
    duplicated: int = 0
    finished_seconds: float = 0.0
    timed_out: str = ""
    orphaned: dict[str, int] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    machine: str = ""

    @property
    def writes_lost(self) -> int:
        """Acknowledged canary writes missing after the restart."""
        return max(0, self.canary_acked - self.canary_persisted)

    @property
    def writes_unacknowledged(self) -> int:
        """Canary writes applied whose reply never came back: the one INCR in flight when the server
        died can be in the AOF without its acknowledgement (never more: the canary waits for each)."""
        return max(0, self.canary_persisted - self.canary_acked)

    @property
    def exact(self) -> bool:
        survived = self.mode != "crash" or (
            self.timers_after == self.timers_before and self.live_after == self.live_before
        )
        return survived and not self.timed_out and self.lost == 0 and self.duplicated == 0


def _waiting(timers: Timers) -> int:
    return timers.pending() + timers.leased()


def run(
    customers: int = 2_000,
    *,
    mode: str = "crash",
    wait: str = "8s",
    module: str = "orchestrator.worker",
    lease: float | None = None,
    timeout: float = 600.0,
    log: Any = print,
) -> RestartResult:
    handle = support.start_redis(appendonly=True)
    server = handle.server
    env = {"LOYALOOP_HEARTBEAT_MS": "5000"}
    if lease is not None:
        env.update(LOYALOOP_SEND_LEASE=str(lease), LOYALOOP_TIMER_LEASE=str(lease))
    space = support.make_workspace(handle.url, {"drill": support.THREE_STEP.format(wait=wait)}, extra_env=env)
    ids = support.customer_ids(customers)
    support.seed_profiles(handle.client, ids)
    result = RestartResult(mode, customers, machine=support.describe_machine(handle.client))
    timers = Timers(handle.client)
    worker = support.start_worker(space, processes=1, threads=8, module=module)
    scheduler = support.start_scheduler(space, lease=lease or 30.0)
    canary = Canary(handle.url).start()
    started = time.monotonic()
    try:
        lp = support.api(handle.url)
        for customer_id in ids:
            lp.track(customer_id, "drill.started", {}, event_id=f"start-{customer_id}")
        support.close_api(lp)
        aof = Path(server.directory) / "appendonlydir"
        copy = Path(server.directory).with_name(Path(server.directory).name + "-copy")
        if mode == "crash":
            support.wait_for(support.outbox_reaches(space.outbox, customers), timeout, what="first messages out")
            result.timers_before, result.live_before = _waiting(timers), live_enrollments(handle.client, ids)
        else:
            support.wait_for(support.outbox_reaches(space.outbox, customers // 2), timeout, what="run busy")
            shutil.copytree(aof, copy)  # what the disk held...
            time.sleep(1.0)  # ...one everysec window before the machine died
        canary_started = time.monotonic() - started
        server.stop(kill=True)
        down = time.monotonic()
        canary.halt()
        result.canary_acked = canary.acked
        result.canary_rate = canary.writes / max(canary_started, 1e-6)
        if mode != "crash":
            shutil.rmtree(aof)
            shutil.copytree(copy, aof)
            shutil.rmtree(copy)
        time.sleep(1.0)
        server.start()
        result.downtime = time.monotonic() - down
        up = time.monotonic()
        at_kill = support.count_lines(space.outbox)  # (sends already past Redis finish writing while it is down)
        result.canary_persisted = int(handle.client.get(CANARY) or 0)
        log(
            f"redis-server back after {result.downtime:.2f} s; canary acknowledged {result.canary_acked:,}, "
            f"persisted {result.canary_persisted:,}"
        )
        if mode == "crash":
            result.timers_after, result.live_after = _waiting(timers), live_enrollments(handle.client, ids)
        else:
            # Idempotent re-drive: the producer replays its events with the same ids.
            lp = support.api(handle.url)
            for customer_id in ids:
                lp.track(customer_id, "drill.started", {}, event_id=f"start-{customer_id}")
                result.replayed += 1
            support.close_api(lp)
        expected = customers * len(support.THREE_STEP_SENDS)
        try:
            result.resumed_after = support.wait_for(
                support.outbox_reaches(space.outbox, at_kill + 1), timeout, interval=0.05, what="sending resumed"
            )
            support.wait_for(support.outbox_reaches(space.outbox, expected), timeout, what="every message")
            support.wait_for(lambda: live_enrollments(handle.client, ids) == 0, timeout, interval=0.5, what="done")
            time.sleep(1.0)
        except TimeoutError as exc:
            result.timed_out = str(exc)
            result.orphaned = orphaned_messages(handle.client)
        result.finished_seconds = time.monotonic() - up
        counted = support.tally(space.outbox, ids, support.THREE_STEP_SENDS)
        result.received, result.lost, result.duplicated = counted.received, len(counted.lost), len(counted.duplicated)
        result.refused = {k: int(v) for k, v in handle.client.hgetall(keys.refused()).items()}
        return result
    finally:
        canary.halt()
        worker.stop()
        scheduler.stop()
        handle.close()


def report(result: RestartResult) -> str:
    lines = [
        f"Redis restart drill ({result.mode}) — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {result.machine}",
        f"  customers {result.customers:,}; redis-server down {result.downtime:.2f} s (SIGKILL, AOF everysec)",
    ]
    if result.mode == "crash":
        lines.append(
            f"  waiting timers {result.timers_before:,} before, {result.timers_after:,} after; "
            f"live enrollments {result.live_before:,} before, {result.live_after:,} after"
        )
    lines += [
        f"  acknowledged writes lost: {result.writes_lost:,} of {result.canary_acked:,} canary INCRs "
        f"(~{result.writes_lost / max(result.canary_rate, 1e-6):.2f} s of writes at {result.canary_rate:,.0f}/s), "
        f"applied but never acknowledged: {result.writes_unacknowledged}",
        f"  events replayed with their ids: {result.replayed:,}",
        f"  sending resumed {result.resumed_after:.2f} s after the restart; "
        f"finished {result.finished_seconds:.1f} s after",
        f"  messages {result.received:,}: lost {result.lost}, duplicated {result.duplicated}",
    ]
    if result.timed_out:
        lines.append(f"  {result.timed_out}; messages in Dramatiq ack sets: {result.orphaned or 'none'}")
    lines.append("  PASS" if result.exact else "  FAIL")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2_000)
    parser.add_argument("--mode", choices=("crash", "power-loss", "both"), default="both")
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    results = []
    for mode in ("crash", "power-loss") if args.mode == "both" else (args.mode,):
        result = run(args.customers, mode=mode, timeout=args.timeout)
        print(report(result))
        results.append(result)
    assert all(r.exact for r in results), "state did not survive, or messages were lost or duplicated"


if __name__ == "__main__":
    main()
