"""Action steps in the journey language: endpoints declared, bodies that are JSON objects, and the
answers they keep (``save_as``) as the only extra fields of ``step`` in templates."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import ValidationFailed
from orchestrator.language.journey import ActionStep
from orchestrator.language.loader import load_journeys

JOURNEY = """\
id: reward
name: Reward
trigger:
  event: review.posted
category: transactional
steps:
  - id: credit
    action: {endpoint}
    body: {body}
    save_as: reward
  - id: thanks
    send: email
    template: thanks
"""


def write(
    tmp_path: Path, *, endpoint: str = "ledger", body: str = "{points: 250}", uses: str = "step.reward.code"
) -> tuple[Path, Path]:
    journeys, templates = tmp_path / "journeys", tmp_path / "templates"
    (templates / "email").mkdir(parents=True)
    journeys.mkdir()
    (journeys / "reward.yaml").write_text(JOURNEY.format(endpoint=endpoint, body=body), encoding="utf-8")
    for part in ("subject", "html", "txt"):
        (templates / "email" / f"thanks.{part}.j2").write_text(f"Code {{{{ {uses} }}}}", encoding="utf-8")
    return journeys, templates


def problems(journeys: Path, templates: Path) -> list[str]:
    with pytest.raises(ValidationFailed) as caught:
        load_journeys(journeys, templates, endpoints={"ledger"})
    return [str(problem).replace(str(journeys) + "/", "") for problem in caught.value.problems]


def test_a_good_action_step_loads_with_its_body_and_saved_name(tmp_path: Path) -> None:
    journeys, templates = write(tmp_path, body='{customer: "{{ profile.id }}", points: 250}')
    step = load_journeys(journeys, templates, endpoints={"ledger"})["reward"].steps[0]
    assert isinstance(step, ActionStep)
    assert (step.action, step.body, step.save_as) == (
        "ledger",
        {"customer": "{{ profile.id }}", "points": 250},
        "reward",
    )


def test_an_undeclared_endpoint_is_refused_with_a_suggestion(tmp_path: Path) -> None:
    journeys, templates = write(tmp_path, endpoint="ledgr")
    assert problems(journeys, templates) == [
        "reward.yaml:8:13: unknown endpoint 'ledgr' (hint: did you mean 'ledger'?)"
    ]


def test_a_body_text_that_is_not_a_json_object_is_refused(tmp_path: Path) -> None:
    journeys, templates = write(tmp_path, body="'{\"points\": {{ 250 }}, }'")
    (found,) = problems(journeys, templates)
    assert found.startswith("reward.yaml:9:11: the body is not JSON once its {{ … }} are filled in")
    journeys2, templates2 = write(tmp_path / "list", body="'[{{ 1 }}]'")
    assert problems(journeys2, templates2) == ["reward.yaml:9:11: the body must be a JSON object ({...})"]


def test_templates_may_read_what_an_action_keeps_and_nothing_else_of_step(tmp_path: Path) -> None:
    journeys, templates = write(tmp_path, uses="step.rewrd.code")
    found = problems(journeys, templates)
    assert any("step.rewrd" in line and "did you mean 'reward'?" in line for line in found), found


def test_a_body_value_is_checked_like_any_template(tmp_path: Path) -> None:
    journeys, templates = write(tmp_path, body='{customer: "{{ profil.id }}"}')
    found = problems(journeys, templates)
    assert any("'profil' is undefined" in line for line in found), found
