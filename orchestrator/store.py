"""Every Redis read and write for customers, enrollments, journeys and stats, in one place.

Redis is the truth and Dramatiq messages are only nudges, so everything here is written to be
safe when a message is delivered twice or a worker dies half-way: enrollments change only by
compare-and-set on their revision, events are applied to a profile once, and a send is claimed
with a lease before a channel is called.  Scripts touch only keys of one customer (one hash
tag) so they stay valid on Redis Cluster.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from typing import Any, Literal

import redis
from redis.commands.core import CoreCommands
from redis.crc import key_slot

from orchestrator import keys
from orchestrator.enrollment import Enrollment, SendAction
from orchestrator.errors import StateConflict
from orchestrator.journey import Journey
from orchestrator.profile import Profile

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:  # redis-py packs with hiredis when it is installed (a dependency); kept optional here too
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # pragma: no cover
    _hiredis_pack = None

#: Finished enrollments are kept this long for reports and webhooks, then expire.
FINISHED_TTL = 90 * 86400
#: Seen event ids are kept this long (a replay older than this is treated as new).
SEEN_TTL = 30 * 86400
PROVIDER_ID_TTL = 30 * 86400

# KEYS: enrollment hash, live hash, last-entry hash, delivered hash
# ARGV: expected rev ("-1" = create), new rev, doc, send json or "", journey id, run id, finished "1"/"0",
#       entered epoch or "", finished ttl, timer ("" keep, "x" drop, else "revision|due"),
#       send to claim ("" none), claim lease expiry, pending profile updates JSON ("" none)
# Claiming the new send here (only when the compare-and-set wins) saves the worker that sends it
# inline a round trip; an existing mark (claimed or done) is left alone.  The decision's profile
# updates are recorded under ``pending:<new rev>`` in the same atomic step, so a crash before they
# are applied leaves them for the re-drive timer (they are applied idempotently, see apply_update).
_CAS_FUNCTION = """
local function cas(k, a)
  local K1, K2, K3, K4 = KEYS[k + 1], KEYS[k + 2], KEYS[k + 3], KEYS[k + 4]
  local A = {}
  for i = 1, 13 do A[i] = ARGV[a + i] end
  local cur = redis.call('HGET', K1, 'rev')
  if A[1] == '-1' then
    if cur then return 0 end
  elseif cur ~= A[1] then
    return 0
  end
  redis.call('HSET', K1, 'rev', A[2], 'doc', A[3])
  if A[4] == '' then redis.call('HDEL', K1, 'send') else redis.call('HSET', K1, 'send', A[4]) end
  if A[7] == '1' then
    redis.call('HDEL', K2, A[6])
    redis.call('HDEL', K1, 'timer')
    redis.call('EXPIRE', K1, tonumber(A[9]))
  else
    redis.call('HSET', K2, A[6], A[5])
  end
  if A[8] ~= '' then redis.call('HSET', K3, A[5], A[8]) end
  if A[10] == 'x' then redis.call('HDEL', K1, 'timer')
  elseif A[10] ~= '' and A[7] ~= '1' then redis.call('HSET', K1, 'timer', A[10]) end
  if A[11] ~= '' then redis.call('HSETNX', K4, A[11], 'claimed:' .. A[12]) end
  if A[13] ~= '' then redis.call('HSET', K1, 'pending:' .. A[2], A[13]) end
  return 1
end
"""
_CAS = _CAS_FUNCTION + "return cas(0, 0)\n"
#: Many compare-and-sets in one call (a cohort chunk): the same function per enrollment, one reply
#: (a list of 1/0).  Only ever given keys of one cluster slot (see Store.slot_groups).
_CAS_MANY = (
    _CAS_FUNCTION
    + """
local out = {}
for i = 0, #KEYS / 4 - 1 do out[i + 1] = cas(i * 4, i * 13) end
return out
"""
)

# KEYS: delivered hash.  ARGV: field, now epoch, lease seconds
_CLAIM = """
local v = redis.call('HGET', KEYS[1], ARGV[1])
if v then
  if string.sub(v, 1, 5) == 'done:' then return v end
  local expiry = tonumber(string.sub(v, 9))
  if expiry and expiry > tonumber(ARGV[2]) then return 'busy:' .. tostring(expiry) end
