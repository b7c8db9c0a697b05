"""``loyaloop status`` shows every gate decision per journey and step — sent, capped, deferred,
suppressed, no consent — counted once per decision and summed over channels."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from orchestrator.cli import cli
from orchestrator.cli.status_table import channel_stat, decision_rows
from orchestrator.engine.enrollment import ChannelOutcome
from orchestrator.gate.consent import suppress
from tests.runtime.harness import Harness, journey, running

OFFER = journey(
    {"id": "offer", "name": "Offer", "trigger": {"event": "signup"}, "re_entry": "always",
     "steps": [{"id": "text", "send": "sms", "template": "hello", "fallback": ["email"]},
               {"id": "mail", "send": "email", "template": "tips"}]}
)  # fmt: skip


def test_decision_rows_sum_channels_and_ignore_summaries() -> None:
    """Per-channel keys are summed per step; the engine's channel-less summaries and journey
    counters are left out, so nothing is counted twice."""
    stats = {
        "_journey:entered": 9,
        "text:sent:sms": 2,
        "text:sent:email": 1,
        "text:sent": 3,
        "text:deferred:sms": 4,
        "text:deferred": 3,
        "text:cap_deferred": 1,
        "text:no_consent:sms": 1,
        "mail:suppressed:email": 5,
        "mail:retry:email": 7,
    }
    rows = dict(decision_rows(stats))
    assert list(rows) == ["mail", "text"]
    assert rows["text"] == {
        "sent": 3, "capped": 0, "deferred": 4, "suppressed": 0, "no_consent": 1, "no_address": 0, "failed": 0
    }  # fmt: skip
    assert rows["mail"]["suppressed"] == 5 and sum(rows["mail"].values()) == 5


def test_channel_stat_reads_step_outcome_and_channel() -> None:
    """A stats key is split into its step and its typed outcome on a channel; summaries and the
    journey's counters are not outcomes on a channel."""
    assert channel_stat("offer:no_consent:sms") == ("offer", ChannelOutcome("no_consent", "sms"))
    assert channel_stat("offer:sent") is None
    assert channel_stat("offer:branch:vip") is None
    assert channel_stat("_journey:sent:email") is None


def _person(h: Harness, cid: str, timezone: str, **extra: Any) -> None:
    attrs: dict[str, Any] = {
        "email": f"{cid}@example.com",
        "phone": f"+3161234{len(cid):04d}",
        "timezone": timezone,
        "consent": {"email": True, "sms": True},
    }
    attrs.update(extra)
    h.api.identify(cid, attrs)


def test_status_shows_every_gate_decision_per_journey_and_step(
    redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """At 10:00 UTC: a customer in Amsterdam gets the text (sent), one in Los Angeles is in quiet
    hours (deferred), one withdrew SMS consent (no consent), one's number is suppressed
    (suppressed) and a second run for the Amsterdam customer hits the one-text-a-day cap (capped);
    the e-mail step's decisions get their own row (the text still waiting in Los Angeles has not
    reached it)."""
    settings = {
        "caps": [{"channel": "sms", "window": "24h", "max": 1}],
        "quiet_hours": {"sms": "21:00-08:00"},
    }
    with running(redis_url, tmp_path, [OFFER], settings=settings) as h:
        _person(h, "ams", "Europe/Amsterdam")
        _person(h, "la", "America/Los_Angeles")
        _person(h, "optout", "Europe/Amsterdam", consent={"email": True, "sms": False})
        _person(h, "bounced", "Europe/Amsterdam")
        suppress(h.client, "+31612340007", "carrier_block")
        for cid in ("ams", "la", "optout", "bounced"):
            h.api.track(cid, "signup")
        h.settle()
        h.clock.advance(minutes=5)
        h.api.track("ams", "signup")
        h.settle()
        stats = h.stats("offer")
    assert stats["text:sent:sms"] == 1 and stats["text:sent:email"] == 2 and stats["text:capped:sms"] == 1
    monkeypatch.setenv("REDIS_URL", redis_url)
    monkeypatch.setenv("LOYALOOP_JOURNEYS", str(tmp_path / "journeys"))
    monkeypatch.setenv("COLUMNS", "200")
    result = CliRunner().invoke(cli, ["status"])
    assert result.exit_code == 0, result.output
    assert "Gate decisions" in result.output
    decisions = result.output.split("Gate decisions", 1)[1]
    cells = {tuple(line.split()) for line in decisions.splitlines() if line.startswith("   ")}
    # step, sent, capd, defr, supp, cons, addr, fail (the legend spells the labels out)
    # the text step's "sent" also counts the two e-mail fallbacks (suppressed, no consent)
    assert ("text", "3", "1", "1", "1", "1", "0", "0") in cells, result.output
    assert ("mail", "4", "0", "0", "0", "0", "0", "0") in cells, result.output
    assert "capd: held by a frequency cap" in result.output.replace("\n", " ")
