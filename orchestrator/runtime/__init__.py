"""The runtime: events in, runs advanced, sends delivered.

Owns the public Python client (:mod:`~orchestrator.runtime.intake`), the event queue and its
drains, the batch runner, carrying out the engine's decisions (compare-and-set first, then the
effects), delivery through the gate and the channels, and the one composition root
(:mod:`~orchestrator.runtime.compose`), which nothing in this package imports.

May import ``gate``, ``store``, ``engine``, ``language`` and the shared modules; never Dramatiq's
broker set-up, HTTP or the CLI (checked by import-linter, see docs/architecture.md).
"""