end
redis.call('HSET', KEYS[1], ARGV[1], 'claimed:' .. tostring(tonumber(ARGV[2]) + tonumber(ARGV[3])))
return 'claimed'
"""

# KEYS: profile, seen hash.  ARGV: profile JSON read ("" = none), new JSON, event id, seen ttl.
_APPLY = """
local seen = redis.call('HGET', KEYS[2], ARGV[3])
if seen then return seen end
local cur = redis.call('GET', KEYS[1])
if (cur or '') ~= ARGV[1] then return 'conflict' end
redis.call('SET', KEYS[1], ARGV[2])
redis.call('HSET', KEYS[2], ARGV[3], 'applied')
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[4]))
return 'new'
"""

# KEYS: profile, consent, live, last-entry, seen.  ARGV: event id ("" = none), "1" to mark the event
# applied when unseen (events that do not change the profile need no second call).
# One call instead of five commands: the Python cost of a command is what a cohort pays per customer.
_READ = """
local seen = false
if ARGV[1] ~= '' then
  seen = redis.call('HGET', KEYS[5], ARGV[1])
  if not seen and ARGV[2] == '1' then
    redis.call('HSET', KEYS[5], ARGV[1], 'applied')
    redis.call('EXPIRE', KEYS[5], tonumber(ARGV[3]))
  end
end
return {redis.call('GET', KEYS[1]), redis.call('HGETALL', KEYS[2]), redis.call('HGETALL', KEYS[3]),
        redis.call('HGETALL', KEYS[4]), seen}
