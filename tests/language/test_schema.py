"""The generated JSON Schema agrees with the loader: editors must not flag what validate accepts.

Editors (YAML language server) check files against ``docs/journey.schema.json`` as marketers
type; a schema stricter than the model would show red lines on valid journeys, a looser one
would hide typos until ``loyaloop validate`` runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from jsonschema import Draft202012Validator

from orchestrator.language.loader import journey_files
from orchestrator.language.schema import journey_schema
from orchestrator.language.yamlfile import read_yaml_file

ROOT = Path(__file__).resolve().parents[2]
CORPUS = ROOT / "tests" / "fixtures" / "broken_journeys"
VALIDATOR = Draft202012Validator(journey_schema())


def test_the_schema_is_a_valid_2020_12_schema() -> None:
    Draft202012Validator.check_schema(journey_schema())


@pytest.mark.parametrize("path", journey_files(ROOT / "journeys"), ids=lambda p: p.stem)
def test_every_shipped_journey_matches_the_schema(path: Path) -> None:
    errors = [error.message for error in VALIDATOR.iter_errors(read_yaml_file(path).data)]
    assert errors == []


@pytest.mark.parametrize(
    "name",
    [
        "unknown_key_with_suggestion",
        "unknown_top_level_key",
        "bad_duration",
        "bad_local_time",
        "bad_on_capped",
        "bad_step_id",
        "bad_event_name",
        "step_two_kinds",
        "step_no_kind",
        "holdout_too_big",
        "wrong_type_steps",
        "missing_steps",
    ],
)
def test_the_schema_flags_shape_mistakes_too(name: str) -> None:
    """Mistakes of shape (not of meaning) are already underlined in the editor."""
    data = read_yaml_file(CORPUS / f"{name}.yaml").data
    assert list(VALIDATOR.iter_errors(data)), name
