"""Drill: poison input through every door — each refused with its error, counted, no worker dies.

Run: ``python -m tests.drills.poison``

Doors: the Python API (``Loyaloop.track``), the CLI (``loyaloop track`` / ``loyaloop import`` /
``loyaloop validate`` as real subprocesses), HTTP (``loyaloop serve`` under uvicorn, real requests),
the JSONL import, malformed Dramatiq messages pushed straight onto the workers' queues (what a
buggy producer or a tampered Redis would send), and malformed journey files.  Afterwards the
worker process must still be the same process, and a good event must still reach the outbox.
"""

from __future__ import annotations

import json
import math
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import redis

from orchestrator.errors import InputError, JourneyError, LoyaloopError
from orchestrator.runtime.event_queue import KEPT_ASIDE
from orchestrator.store import keys
from tests.drills import support
from tests.redis_server import free_port

API_KEY = "poison-key-0123456789abcdef"
LOYALOOP = str(Path(support.PYTHON).with_name("loyaloop"))
FUTURE = (datetime.now(UTC) + timedelta(days=30)).isoformat()

#: (label, customer_id, event, properties, event_id, timestamp) — every one must be refused.
EVENTS: list[tuple[str, Any, Any, Any, Any, Any]] = [
    ("empty customer id", "", "ping.sent", {}, None, None),
    ("customer id with a space", "has space", "ping.sent", {}, None, None),
    ("customer id with braces", "{c1}", "ping.sent", {}, None, None),
    ("customer id with a pipe", "a|b", "ping.sent", {}, None, None),
    ("customer id too long", "c" * 200, "ping.sent", {}, None, None),
    ("customer id a number", 12345, "ping.sent", {}, None, None),
    ("event name capitalised", "c1", "Ping Sent", {}, None, None),
    ("event name empty", "c1", "", {}, None, None),
    ("event name missing", "c1", None, {}, None, None),
    ("event name too long", "c1", "a." * 100 + "b", {}, None, None),
    ("properties a string", "c1", "ping.sent", "total=3", None, None),
    ("properties a list", "c1", "ping.sent", [1, 2], None, None),
    ("properties too large", "c1", "ping.sent", {"blob": "x" * 40_000}, None, None),
    ("event id with a space", "c1", "ping.sent", {}, "bad id", None),
    ("event id empty", "c1", "ping.sent", {}, "", None),
    ("timestamp not a date", "c1", "ping.sent", {}, None, "yesterday"),
    ("timestamp without zone", "c1", "ping.sent", {}, None, "2026-01-01T10:00:00"),
    ("timestamp a month ahead", "c1", "ping.sent", {}, None, FUTURE),
    ("timestamp a boolean", "c1", "ping.sent", {}, None, True),
]
#: Only Python can build these: not representable in JSON or on a command line.
PYTHON_ONLY: list[tuple[str, Any, Any, Any, Any, Any]] = [
    ("properties with a NaN", "c1", "ping.sent", {"x": math.nan}, None, None),
    ("properties with a set", "c1", "ping.sent", {"x": {1, 2}}, None, None),
    ("properties with non-string keys", "c1", "ping.sent", {1: "x"}, None, None),
    ("timestamp infinite", "c1", "ping.sent", {}, None, math.inf),
]

#: Malformed journeys (file stem → YAML); ``loyaloop validate`` must refuse each with a located error.
JOURNEYS: dict[str, str] = {
    "yaml_syntax": "id: broken\nsteps: [\n",
    "missing_id": "name: No id\ntrigger: {event: a.b}\nsteps:\n  - {id: s, send: email, template: drill_first}\n",
    "bad_duration": "id: bad_duration\ntrigger: {event: a.b}\nsteps:\n  - {id: w, wait: 3 days}\n",
    "unknown_step": "id: unknown_step\ntrigger: {event: a.b}\nsteps:\n  - {id: s, teleport: true}\n",
    "goto_nowhere": (
        "id: goto_nowhere\ntrigger: {event: a.b}\nsteps:\n  - id: b\n    branch:\n      - {if: 'true', goto: nowhere}\n"
    ),
    "bad_condition": (
        "id: bad_condition\ntrigger: {event: a.b, if: 'event.total >'}\nsteps:\n"
        "  - {id: s, send: email, template: drill_first}\n"
    ),
    "missing_template": (
        "id: missing_template\ntrigger: {event: a.b}\nsteps:\n  - {id: s, send: email, template: nope}\n"
    ),
    "unknown_channel": (
        "id: unknown_channel\ntrigger: {event: a.b}\nsteps:\n  - {id: s, send: pigeon, template: drill_first}\n"
    ),
    "not_a_mapping": "- just\n- a list\n",
}