"""

# KEYS: profile, consent, live, last-entry of each customer.  One reply per customer: {profile,
# consent, live, last}, or {false} for an unknown one.  A cohort chunk reads in one call per slot.
_READ_MANY = """
local out = {}
for i = 1, #KEYS, 4 do
  local raw = redis.call('GET', KEYS[i])
  if raw then
    out[#out + 1] = {raw, redis.call('HGETALL', KEYS[i + 1]), redis.call('HGETALL', KEYS[i + 2]),
                     redis.call('HGETALL', KEYS[i + 3])}
  else
    out[#out + 1] = {false}
  end
end
return out
"""

SCRIPTS = {"cas": _CAS, "cas_many": _CAS_MANY, "claim": _CLAIM, "apply": _APPLY, "read": _READ, "read_many": _READ_MANY}

Claim = tuple[Literal["claimed", "done", "busy"], str]


def _epoch(moment: datetime) -> float:
    return moment.timestamp()


def send_to_json(send: SendAction) -> str:
    # A shallow dict: ``dataclasses.asdict`` deep-copies every value, a cost every send pays.
    data = {f.name: getattr(send, f.name) for f in _SEND_FIELDS}
    return json.dumps(data, separators=(",", ":"))


_SEND_FIELDS = dataclasses.fields(SendAction)


def send_from_json(text: str) -> SendAction:
    data = json.loads(text)
    data["channels"] = tuple(data["channels"])
    return SendAction(**data)


@dataclasses.dataclass(frozen=True)
class PendingUpdate:
    """A journey ``update`` recorded with the compare-and-set that decided it; ``key`` (run id and
    step id) makes applying it idempotent."""

    key: str
    customer_id: str
    set: dict[str, Any]
    increment: dict[str, float]


def pending_json(updates: Iterable[PendingUpdate]) -> str:
    return json.dumps([[u.key, u.customer_id, u.set, u.increment] for u in updates], separators=(",", ":"))


def pending_from_json(text: str) -> list[PendingUpdate]:
    return [PendingUpdate(key, customer, set_, increment) for key, customer, set_, increment in json.loads(text)]


@dataclasses.dataclass(frozen=True)
class StoredEnrollment:
    """An enrollment as stored, with its pending send and live timer (``revision``, due epoch)."""

    enrollment: Enrollment
    send: SendAction | None
    timer: tuple[int, float] | None


@dataclasses.dataclass(frozen=True)
class EventState:
    """What handling an event starts from, read in one round trip: whether the event was seen,
    the profile after applying it, and the customer's live runs and last entries."""

    state: Literal["new", "applied", "done"]
    profile: Profile
    live: dict[str, str]
    last: dict[str, datetime]


class Store:
    """All of Loyaloop's per-customer state in Redis.  ``client`` must use ``decode_responses=True``.

    Scripts run by EVALSHA (loaded once), also inside pipelines, so a pipeline costs exactly one
    round trip; after a Redis restart (scripts gone) the pipeline is rebuilt once after reloading.
    """

    def __init__(self, client: redis.Redis) -> None:
        #: Typed loosely: redis-py's stubs cannot express ``decode_responses=True`` (str replies).
        self.redis: Any = client
        #: On a Redis Cluster a script may only touch keys of one hash slot (see slot_groups).
        self.cluster = isinstance(client, redis.RedisCluster)
        self._raw = not self.cluster and streams(getattr(client, "connection_pool", None))
        self._shas: dict[str, str] = {}
        self._load_scripts()

    def _load_scripts(self) -> None:
        self._shas = {name: str(self.redis.script_load(source)) for name, source in SCRIPTS.items()}

    def evalsha(self, pipe: Any, name: str, keys_: list[str], args: list[Any]) -> None:
        """Queue script ``name`` on a pipeline built for :meth:`run`."""
        pipe.evalsha(self._shas[name], len(keys_), *keys_, *args)

    def run(self, build: Callable[[Any], object]) -> list[Any]:
        """Build and execute one non-transactional pipeline (one round trip), reloading scripts once.

        On a real server the commands go out as one write on a pooled connection and the replies
        are read straight back (:class:`Batch`): redis-py's Pipeline costs ~100 µs of Python per
        execute, more than the hot paths' own work.  fakeredis gets an ordinary pipeline.
        """
        for attempt in range(2):
            pipe = Batch(self.redis) if self._raw else self.redis.pipeline(transaction=False)
            build(pipe)
            try:
                return list(pipe.execute())
            except redis.exceptions.NoScriptError:
                if attempt:
                    raise
                self._load_scripts()
        raise AssertionError("unreachable")  # pragma: no cover

    def _script(self, name: str, keys_: list[str], args: list[Any]) -> Any:
        return self.run(lambda pipe: self.evalsha(pipe, name, keys_, args))[0]

    # --- profiles ------------------------------------------------------------------------------
    def get_profile(self, customer_id: str) -> Profile | None:
        """The profile with consent merged in, or None for a customer never seen."""
        return self.get_profiles([customer_id]).get(customer_id)

    def get_profiles(self, customer_ids: Iterable[str]) -> dict[str, Profile]:
        """Many profiles in one pipelined round trip (cohort fan-out reads 500 at a time)."""
        ids = list(customer_ids)
        pipe = self.redis.pipeline(transaction=False)
        for customer_id in ids:
            pipe.get(keys.profile(customer_id))
            pipe.hgetall(keys.consent(customer_id))
        replies = pipe.execute()
        found: dict[str, Profile] = {}
        for index, customer_id in enumerate(ids):
            raw, consent = replies[2 * index], replies[2 * index + 1]
            if raw is None:
                continue
            found[customer_id] = _with_consent(Profile.model_validate_json(raw), consent)
        return found

    def save_profile(self, profile: Profile) -> None:
        """Write a whole profile (consent goes to its own hash)."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(keys.profile(profile.id), _profile_json(profile))
        if profile.consent:
            pipe.hset(keys.consent(profile.id), mapping={k: "1" if v else "0" for k, v in profile.consent.items()})
        pipe.execute()

    def change_profile(self, customer_id: str, change: Callable[[Profile], Profile | None]) -> Profile:
        """Read-modify-write a profile under WATCH (retried on a concurrent change).

        ``change`` receives the current profile (a fresh one for a new customer) and returns the
        new one, or None to leave it untouched.
        """
        key = keys.profile(customer_id)
        while True:
            with self.redis.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)
                    raw = pipe.get(key)
                    consent = pipe.hgetall(keys.consent(customer_id))
                    current = Profile.model_validate_json(raw) if raw else Profile(id=customer_id)
                    current = _with_consent(current, consent)
                    changed = change(current.model_copy(deep=True))
                    if changed is None:
                        return current
                    pipe.multi()
                    pipe.set(key, _profile_json(changed))
                    if changed.consent != current.consent:
                        mapping = {k: "1" if v else "0" for k, v in changed.consent.items()}
                        pipe.delete(keys.consent(customer_id))
                        if mapping:
                            pipe.hset(keys.consent(customer_id), mapping=mapping)
                    pipe.execute()
                    return changed
                except redis.WatchError:
                    continue

    def apply_event(
        self, customer_id: str, event_id: str, change: Callable[[Profile], Profile], *, read_only: bool = False
    ) -> EventState:
        """Apply an event's effect on the profile exactly once (phase one of event handling).

        ``state`` is ``new`` when applied now, ``applied`` when an earlier delivery applied it but
        did not finish the journeys part (redo that part), ``done`` for a duplicate.  One script
        reads everything, then one writes only if the profile did not change meanwhile.  With
        ``read_only`` (an event that changes nothing on a known profile) the read marks the event
        applied itself: one call in all.
        """
        while True:
            mark = "1" if read_only else "0"
            raw, consent, live, last, seen = self._script("read", _read_keys(customer_id), [event_id, mark, SEEN_TTL])
            current = Profile.model_validate_json(raw) if raw else Profile(id=customer_id)
            current = _with_consent(current, _pairs(consent))
            entries = _entries(_pairs(last))
            if seen == "applied" or seen == "done":
                return EventState("applied" if seen == "applied" else "done", current, _pairs(live), entries)
            changed = change(current.model_copy(deep=True))
            if read_only:
                if changed != current:  # a first event of an unknown customer: the profile is created
                    changed = self.change_profile(customer_id, change)
                return EventState("new", changed, _pairs(live), entries)
            result = self._script(
                "apply",
                [keys.profile(customer_id), keys.seen_events(customer_id)],
                [raw or "", _profile_json(changed), event_id, SEEN_TTL],
            )
            if result == "new":
                return EventState("new", changed, _pairs(live), entries)

    def finish_event(self, customer_id: str, event_id: str, pipe: Any = None) -> None:
        """Phase two done: a redelivered copy of this event is now a pure duplicate."""
        (pipe or self.redis).hset(keys.seen_events(customer_id), event_id, "done")

    def update_profile(self, customer_id: str, set_: dict[str, Any], increment: dict[str, float]) -> Profile:
        """Apply attributes set and numbers incremented now (not keyed: journeys use apply_update)."""
        return self.change_profile(customer_id, lambda profile: _updated(profile, set_, increment))

    def set_consent(self, customer_id: str, channel: str, given: bool) -> None:
        self.redis.hset(keys.consent(customer_id), channel, "1" if given else "0")

    def scan_customers(self, count: int = 1000) -> Iterator[list[str]]:
        """Every known customer id, in batches (SCAN, never KEYS)."""
        prefix, suffix = keys.profile("\0").split("\0")
        batch: list[str] = []
        for key in self.redis.scan_iter(match=f"{prefix}*{suffix}", count=count):
            batch.append(key[len(prefix) : -len(suffix)])
            if len(batch) >= count:
                yield batch
                batch = []
        if batch:
            yield batch

    # --- enrollments ---------------------------------------------------------------------------
    def get_enrollment(self, customer_id: str, run_id: str) -> StoredEnrollment | None:
        data = self.redis.hgetall(keys.enrollment(customer_id, run_id))
        return _stored(data)

    def get_enrollments(self, customer_id: str, run_ids: Iterable[str]) -> list[StoredEnrollment]:
        ids = list(run_ids)
        pipe = self.redis.pipeline(transaction=False)
        for run_id in ids:
            pipe.hgetall(keys.enrollment(customer_id, run_id))
        return [found for found in (_stored(data) for data in pipe.execute()) if found is not None]

    def live_runs(self, customer_id: str) -> dict[str, str]:
        """Run id → journey id of the customer's unfinished enrollments."""
        return dict(self.redis.hgetall(keys.live_enrollments(customer_id)))

    def last_entries(self, customer_id: str) -> dict[str, datetime]:
        return _entries(self.redis.hgetall(keys.last_entry(customer_id)))

    def slot_groups(self, customer_ids: Iterable[str]) -> list[list[str]]:
        """Customers whose keys one script may touch together: all of them on a single Redis, those
        of one hash slot on a Redis Cluster (every per-customer key carries the ``{id}`` tag)."""
        ids = list(customer_ids)
        if not self.cluster:
            return [ids] if ids else []
        groups: dict[int, list[str]] = {}
        for customer_id in ids:
            groups.setdefault(key_slot(keys.profile(customer_id).encode()), []).append(customer_id)
        return list(groups.values())

    def customers(self, customer_ids: list[str]) -> dict[str, tuple[Profile, dict[str, str], dict[str, datetime]]]:
        """Profile, live runs and last entries of many customers: one script call per slot group,
        one round trip in all (cohort fan-out).  Unknown customers are left out."""
        groups = self.slot_groups(customer_ids)

        def build(pipe: Any) -> None:
            for group in groups:
                names = [key for customer_id in group for key in _read_keys(customer_id)[:4]]
                self.evalsha(pipe, "read_many", names, [])

        found: dict[str, tuple[Profile, dict[str, str], dict[str, datetime]]] = {}
        validate = Profile.model_validate_json
        for group, replies in zip(groups, self.run(build), strict=True):
            for customer_id, reply in zip(group, replies, strict=True):
                if reply[0]:
                    raw, consent, live, last = reply
                    profile = validate(raw)
                    if consent:
                        profile.consent = {channel: value == "1" for channel, value in _pairs(consent).items()}
                    found[customer_id] = (profile, _pairs(live) if live else {}, _entries(_pairs(last)) if last else {})
        return found

    def entry_state(self, customer_ids: list[str]) -> dict[str, tuple[dict[str, str], dict[str, datetime]]]:
        """Live runs and last entries of many customers in one round trip (cohort fan-out)."""

        def build(pipe: Any) -> None:
            for customer_id in customer_ids:
                pipe.hgetall(keys.live_enrollments(customer_id))
                pipe.hgetall(keys.last_entry(customer_id))

        replies = self.run(build)
        return {
            customer_id: (dict(replies[2 * i]), _entries(replies[2 * i + 1]))
            for i, customer_id in enumerate(customer_ids)
        }

    def create_enrollment(
        self, enrollment: Enrollment, send: SendAction | None = None, timer: tuple[int, float] | None = None
    ) -> bool:
        """Store a new enrollment; False when that run id exists already (a redelivered entry)."""
        return bool(
            self.run(lambda pipe: self.write_enrollment(pipe, enrollment, expected=-1, send=send, timer=timer))[-1]
        )

    def cas_enrollment(
        self,
        enrollment: Enrollment,
        *,
        expected: int,
        send: SendAction | None = None,
        timer: tuple[int, float] | Literal["keep"] | None = "keep",
    ) -> None:
        """Replace the enrollment stored at revision ``expected``; raise StateConflict if it moved.

        ``timer`` is the enrollment's new live timer (revision, due epoch), None to forget it, or
        ``keep``.
        """
        written = self.run(
            lambda pipe: self.write_enrollment(pipe, enrollment, expected=expected, send=send, timer=timer)
        )
        if not written[-1]:
            raise conflict(enrollment, expected)

    def write_enrollment(
        self,
        pipe: Any,
        enrollment: Enrollment,
        *,
        expected: int,
        send: SendAction | None,
        timer: tuple[int, float] | Literal["keep"] | None,
        claim: tuple[str, float] | None = None,
        pending: str = "",
    ) -> None:
        """Queue the compare-and-set of an enrollment on a pipeline (``expected=-1`` creates it).

        Its reply is 1 when written, 0 when the revision moved (or, creating, the run exists).
        ``claim`` (idempotency key, lease expiry) claims the new send for the caller when it wins;
        ``pending`` (from :func:`pending_json`) records the decision's profile updates atomically.
        """
        args = _cas_args(enrollment, expected, send, timer, claim, pending)
        self.evalsha(pipe, "cas", _enrollment_keys(enrollment.customer_id, enrollment.run_id), args)

    def pending_updates(self, customer_id: str, run_id: str, revision: int) -> list[PendingUpdate]:
        """The profile updates recorded with this revision and not yet cleared (re-drive after a crash)."""
        raw = self.redis.hget(keys.enrollment(customer_id, run_id), f"pending:{revision}")
        return pending_from_json(raw) if raw else []

    def clear_pending(self, customer_id: str, run_id: str, revision: int, pipe: Any = None) -> None:
        """Every update of that revision is applied: forget them."""
        (pipe or self.redis).hdel(keys.enrollment(customer_id, run_id), f"pending:{revision}")

    def apply_update(self, update: PendingUpdate) -> bool:
        """Apply one journey ``update`` to its customer's profile at most once (keyed by run id and
        step id); False when it was applied before.  Optimistic: the write happens only if the
        profile did not change since it was read (else read again)."""
        profile_key, applied_key = keys.profile(update.customer_id), keys.applied_updates(update.customer_id)
        while True:
            pipe = self.redis.pipeline(transaction=False)
            pipe.hexists(applied_key, update.key)
            pipe.get(profile_key)
            done, raw = pipe.execute()
            if done:
                return False
            current = Profile.model_validate_json(raw) if raw else Profile(id=update.customer_id)
            changed = _updated(current, update.set, update.increment)
            result = self._script(
                "apply", [profile_key, applied_key], [raw or "", _profile_json(changed), update.key, SEEN_TTL]
            )
            if result == "new":
                return True
            if result != "conflict":
                return False

    def create_enrollments(
        self, pipe: Any, items: list[tuple[Enrollment, SendAction | None, tuple[int, float] | None, str]]
    ) -> list[list[int]]:
        """Queue the creation of many enrollments (enrollment, send, timer, pending updates) with one
        compare-and-set script call per slot group.  Returns, per queued call, the indices of the
        items it carries: its reply lists 1 (created) or 0 (the run existed) for each, in that order."""
        by_customer: dict[str, list[int]] = {}
        for index, (enrollment, _s, _t, _p) in enumerate(items):
            by_customer.setdefault(enrollment.customer_id, []).append(index)
        groups = self.slot_groups(by_customer)
        for group in groups:
            names: list[str] = []
            args: list[Any] = []
            for customer_id in group:
                for index in by_customer[customer_id]:
                    enrollment, send, timer, pending = items[index]
                    names.extend(_enrollment_keys(customer_id, enrollment.run_id))
                    args.extend(_cas_args(enrollment, -1, send, timer, None, pending))
            self.evalsha(pipe, "cas_many", names, args)
        return [[index for customer_id in group for index in by_customer[customer_id]] for group in groups]

    def set_timer_field(self, customer_id: str, run_id: str, revision: int, due: float, pipe: Any = None) -> None:
        """Remember the live timer of an enrollment (a deferred send), so a later cancel finds it."""
        (pipe or self.redis).hset(keys.enrollment(customer_id, run_id), "timer", f"{revision}|{due!r}")

    # --- deliveries ----------------------------------------------------------------------------
    def claim_delivery(self, customer_id: str, idempotency_key: str, *, now: float, lease: float) -> Claim:
        """Claim a send before calling the channel.  ``done`` carries the earlier outcome; ``busy``
        the lease expiry of another worker's claim.  An expired claim is taken over (the worker
        holding it died); channels pass the idempotency key on so the provider drops a repeat."""
        result = str(self._script("claim", [keys.delivered(customer_id)], [idempotency_key, repr(now), repr(lease)]))
        if result == "claimed":
            return "claimed", ""
        kind, _, rest = result.partition(":")
        return ("done", rest) if kind == "done" else ("busy", rest)

    def finish_delivery(self, customer_id: str, idempotency_key: str, outcome: str, pipe: Any = None) -> None:
        (pipe or self.redis).hset(keys.delivered(customer_id), idempotency_key, f"done:{outcome}")

    def release_delivery(self, customer_id: str, idempotency_key: str) -> None:
        """Give a claim back without sending (quiet hours, retry later)."""
        self.redis.hdel(keys.delivered(customer_id), idempotency_key)

    def delivery_attempt(self, customer_id: str, idempotency_key: str) -> int:
        """Count one more transient failure of this send; returns the count so far."""
        return int(self.redis.hincrby(keys.delivered(customer_id), f"{idempotency_key}#attempts", 1))

    def remember_provider_message(
        self,
        provider_message_id: str,
        *,
        customer_id: str,
        run_id: str,
        step_id: str,
        channel: str,
        key: str,
        pipe: Any = None,
    ) -> None:
        """Map a provider's message id back to the send, for status webhooks."""
        mapping = {"customer_id": customer_id, "run_id": run_id, "step_id": step_id, "channel": channel}
        mapping["idempotency_key"] = key
        target = pipe if pipe is not None else self.redis.pipeline(transaction=False)
        target.hset(keys.message(provider_message_id), mapping=mapping)
        target.expire(keys.message(provider_message_id), PROVIDER_ID_TTL)
        if pipe is None:
            target.execute()

    def lookup_provider_message(self, provider_message_id: str) -> dict[str, str] | None:
        """Customer, run, step, channel and idempotency key of a provider's message id."""
        found = self.redis.hgetall(keys.message(provider_message_id))
        return dict(found) if found else None

    # --- journeys ------------------------------------------------------------------------------
    def save_journey(self, journey: Journey) -> None:
        """Keep every version ever loaded: in-flight enrollments finish on the one they entered."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(keys.journey_version(journey.id, journey.version), journey.model_dump_json(by_alias=True), nx=True)
        pipe.hset(keys.journeys_index(), journey.id, journey.version)
        pipe.execute()

    def load_journey(self, journey_id: str, version: str) -> Journey | None:
        raw = self.redis.get(keys.journey_version(journey_id, version))
        return Journey.model_validate_json(raw) if raw else None

    def journey_ids(self) -> dict[str, str]:
        return dict(self.redis.hgetall(keys.journeys_index()))

    # --- stats and counters --------------------------------------------------------------------
    def record(self, journey_id: str, step_id: str | None, stat: str, amount: int = 1) -> None:
        self.redis.hincrby(keys.journey_stats(journey_id), f"{step_id or '_journey'}:{stat}", amount)

    def record_many(self, records: Iterable[tuple[str, str | None, str, int]], pipe: Any = None) -> None:
        """Count many stats; on ``pipe`` when given (no round trip of its own), else in one pipeline."""
        target = pipe if pipe is not None else self.redis.pipeline(transaction=False)
        for journey_id, step_id, stat, amount in records:
            target.hincrby(keys.journey_stats(journey_id), f"{step_id or '_journey'}:{stat}", amount)
        if pipe is None:
            target.execute()

    def stats(self, journey_id: str) -> dict[str, int]:
        return {field: int(value) for field, value in self.redis.hgetall(keys.journey_stats(journey_id)).items()}

    def refuse(self, reason: str) -> None:
        """Count a refused input (bad event, bad message) by reason."""
        self.redis.hincrby(keys.refused(), reason, 1)

    def refused_counts(self) -> dict[str, int]:
        return {reason: int(count) for reason, count in self.redis.hgetall(keys.refused()).items()}

    def count(self, name: str, amount: int = 1, pipe: Any = None) -> None:
        (pipe or self.redis).hincrby(keys.metrics_counters(), name, amount)

    def counters(self) -> dict[str, int]:
        return {name: int(value) for name, value in self.redis.hgetall(keys.metrics_counters()).items()}


def streams(pool: Any) -> bool:
    """Whether ``pool`` hands out redis-py socket connections to a real server (not fakeredis's)."""
    if pool is None:
        return False
    connection_class = pool.connection_class
    if connection_class.__module__.startswith("fakeredis"):
        return False
    return issubclass(connection_class, redis.connection.AbstractConnection)


class Batch(CoreCommands):
    """A non-transactional pipeline without redis-py's Pipeline machinery: commands are queued by
    the usual command methods, written in one go on a pooled connection, and the replies read back
    (error replies raised after all are read, the first one first, like ``Pipeline.execute``).

    On a connection error the batch is sent once more on a fresh connection, as redis-py's
    pipeline retries; anything else leaves the connection closed (replies may be in flight).
    """

    _event_dispatcher: Any = None  # CoreCommands declares it; nothing here emits events

    def __init__(self, client: Any) -> None:
        self._client = client
        self._commands: list[tuple[Any, ...]] = []

    def execute_command(self, *args: Any, **options: Any) -> None:
        self._commands.append(args)

    def __len__(self) -> int:
        return len(self._commands)

    def __bool__(self) -> bool:
        return True  # an empty batch is still a pipeline: ``pipe or client`` must pick it

    def execute(self) -> list[Any]:
        if not self._commands:
            return []
        for attempt in range(2):
            try:
                return self._send()
            except redis.exceptions.ConnectionError:
                if attempt:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _send(self) -> list[Any]:
        pool = self._client.connection_pool
        connection = pool.get_connection()
        try:
            connection.send_packed_command(_packed(connection, self._commands))
            replies: list[Any] = []
            error: redis.exceptions.ResponseError | None = None
            for command in self._commands:
                try:
                    reply = connection.read_response()
                except redis.exceptions.ResponseError as exc:
                    error = error or exc
                    reply = exc
                if command[0] == "HGETALL" and isinstance(reply, list):
                    reply = dict(zip(reply[0::2], reply[1::2], strict=True))
                replies.append(reply)
        except BaseException:
            connection.disconnect()
            raise
        finally:
            pool.release(connection)
        if error is not None:
            raise error
        return replies


def _packed(connection: Any, commands: list[tuple[Any, ...]]) -> Any:
    """RESP bytes for a batch: hiredis's C packer when present (redis-py's packer walks every
    argument in Python first, which a cohort chunk's ~10,000 script arguments feel), else redis-py's."""
    if _hiredis_pack is None or any(" " in command[0] for command in commands):
        return connection.pack_commands(commands)
    return [b"".join([_hiredis_pack(command) for command in commands])]


def conflict(enrollment: Enrollment, expected: int) -> StateConflict:
    return StateConflict(
        f"enrollment {enrollment.run_id!r} is no longer at revision {expected}; re-read it and decide again"
    )


def _enrollment_keys(customer_id: str, run_id: str) -> list[str]:
    return [
        keys.enrollment(customer_id, run_id),
        keys.live_enrollments(customer_id),
        keys.last_entry(customer_id),
        keys.delivered(customer_id),
    ]


def _cas_args(
    enrollment: Enrollment,
    expected: int,
    send: SendAction | None,
    timer: tuple[int, float] | Literal["keep"] | None,
    claim: tuple[str, float] | None,
    pending: str,
) -> list[str]:
    """The compare-and-set script's 13 arguments (see _CAS_FUNCTION)."""
    timer_arg = "" if timer == "keep" else "x" if timer is None else f"{timer[0]}|{timer[1]!r}"
    return [
        str(expected),
        str(enrollment.revision),
        enrollment.model_dump_json(),
        send_to_json(send) if send is not None else "",
        enrollment.journey_id,
        enrollment.run_id,
        "1" if enrollment.finished else "0",
        repr(_epoch(enrollment.entered_at)) if expected == -1 else "",
        str(FINISHED_TTL),
        timer_arg,
        claim[0] if claim is not None else "",
        repr(claim[1]) if claim is not None else "",
        pending,
    ]


def _read_keys(customer_id: str) -> list[str]:
    return [
        keys.profile(customer_id),
        keys.consent(customer_id),
        keys.live_enrollments(customer_id),
        keys.last_entry(customer_id),
        keys.seen_events(customer_id),
    ]


def _pairs(flat: list[str] | dict[str, str]) -> dict[str, str]:
    """A Lua HGETALL reply (flat list) as a dict."""
    if isinstance(flat, dict):
        return dict(flat)
    return dict(zip(flat[0::2], flat[1::2], strict=True))


def _entries(raw: dict[str, str]) -> dict[str, datetime]:
    return {journey: datetime.fromtimestamp(float(value), UTC) for journey, value in raw.items()}


def _profile_json(profile: Profile) -> str:
    return profile.model_dump_json(exclude={"consent"})


def _updated(profile: Profile, set_: dict[str, Any], increment: dict[str, float]) -> Profile:
    for name, value in set_.items():
        profile.attributes[name] = value
    for name, amount in increment.items():
        old = profile.attributes.get(name, 0)
        base = old if isinstance(old, int | float) and not isinstance(old, bool) else 0
        total = base + amount
        profile.attributes[name] = int(total) if float(total).is_integer() else total
    return profile


def _with_consent(profile: Profile, consent: dict[str, str]) -> Profile:
    if consent:
        profile.consent = {channel: value == "1" for channel, value in consent.items()}
    return profile


def _stored(data: dict[str, str]) -> StoredEnrollment | None:
    if not data or "doc" not in data:
        return None
    timer = None
    if data.get("timer"):
        revision, _, due = data["timer"].partition("|")
        timer = (int(revision), float(due))
    send = send_from_json(data["send"]) if data.get("send") else None
    return StoredEnrollment(Enrollment.model_validate_json(data["doc"]), send, timer)
