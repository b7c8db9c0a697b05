"""Every Redis read and write for customers, enrollments, journeys and stats, in one place.

Redis is the truth and Dramatiq messages are only nudges, so everything here is written to be
safe when a message is delivered twice or a worker dies half-way: enrollments change only by
compare-and-set on their revision, events are applied to a profile once, and a send is claimed
with a lease before a channel is called.  Scripts touch only keys of one customer (one hash
tag) so they stay valid on Redis Cluster.

The layer owns every Redis key (:mod:`~orchestrator.store.keys`) and script, the codecs, the
durable timers (:mod:`~orchestrator.store.timers`), the pipeline packer
(:mod:`~orchestrator.store.batch`), the shared rate limiter and the provider-message index.  It may
import ``engine``, ``language`` and the shared modules; nothing above (checked by import-linter,
see docs/architecture.md).

This module is the store's public face (:class:`Store`); each concern lives in its own module:
``profiles`` (profiles, consent, seen events), ``enrollments`` (compare-and-set, live runs, pending
updates), ``deliveries`` (claims, provider ids), ``stats`` (journey versions, counters),
``figures`` (the exact measurement record: one shard per journey version, per slot on a cluster),
``date_index`` (customers by the month-day of their date attributes, for the daily planning of date
triggers), ``codec`` (record formats),
``run_codec`` (the compact layout of a run: a waiting customer is one small listpack hash),
``scripts`` (the store's Lua, in ``scripts.*.lua``), ``lua`` (reading ``.lua`` files) and ``batch``
(the one pipeline packer).  No module of this package imports this face.
"""

from __future__ import annotations

from orchestrator.store.base import StoreBase
from orchestrator.store.batch import Batch, Script, pipeline
from orchestrator.store.codec import (
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
from orchestrator.store.deliveries import DeliveryStore
from orchestrator.store.enrollments import EnrollmentStore
from orchestrator.store.figures import NO_FIGURES, FigureArgs, FiguresStore, decode_windows, entry_figures
from orchestrator.store.profiles import ProfileStore
from orchestrator.store.scripts import FINISHED_TTL, PROVIDER_ID_TTL, SCRIPTS, SEEN_TTL
from orchestrator.store.stats import JourneyStore, StatsStore


class Store(ProfileStore, EnrollmentStore, DeliveryStore, FiguresStore, JourneyStore, StatsStore):
    """All of Loyaloop's per-customer state in Redis.  ``client`` must use ``decode_responses=True``.

    Scripts run by EVALSHA, also inside pipelines, so a pipeline costs exactly one round trip; after
    a Redis restart (scripts gone) the packer loads them again and resends only what Redis refused.
    """


__all__ = [
    "FINISHED_TTL",
    "NO_FIGURES",
    "PROVIDER_ID_TTL",
    "SCRIPTS",
    "SEEN_TTL",
    "Batch",
    "Claim",
    "EventState",
    "FigureArgs",
    "PendingUpdate",
    "Script",
    "Store",
    "StoreBase",
    "StoredEnrollment",
    "conflict",
    "decode_windows",
    "entry_figures",
    "parse_stored",
    "pending_from_json",
    "pending_json",
    "pipeline",
    "send_from_json",
    "send_to_json",
]