@dataclass
class Door:
    name: str
    sent: int = 0
    refused: int = 0
    accepted: list[str] = field(default_factory=list)  # labels wrongly accepted
    errors: Counter[str] = field(default_factory=Counter)  # how they were refused


@dataclass
class PoisonResult:
    doors: list[Door]
    refused_counters: dict[str, int]
    #: Events kept aside by why (``input``/``bug``): as counted, and as the list's entries say.
    kept_aside_counted: dict[str, int]
    kept_aside_listed: dict[str, int]
    worker_pid_before: int
    worker_pids_after: list[int]
    worker_alive: bool
    control_delivered: bool
    machine: str

    @property
    def exact(self) -> bool:
        return (
            all(door.refused == door.sent and not door.accepted for door in self.doors)
            and self.worker_alive
            and self.worker_pid_before in self.worker_pids_after
            and self.control_delivered
        )


def _api_door(lp: Any) -> Door:
    door = Door("Python API: Loyaloop.track")
    for label, customer, event, props, event_id, timestamp in EVENTS + PYTHON_ONLY:
        door.sent += 1
        try:
            lp.track(customer, event, props, event_id=event_id, timestamp=timestamp)
        except InputError as exc:
            door.refused += 1
            door.errors[f"InputError({exc.field})"] += 1
        else:
            door.accepted.append(label)
    return door


