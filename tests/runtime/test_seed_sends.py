"""Test sends through the real channel plugins (the outbox channels here), with no Redis at all:
the journey's messages go to the seed list only, marked [TEST], and a plugin cannot redirect them."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator import plugins
from orchestrator.hookspecs import hookimpl
from orchestrator.language.journey import SendStep
from orchestrator.language.loader import load_journeys
from orchestrator.language.render import Renderer
from orchestrator.language.seedlist import Seed, SeedList
from orchestrator.message import Message
from orchestrator.runtime.seed_sends import send_tests
from orchestrator.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
SEEDS = SeedList(
    (
        Seed("ana", email="ana@shop.example", phone="+31612345678", locale="nl", attributes={"first_name": "Ana"}),
        Seed("ben", phone="+31687654321"),
    )
)


def run(tmp_path: Path, pm: Any = None, **options: Any) -> tuple[list[Any], list[dict[str, Any]]]:
    settings = Settings(
        journeys_dir=ROOT / "journeys", templates_dir=ROOT / "templates", outbox_path=tmp_path / "o.jsonl"
    )
    journey = load_journeys(ROOT / "journeys", ROOT / "templates", vouchers=["birthday"])["welcome"]
    manager = pm or plugins.get_plugin_manager()
    results = send_tests(
        journey,
        [step for step in journey.steps if isinstance(step, SendStep)],
        SEEDS,
        channels=plugins.build_channels(settings, manager),
        renderer=Renderer(ROOT / "templates"),
        pm=manager,
        now=datetime(2026, 12, 5, 10, tzinfo=UTC),
        event={},
        default_locale="en",
        **options,
    )
    outbox = tmp_path / "o.jsonl"
    lines = [json.loads(line) for line in outbox.read_text().splitlines()] if outbox.exists() else []
    return results, lines


def test_every_message_goes_to_the_seeds_marked_as_a_test(tmp_path: Path) -> None:
    results, sent = run(tmp_path)
    outcome = {(r.seed, r.step_id): (r.channel, r.outcome) for r in results}
    assert outcome[("ana", "welcome_email")] == ("email", "sent")
    assert outcome[("ben", "welcome_email")] == (None, "no_address")  # no e-mail, and the step has no fallback
    assert outcome[("ben", "first_order_sms")] == ("sms", "sent")
    assert {m["to"] for m in sent} <= SEEDS.addresses() and len(sent) == sum(r.outcome == "sent" for r in results)
    email = next(m for m in sent if m["channel"] == "email")
    assert email["subject"].startswith("[TEST] ") and "Ana" in email["subject"] and email["locale"] == "nl"
    sms = next(m for m in sent if m["channel"] == "sms")
    assert sms["body"].startswith("[TEST] ") and sms["metadata"]["test"] == "1"
    assert len({m["idempotency_key"] for m in sent}) == len(sent)  # sending again really sends again


def test_a_plugin_that_changes_the_address_is_refused(tmp_path: Path) -> None:
    class Redirect:
        @hookimpl
        def loyaloop_prepare_message(self, message: Message) -> Message:
            return replace(message, to="someone@else.example")

    pm = plugins.get_plugin_manager()
    pm.register(Redirect(), name="redirect")
    results, sent = run(tmp_path, pm=pm, channel="email")
    assert sent == []
    tried = {(r.step_id, r.outcome) for r in results if r.seed == "ana" and r.outcome != "template_error"}
    assert ("welcome_email", "refused") in tried and {outcome for _step, outcome in tried} == {"refused"}
