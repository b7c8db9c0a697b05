"""The journey state machine: (journey, enrollment, profile, signal, now) → (enrollment, actions).

This is the functional core.  It reads no clock, no Redis, no files: the runtime hands it the
time and the state, stores the returned enrollment with a compare-and-set on ``revision`` and
carries the actions out.  That is what lets tests, ``simulate`` and ``demo`` run weeks in seconds
on exactly the code production runs, and what makes at-least-once delivery harmless: a signal
that no longer fits the stored state (an old timer, a repeated delivery report) changes nothing.

Determinism matters as much as purity.  Holdout membership and split arms come from a sha256 of
stable ids, never from a random generator, so a re-run after a crash takes the same path.

This module is the engine's one public face: the runtime, the scheduler, delivery and the tests
import from here, and the rooms behind it may move.  Each concern lives in its own module:

- :mod:`orchestrator.engine.entry` — triggers, audience, the re-entry rule and starting a run (``enter``);
- :mod:`orchestrator.engine.advance` — which signal fits the stored state, and the step loop (``advance``);
- :mod:`orchestrator.engine.steps` — what each kind of step does to a run;
- :mod:`orchestrator.engine.exits` — goals and ``exit_when`` (``check_exit``);
- :mod:`orchestrator.engine.context` — what conditions, values and templates see (``context``);
- :mod:`orchestrator.engine.bucketing` — holdout and split arms from stable hashes;
- :mod:`orchestrator.engine.localtime` — the calendar functions the scheduler needs (``next_schedule_fire``,
  ``next_date_fire``, ``schedule_zone``), re-exported here;
- :mod:`orchestrator.engine.enrollment` — a run's state, the signals and the actions;
- :mod:`orchestrator.engine.derive` — what events teach about a customer (orders, spend, products);
- :mod:`orchestrator.engine.run_ids` — deterministic run ids.

The layer may import ``language`` and the shared modules, never ``store``, ``runtime``, ``workers``,
``http``, Redis or Dramatiq (checked by import-linter, see docs/architecture.md).  No module of this
package imports this face.
"""

from __future__ import annotations

from orchestrator.engine.advance import MAX_STEPS_PER_ADVANCE, advance
from orchestrator.engine.bucketing import bucket, is_holdout, split_arm
from orchestrator.engine.context import context, render_value
from orchestrator.engine.entry import enter, in_audience, matches_trigger, may_enter
from orchestrator.engine.exits import check_exit
from orchestrator.engine.localtime import (
    next_date_fire,
    next_local_time,
    next_schedule_fire,
    resolve_zone,
    schedule_zone,
)

__all__ = [
    "MAX_STEPS_PER_ADVANCE",
    "advance",
    "bucket",
    "check_exit",
    "context",
    "enter",
    "in_audience",
    "is_holdout",
    "matches_trigger",
    "may_enter",
    "next_date_fire",
    "next_local_time",
    "next_schedule_fire",
    "render_value",
    "resolve_zone",
    "schedule_zone",
    "split_arm",
]
