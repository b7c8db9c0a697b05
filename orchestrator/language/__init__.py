"""The journey language: what marketers write and what every door accepts.

Owns the typed journey model, YAML reading with positions, the checks behind ``loyaloop validate``,
the field catalogue, the JSON Schema, the Jinja2 sandbox and rendering, and the input checks every
door applies to events and attributes (:mod:`orchestrator.language.inputs`).

Imports only the shared top-level modules (``errors``, ``message``); never Redis, Dramatiq or a
layer above (checked by import-linter, see docs/architecture.md).
"""
