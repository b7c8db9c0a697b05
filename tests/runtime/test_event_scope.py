"""One scope rule for `event` in conditions and templates: after `wait: {event: …}`, `event` is the
trigger's properties with the awaited event's laid over them, in both."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.errors import ValidationFailed
from orchestrator.language.loader import load_journeys
from tests.runtime.harness import journey, running

NPS = {
    "id": "nps",
    "name": "NPS follow-up",
    "category": "transactional",
    "trigger": {"event": "order.delivered"},
    "steps": [
        {"id": "ask", "wait": {"event": "nps.answered", "timeout": "2d", "on_timeout": "done"}},
        {"id": "which", "branch": [{"if": "event.score >= 9", "goto": "thanks"}], "else": "done"},
        {"id": "thanks", "send": "email", "template": "thanks"},
        {"id": "done", "exit": True},
    ],
}
CATALOGUE = """\
profile: {}
events:
  order.delivered: {properties: {order_id: string}}
  nps.answered: {properties: {score: integer}}
"""


def _write_folder(tmp_path: Path, template: str) -> None:
    (tmp_path / "journeys").mkdir()
    (tmp_path / "journeys" / "nps.yaml").write_text(json.dumps(NPS), encoding="utf-8")  # JSON is YAML
    (tmp_path / "journeys" / "catalogue.yaml").write_text(CATALOGUE, encoding="utf-8")
    folder = tmp_path / "templates" / "email"
    folder.mkdir(parents=True)
    (folder / "thanks.subject.j2").write_text("Thanks", encoding="utf-8")
    (folder / "thanks.html.j2").write_text(template, encoding="utf-8")
    (folder / "thanks.txt.j2").write_text(template, encoding="utf-8")


def test_the_validator_lets_templates_use_the_awaited_events_fields_as_conditions_do(tmp_path: Path) -> None:
    """`event.score` was accepted in the branch and refused in the template, though in the catalogue."""
    _write_folder(tmp_path, "You gave us {{ event.score }} for order {{ event.order_id }}")
    assert set(load_journeys(tmp_path / "journeys", tmp_path / "templates")) == {"nps"}


def test_a_field_of_no_event_is_still_refused_in_a_template(tmp_path: Path) -> None:
    _write_folder(tmp_path, "{{ event.scroe }}")
    with pytest.raises(ValidationFailed, match="scroe"):
        load_journeys(tmp_path / "journeys", tmp_path / "templates")


def test_the_message_sees_the_awaited_event(redis_url: str, tmp_path: Path) -> None:
    with running(redis_url, tmp_path, [journey(NPS)], templates=[]) as h:
        folder = tmp_path / "templates" / "email"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "thanks.subject.j2").write_text("Thanks", encoding="utf-8")
        (folder / "thanks.html.j2").write_text("<p>{{ event.score }}</p>", encoding="utf-8")
        (folder / "thanks.txt.j2").write_text("score {{ event.score }}, order {{ event.order_id }}", encoding="utf-8")
        h.api.identify("c1", {"email": "c1@example.com"})
        h.api.track("c1", "order.delivered", {"order_id": "A1"})
        h.settle()
        h.api.track("c1", "nps.answered", {"score": 10})
        h.settle()
        [message] = h.outbox()
        assert "score 10, order A1" in message["body"]
