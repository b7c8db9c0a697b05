"""The demo's world answers messages of the journeys that work, and only those, the same every run."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.cli.demo_response import RESPONSES, Happening, Responder, merge

NOW = datetime(2026, 1, 5, tzinfo=UTC)


def order(customer_id: str, number: int) -> dict[str, Any]:
    return {"order_id": f"R-{number}", "total": 10.0}


def write(outbox: Path, messages: list[tuple[str, str]]) -> None:
    with outbox.open("a", encoding="utf-8") as handle:
        for journey_id, customer_id in messages:
            handle.write(json.dumps({"journey_id": journey_id, "customer_id": customer_id}) + "\n")


def test_only_journeys_that_work_get_answers_once_per_customer(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.jsonl"
    ids = [f"c{n}" for n in range(200)]
    write(outbox, [("welcome", cid) for cid in ids] + [("birthday", cid) for cid in ids])
    responder = Responder(outbox)
    first = responder.reactions(NOW, order)
    assert {r.kind for r in first} == {"order.placed"}
    answered = {r.customer_id for r in first}
    # about the journey's chance, and never a birthday answer: that journey has no effect here
    assert abs(len(answered) - 2 * RESPONSES["welcome"][1]) < 30 and "birthday" not in RESPONSES
    write(outbox, [("welcome", cid) for cid in ids])  # a second message: no second answer
    assert responder.reactions(NOW, order) == []
    again = Responder(outbox).reactions(NOW, order)
    assert [(r.customer_id, r.at) for r in again] == [(r.customer_id, r.at) for r in first]
    assert all(r.at > NOW for r in first)


def test_reactions_are_merged_after_what_already_happened() -> None:
    story = [Happening(NOW.replace(hour=h), h, "x", "c") for h in range(0, 10, 2)]
    merge(story, 3, [Happening(NOW.replace(hour=5), 99, "order.placed", "c")])
    assert [h.at.hour for h in story] == [0, 2, 4, 5, 6, 8]


def test_the_order_threads_wrote_the_outbox_in_does_not_change_the_story(tmp_path: Path) -> None:
    """Worker threads append in no fixed order; the reactions (their numbers, hence the order id
    and the product bought) must not follow it, or one seed tells two stories (1,882 vs 1,883
    messages)."""
    messages = [("welcome", f"c{n}") for n in range(60)] + [("winback", f"c{n}") for n in range(60)]
    forward, backward = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    write(forward, messages)
    write(backward, messages[::-1])

    def told(outbox: Path) -> list[tuple[str, str, datetime, dict[str, Any]]]:
        found = Responder(outbox).reactions(NOW, order)
        return sorted((r.customer_id, r.kind, r.at, r.payload) for r in found)

    assert told(forward) == told(backward) and told(forward)
