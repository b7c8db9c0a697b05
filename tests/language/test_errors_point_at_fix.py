"""Every marketer error of the walk-through (issue "newcomer friction") answered with its fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import ValidationFailed
from orchestrator.language.catalogue import load_catalogue
from orchestrator.language.loader import load_journeys
from orchestrator.language.render import environment
from tests.runtime.harness import write_templates

TWO_MISTAKES = """\
id: review
name: Review request
trigger: {event: order.placed}
steps:
  - {id: pause, wait: 3 dayz}
  - {id: ask, send: email, template: reveiw_request}
"""


def _problems(tmp_path: Path, text: str, catalogue: str | None = None) -> list[str]:
    (tmp_path / "journeys").mkdir(exist_ok=True)
    (tmp_path / "journeys" / "review.yaml").write_text(text, encoding="utf-8")
    if catalogue is not None:
        (tmp_path / "journeys" / "catalogue.yaml").write_text(catalogue, encoding="utf-8")
    write_templates(tmp_path / "templates", ["review_request"])
    with pytest.raises(ValidationFailed) as caught:
        load_journeys(tmp_path / "journeys", tmp_path / "templates")
    return [str(problem) for problem in caught.value.problems]


def test_a_bad_duration_and_a_misspelt_template_are_both_reported(tmp_path: Path) -> None:
    """The walk-through saw only the duration; now both, and the template with its did-you-mean."""
    problems = _problems(tmp_path, TWO_MISTAKES)
    assert len(problems) == 2, problems
    assert "review.yaml:5:" in problems[0] and "'3 dayz' is not a duration" in problems[0]
    assert "review.yaml:6:" in problems[1]
    assert "template 'reveiw_request' does not exist for channel 'email'" in problems[1]
    assert "did you mean 'review_request'?" in problems[1]


def test_a_misspelt_template_alone_gets_a_did_you_mean(tmp_path: Path) -> None:
    [problem] = _problems(tmp_path, TWO_MISTAKES.replace("3 dayz", "3d"))
    assert "did you mean 'review_request'?" in problem


def test_an_unknown_event_is_not_offered_a_providers_event(tmp_path: Path) -> None:
    """`order.delivered` was answered "did you mean 'email.delivered'?": a provider's fact, not a typo."""
    catalogue = "events:\n  order.placed: {}\n  order.shipped: {}\n  email.delivered: {}\n  sms.delivered: {}\n"
    problems = _problems(
        tmp_path, TWO_MISTAKES.replace("order.placed", "order.delivered").replace("3 dayz", "3d"), catalogue
    )
    [problem] = [problem for problem in problems if "event:" in problem]
    assert "event: 'order.delivered' is not in the catalogue" in problem
    assert "email.delivered" not in problem and "sms.delivered" not in problem


def test_a_channel_namespaced_typo_is_still_offered_its_channels_event(tmp_path: Path) -> None:
    catalogue = "events:\n  order.placed: {}\n  email.delivered: {}\n"
    problems = _problems(
        tmp_path, TWO_MISTAKES.replace("order.placed", "email.deliverd").replace("3 dayz", "3d"), catalogue
    )
    assert any("did you mean 'email.delivered'?" in problem for problem in problems), problems


def test_a_catalogue_mistake_names_no_internal_class(tmp_path: Path) -> None:
    """A quoting slip gave "unknown key 'if any (0-10)' in FieldSpec"."""
    path = tmp_path / "catalogue.yaml"
    path.write_text("profile:\n  nps_score: {type: integer, description: Last NPS, if any (0-10)}\n", encoding="utf-8")
    with pytest.raises(ValidationFailed) as caught:
        load_catalogue(path)
    text = str(caught.value)
    assert "FieldSpec" not in text and "EventSpec" not in text
    assert "unknown key 'if any (0-10)' in a field (type, description, example, optional, items)" in text


@pytest.mark.parametrize(
    ("source", "event", "expected"),
    [
        ("{{ event['items'] | length }}", {"items": [1, 2]}, "2"),
        ("{{ event.items | length }}", {"items": [1, 2]}, "2"),
        ("{{ event['items'] | default([]) | length }}", {}, "0"),
        ("{{ event.items | default([]) | length }}", {}, "0"),
        ("{% for k, v in event.items() %}{{ k }}={{ v }}{% endfor %}", {"a": 1}, "a=1"),
        ("{{ 'yes' if event['keys'] is defined else 'no' }}", {}, "no"),
    ],
)
def test_event_names_never_fall_back_to_dict_methods(source: str, event: dict[str, object], expected: str) -> None:
    """`event['items']` on an event without items used to be the dict's `.items` method
    ("object of type 'builtin_function_or_method' has no len()")."""
    assert environment(Path("/nonexistent")).from_string(source).render(event=event) == expected


@pytest.mark.parametrize("source", ["{{ event['items'] | length }}", "{{ event.items | length }}"])
def test_a_missing_items_field_fails_as_a_missing_field(source: str) -> None:
    from jinja2.exceptions import UndefinedError

    with pytest.raises(UndefinedError, match="has no attribute 'items'"):
        environment(Path("/nonexistent")).from_string(source).render(event={})
