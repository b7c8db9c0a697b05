"""Goals' conversion windows and values, and the settings' measurement block: refused at their
line and column when mistyped, never a traceback."""

from __future__ import annotations

import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from orchestrator.errors import ValidationFailed
from orchestrator.language.catalogue import load_catalogue
from orchestrator.language.loader import load_journey_file
from orchestrator.settings import load_settings

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = load_catalogue(ROOT / "journeys" / "catalogue.yaml")

JOURNEY = textwrap.dedent(
    """\
    id: sample
    name: Sample
    trigger:
      event: customer.signed_up
    goals:
      - event: order.placed
        within: {within}
        value: {value}
    steps:
      - id: hello
        send: email
        template: welcome
    """
)


def load(tmp_path: Path, within: str, value: str = "properties.total") -> object:
    path = tmp_path / "sample.yaml"
    path.write_text(JOURNEY.format(within=within, value=value), encoding="utf-8")
    return load_journey_file(path, templates_dir=ROOT / "templates", catalogue=CATALOGUE)


def test_a_window_and_value_are_kept(tmp_path: Path) -> None:
    loaded = load(tmp_path, "14d")
    goal = loaded.goals[0]  # type: ignore[attr-defined]
    assert goal.within == timedelta(days=14) and goal.value == "properties.total"


def test_a_mistyped_window_is_refused_at_its_line_and_column(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as caught:
        load(tmp_path, "14dd")
    (problem,) = caught.value.problems
    assert (problem.line, problem.column) == (7, 13)
    assert "'14dd' is not a duration" in problem.message
    assert str(problem).startswith(f"{tmp_path / 'sample.yaml'}:7:13:")


def test_a_value_that_is_no_path_is_refused_at_its_line(tmp_path: Path) -> None:
    with pytest.raises(ValidationFailed) as caught:
        load(tmp_path, "14d", value="'properties[0]'")
    (problem,) = caught.value.problems
    assert problem.line == 8


def test_the_measure_settings_are_read_and_checked_at_their_line(tmp_path: Path) -> None:
    (tmp_path / "settings.yaml").write_text(
        "global_holdout: 5\nmeasure:\n  kpi_window: 60d\n  redemption_event: reward.redeemed\n"
    )
    settings = load_settings(tmp_path, env={})
    assert settings.global_holdout == 5 and settings.measure.kpi_window == timedelta(days=60)
    (tmp_path / "settings.yaml").write_text("measure:\n  kpi_window: 30dd\n")
    with pytest.raises(ValidationFailed) as caught:
        load_settings(tmp_path, env={})
    assert caught.value.problems[0].line == 2
    (tmp_path / "settings.yaml").write_text("global_holdout: 120\n")
    with pytest.raises(ValidationFailed) as caught:
        load_settings(tmp_path, env={})
    assert caught.value.problems[0].line == 1
