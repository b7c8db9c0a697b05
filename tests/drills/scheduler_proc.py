"""A scheduler process for the drills: ``python -m tests.drills.scheduler_proc [--lease S] [--victim]``.

It builds the same Runtime and Scheduler a ``loyaloop scheduler`` would (settings and Redis from the
environment, due timers handed to the workers' ``fire_timers`` actor over the queue's broker).

``--victim`` is the scheduler that dies mid-claim: it claims every due timer with its lease, prints
``claimed <n> <epoch>`` and then stalls before handing anything to a worker, so the drill can
SIGKILL it with the timers leased and not yet fired.
"""

from __future__ import annotations

import argparse
import logging
import signal
import threading
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lease", type=float, default=30.0, help="seconds a claimed timer stays leased")
    parser.add_argument("--idle", type=float, default=0.05, help="sleep between passes that found nothing")
    parser.add_argument("--victim", action="store_true", help="claim everything due, report, then stall")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    from orchestrator.runtime.compose import build_runtime
    from orchestrator.settings import load_settings
    from orchestrator.store.connect import open_redis
    from orchestrator.workers.actors import ActorDispatcher
    from orchestrator.workers.broker import dead_worker_sweeper, setup
    from orchestrator.workers.scheduler import Scheduler

    settings = load_settings()
    assert settings.redis_url, "REDIS_URL must be set"
    # The queue wherever the settings say (LOYALOOP_BROKER_URL), the state a single Redis or a cluster.
    broker, actors = setup(settings)
    client = open_redis(settings)
    runtime = build_runtime(settings, client, dispatcher=ActorDispatcher(actors), timer_lease=args.lease)

    if args.victim:
        now = time.time()
        claimed = runtime.timers.claim_due(now, 1_000_000, lease=args.lease)
        print(f"claimed {len(claimed)} {now!r}", flush=True)
        while True:  # the hand-off to workers never happens: the drill kills us here
            time.sleep(60)

    scheduler = Scheduler(
        runtime, actors.fire_timers.send, actors.enter_batch.send, drain_events=actors.drain_events.send
    )
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("scheduler running", flush=True)
    scheduler.run_forever(stop, idle=args.idle, sweep=dead_worker_sweeper(settings, broker))


if __name__ == "__main__":
    main()