def _cli_door(space: support.Workspace) -> Door:
    """``loyaloop track`` with what a shell can pass; run side by side (each is a fresh interpreter)."""
    door = Door("CLI: loyaloop track")
    cases: list[tuple[str, list[str]]] = []
    for label, customer, event, props, event_id, _timestamp in EVENTS:
        if not isinstance(customer, str) or not isinstance(event, str) or _timestamp is not None:
            continue
        args = [LOYALOOP, "track", customer, event]
        if props:
            args += ["--json", json.dumps(props)]
        if event_id is not None:
            args += ["--id", event_id]
        cases.append((label, args))
    cases += [
        ("--json not JSON", [LOYALOOP, "track", "c1", "ping.sent", "--json", "{total: 3"]),
        ("--json an array", [LOYALOOP, "track", "c1", "ping.sent", "--json", "[1]"]),
        ("--prop without =", [LOYALOOP, "track", "c1", "ping.sent", "--prop", "total"]),
    ]
    for start in range(0, len(cases), 6):
        batch = cases[start : start + 6]
        running = [
            (label, subprocess.Popen(args, env=space.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
            for label, args in batch
        ]
        for label, proc in running:
            output = proc.communicate(timeout=120)[0].decode()
            door.sent += 1
            if proc.returncode == 1 and output.startswith("error: ") and "Traceback" not in output:
                door.refused += 1
                door.errors["exit 1, one 'error:' line"] += 1
            else:
                door.accepted.append(f"{label} (exit {proc.returncode}: {output[:120]!r})")
    return door


def _http_door(url: str) -> Door:
    door = Door("HTTP: POST /v1/track")
    auth = {"Authorization": f"Bearer {API_KEY}"}
    requests: list[tuple[str, dict[str, Any]]] = []
    for label, customer, event, props, event_id, timestamp in EVENTS:
        body: dict[str, Any] = {"customer_id": customer, "event": event, "properties": props}
        if event_id is not None:
            body["event_id"] = event_id
        if timestamp is not None:
            body["timestamp"] = timestamp
        requests.append((label, {"json": body, "headers": auth}))
    requests += [
        ("body not JSON", {"content": b"{not json", "headers": {**auth, "Content-Type": "application/json"}}),
        ("body a JSON array", {"json": [1, 2], "headers": auth}),
        (
            "body over the size limit",
            {"json": {"customer_id": "c1", "event": "ping.sent", "p": "x" * 70_000}, "headers": auth},
        ),
        ("no API key", {"json": {"customer_id": "c1", "event": "ping.sent"}}),
        (
            "wrong API key",
            {
                "json": {"customer_id": "c1", "event": "ping.sent"},
                "headers": {"Authorization": "Bearer nope-nope-nope-nope-nope"},
            },
        ),
        ("form body", {"data": {"customer_id": "c1"}, "headers": auth}),
    ]
    with httpx.Client(base_url=url, timeout=10) as client:
        for label, options in requests:
            door.sent += 1
            response = client.post("/v1/track", **options)
            try:
                payload = response.json()
            except ValueError:
                payload = None
            if 400 <= response.status_code < 500 and isinstance(payload, dict):
                door.refused += 1
                door.errors[f"HTTP {response.status_code}"] += 1
            else:
                door.accepted.append(f"{label} (HTTP {response.status_code})")
    return door


def _import_door(lp: Any, folder: Path) -> tuple[Door, int]:
    door = Door("import: JSONL file")
    lines = []
    for _label, customer, event, props, event_id, timestamp in EVENTS:
        record: dict[str, Any] = {"type": "track", "customer_id": customer, "event": event, "properties": props}
        if event_id is not None:
            record["event_id"] = event_id
        if timestamp is not None:
            record["timestamp"] = timestamp
        lines.append(json.dumps(record))
    lines += ["{not json", "[1, 2]", '"a string"', json.dumps({"type": "delete", "customer_id": "c1"})]
    lines += [json.dumps({"type": "identify", "customer_id": "c1", "attributes": {"orders_count": 9}})]
    good = [json.dumps({"customer_id": f"ok{n}", "event": "other.event"}) for n in range(3)]
    path = folder / "poison.jsonl"
    path.write_text("\n".join(lines[:10] + good + lines[10:]) + "\n")
    report = lp.import_file(path, progress=False)
    door.sent = len(lines)
    door.refused = len(report.refused)
    door.errors["refused with its line number"] = len(report.refused)
    if report.imported != len(good):
        door.accepted.append(f"imported {report.imported}, expected {len(good)}")
    return door, report.imported


def _queue_door(redis_url: str) -> Door:
    """Malformed messages straight onto the workers' queues (bypassing every validation)."""
    from dramatiq import Message

    broker, actors = support.broker_client(redis_url)
    door = Door("Dramatiq queue: malformed messages")
    bad: list[tuple[str, Any, tuple[Any, ...]]] = [
        ("timestamp not a date", actors.handle_event, ("c1", "ping.sent", {}, "ev-1", "not-a-time")),
        ("properties a list", actors.handle_event, ("c1", "ping.sent", [1], "ev-2", "2026-01-01T00:00:00+00:00")),
        ("customer id with braces", actors.handle_event, ("{c}", "ping.sent", {}, "ev-3", "2026-01-01T00:00:00+00:00")),
        ("revision not a number", actors.deliver, ("c1", "run-x", "seven")),
        ("timer member without fields", actors.fire_timers, (["no-pipes-here"],)),
        ("timer member revision garbage", actors.fire_timers, (["c1|run|x"],)),
        ("cohort of a non-list", actors.enter_batch, ("ping", 42, "k", {})),
        ("deliver for an unknown run", actors.deliver, ("c1", "run-unknown", 3)),
    ]
    # Records written straight into an event shard (bypassing track), each with its drain message.
    raw = redis.Redis.from_url(redis_url)
    records = [
        ("event record not JSON", "not json"),
        ("event record with a braced customer id", '["{c}","ping.sent",{},"ev-9","2026-01-01T00:00:00+00:00"]'),
    ]
    for shard, (label, record) in enumerate(records):
        raw.rpush(keys.event_queue(shard), record)
        bad.append((label, actors.drain_events, (shard,)))
    raw.close()
    bad.append(("drain of a shard that does not exist", actors.drain_events, (99,)))
    for _label, actor, args in bad:
        door.sent += 1
        broker.enqueue(
            Message(queue_name=actor.queue_name, actor_name=actor.actor_name, args=args, kwargs={}, options={})
        )
    broker.close()
    return door


def _journey_door(space: support.Workspace) -> Door:
    door = Door("journeys: loyaloop validate")
    folder = space.root / "bad-journeys"
    folder.mkdir(exist_ok=True)
    running = []
    for stem, text in JOURNEYS.items():
        path = folder / f"{stem}.yaml"
        path.write_text(text)
        args = [LOYALOOP, "validate", str(path), "--templates", str(space.templates)]
        running.append(
            (stem, subprocess.Popen(args, env=space.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT))
        )
    for stem, proc in running:
        output = proc.communicate(timeout=120)[0].decode()
        door.sent += 1
        located = f"{stem}.yaml:" in output
        if proc.returncode == 1 and located and "Traceback" not in output:
            door.refused += 1
            door.errors["exit 1, file:line:col"] += 1
        else:
            door.accepted.append(f"{stem} (exit {proc.returncode}: {output[:160]!r})")
    # The loader, as a worker would call it on start-up: one error listing every problem.
    from orchestrator.language.loader import load_journeys

    door.sent += 1
    try:
        load_journeys(folder, space.templates)
    except (JourneyError, LoyaloopError) as exc:
        door.refused += 1
        door.errors[type(exc).__name__] += 1
    else:
        door.accepted.append("load_journeys accepted a folder of broken journeys")
    return door


def run(*, timeout: float = 120.0) -> PoisonResult:
    redis = support.start_redis()
    space = support.make_workspace(
        redis.url,
        {"ping": support.ONE_STEP},
        extra_env={"LOYALOOP_API_KEYS": f"poison:{API_KEY}"},
    )
    support.seed_profiles(redis.client, ["control", "c1"])
    worker = support.start_worker(space, processes=1, threads=4)
    port = free_port()
    serve = support.Proc(
        [LOYALOOP, "serve", "--port", str(port), "--workers", "1", "--no-access-log", "--log-level", "warning"],
        space.env(),
        space.root / "serve.log",
    )
    try:
        lp = support.api(redis.url)
        support.wait_for(lambda: len(worker.children()) >= 1, 60, what="worker processes up")
        pids_before = worker.children()
        doors = [_api_door(lp)]
        door, _imported = _import_door(lp, space.root)
        doors.append(door)
        doors.append(_queue_door(redis.url))
        support.wait_for(_http_up(f"http://127.0.0.1:{port}/healthz"), 60, what="loyaloop serve up")
        doors.append(_http_door(f"http://127.0.0.1:{port}"))
        doors.append(_cli_door(space))
        doors.append(_journey_door(space))
        # Queue door: the worker counts each malformed message as refused (or finds nothing to do).
        support.wait_for(_queues_empty(redis.client), timeout, what="queues drained")
        counters = {k: int(v) for k, v in redis.client.hgetall(keys.refused()).items()}
        queue_door = doors[2]
        dropped = sum(v for k, v in counters.items() if k.startswith("message:"))
        stale = 1  # the deliver for an unknown run is a nudge with nothing to do: "stale", not an error
        queue_door.refused = min(queue_door.sent, dropped + stale)
        queue_door.errors["counted as message:* and dropped"] = dropped
        queue_door.errors["stale nudge, nothing to do"] = stale
        if dropped + stale < queue_door.sent:
            queue_door.accepted.append(f"only {dropped} of {queue_door.sent - stale} malformed messages counted")
        metrics = redis.client.hgetall(keys.metrics_counters())
        kept_aside_counted = {kind: int(metrics.get(name, 0)) for kind, name in KEPT_ASIDE.items()}
        listed = Counter(json.loads(entry)["kind"] for entry in redis.client.lrange(keys.dead_events(), 0, -1))
        if redis.client.exists(keys.profile("{c}")):
            queue_door.accepted.append(
                "handle_event stored a profile for customer id '{c}' (braces break the hash tag)"
            )
        lp.track("control", "ping.sent", {}, event_id="control-1")
        support.close_api(lp)
        delivered = True
        try:
            support.wait_for(support.outbox_reaches(space.outbox, 1), timeout, what="control message")
        except TimeoutError:
            delivered = False
        return PoisonResult(
            doors=doors,
            refused_counters=counters,
            kept_aside_counted=kept_aside_counted,
            kept_aside_listed=dict(listed),
            worker_pid_before=pids_before[0] if pids_before else -1,
            worker_pids_after=worker.children(),
            worker_alive=worker.alive(),
            control_delivered=delivered,
            machine=support.describe_machine(redis.client),
        )
    finally:
        serve.stop()
        worker.stop()
        redis.close()


def _http_up(url: str) -> Any:
    def check() -> bool:
        try:
            return httpx.get(url, timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    return check


def _queues_empty(client: Any) -> Any:
    return lambda: sum(support.queue_depths(client).values()) == 0 and not _in_flight(client)


def _in_flight(client: Any) -> int:
    return sum(int(client.scard(key)) for key in client.scan_iter(match="loyaloop:__acks__.*", count=1000))


def report(result: PoisonResult) -> str:
    lines = [f"Poison-input drill — {datetime.now(UTC):%Y-%m-%d %H:%M} UTC — {result.machine}"]
    for door in result.doors:
        how = ", ".join(f"{reason} x{count}" for reason, count in door.errors.items() if count)
        lines.append(f"  {door.name}: {door.refused}/{door.sent} refused ({how})")
        for label in door.accepted:
            lines.append(f"    NOT refused: {label}")
    lines.append(f"  refused counters in Redis: {result.refused_counters}")
    lines.append(
        f"  events kept aside, counted: {result.kept_aside_counted}; "
        f"listed in {keys.dead_events()}: {result.kept_aside_listed}"
    )
    lines.append(
        f"  worker process {result.worker_pid_before} still running: "
        f"{result.worker_pid_before in result.worker_pids_after and result.worker_alive}; "
        f"a good event afterwards delivered: {result.control_delivered}"
    )
    lines.append("  PASS" if result.exact else "  FAIL")
    return "\n".join(lines)


def main() -> None:
    started = time.monotonic()
    result = run()
    print(report(result))
    print(f"  ({time.monotonic() - started:.0f} s)")
    assert result.exact, "a poison input was accepted or a worker died"


if __name__ == "__main__":
    main()
