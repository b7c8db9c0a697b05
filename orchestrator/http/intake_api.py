"""``POST /v1/track``, ``/v1/identify`` and ``/v1/batch``: events from shops and apps.

The order of refusals is fixed and documented (docs/http.md): 401 (no valid key) before reading
the body, 413 (too large) while reading it, 429 (rate limit, charged one unit per event, or one for
a malformed body so refusals are not free) and 400 (malformed, with the ``field`` to blame).  Only
after every item is valid does anything reach the runtime, and 202 is sent only once the runtime
has durably enqueued every item.

A single track or identify runs on the event loop itself, blocking it for its few Redis round trips
(well under a millisecond): handing it to a thread instead made threads fight over the GIL, ~100
futex calls per request under load (strace), which cost more than the work and capped throughput
at a third.  Concurrency comes from ``--workers`` processes.  A batch (up to 500 items) does go to
a thread, so one large batch cannot stall the other requests of its worker.

An event whose ``event_id`` the runtime has already handled answers 202 with ``"duplicate":
true`` and is not enqueued again; one repeated before the first copy was handled is enqueued again
and dropped by the runtime's own de-duplication, so the answer is the same either way.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from orchestrator.errors import InputError
from orchestrator.http.auth import KeyRing
from orchestrator.http.config import HttpConfig
from orchestrator.http.limits import read_body
from orchestrator.http.observability import EVENTS_ACCEPTED, RATE_LIMITED
from orchestrator.http.protocol import Intake
from orchestrator.http.responses import error
from orchestrator.http.validation import (
    Call,
    IdentifyCall,
    TrackCall,
    parse_batch,
    parse_identify,
    parse_json,
    parse_track,
)
from orchestrator.store import keys
from orchestrator.store.ratelimit import RateLimiter, retry_after


class IntakeApi:
    """The three intake endpoints sharing one key ring, rate limiter and intake."""

    def __init__(self, config: HttpConfig, client: redis.Redis, intake: Intake) -> None:
        self._config = config
        self._client = client
        self._intake = intake
        self._keys = KeyRing(config.api_keys)
        self._limiter = RateLimiter.for_api_keys(client, rate=config.rate, burst=config.burst)
        self._max_future = timedelta(seconds=config.max_future_seconds)

    async def track(self, request: Request) -> Response:
        return await self._serve(request, "track", self._config.max_body)

    async def identify(self, request: Request) -> Response:
        return await self._serve(request, "identify", self._config.max_body)

    async def batch(self, request: Request) -> Response:
        return await self._serve(request, "batch", self._config.max_batch_body)

    async def _serve(self, request: Request, kind: str, limit: int) -> Response:
        key_id = self._keys.authenticate(request.headers.get("authorization"))
        if key_id is None:
            return error(
                401,
                "missing or unknown API key; send 'Authorization: Bearer <key>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        request.scope.setdefault("state", {})["key_id"] = key_id
        body = await read_body(request, limit)
        if body is None:
            return error(413, f"the request body is larger than {limit} bytes", field=None)
        if kind == "batch":
            return await run_in_threadpool(self._handle, kind, key_id, body)
        return self._handle(kind, key_id, body)

    def _parse(self, kind: str, body: bytes) -> list[Call]:
        try:
            return self._parse_document(kind, parse_json(body))
        except RecursionError:  # nesting that JSON allowed but walking it (our checks, the runtime's) does not
            raise InputError("the request body is nested too deeply") from None

    def _parse_document(self, kind: str, document: object) -> list[Call]:
        now = datetime.now(UTC)
        if kind == "track":
            return [parse_track(document, now, self._max_future)]
        if kind == "identify":
            return [parse_identify(document)]
        return parse_batch(document, now, self._max_future, self._config.max_batch_items)

    def _handle(self, kind: str, key_id: str, body: bytes) -> Response:
        calls: list[Call] = []
        problem: InputError | None = None
        try:
            calls = self._parse(kind, body)
        except InputError as exc:
            problem = exc
        wait, duplicates = self._charge_and_check(key_id, calls)
        if wait > 0:
            RATE_LIMITED.inc()
            return error(429, "rate limit exceeded for this API key", headers={"Retry-After": str(retry_after(wait))})
        if problem is not None:
            return error(400, str(problem), field=problem.field)
        results: list[dict[str, Any]] = []
        for index, (call, duplicate) in enumerate(zip(calls, duplicates, strict=True)):
            try:
                results.append(self._hand_over(call, duplicate))
            except InputError as exc:
                where = (
                    exc.field if kind != "batch" else f"batch[{index}].{exc.field}" if exc.field else f"batch[{index}]"
                )
                # The runtime refused an item our checks let through: say how many before it went in.
                return error(400, str(exc), field=where, extra={"accepted": index} if kind == "batch" else None)
        if kind == "batch":
            return JSONResponse({"accepted": len(results), "results": results}, status_code=202)
        return JSONResponse({"accepted": True, **results[0]}, status_code=202)

    def _charge_and_check(self, key_id: str, calls: list[Call]) -> tuple[float, list[bool]]:
        """Charge the rate limit (seconds to wait, 0.0 when charged) and look up which event ids the
        runtime has already handled, in one pipelined round trip (a malformed body costs one unit, so
        refusals are not free)."""
        wanted = [(i, call) for i, call in enumerate(calls) if isinstance(call, TrackCall) and call.event_id]
        flags = [False] * len(calls)
        if not wanted:  # nothing to look up: a plain EVALSHA is cheaper than a pipeline
            return self._limiter.acquire(key_id, max(len(calls), 1)), flags
        for attempt in (1, 2):
            with self._client.pipeline(transaction=False) as pipe:
                self._limiter.queue(pipe, key_id, max(len(calls), 1))
                for _, call in wanted:
                    assert isinstance(call, TrackCall) and call.event_id is not None
                    pipe.hexists(keys.seen_events(call.customer_id), call.event_id)
                try:
                    answers = pipe.execute()
                    break
                except redis.exceptions.NoScriptError:
                    if attempt == 2:
                        raise
                    self._limiter.load()  # nothing ran: the script was the first command and failed
        for (index, _), seen in zip(wanted, answers[1:], strict=True):
            flags[index] = bool(seen)
        return self._limiter.seconds(answers[0]), flags

    def _hand_over(self, call: Call, duplicate: bool) -> dict[str, Any]:
        if isinstance(call, IdentifyCall):
            self._intake.identify(call.customer_id, call.attributes)
            EVENTS_ACCEPTED.labels(kind="identify").inc()
            return {"customer_id": call.customer_id}
        if duplicate:
            return {"event_id": call.event_id, "duplicate": True}
        event_id = self._intake.track(
            call.customer_id, call.event, call.properties, event_id=call.event_id, timestamp=call.timestamp
        )
        EVENTS_ACCEPTED.labels(kind="track").inc()
        return {"event_id": event_id}
