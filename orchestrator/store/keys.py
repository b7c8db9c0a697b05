"""Every Redis key name Loyaloop uses, in one place.

Per-customer keys carry the hash tag ``{customer_id}`` so all of one customer's keys share a Redis
Cluster slot and one Lua script may touch them together.  Global keys are few and sharded where
they are hot.  Nothing here talks to Redis.
"""

from __future__ import annotations

PREFIX = "lp"


def _customer(customer_id: str, kind: str) -> str:
    return f"{PREFIX}:c:{{{customer_id}}}:{kind}"


# --- one customer ------------------------------------------------------------------------------
def profile(customer_id: str) -> str:
    """JSON of the profile (without consent)."""
    return _customer(customer_id, "profile")


def consent(customer_id: str) -> str:
    """Hash channel → "1"/"0": kept apart from the profile so consent changes are one HSET."""
    return _customer(customer_id, "consent")


def send_log(customer_id: str) -> str:
    """Sorted set of sends scored by time: the frequency-cap log."""
    return _customer(customer_id, "sends")


def runs(customer_id: str) -> str:
    """Hash of the customer's live runs and last entries: one small key per customer.

    ``<run>`` → a live run's core (``rev|handle|…``), ``<handle>|m``/``t``/``o``/``x``/``s`` its
    other parts (formats in :mod:`orchestrator.store.run_codec`): the fields without ``|`` are the live
    runs, keyed by run so ``re_entry: always`` may keep several of one journey.  ``|<journey>`` →
    epoch microseconds of the customer's last entry into it (re-entry cooldowns).  ``~|<run>`` → the
    run's measurement window, which outlives the run (format in :mod:`orchestrator.store.figures`).  Kept short so
    Redis stores it as a listpack: a waiting customer's whole state is about 320 bytes with its timer.
    """
    return _customer(customer_id, "runs")


def finished_run(customer_id: str, run_id: str) -> str:
    """Hash of one finished run (fields ``r`` for its core, ``m``, ``t``, ``o``, ``x``, ``s`` as in
    :func:`runs`), kept ``FINISHED_TTL`` for reports and webhooks, then gone."""
    return _customer(customer_id, f"run:{run_id}")


def pending_updates(customer_id: str) -> str:
    """Hash ``<run>|<revision>`` → JSON of the profile updates that revision decided and that are not
    yet applied.  Apart from :func:`runs`: the JSON is often over 64 bytes, which would turn the
    runs hash into a hash table for good, while this hash is gone as soon as it is empty."""
    return _customer(customer_id, "pending")


def seen_events(customer_id: str) -> str:
    """Hash event id → ``applied`` (profile updated) or ``done`` (journeys handled too).

    Two phases so a worker killed between them finishes the journey part on redelivery without
    counting the order twice.
    """
    return _customer(customer_id, "seen")


def applied_updates(customer_id: str) -> str:
    """Hash ``run_id:step_id`` → ``applied``: journey ``update`` steps already applied to this
    customer's profile, so a re-driven pending update is applied once."""
    return _customer(customer_id, "upd")


def consent_history(customer_id: str) -> str:
    """Stream of consent changes (channel, granted, source, at): the proof of opt-in and opt-out."""
    return _customer(customer_id, "consent-history")


def journal(customer_id: str) -> str:
    """List of what happened to the customer that no other key keeps: ends of runs, every send the
    gate held with its reason, and support staff's actions (``store.journal``)."""
    return _customer(customer_id, "journal")


def event_log(customer_id: str) -> str:
    """List of the customer's newest events the runtime applied or refused (``store.event_log``)."""
    return _customer(customer_id, "events")


def delivered(customer_id: str) -> str:
    """Hash idempotency key → ``claimed:<lease expiry>`` or ``done:<outcome>``: a send is carried
    out once; ``<key>#attempts`` counts transient failures."""
    return _customer(customer_id, "delivered")


# --- global ------------------------------------------------------------------------------------
def timers(shard: int) -> str:
    """Sorted set of due timers (member → due epoch seconds), one per shard.

    The shard's hash tag puts it in one Cluster slot with its lease set (one Lua call claims).
    """
    return f"{PREFIX}:timers:{{t{shard}}}"


