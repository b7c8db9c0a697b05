"""Enrollments, changed only by compare-and-set on their revision, with the customer's live runs,
last entries and the profile updates a decision recorded."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any, Literal

from orchestrator.engine.enrollment import Enrollment, SendAction
from orchestrator.language.profile import Profile
from orchestrator.store import keys, profile_index
from orchestrator.store.base import StoreBase
from orchestrator.store.codec import (
    PendingUpdate,
    StoredEnrollment,
    cas_args,
    conflict,
    enrollment_keys,
    entry_times,
    lua_pairs,
    parse_stored,
    pending_from_json,
    profile_json,
    read_keys,
    with_updates,
)
from orchestrator.store.figures import NO_FIGURES, FigureArgs, deferred_text, index_member, shard_key, shard_tag
from orchestrator.store.profiles import parse_profiles, queue_profiles
from orchestrator.store.run_codec import split_runs
from orchestrator.store.scripts import SEEN_TTL


class EnrollmentStore(StoreBase):
    """Enrollments and the per-customer indexes that point at them."""

    def get_enrollment(self, customer_id: str, run_id: str) -> StoredEnrollment | None:
        """A run, live or finished."""
        return self.get_runs([(customer_id, run_id)])[0]

    def get_enrollments(self, customer_id: str, run_ids: Iterable[str]) -> list[StoredEnrollment]:
        found = self.get_runs([(customer_id, run_id) for run_id in run_ids])
        return [stored for stored in found if stored is not None]

    def get_runs(self, runs: Sequence[tuple[str, str]]) -> list[StoredEnrollment | None]:
        """Many runs (customer id, run id), live or finished: one script call per customer, one
        round trip in all."""
        return self.get_runs_and_profiles(runs, with_profiles=False)[0]

    def get_runs_and_profiles(
        self, runs: Sequence[tuple[str, str]], *, with_profiles: bool = True
    ) -> tuple[list[StoredEnrollment | None], dict[str, Profile]]:
        """:meth:`get_runs`, and the profiles of the runs' customers in the same round trip (a batch
        of fired timers orders its timers by the runs and decides them on the profiles)."""
        if not runs:
            return [], {}
        by_customer: dict[str, list[int]] = {}
        for index, (customer_id, _run) in enumerate(runs):
            by_customer.setdefault(customer_id, []).append(index)
        customers = list(by_customer)

        def build(pipe: Any) -> None:
            for customer_id, indices in by_customer.items():
                run_ids = [runs[index][1] for index in indices]
                names = [keys.runs(customer_id), *(keys.finished_run(customer_id, run) for run in run_ids)]
                self.evalsha(pipe, "get", names, run_ids)
            if with_profiles:
                queue_profiles(pipe, customers)

        replies = self.run(build)
        found: list[StoredEnrollment | None] = [None] * len(runs)
        for (customer_id, indices), reply in zip(by_customer.items(), replies, strict=False):
            for index, values in zip(indices, reply, strict=True):
                found[index] = parse_stored(customer_id, runs[index][1], values)
        profiles = parse_profiles(customers, replies[len(customers) :]) if with_profiles else {}
        return found, profiles

    def live_runs(self, customer_id: str) -> dict[str, str]:
        """Run id → journey id of the customer's unfinished enrollments."""
        return split_runs(self.redis.hgetall(keys.runs(customer_id)))[0]

    def last_entries(self, customer_id: str) -> dict[str, datetime]:
        return split_runs(self.redis.hgetall(keys.runs(customer_id)))[1]

    def customers(self, customer_ids: list[str]) -> dict[str, tuple[Profile, dict[str, str], dict[str, datetime]]]:
        """Profile, live runs and last entries of many customers: one script call per slot group,
        one round trip in all (cohort fan-out).  Unknown customers are left out."""
        groups = self.slot_groups(customer_ids)

        def build(pipe: Any) -> None:
            for group in groups:
                names = [key for customer_id in group for key in read_keys(customer_id)[:3]]
                self.evalsha(pipe, "read_many", names, [])

        found: dict[str, tuple[Profile, dict[str, str], dict[str, datetime]]] = {}
        validate = Profile.model_validate_json
        for group, replies in zip(groups, self.run(build), strict=True):
            for customer_id, reply in zip(group, replies, strict=True):
                if reply[0]:
                    raw, consent, live, last = reply
                    profile = validate(raw)
                    if consent:
                        profile.consent = {channel: value == "1" for channel, value in lua_pairs(consent).items()}
                    found[customer_id] = (
                        profile,
                        lua_pairs(live) if live else {},
                        entry_times(lua_pairs(last)) if last else {},
                    )
        return found

    def entry_state(self, customer_ids: list[str]) -> dict[str, tuple[dict[str, str], dict[str, datetime]]]:
        """Live runs and last entries of many customers in one round trip (cohort fan-out)."""

        def build(pipe: Any) -> None:
            for customer_id in customer_ids:
                pipe.hgetall(keys.runs(customer_id))

        replies = self.run(build)
        return {customer_id: split_runs(reply) for customer_id, reply in zip(customer_ids, replies, strict=True)}

    def create_enrollment(
        self, enrollment: Enrollment, send: SendAction | None = None, timer: tuple[int, float] | None = None
    ) -> bool:
        """Store a new enrollment; False when that run id exists already (a redelivered entry)."""
        return bool(
            self.run(lambda pipe: self.write_enrollment(pipe, enrollment, expected=-1, send=send, timer=timer))[-1]
        )

    def index_figures(self, pipe: Any, members: set[str]) -> None:
        """List figures shards in the index before the scripts on the same pipeline count in them.

        One Redis runs a pipeline in order, so the ``SADD`` queued first always lands first.  A
        Cluster pipeline sends each node its share apart, and a process killed in between could
        leave a shard counted on one node and unlisted on another: there, a shard this store has
        not listed yet is listed at once, in a round trip of its own, before the pipeline is built
        further — once per shard and process (at most one per journey version and slot)."""
        if not members:
            return
        if not self.cluster:
            pipe.sadd(keys.figures_index(), *sorted(members))
            return
        new = members - self.listed_shards
        if new:
            self.redis.sadd(keys.figures_index(), *sorted(new))
            self.listed_shards.update(new)

    def figures_member(self, enrollment: Enrollment) -> str:
        """The figures index member of the enrollment's shard (see :mod:`orchestrator.store.figures`)."""
        tag = shard_tag(enrollment.customer_id, slotted=self.slotted)
        return index_member(tag, enrollment.journey_id, enrollment.journey_version)

    def figures_shard(self, enrollment: Enrollment) -> str:
        """The figures shard of the enrollment's journey version that counts its customer."""
        customer, journey, version = enrollment.customer_id, enrollment.journey_id, enrollment.journey_version
        return shard_key(customer, journey, version, slotted=self.slotted)

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
        figures: FigureArgs = NO_FIGURES,
    ) -> None:
        """Queue the compare-and-set of an enrollment on a pipeline (``expected=-1`` creates it).

        Its reply is 1 when written, 0 when the revision moved (or, creating, the run exists).
        ``claim`` (idempotency key, lease expiry) claims the new send for the caller when it wins;
        ``pending`` (from :func:`pending_json`) records the decision's profile updates atomically,
        ``figures`` its measurement counts (the caller queued :meth:`index_figures` before).
        """
        args = cas_args(enrollment, expected, send, timer, claim, pending) + figures.args()
        names = [*enrollment_keys(enrollment.customer_id, enrollment.run_id), self.figures_shard(enrollment)]
        self.evalsha(pipe, "cas", names, args)

    def pending_updates(self, customer_id: str, run_id: str, revision: int) -> list[PendingUpdate]:
        """The profile updates recorded with this revision and not yet cleared (re-drive after a crash)."""
        raw = self.redis.hget(keys.pending_updates(customer_id), f"{run_id}|{revision}")
        return pending_from_json(raw) if raw else []

    def clear_pending(self, customer_id: str, run_id: str, revision: int, pipe: Any = None) -> None:
        """Every update of that revision is applied: forget them."""
        (pipe or self.redis).hdel(keys.pending_updates(customer_id), f"{run_id}|{revision}")

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
            changed = with_updates(current, update.set, update.increment)
            written = profile_json(changed)
            indexed = profile_index.change(update.customer_id, raw, written)
            profile_index.join(self, [indexed])
            result = self._script("apply", [profile_key, applied_key], [raw or "", written, update.key, SEEN_TTL])
            if result == "new":
                profile_index.leave(self, [indexed])
                return True
            if result != "conflict":
                return False

    def create_enrollments(
        self,
        pipe: Any,
        items: list[tuple[Enrollment, SendAction | None, tuple[int, float] | None, str]],
        claims: list[tuple[str, float] | None] | None = None,
        figures: list[FigureArgs] | None = None,
    ) -> list[list[int]]:
        """Queue the creation of many enrollments (enrollment, send, timer, pending updates) with one
        compare-and-set script call per slot group and journey version.  Returns, per queued call,
        the indices of the items it carries: its reply lists 1 (created) or 0 (the run existed) for
        each, in that order.

        ``claims`` (per item: idempotency key and lease expiry, or None) claims each new send for
        the caller when its creation wins, as :meth:`write_enrollment` does for one; ``figures``
        (per item) counts each entry with its creation, the shards indexed first.  A call sends each
        :class:`FigureArgs` object once (:func:`~orchestrator.store.figures.entry_figures` gives the
        entrants of one shape one object) and each item refers to it: the script adds each one's
        counts once, times the items whose creation won."""
        by_customer: dict[str, list[int]] = {}
        for index, (enrollment, _s, _t, _p) in enumerate(items):
            by_customer.setdefault(enrollment.customer_id, []).append(index)
        calls: list[list[int]] = []
        for group in self.slot_groups(by_customer):
            by_version: dict[tuple[str, str], list[int]] = {}
            for customer_id in group:
                for index in by_customer[customer_id]:
                    enrollment = items[index][0]
                    by_version.setdefault((enrollment.journey_id, enrollment.journey_version), []).append(index)
            calls.extend(by_version.values())
        tags = [shard_tag(items[call[0]][0].customer_id, slotted=self.slotted) for call in calls]
        versions = [(items[call[0]][0].journey_id, items[call[0]][0].journey_version) for call in calls]
        if figures is not None:
            self.index_figures(pipe, {index_member(tag, *version) for tag, version in zip(tags, versions, strict=True)})
        for call, tag, version in zip(calls, tags, versions, strict=True):
            names: list[str] = [keys.figures(tag, *version)]
            args: list[str] = []
            shapes: list[FigureArgs] = []
            numbers = {id(NO_FIGURES): "0"}  # by identity: cheaper than hashing, and the list keeps them alive
            for index in call:
                enrollment, send, timer, pending = items[index]
                names.extend(enrollment_keys(enrollment.customer_id, enrollment.run_id))
                args.extend(cas_args(enrollment, -1, send, timer, claims[index] if claims else None, pending))
                counted = figures[index] if figures is not None else NO_FIGURES
                number = numbers.get(id(counted))
                if number is None:
                    shapes.append(counted)
                    number = numbers[id(counted)] = str(len(shapes))
                args.append(number)
            head = [str(len(shapes))]
            for shape in shapes:
                head.extend(shape.args())
            self.evalsha(pipe, "cas_many", names, head + args)
        return calls

    def set_timer_field(
        self,
        customer_id: str,
        run_id: str,
        revision: int,
        due: float,
        pipe: Any = None,
        deferred: tuple[Enrollment, str, float] | None = None,
    ) -> None:
        """Remember the live timer of an enrollment (a deferred send), so a later cancel finds it.

        Only a live run has a timer: a finished or unknown one is left as it is.  ``deferred``
        (the run, the send's step, now) counts the send ``deferred`` in the measurement record,
        once per send however often it is put off (see :mod:`orchestrator.store.figures`)."""
        names = [keys.runs(customer_id)]
        args = [run_id, str(revision), f"!{due!r}"]
        if deferred is not None:
            enrollment, step_id, now = deferred
            names += [keys.delivered(customer_id), self.figures_shard(enrollment)]
            args += [f"d|{run_id}|{revision}", deferred_text(step_id, now)]
            if pipe is not None:
                self.index_figures(pipe, {self.figures_member(enrollment)})
        if pipe is None:
            self.run(lambda target: self.set_timer_field(customer_id, run_id, revision, due, target, deferred))
        else:
            self.evalsha(pipe, "timer", names, args)
