"""Every Redis read and write for customers, enrollments, journeys and stats, in one place.

Redis is the truth and Dramatiq messages are only nudges, so everything here is written to be
safe when a message is delivered twice or a worker dies half-way: enrollments change only by
compare-and-set on their revision, events are applied to a profile once, and a send is claimed
with a lease before a channel is called.  Scripts touch only keys of one customer (one hash
tag) so they stay valid on Redis Cluster.

This module is the public face; each concern lives in its own module: ``store_profiles``
(profiles, consent, seen events), ``store_enrollments`` (compare-and-set, live runs, pending
updates), ``store_deliveries`` (claims, provider ids), ``store_stats`` (journey versions,
counters), ``store_codec`` (record formats), ``run_codec`` (the compact layout of a run: a
waiting customer is one small listpack hash), ``store_scripts`` (Lua) and ``redis_batch``.
"""

from __future__ import annotations

from orchestrator.redis_batch import Batch, streams
from orchestrator.store_base import StoreBase
from orchestrator.store_codec import (
    Claim,
    EventState,
    PendingUpdate,
    StoredEnrollment,
    conflict,
    parse_stored,
    pending_from_json,
    pending_json,
    send_from_json,
    send_to_json,
)
from orchestrator.store_deliveries import DeliveryStore
from orchestrator.store_enrollments import EnrollmentStore
from orchestrator.store_profiles import ProfileStore
from orchestrator.store_scripts import FINISHED_TTL, PROVIDER_ID_TTL, SCRIPTS, SEEN_TTL
from orchestrator.store_stats import JourneyStore, StatsStore


class Store(ProfileStore, EnrollmentStore, DeliveryStore, JourneyStore, StatsStore):
    """All of Loyaloop's per-customer state in Redis.  ``client`` must use ``decode_responses=True``.

    Scripts run by EVALSHA (loaded once), also inside pipelines, so a pipeline costs exactly one
    round trip; after a Redis restart (scripts gone) the pipeline is rebuilt once after reloading.
    """


__all__ = [
    "FINISHED_TTL",
    "PROVIDER_ID_TTL",
    "SCRIPTS",
    "SEEN_TTL",
    "Batch",
    "Claim",
    "EventState",
    "PendingUpdate",
    "Store",
    "StoreBase",
    "StoredEnrollment",
    "conflict",
    "parse_stored",
    "pending_from_json",
    "pending_json",
    "send_from_json",
    "send_to_json",
    "streams",
]