def timer_leases(shard: int) -> str:
    """Sorted set of claimed timers (member → lease expiry), re-driven by the reaper."""
    return f"{PREFIX}:leases:{{t{shard}}}"


def journey_stats(journey_id: str) -> str:
    """Hash ``step:stat`` → count, for ``loyaloop demo`` and ``loyaloop status``."""
    return f"{PREFIX}:stats:{journey_id}"


def figures(tag: str, journey_id: str, version: str) -> str:
    """Hash of one journey version's exact measurement counts, one shard per Cluster slot: ``tag``
    hashes to the slot of the customers it counts, so the script that moves a customer's run also
    counts (fields in :mod:`orchestrator.store.figures`)."""
    return f"{PREFIX}:fig:{{{tag}}}:{journey_id}:{version}"


def figures_index() -> str:
    """Set of ``<journey>|<version>|<tag>``: every figures shard that may hold counts (the reader
    sums them); written before the first count of a shard, never after."""
    return f"{PREFIX}:fig:index"


def journey_version(journey_id: str, version: str) -> str:
    """JSON of a journey version, so in-flight enrollments finish on the version they entered."""
    return f"{PREFIX}:journey:{journey_id}:{version}"


def suppressed() -> str:
    """Hash of hashed address → reason: the global suppression list."""
    return f"{PREFIX}:suppressed"


def rate_limit(channel: str) -> str:
    """Per-channel send-rate window shared by every worker."""
    return f"{PREFIX}:rate:{channel}"


def schedule_fired(journey_id: str) -> str:
    """Hash fire epoch → scheduler id, set with HSETNX, so several schedulers fire a broadcast once."""
    return f"{PREFIX}:fired:{journey_id}"


def refused() -> str:
    """Hash reason → count of refused inputs (bad events are counted, never lost silently)."""
    return f"{PREFIX}:refused"


# --- provider messages and the HTTP front door --------------------------------------------------
def message(provider_message_id: str) -> str:
    """Hash of who a sent message belongs to (customer_id, run_id, step_id, channel, idempotency_key).

    Written when a provider accepts a message, read by webhooks that only carry the provider's id
    (Twilio status callbacks carry just the ``MessageSid``).
    """
    return f"{PREFIX}:msg:{provider_message_id}"


def message_status(idempotency_key: str) -> str:
    """Hash of a message's delivery status (``status``, ``<event>_at`` times) fed by provider webhooks."""
    return f"{PREFIX}:msgstatus:{idempotency_key}"


def api_rate(key_id: str) -> str:
    """GCRA state (theoretical arrival time) of one API key, shared by every HTTP worker."""
    return f"{PREFIX}:http:rate:{key_id}"


def auth_failures(address_digest: str) -> str:
    """GCRA state of the failed authentications from one client address, shared by every HTTP worker.

    Named by a keyed digest of the address, never the address itself (see ``orchestrator.http.auth_failures``).
    """
    return f"{PREFIX}:http:authfail:{address_digest}"


def console_revoked(session_digest: str) -> str:
    """Marker of a console session ended by logging out, kept until the session would have
    expired anyway; named by a digest of the session id, never the id itself."""
    return f"{PREFIX}:console:revoked:{session_digest}"


def webhook_seen(provider: str, digest: str) -> str:
    """Marker of a signed webhook payload already accepted, kept for the staleness window (replays)."""
    return f"{PREFIX}:http:seen:{provider}:{digest}"


def serving(process: str) -> str:
    """String ``id@version, …`` a live worker or scheduler process (``host:pid``) serves; it
    expires unless the process renews it, so ``loyaloop status`` lists only live ones."""
    return f"{PREFIX}:serving:{process}"


def journeys_index() -> str:
    """Hash journey id → current version (what ``loyaloop status`` lists)."""
    return f"{PREFIX}:journeys"


def date_plan(day: str) -> str:
    """String set NX once a UTC day is planned for date triggers (birthdays)."""
    return f"{PREFIX}:dateplan:{day}"


