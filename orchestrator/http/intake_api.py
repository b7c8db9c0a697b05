"""``POST /v1/track``, ``/v1/identify`` and ``/v1/batch``: events from shops and apps.

The order of refusals is fixed and documented (docs/http.md): 401 (no valid key; 429 instead once
the client address has failed too often, :mod:`orchestrator.http.auth_failures`) before reading the
body, 413 (too large) while reading it, 429 (the address's failure budget is spent, or the key's
rate limit, charged one unit per event, or one for a malformed body so refusals are not free) and
400 (malformed, with the ``field`` to blame).  Only after every item is valid does anything reach
the runtime, and 202 is sent only once the runtime has durably enqueued every item.

Nothing here blocks the event loop on Redis: the checks before the hand-over (the address's failure
budget, the key's rate, which event ids were already handled) are one round trip on the asyncio
client (:class:`~orchestrator.store.batch.AsyncBatch`), and a single track is queued on it too
(:mod:`orchestrator.http.queue_intake`).  Handing every track to a thread instead made threads
fight over the GIL, ~100 futex calls per request under load (strace), which cost more than the work
and capped throughput at a third.  What has no asyncio form -- an identify, a batch's parsing (up to
1 MiB) and hand-over -- runs in the bounded thread pool (:mod:`orchestrator.http.offload`), so one
large batch cannot stall the other requests of its worker and a hung Redis cannot queue work
without end.  A Redis that does not answer in time makes the request a 503
(:mod:`orchestrator.http.availability`).

An event whose ``event_id`` the runtime has already handled answers 202 with ``"duplicate":
true`` and is not enqueued again; one repeated before the first copy was handled is enqueued again
and dropped by the runtime's own de-duplication, so the answer is the same either way.

With ``LOYALOOP_INTAKE_REPLICAS``, 202 also means that many replicas have the events.  When too few
confirmed in time (:class:`~orchestrator.errors.NotReplicated`) the answer is 503 with
``Retry-After`` and the ids of the events concerned: they may or may not have been kept, and
sending them again with those ids is safe (an event is handled once per id).  A batch's tracks are
queued together (one ``WAIT`` per Redis node written to), between its identifies.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import redis
import redis.asyncio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from orchestrator.errors import InputError, NotReplicated
from orchestrator.http.auth import KeyRing
from orchestrator.http.auth_failures import FailedAuth
from orchestrator.http.availability import warn_limited
from orchestrator.http.config import HttpConfig
from orchestrator.http.limits import read_body
from orchestrator.http.observability import AUTH_FAILURES, EVENTS_ACCEPTED, RATE_LIMITED, UNAVAILABLE
from orchestrator.http.offload import Offload
from orchestrator.http.protocol import AsyncIntake, Intake
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
from orchestrator.store.batch import AsyncBatch
from orchestrator.store.ratelimit import SCRIPT, RateLimiter, retry_after


class IntakeApi:
    """The three intake endpoints sharing one key ring, rate limiter, failure budget and intake.

    ``intake`` is called (in threads) for the items of a batch, ``fast`` for a single track or
    identify; ``aredis`` is the asyncio client on the same Redis as ``client``.
    """

    def __init__(
        self,
        config: HttpConfig,
        client: redis.Redis,
        aredis: redis.asyncio.Redis,
        intake: Intake,
        fast: AsyncIntake,
        offload: Offload,
        failures: FailedAuth,
    ) -> None:
        self._config = config
        self._redis = aredis
        self._intake = intake
        self._fast = fast
        self._offload = offload
        self._failures = failures
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
        bucket = self._failures.bucket(request)
        key_id = self._keys.authenticate(request.headers.get("authorization"))
        if key_id is None:
            wait = await self._failures.fail(bucket)
            if wait > 0:
                return _too_many_failures(wait)
            AUTH_FAILURES.labels(outcome="refused").inc()
            message = "missing or unknown API key; send 'Authorization: Bearer <key>'"
            if self._keys.id_in_bearer(request.headers.get("authorization")):
                message = (
                    "the bearer value holds the key's id and its secret; send only the secret: "
                    "'Authorization: Bearer <secret>' (LOYALOOP_API_KEYS writes keys as id:secret)"
                )
            return error(401, message, headers={"WWW-Authenticate": "Bearer"})
        request.scope.setdefault("state", {})["key_id"] = key_id
        body = await read_body(request, limit)
        if body is None:
            return error(413, f"the request body is larger than {limit} bytes", field=None)
        if kind == "batch":
            calls, problem = await self._offload.run(self._parse, kind, body)
        else:
            calls, problem = self._parse(kind, body)
        blocked, wait, duplicates = await self._charge_and_check(bucket, key_id, calls)
        if blocked > 0:
            return _too_many_failures(blocked)
        if wait > 0:
            RATE_LIMITED.inc()
            return error(429, "rate limit exceeded for this API key", headers={"Retry-After": str(retry_after(wait))})
        if problem is not None:
            return error(400, str(problem), field=problem.field)
        if kind == "batch":
            return await self._offload.run(self._hand_over_batch, calls, duplicates)
        return await self._hand_over_one(calls[0], duplicates[0])

    def _parse(self, kind: str, body: bytes) -> tuple[list[Call], InputError | None]:
        """The calls of a body, or the refusal (answered only after the rate limit is charged)."""
        try:
            return self._parse_document(kind, parse_json(body)), None
        except RecursionError:  # nesting that JSON allowed but walking it (our checks, the runtime's) does not
            return [], InputError("the request body is nested too deeply")
        except InputError as exc:
            return [], exc

    def _parse_document(self, kind: str, document: object) -> list[Call]:
        now = datetime.now(UTC)
        if kind == "track":
            return [parse_track(document, now, self._max_future)]
        known = self._intake.consent_channels
        if kind == "identify":
            return [parse_identify(document, consent_channels=known)]
        return parse_batch(document, now, self._max_future, self._config.max_batch_items, consent_channels=known)

    async def _charge_and_check(self, bucket: str, key_id: str, calls: list[Call]) -> tuple[float, float, list[bool]]:
        """In one round trip: whether the client address has spent its failure budget (seconds it
        must wait, 0.0 when not), the key's rate-limit charge (seconds to wait, 0.0 when charged; a
        malformed body costs one unit, so refusals are not free) and which event ids the runtime has
        already handled.

        The key is charged even when the address turns out to be blocked: the two answers come back
        together, and a blocked address that holds a valid key may spend that key's rate anyway.
        """
        batch = AsyncBatch(self._redis, scripts=(SCRIPT,))
        self._failures.queue_check(batch, bucket)
        self._limiter.queue(batch, key_id, max(len(calls), 1))
        wanted = [(i, call) for i, call in enumerate(calls) if isinstance(call, TrackCall) and call.event_id]
        for _, call in wanted:
            assert isinstance(call, TrackCall) and call.event_id is not None
            batch.execute_command("HGET", keys.seen_events(call.customer_id), call.event_id)
        clock, state, charge, *seen = await batch.execute()
        flags = [False] * len(calls)
        for (index, _), found in zip(wanted, seen, strict=True):
            # Only an event the runtime finished is a duplicate: one it applied to the profile and then
            # could not finish (kept aside) is taken again, and the runtime resumes it without
            # counting the order twice, so a failed event never blocks its id.
            flags[index] = found in ("done", b"done")
        return self._failures.checked(bucket, clock, state), self._limiter.seconds(charge), flags

    async def _hand_over_one(self, call: Call, duplicate: bool) -> Response:
        try:
            if isinstance(call, IdentifyCall):
                await self._fast.identify(call.customer_id, call.attributes)
                EVENTS_ACCEPTED.labels(kind="identify").inc()
                return JSONResponse({"accepted": True, "customer_id": call.customer_id}, status_code=202)
            if duplicate:
                return JSONResponse({"accepted": True, "event_id": call.event_id, "duplicate": True}, status_code=202)
            event_id = await self._fast.track(
                call.customer_id, call.event, call.properties, event_id=call.event_id, timestamp=call.timestamp
            )
        except InputError as exc:
            return error(400, str(exc), field=exc.field)
        except NotReplicated as exc:
            return _not_confirmed(exc, {"event_id": exc.event_ids[0] if exc.event_ids else None})
        EVENTS_ACCEPTED.labels(kind="track").inc()
        return JSONResponse({"accepted": True, "event_id": event_id}, status_code=202)

    def _hand_over_batch(self, calls: list[Call], duplicates: list[bool]) -> Response:
        """Hand every item over in order (in a thread: the runtime's client blocks on Redis): the
        tracks between two identifies together, so they share one round trip (and one ``WAIT`` per
        node with ``LOYALOOP_INTAKE_REPLICAS``)."""
        results: list[dict[str, Any] | None] = [None] * len(calls)
        tracks: list[int] = []  # the tracks waiting for the next identify or the end
        for index, (call, duplicate) in enumerate([*zip(calls, duplicates, strict=True), (None, False)]):
            if isinstance(call, TrackCall) and not duplicate:
                tracks.append(index)
                continue
            if isinstance(call, TrackCall):
                results[index] = {"event_id": call.event_id, "duplicate": True}
                continue
            try:
                self._track_together(calls, tracks, results)
            except InputError as exc:  # nothing of these tracks went in
                return _refused_by_runtime(exc, tracks[exc.index or 0], tracks[0])
            except NotReplicated as exc:
                return _not_confirmed(exc, {"results": results})
            tracks.clear()
            if isinstance(call, IdentifyCall):
                try:
                    self._intake.identify(call.customer_id, call.attributes)
                except InputError as exc:
                    return _refused_by_runtime(exc, index, index)
                EVENTS_ACCEPTED.labels(kind="identify").inc()
                results[index] = {"customer_id": call.customer_id}
        return JSONResponse({"accepted": len(results), "results": results}, status_code=202)

    def _track_together(self, calls: list[Call], tracks: list[int], results: list[dict[str, Any] | None]) -> None:
        """Queue the tracks at these positions in one call and put their results in place (on
        :class:`NotReplicated` too: the 503 names the ids to send again)."""
        if not tracks:
            return
        chosen = [calls[i] for i in tracks]
        try:
            ids = self._intake.track_many([_arguments(call) for call in chosen if isinstance(call, TrackCall)])
        except NotReplicated as exc:
            for i, event_id in zip(tracks, exc.event_ids, strict=True):
                results[i] = {"event_id": event_id}
            raise
        for i, event_id in zip(tracks, ids, strict=True):
            results[i] = {"event_id": event_id}
        EVENTS_ACCEPTED.labels(kind="track").inc(len(ids))


def _refused_by_runtime(exc: InputError, at: int, accepted: int) -> Response:
    """400 for an item the runtime refused though our checks let it through (it should not happen):
    the item to blame, and how many at the start of the batch went in."""
    where = f"batch[{at}].{exc.field}" if exc.field else f"batch[{at}]"
    return error(400, str(exc), field=where, extra={"accepted": accepted})


def _arguments(call: TrackCall) -> dict[str, Any]:
    """A track call as ``Intake.track_many`` takes it."""
    return {
        "customer_id": call.customer_id,
        "event": call.event,
        "properties": call.properties,
        "event_id": call.event_id,
        "timestamp": call.timestamp,
    }


def _not_confirmed(exc: NotReplicated, extra: dict[str, Any]) -> Response:
    """503: the events reached Redis, too few replicas confirmed them in time; resend with these ids.
    Counted with the other 503s (``reason="not_replicated"``) and logged like them: one line, no
    customer data, at most every 10 s."""
    UNAVAILABLE.labels(reason="not_replicated").inc()
    warn_limited(
        "answering 503: %d of %d replica(s) confirmed an intake write within %d ms (LOYALOOP_INTAKE_REPLICAS); "
        "the client is told to resend its events by id",
        exc.acknowledged,
        exc.wanted,
        exc.timeout_ms,
    )
    return error(
        503,
        f"the event(s) may or may not have been kept: {exc.acknowledged} of the {exc.wanted} replica(s) "
        f"required confirmed them within {exc.timeout_ms} ms; send them again with the same event_id "
        "after Retry-After seconds (an event is handled once per id)",
        headers={"Retry-After": str(exc.retry_after)},
        extra=extra,
    )


def _too_many_failures(wait: float) -> Response:
    AUTH_FAILURES.labels(outcome="limited").inc()
    return error(
        429,
        "too many failed authentications from this address; retry after Retry-After seconds",
        headers={"Retry-After": str(retry_after(wait))},
    )
