"""Drill: a provider failing 30% of calls (429 with Retry-After, 500, or a hang past the timeout).

Run: ``python -m tests.drills.provider_faults [--messages 300] [--rate 20]``

A fake SendGrid v3 Mail Send endpoint on loopback answers 202 to most calls and, for 30% of them
(never more than three times in a row for one message), one of: ``429`` with ``Retry-After: 1``,
``500``, or a hang that outlasts the SDK's read timeout (15 s) and then drops the connection
without accepting.  Real ``dramatiq orchestrator.worker`` processes send through the real
``sendgrid`` SDK (``SENDGRID_API_HOST`` points at the fake) with a per-channel rate limit, and a
scheduler process drives the retries through the timer wheel.

Checked at the provider: every message accepted exactly once (by the idempotency key the channel
puts in the personalization's custom args), the attempts of one message spaced by a backoff that
honours Retry-After, and no one-second window with more calls than the rate limit allows.

A hang here never accepts the message.  A provider that accepts and *then* hangs cannot be made
exactly-once by any client of an API without idempotency keys (SendGrid has none): the retry
sends it again.  docs/reliability.md says so.
"""

from __future__ import annotations

import argparse
import json
import random
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.drills import support
from tests.redis_server import free_port

HANG_SECONDS = 16.5  # past channels.http.READ_TIMEOUT (15 s)
FAULT_SHARE = 0.30
MAX_FAULTS_IN_A_ROW = 3


@dataclass
class Call:
    at: float
    key: str
    kind: str  # accepted | 429 | 500 | hang


@dataclass
class FakeProvider:
    """The fake SendGrid: records every call, decides faults with a seeded RNG."""

    seed: int = 7
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.faults_in_a_row: Counter[str] = Counter()

    def decide(self, key: str) -> str:
        with self.lock:
            kind = "accepted"
            if self.faults_in_a_row[key] < MAX_FAULTS_IN_A_ROW and self.rng.random() < FAULT_SHARE:
                kind = self.rng.choice(("429", "500", "hang"))
            self.faults_in_a_row[key] = 0 if kind == "accepted" else self.faults_in_a_row[key] + 1
            self.calls.append(Call(time.time(), key, kind))
            return kind

    def serve(self, port: int) -> ThreadingHTTPServer:
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                key = body["personalizations"][0].get("custom_args", {}).get("idempotency_key", "?")
                kind = provider.decide(key)
                if kind == "hang":
                    time.sleep(HANG_SECONDS)
                    self.close_connection = True
                    return
                if kind == "accepted":
                    self.send_response(202)
                    self.send_header("X-Message-Id", f"fake-{key}")
                elif kind == "429":
                    self.send_response(429)
                    self.send_header("Retry-After", "1")
                else:
                    self.send_response(500)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        return server


@dataclass
class FaultResult:
    messages: int
    rate_limit: float
    calls: Counter[str]
    accepted_once: int
    accepted_twice: int
    never_accepted: int
    max_calls_per_second: int  # busiest 1 s window, counted on arrival at the provider
    allowed_per_second: int
    max_calls_per_5s: int  # busiest 5 s window: the sustained rate, less sensitive to arrival jitter
    allowed_per_5s: int
    retry_after_violations: int  # a call after a 429 sooner than its Retry-After
    gaps_by_attempt: dict[int, float]  # median seconds before attempt n (n >= 2)
    gaps_after: dict[str, tuple[float, float]]  # fault kind → (min, median) seconds until the next attempt
    seconds: float
    machine: str

    @property
    def exact(self) -> bool:
        return (
            self.accepted_once == self.messages
            and self.accepted_twice == 0
            and self.never_accepted == 0
            and self.max_calls_per_5s <= self.allowed_per_5s
            and self.retry_after_violations == 0
        )


def run(messages: int = 300, *, rate: float = 20.0, threads: int = 16, timeout: float = 600.0) -> FaultResult:
    port = free_port()
    provider = FakeProvider()
    server = provider.serve(port)
    redis = support.start_redis()
    settings = support.OPEN_SETTINGS + f"rate_limits:\n  email: {rate}\n"
    space = support.make_workspace(
        redis.url,
        {"ping": support.ONE_STEP},
        settings=settings,
        extra_env={
            "SENDGRID_API_KEY": "SG.fake-key-for-the-loopback-provider",
            "SENDGRID_API_HOST": f"http://127.0.0.1:{port}",
            "LOYALOOP_EMAIL_FROM": "Drill <drill@brand.example>",
        },
    )
    ids = support.customer_ids(messages)
    support.seed_profiles(redis.client, ids)
    worker = support.start_worker(space, processes=1, threads=threads)
    scheduler = support.start_scheduler(space)
    started = time.monotonic()
    try:
        lp = support.api(redis.url)
        for customer_id in ids:
            lp.track(customer_id, "ping.sent", {}, event_id=f"ping-{customer_id}")

        def all_accepted() -> bool:
            with provider.lock:
                return len({c.key for c in provider.calls if c.kind == "accepted"}) >= messages

        support.close_api(lp)
        support.wait_for(all_accepted, timeout, interval=0.25, what="every message accepted")
        time.sleep(HANG_SECONDS + 2)  # a late duplicate would arrive now
        elapsed = time.monotonic() - started
    finally:
        worker.stop()
        scheduler.stop()
        server.shutdown()
        server.server_close()
        redis.close()
    return analyse(provider.calls, messages, rate, elapsed)