def date_day(attribute: str, month_day: str) -> str:
    """Set of the ids of customers whose date ``attribute`` falls on ``month_day`` (``MM-DD``): the
    index the daily date-trigger planning reads (:mod:`orchestrator.store.date_index`).  One key
    per attribute and month-day, untagged, so the days spread over a Cluster's nodes."""
    return f"{PREFIX}:dates:{attribute}:{month_day}"


def date_index_ready() -> str:
    """String set once the date index holds every profile (after its backfill)."""
    return f"{PREFIX}:dates:ready"


def scheduler_state() -> str:
    """Hash of scheduler bookkeeping (last cron check per journey, last date-plan day)."""
    return f"{PREFIX}:scheduler"


def metrics_counters() -> str:
    """Hash counter name → value shared by every process (events in, sends by outcome, retries)."""
    return f"{PREFIX}:metrics"


def sms_contact(address_digest: str) -> str:
    """String customer id last texted at a phone number (by its SHA-256 digest): an inbound STOP carries
    only the number, so this is how it finds whose consent to withdraw."""
    return f"{PREFIX}:http:sms-contact:{address_digest}"


def timezones() -> str:
    """Set of the IANA zones customers live in (a ``timezone: local`` broadcast fires per zone)."""
    return f"{PREFIX}:zones"


# --- queued events -----------------------------------------------------------------------------
def event_queue(shard: int) -> str:
    """List of queued events (compact JSON), oldest first, one per shard; a customer's events all
    go to one shard, so one drainer at a time keeps them in order."""
    return f"{PREFIX}:events:{{e{shard}}}"


def event_drain(shard: int) -> str:
    """String lease of a shard's drain: ``queued`` (a drain message is on its way) or the token of
    the drainer working on it, expiring unless renewed (a dead drainer's shard is re-driven)."""
    return f"{PREFIX}:drain:{{e{shard}}}"


def unknown_events() -> str:
    """Hash event name → how many handled events had that name while no loaded journey's trigger,
    goal, exit rule or wait listened to it (a producer's typo shows here, not nowhere)."""
    return f"{PREFIX}:events:unknown"


def dead_events() -> str:
    """List of events a worker could not handle for a reason other than a Redis outage (newest
    last, capped): kept with the error's name for inspection and replay, never retried blindly."""
    return f"{PREFIX}:events:dead"


# --- voucher pools (one hash tag per pool) -----------------------------------------------------
def voucher_free(pool: str) -> str:
    """List of a pool's codes not handed out yet, in load order."""
    return f"{PREFIX}:v:{{{pool}}}:free"


def voucher_known(pool: str) -> str:
    """Set of every code ever loaded into a pool, so a code is never loaded twice."""
    return f"{PREFIX}:v:{{{pool}}}:known"


def voucher_given(pool: str) -> str:
    """Hash ``<run>:<step>`` → the code handed to that send (the same on every retry)."""
    return f"{PREFIX}:v:{{{pool}}}:given"


def saved_responses(customer_id: str) -> str:
    """Hash ``<run>:<name>`` → JSON an ``action`` step kept (``save_as``) for the run's later templates."""
    return _customer(customer_id, "saved")


def referral_codes() -> str:
    """Hash referral code (upper-cased) → the customer who shares it (first owner keeps it)."""
    return f"{PREFIX}:referral-codes"


def zone_shard(zone: str, shard: int) -> str:
    """Set of the ids of customers whose profile's ``timezone`` is ``zone`` (one of its shards): the
    index a ``timezone: local`` broadcast reads (:mod:`orchestrator.store.zone_index`).  Untagged,
    so a zone's shards spread over a Cluster's nodes."""
    return f"{PREFIX}:tz:{zone}:{shard}"


def zone_names() -> str:
    """Set of every zone name the zone index has held (it only grows)."""
    return f"{PREFIX}:tz:names"


def zone_index_ready() -> str:
    """String set once the zone index holds every profile (after its backfill)."""
    return f"{PREFIX}:tz:ready"
