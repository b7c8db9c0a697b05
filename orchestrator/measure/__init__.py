"""Proof of effect: the exact counts a journey earned, the statistics read from them, the report.

This layer is pure (no Redis, no Dramatiq, no clock): ``store/`` writes and reads the counts
(:mod:`orchestrator.measure.figures` is their shape), ``cli`` and the console turn them into a
report.  Counts are exact records written under the same compare-and-set that moves a run;
statistics are computed only here, at read time, so a crash can never shift a reported figure.

The layer may import ``language`` and the shared modules, never ``engine`` or anything above it
(checked by import-linter, see docs/architecture.md).
"""
