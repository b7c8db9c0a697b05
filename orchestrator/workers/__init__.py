"""The processes: Dramatiq actors and broker set-up, the scheduler, the client bound to the
workers' broker, and the embedded mode (fakeredis and a StubBroker in one process).

Importing this package sets up nothing; :mod:`orchestrator.worker` (what ``dramatiq`` is pointed
at) is the one module that sets Dramatiq's global broker when imported.  May import ``runtime`` and
everything below it; never HTTP or the CLI (checked by import-linter, see docs/architecture.md).
"""
