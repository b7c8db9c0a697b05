"""Warnings for journeys that load but will not do what they say (orchestrator/language/advice.py)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.language.advice import cap_collisions, optional_field_uses, settings_without_effect
from orchestrator.language.catalogue import Catalogue
from orchestrator.language.journey import CapRule
from orchestrator.language.render import environment
from orchestrator.language.yamlfile import parse_yaml
from tests.runtime.harness import journey, write_templates

CART = {
    "id": "cart",
    "name": "Cart",
    "trigger": {"event": "cart.abandoned"},
    "steps": [
        {"id": "reminder", "send": "email", "template": "hello"},
        {"id": "pause", "wait": "1h"},
        {"id": "nudge", "send": "sms", "template": "hello", "fallback": ["email"]},
    ],
}
EMAIL_A_DAY = CapRule(channel="email", window=timedelta(days=1), max=1, category="marketing")


def _doc(data: dict[str, Any]) -> Any:
    return parse_yaml(json.dumps(data, indent=1), "cart.yaml")


def test_a_fallback_that_a_cap_holds_back_after_the_journeys_own_send_is_warned() -> None:
    """The walk-through's SMS step fell back to e-mail for customers without a phone, and "one marketing
    e-mail a day" capped it because the 1-hour reminder had used the slot; nothing warned."""
    [warning] = cap_collisions(journey(CART), _doc(CART), [EMAIL_A_DAY])
    assert "step 'nudge' sends its fallback email 1h after step 'reminder'" in warning.message
    assert "'1 on email per 1d'" in warning.message and "wait at least 1d" in warning.hint
    spaced = {**CART, "steps": [*CART["steps"][:1], {"id": "pause", "wait": "2d"}, *CART["steps"][2:]]}
    assert cap_collisions(journey(spaced), _doc(spaced), [EMAIL_A_DAY]) == []
    assert cap_collisions(journey(CART), _doc(CART), [CapRule(channel="push", window=timedelta(days=1), max=1)]) == []
    transactional = {**CART, "category": "transactional"}
    assert cap_collisions(journey(transactional), _doc(transactional), [EMAIL_A_DAY]) == []


def test_quiet_hours_and_caps_on_a_transactional_journey_are_warned_as_without_effect() -> None:
    data = {**CART, "category": "transactional", "quiet_hours": {"push": "22:00-07:00"}, "caps": []}
    found = settings_without_effect(journey(data), _doc(data), transactional_quiet_hours=False)
    assert [w.message.split(" has no effect")[0] for w in found] == ["quiet_hours", "caps"]
    assert "transactional_quiet_hours: true" in found[0].hint
    assert len(settings_without_effect(journey(data), _doc(data), transactional_quiet_hours=True)) == 1
    marketing = {**data, "category": "marketing"}
    assert settings_without_effect(journey(marketing), _doc(marketing), transactional_quiet_hours=False) == []


def test_an_optional_field_used_without_a_default_is_warned(tmp_path: Path) -> None:
    """`render` failed on a profile without first_name and validate had not warned."""
    write_templates(tmp_path, ["hello"])  # these use profile.first_name | default('there')
    catalogue = Catalogue.model_validate({"profile": {"first_name": {"type": "string", "optional": True}}})
    env = environment(tmp_path)
    assert optional_field_uses(journey(CART), catalogue, tmp_path, env) == []
    (tmp_path / "sms" / "hello.txt.j2").write_text("Hi {{ profile.first_name }}", encoding="utf-8")
    [warning] = optional_field_uses(journey(CART), catalogue, tmp_path, env)
    assert warning.path.endswith("sms/hello.txt.j2") and warning.line == 1
    assert "profile.first_name is optional in the catalogue" in warning.message
    assert "{{ profile.first_name | default('') }}" in warning.hint
    (tmp_path / "sms" / "hello.txt.j2").write_text(
        "{% if profile.first_name is defined %}Hi {{ profile.first_name }}{% endif %}", encoding="utf-8"
    )
    assert optional_field_uses(journey(CART), catalogue, tmp_path, env) == []


def test_validate_prints_warnings_and_still_exits_0(tmp_path: Path) -> None:
    folder = tmp_path / "journeys"
    folder.mkdir()
    (folder / "cart.yaml").write_text(json.dumps(CART, indent=1), encoding="utf-8")
    (folder / "catalogue.yaml").write_text(
        "profile:\n  first_name: {type: string}\nevents:\n  cart.abandoned: {}\n", encoding="utf-8"
    )
    (folder / "settings.yaml").write_text(
        "caps:\n  - {channel: email, window: 1d, max: 1, category: marketing}\n", encoding="utf-8"
    )
    write_templates(tmp_path / "templates", ["hello"])
    result = CliRunner().invoke(
        cli, ["validate", str(folder), "--templates", str(tmp_path / "templates"), "--no-plugins"]
    )
    assert result.exit_code == 0, result.output
    assert "warning: " in result.output and "cart.yaml:" in result.output and "step 'nudge'" in result.output