def busiest(stamps: list[float], width: float) -> int:
    """The most calls in any window of ``width`` seconds (stamps sorted)."""
    most, start = 0, 0
    for end, stamp in enumerate(stamps):
        while stamp - stamps[start] >= width:
            start += 1
        most = max(most, end - start + 1)
    return most


def analyse(calls: list[Call], messages: int, rate: float, seconds: float) -> FaultResult:
    by_key: dict[str, list[Call]] = defaultdict(list)
    for call in sorted(calls, key=lambda c: c.at):
        by_key[call.key].append(call)
    accepted = Counter(c.key for c in calls if c.kind == "accepted")
    stamps = sorted(c.at for c in calls)
    violations = 0
    gaps: dict[int, list[float]] = defaultdict(list)
    after: dict[str, list[float]] = defaultdict(list)
    for attempts in by_key.values():
        for index in range(1, len(attempts)):
            gap = attempts[index].at - attempts[index - 1].at
            gaps[index + 1].append(gap)
            after[attempts[index - 1].kind].append(gap)
            if attempts[index - 1].kind == "429" and gap < 1.0 - 0.05:
                violations += 1
    burst = max(1, int(rate * 0.1))
    return FaultResult(
        messages=messages,
        rate_limit=rate,
        calls=Counter(c.kind for c in calls),
        accepted_once=sum(1 for n in accepted.values() if n == 1),
        accepted_twice=sum(1 for n in accepted.values() if n > 1),
        never_accepted=messages - len(accepted),
        max_calls_per_second=busiest(stamps, 1.0),
        allowed_per_second=int(rate) + burst,
        max_calls_per_5s=busiest(stamps, 5.0),
        allowed_per_5s=int(rate * 5) + burst,
        retry_after_violations=violations,
        gaps_by_attempt={n: sorted(v)[len(v) // 2] for n, v in sorted(gaps.items())},
        gaps_after={kind: (min(v), sorted(v)[len(v) // 2]) for kind, v in sorted(after.items())},
        seconds=seconds,
        machine=support.describe_machine(),
    )


def report(result: FaultResult) -> str:
    total = sum(result.calls.values())
    faults = total - result.calls["accepted"]
    gaps = ", ".join(f"before attempt {n}: {gap:.2f} s" for n, gap in result.gaps_by_attempt.items())
    kinds = ", ".join(
        f"after {kind}: min {low:.2f} s, median {mid:.2f} s" for kind, (low, mid) in result.gaps_after.items()
    )
    return "\n".join(
        [
            f"Provider-fault drill — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {result.machine}",
            f"  {result.messages:,} messages, {total:,} provider calls, {faults:,} faulted "
            f"({faults / max(total, 1):.0%}): {dict(result.calls)}",
            f"  accepted exactly once {result.accepted_once:,}, more than once {result.accepted_twice}, "
            f"never {result.never_accepted}",
            f"  busiest 5 s at the provider: {result.max_calls_per_5s} calls (allowed {result.allowed_per_5s}: "
            f"{result.rate_limit:g}/s plus the burst); busiest 1 s: {result.max_calls_per_second} "
            f"(allowed {result.allowed_per_second}; arrivals jitter on a loaded machine)",
            f"  retries sooner than Retry-After: {result.retry_after_violations}; median gap {gaps}",
            f"  next attempt {kinds} (a hang is timed from its start)",
            f"  ({result.seconds:.0f} s)",
            "  PASS" if result.exact else "  FAIL",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=300)
    parser.add_argument("--rate", type=float, default=20.0, help="email sends per second (settings.rate_limits)")
    parser.add_argument("--threads", type=int, default=16)
    args = parser.parse_args()
    result = run(args.messages, rate=args.rate, threads=args.threads)
    print(report(result))
    assert result.exact, "a message was lost or duplicated, a retry came early, or the rate limit was exceeded"


if __name__ == "__main__":
    main()
