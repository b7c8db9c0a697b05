"""The JSON Schema of a journey file, generated from the one typed model.

Editors with the YAML language server read it (every shipped journey starts with a
``# yaml-language-server: $schema=../docs/journey.schema.json`` line) and complete keys and flag
mistakes as a marketer types.  It is generated, never hand-written, so it cannot drift from what
the loader accepts; ``docs/journey.schema.json`` is checked against it by the tests.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from orchestrator.language.journey import Journey

SCHEMA_ID = "https://loyaloop.dev/schemas/journey.schema.json"
SCHEMA_FILE = Path("docs") / "journey.schema.json"
#: Formats pydantic adds that mean something else in JSON Schema (ISO 8601 durations, HH:MM:SS).
_MISLEADING_FORMATS = {"duration", "time"}
QUIET_WINDOW_TEXT = {
    "type": "string",
    "pattern": r"^([01]\d|2[0-3]):[0-5]\d\s*-\s*([01]\d|2[0-3]):[0-5]\d$",
    "description": "A daily window in the customer's local time, e.g. '21:00-08:00'.",
}


def journey_schema() -> dict[str, Any]:
    """The schema of one journey file (the computed ``version`` is not part of it)."""
    schema = Journey.model_json_schema(by_alias=True, mode="validation")
    schema["properties"].pop("version", None)
    _tidy(schema)
    quiet = schema["$defs"]["QuietWindow"]
    schema["$defs"]["QuietWindow"] = {"anyOf": [QUIET_WINDOW_TEXT, quiet]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **{key: value for key, value in schema.items() if key not in ("title", "description")},
        "title": "Loyaloop journey",
        "description": "One customer journey: a trigger, optional audience and goals, and steps. See docs/journeys.md.",
    }


def _tidy(node: Any) -> None:
    if isinstance(node, dict):
        if node.get("format") in _MISLEADING_FORMATS and "pattern" in node:
            del node["format"]
        default = node.get("default")
        if isinstance(default, str) and len(default) == 8 and default[2] == ":" and default[5] == ":":
            node["default"] = default[:5]
        for value in node.values():
            _tidy(value)
    elif isinstance(node, list):
        for item in node:
            _tidy(item)


def schema_text() -> str:
    """The schema as the text written to ``docs/journey.schema.json`` (stable key order)."""
    return json.dumps(journey_schema(), indent=2, ensure_ascii=False) + "\n"
