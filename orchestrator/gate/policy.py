"""The fatigue gate: every send of every journey and channel passes here before a provider sees it.

Checks, in this order (the first that fails decides):

1. **address** — the profile has an address for the channel (``no_address``);
2. **suppression** — the normalized address's SHA-256 is not on the global list (``suppressed``;
   transactional sends too: a hard-bounced mailbox stays dead for receipts);
3. **consent** — marketing needs consent on the channel (``no_consent``); transactional skips it;
4. **quiet hours** — marketing sends inside the channel's window, in the customer's own zone, are
   deferred to the window's end (``quiet``); transactional sends bypass quiet hours unless
   ``settings.transactional_quiet_hours``;
5. **caps** — every applicable rule against the customer's rolling send log (``capped``), and if
   allowed the send is recorded in the same atomic step.  Transactional sends bypass caps;
   ``settings.transactional_counts_toward_caps`` decides whether they are recorded (and so count
   toward marketing caps).

Steps 3 and 5 are one Lua call (see :mod:`orchestrator.gate.caps`) on the customer's own keys only, so
it runs on Redis Cluster; step 2 is an ``HMGET`` of the global suppression list sent in the same
pipeline (one per chunk of sends); step 4 is computed in Python before them.  So a decision costs
exactly one Redis round trip, and :meth:`Gate.check_many` puts many decisions into one pipelined
round trip.  The script cannot see the suppression reply, so it may record a send whose address
turns out to be suppressed; the gate then releases that record at once (an extra round trip only
for suppressed marketing sends).  Until then, a cap decision for the same customer on another
worker may see that one extra send: a window of one round trip, only ever erring towards sending
less.

Consent: the consent hash in Redis (``keys.consent``, written by :func:`orchestrator.gate.consent.set_consent`)
wins when it has an entry for the channel, because it is newer than any profile read; without an
entry, the profile's ``consent`` carried by the request decides.  So an unsubscribe between the
runtime reading the profile and the gate deciding still stops the send.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import redis

from orchestrator.gate import caps
from orchestrator.gate.consent import address_hash
from orchestrator.gate.quiet_hours import effective_window, quiet_until, resolve_zone
from orchestrator.language.journey import QuietWindow
from orchestrator.settings import CapRule, Settings
from orchestrator.store import batch, keys

Outcome = Literal["allowed", "capped", "quiet", "suppressed", "no_consent", "no_address"]
Category = Literal["marketing", "transactional"]


@dataclass(frozen=True)
class SendRequest:
    """One message a journey wants to send, with what the gate needs to know about the customer.

    ``consent`` and ``timezone`` come from the profile; ``quiet_hours_override`` is the journey's
    ``quiet_hours`` field and ``caps_override`` its cap rules (replacing the settings' rules for
    this journey's sends).  ``step_id`` breaks ties between sends of equal priority and
    ``consent_key`` names the consent entry when a channel's differs from its name.
    """

    customer_id: str
    channel: str
    category: Category
    journey_id: str
    journey_tags: tuple[str, ...]
    priority: int
    idempotency_key: str
    address: str | None
    consent: Mapping[str, bool]
    timezone: str | None
    quiet_hours_override: Mapping[str, QuietWindow | None] | Literal[False] | None = None
    caps_override: list[CapRule] | None = None
    step_id: str = ""
    consent_key: str | None = None


@dataclass(frozen=True)
class GateDecision:
    """What the gate decided; the runtime records it per journey and step and acts on it.

    ``retry_at`` (UTC) is the end of the quiet window for ``quiet`` and the moment the blocking
    cap frees a slot for ``capped`` (``None`` when a ``max: 0`` rule blocks for good).
    ``timezone_fallback`` is true when the profile's zone was missing or unknown and the settings'
    default zone was used.  ``rule`` is the blocking cap rule; ``duplicate`` marks an ``allowed``
    that was already recorded under the same idempotency key (a retry, not a new send).
    """

    outcome: Outcome
    retry_at: datetime | None = None
    reason: str = ""
    timezone_fallback: bool = False
    rule: CapRule | None = None
    duplicate: bool = False

    @property
    def allowed(self) -> bool:
        return self.outcome == "allowed"


#: The cap rules a send answers to, their script arguments and the log horizon in ms.
_RuleSet = tuple[tuple[CapRule, ...], tuple[str, ...], int]


@dataclass(slots=True)
class _Prepared:
    """A request with everything computed that needs no Redis (internal; not frozen because
    frozen dataclasses are several times slower to build, and the gate builds one per send)."""

    index: int
    request: SendRequest
    rules: tuple[CapRule, ...]
    quiet_end: datetime | None
    quiet_reason: str
    fallback: bool
    address_hash: str
    args: tuple[Any, ...]


#: Decisions are immutable, so the common "allowed" ones are built once and shared.
_ALLOWED = {
    (kind, fallback): GateDecision("allowed", reason=reason, timezone_fallback=fallback, duplicate=kind == "d")
    for kind, reason in (("a", ""), ("d", "already recorded under this idempotency key"), ("p", "transactional"))
    for fallback in (False, True)
}


class Gate:
    """Decides, for one or many sends, whether each may go now; records allowed sends for caps.

    Thread-safe as long as the Redis client is (redis-py's is): the gate holds no mutable state but
    caches.  It reads the settings once, when built: build a new gate after changing them.
    """

    def __init__(self, redis: redis.Redis, settings: Settings) -> None:
        self.redis = redis
        self.settings = settings
        self._rule_cache: dict[tuple[str, tuple[str, ...], int], tuple[Any, _RuleSet]] = {}
        longest = max((rule.window for rule in settings.caps), default=timedelta(0))
        self._horizon = max(longest, settings.send_log_retention)
        # Read once: pydantic attribute access is slow enough to show up at tens of thousands a second.
        self._default_zone = settings.default_timezone
        self._quiet_hours = dict(settings.quiet_hours)
        self._transactional_quiet = settings.transactional_quiet_hours
        self._transactional_record = "1" if settings.transactional_counts_toward_caps else "0"

    # --- deciding -----------------------------------------------------------------------------
    def check(self, request: SendRequest, *, now: datetime) -> GateDecision:
        """Decide one send (one Redis round trip, none when the profile has no address)."""
        return self.check_many([request], now=now)[0]

    def check_many(self, requests: list[SendRequest], *, now: datetime) -> list[GateDecision]:
        """Decide many sends in one pipelined round trip; decisions come back in the input order.

        Sends are evaluated in a fixed order — priority (high first), then journey id, step id and
        idempotency key — so when one customer has several sends due at once and one free slot,
        the highest-priority journey takes it, and the same input always gives the same answer.
        """
        now_ms = caps.to_ms(now)
        decisions: list[GateDecision | None] = [None] * len(requests)
        order = sorted(
            range(len(requests)),
            key=lambda i: (
                -requests[i].priority,
                requests[i].journey_id,
                requests[i].step_id,
                requests[i].idempotency_key,
            ),
        )
        pending: list[tuple[int, SendRequest, str]] = []
        for index in order:
            request = requests[index]
            if not request.address:
                _zone, fallback = resolve_zone(request.timezone, self._default_zone)
                decisions[index] = GateDecision(
                    "no_address", reason=f"no {request.channel} address on the profile", timezone_fallback=fallback
                )
                continue
            # Encoding the log member validates the request: a bad one is refused before anything is sent.
            member = caps.member(request.idempotency_key, request.channel, request.category, request.journey_tags)
            pending.append((index, request, member))
        if pending:
            prepared: list[_Prepared] = []
            suppressed: list[bool] = []
            for item, raw in zip(prepared, self._run(pending, prepared, suppressed, now, now_ms), strict=True):
                decisions[item.index] = self._decode(item, raw)
            released = self._forget_suppressed(prepared, suppressed, decisions)
            if released:
                # A send the script logged before it turned out suppressed may have capped a later
                # send of the same customer in this batch: decide those again, now that it is gone.
                again = [
                    i
                    for i, d in enumerate(decisions)
                    if d is not None and d.outcome == "capped" and requests[i].customer_id in released
                ]
                if again:
                    redone = self.check_many([requests[i] for i in again], now=now)
                    for i, decision in zip(again, redone, strict=True):
                        decisions[i] = decision
        return [decision for decision in decisions if decision is not None]

    def _forget_suppressed(
        self, prepared: list[_Prepared], suppressed: list[bool], decisions: list[GateDecision | None]
    ) -> set[str]:
        """Turn every send whose address is suppressed into ``suppressed``; release what the script
        recorded for it (it could not see the suppression list, see the module docstring).
        Returns the customers whose log had such a send released."""
        released: set[str] = set()
        for item, blocked in zip(prepared, suppressed, strict=True):
            if not blocked:
                continue
            decision = decisions[item.index]
            recorded = item.args[3][2] == "1"  # the record flag: an allowed new send was logged
            if recorded and decision is not None and decision.outcome == "allowed" and not decision.duplicate:
                self.release(item.request.customer_id, item.request.idempotency_key)
                released.add(item.request.customer_id)
            decisions[item.index] = GateDecision(
                "suppressed", reason="address is on the suppression list", timezone_fallback=item.fallback
            )
        return released

    def _rules(self, request: SendRequest) -> _RuleSet:
        """The rules a marketing send answers to, their script encoding and the log horizon (ms).

        Cached per (channel, tags, override): a fan-out repeats the same few combinations.
        """
        override = request.caps_override
        cache_key = (request.channel, request.journey_tags, id(override))
        hit = self._rule_cache.get(cache_key)
        if hit is not None and hit[0] is override:
            return hit[1]
        source = self.settings.caps if override is None else override
        rules = tuple(rule for rule in source if caps.applies(rule, request.channel, "marketing", request.journey_tags))
        horizon = max([self._horizon, *(rule.window for rule in rules)]) // caps.MILLISECOND
        value = (rules, caps.encode_rules(rules), horizon)
        if len(self._rule_cache) > 4096:
            self._rule_cache.clear()
        self._rule_cache[cache_key] = (override, value)
        return value

    def _prepare(self, index: int, request: SendRequest, member: str, now: datetime, now_ms: int) -> _Prepared:
        marketing = request.category == "marketing"
        zone, fallback = resolve_zone(request.timezone, self._default_zone)
        quiet_end: datetime | None = None
        quiet_reason = ""
        if marketing or self._transactional_quiet:
            window = effective_window(request.channel, self._quiet_hours, request.quiet_hours_override)
            quiet_end = quiet_until(now, window, zone)
            if quiet_end is not None and window is not None:
                where = f"{zone} (default zone)" if fallback else str(zone)
                quiet_reason = f"quiet hours {window.start:%H:%M}-{window.end:%H:%M} on {request.channel} in {where}"
        consent_key = request.consent_key or request.channel
        if marketing:
            rules, spec, horizon = self._rules(request)
            mode = "1" if request.consent.get(consent_key) is True else "0"
            record = "1"
        else:
            rules, spec, horizon = (), (), self._horizon // caps.MILLISECOND
            mode = "-"
            record = self._transactional_record
        args = (
            now_ms,
            member,
            consent_key,
            mode + ("1" if quiet_end is not None else "0") + record,
            horizon,
            *spec,
        )
        return _Prepared(
            index, request, rules, quiet_end, quiet_reason, fallback, address_hash(request.address or ""), args
        )

    @staticmethod
    def script_keys(customer_id: str) -> tuple[str, ...]:
        """Every key the gate script touches: all the customer's, in one cluster hash slot."""
        return (keys.send_log(customer_id), keys.consent(customer_id))

    def _command(self, item: _Prepared) -> tuple[Any, ...]:
        return (2, *self.script_keys(item.request.customer_id), *item.args)

    def _run(
        self,
        pending: list[tuple[int, SendRequest, str]],
        prepared: list[_Prepared],
        suppressed: list[bool],
        now: datetime,
        now_ms: int,
    ) -> list[Any]:
        """Evaluate every send in one pipelined round trip (the packer reloads the script if Redis
        forgot it).

        Per chunk of sends: one ``HMGET`` of their address hashes on the suppression list, then
        their scripts.  ``prepared`` and ``suppressed`` are filled in the order of the replies.
        """
        sha = caps.GATE.sha
        layout: list[int] = []  # per chunk: how many scripts follow its HMGET

        def commands() -> Iterator[tuple[Any, ...]]:
            # Lazily, chunk by chunk, so the next sends are prepared while Redis runs the first ones.
            for start in range(0, len(pending), caps.CHUNK):
                items = [self._prepare(i, r, m, now, now_ms) for i, r, m in pending[start : start + caps.CHUNK]]
                prepared.extend(items)
                layout.append(len(items))
                yield ("HMGET", keys.suppressed(), *(item.address_hash for item in items))
                for item in items:
                    yield ("EVALSHA", sha, *self._command(item))

        replies = batch.pipeline(self.redis, commands())
        results: list[Any] = []
        position = 0
        for size in layout:
            found = replies[position]
            if isinstance(found, Exception):
                raise found
            suppressed.extend(value is not None for value in found)
            results.extend(replies[position + 1 : position + 1 + size])
            position += 1 + size
        for raw in results:
            if isinstance(raw, Exception):
                raise raw
        return results

    def _decode(self, item: _Prepared, raw: Any) -> GateDecision:
        answer = caps.text(raw)
        request, fallback = item.request, item.fallback
        kind = answer[:1]
        if kind in ("a", "d", "p"):
            return _ALLOWED[answer, fallback]
        if kind == "q":
            return GateDecision("quiet", retry_at=item.quiet_end, reason=item.quiet_reason, timezone_fallback=fallback)
        if kind == "c":
            number, _, retry = answer[1:].partition(",")
            rule = item.rules[int(number) - 1]
            retry_ms = int(retry)
            return GateDecision(
                "capped",
                retry_at=None if retry_ms < 0 else caps.from_ms(retry_ms),
                reason=caps.describe(rule),
                timezone_fallback=fallback,
                rule=rule,
            )
        if kind == "n":
            key = request.consent_key or request.channel
            return GateDecision("no_consent", reason=f"no marketing consent for {key}", timezone_fallback=fallback)
        raise AssertionError(f"unexpected gate script answer {raw!r}")  # pragma: no cover

    # --- after deciding -----------------------------------------------------------------------
    def defer_until(
        self, decision: GateDecision, request: SendRequest, now: datetime, defer_max: timedelta
    ) -> datetime | None:
        """When to try a deferred send again, or ``None`` to skip it.

        ``quiet`` always gets the window's end: quiet hours defer, they never drop.  ``capped``
        gets the moment a slot frees if that is within ``defer_max`` of ``now``, else ``None``
        (``on_capped: defer`` then behaves as ``skip``).  Every other outcome has nothing to wait
        for and gets ``None``.
        """
        if decision.outcome == "quiet":
            return decision.retry_at
        if decision.outcome != "capped" or decision.retry_at is None:
            return None
        return decision.retry_at if decision.retry_at - now <= defer_max else None

    def release(self, customer_id: str, idempotency_key: str) -> bool:
        """Forget a recorded send so it stops counting toward caps; ``True`` if one was removed.

        For a send the gate allowed but the channel then refused for good (bad address, provider
        rejects): the customer never received it, so it must not eat a slot.  Do not call it after
        a transient failure that will be retried — the retry reuses the slot through the
        idempotency key.  Releasing an unknown key is harmless; a later check with the same key is
        treated as a new send.
        """
        pipe = batch.Batch(self.redis)
        pipe.script(caps.RELEASE, [keys.send_log(customer_id)], [idempotency_key])
        return bool(pipe.execute()[0])
