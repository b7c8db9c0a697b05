"""Drill: a scheduler SIGKILLed mid-claim — its leased timers fire once, after the lease.

Run: ``python -m tests.drills.scheduler_kill [--customers 5000] [--lease 5]``

Customers enter a journey that waits one second and then sends one message.  A scheduler process
claims every due timer (moving them into its lease set, lease ``--lease`` seconds) and is SIGKILLed
before handing any of them to a worker.  A second scheduler is then started: its reaper must put the
orphaned timers back once the lease expires, and every customer must get the message exactly once,
none of them before the lease ran out.
"""

from __future__ import annotations

import argparse
import re
import signal
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from orchestrator.store.timers import Timers
from tests.drills import support


@dataclass
class SchedulerKillResult:
    customers: int
    claimed: int
    leased_after_kill: int
    sent_before_lease: int
    received: int
    lost: int
    duplicated: int
    lease: float
    first_after_lease: float  # seconds between lease expiry and the first message
    last_after_lease: float  # ... and the last one
    machine: str

    @property
    def exact(self) -> bool:
        return (
            self.claimed == self.customers
            and self.sent_before_lease == 0
            and self.lost == 0
            and self.duplicated == 0
            and self.received == self.customers
        )


def run(customers: int = 5_000, *, lease: float = 5.0, timeout: float = 300.0) -> SchedulerKillResult:
    redis = support.start_redis()
    space = support.make_workspace(redis.url, {"waiter": support.WAIT_THEN_SEND.format(wait="1s")})
    ids = support.customer_ids(customers)
    support.seed_profiles(redis.client, ids)
    timers = Timers(redis.client)
    worker = support.start_worker(space, processes=1, threads=8)
    procs: list[support.Proc] = [worker]
    try:
        lp = support.api(redis.url)
        for customer_id in ids:
            lp.track(customer_id, "wait.started", {}, event_id=f"start-{customer_id}")
        support.close_api(lp)
        support.wait_for(lambda: timers.pending() >= customers, timeout, what="every customer waiting")
        support.wait_for(lambda: timers.due_count(time.time()) >= customers, 30, what="every timer due")

        victim = support.start_scheduler(space, lease=lease, tag="victim", victim=True)
        procs.append(victim)
        pattern = re.compile(r"claimed (\d+) ([\d.]+)")
        support.wait_for(lambda: bool(pattern.search(victim.log.read_text())), 60, what="victim claimed")
        found = pattern.search(victim.log.read_text())
        assert found is not None
        claimed, claimed_at = int(found.group(1)), float(found.group(2))
        victim.kill(signal.SIGKILL)
        leased_after_kill = timers.leased()

        survivor = support.start_scheduler(space, lease=30.0, tag="survivor")
        procs.append(survivor)
        support.wait_for(support.outbox_reaches(space.outbox, customers), timeout, what="every message")
        time.sleep(1.0)
        lines = support.outbox_lines(space.outbox)
        counted = support.tally(space.outbox, ids, [("after", "email")])
        expiry = claimed_at + lease
        stamps = sorted(datetime.fromisoformat(line["sent_at"]).timestamp() for line in lines)
        return SchedulerKillResult(
            customers=customers,
            claimed=claimed,
            leased_after_kill=leased_after_kill,
            sent_before_lease=sum(1 for stamp in stamps if stamp < expiry),
            received=counted.received,
            lost=len(counted.lost),
            duplicated=len(counted.duplicated),
            lease=lease,
            first_after_lease=stamps[0] - expiry,
            last_after_lease=stamps[-1] - expiry,
            machine=support.describe_machine(redis.client),
        )
    finally:
        for proc in procs:
            proc.stop()
        redis.close()


def report(result: SchedulerKillResult) -> str:
    return "\n".join(
        [
            f"Scheduler-killed-mid-claim drill — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {result.machine}",
            f"  customers {result.customers:,}; the killed scheduler had claimed {result.claimed:,} timers "
            f"({result.leased_after_kill:,} still leased after the kill), lease {result.lease:g} s",
            f"  messages before the lease expired: {result.sent_before_lease}",
            f"  messages {result.received:,}: lost {result.lost}, duplicated {result.duplicated}",
            f"  first message {result.first_after_lease:.2f} s after the lease expired, "
            f"last {result.last_after_lease:.2f} s after",
            "  PASS: every leased timer fired once, after the lease" if result.exact else "  FAIL",
        ]
    )


def main(argv: list[str] | None = None) -> Any:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=5_000)
    parser.add_argument("--lease", type=float, default=5.0)
    args = parser.parse_args(argv)
    result = run(args.customers, lease=args.lease)
    print(report(result))
    assert result.exact, "a leased timer was lost, fired twice, or fired before its lease expired"
    return result


if __name__ == "__main__":
    main()
