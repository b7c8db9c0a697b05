"""A simulation calls no endpoint: the shipped referral journey's ledger credits count as done,
answered with the endpoint's declared ``example``, so the messages that read the answer render as
previews show them — even with a real ledger URL in the environment."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from orchestrator.cli.reference_receiver import running
from orchestrator.simulate.simulation import load_setup, simulate
from orchestrator.simulate.source import Line

ROOT = Path(__file__).resolve().parents[2]
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def referral_story() -> list[Line]:
    consent = {"email": True}
    return [
        Line(
            1,
            START,
            "identify",
            "ann",
            attributes={"email": "ann@example.com", "consent": consent, "referral_code": "ANN-1"},
        ),
        Line(2, START + timedelta(hours=1), "track", "ann", "nps.answered", {"score": 10}, "ann-nps"),
        Line(
            3, START + timedelta(days=2), "identify", "sam", attributes={"email": "sam@example.com", "consent": consent}
        ),
        Line(
            4,
            START + timedelta(days=2, seconds=1),
            "track",
            "sam",
            "customer.signed_up",
            {"referral_code": "ANN-1"},
            "s1",
        ),
        Line(5, START + timedelta(days=4), "track", "sam", "order.placed", {"order_id": "o1", "total": 30}, "o1"),
    ]


def test_the_referral_credits_are_simulated_not_called(monkeypatch: pytest.MonkeyPatch) -> None:
    setup = load_setup(ROOT / "journeys", ROOT / "templates", 1)
    referral = setup.journeys["referral"]
    setup.journeys["referral"] = referral.model_copy(update={"holdout": 0})
    setup.settings.global_holdout = 0
    lines = referral_story()
    with running(b"a-real-ledger-secret-0123456789abcdef") as ledger:
        monkeypatch.setenv("LOYALTY_LEDGER_URL", ledger.url)
        monkeypatch.setenv("LOYALTY_LEDGER_SECRET", "a-real-ledger-secret-0123456789abcdef")
        result = simulate(setup, lines, until=START + timedelta(days=5), backend="fakeredis")
    assert ledger.calls == [] and ledger.refused == 0
    sent = {
        (row["step_id"], row["customer_id"]): row
        for row in result.messages
        if row["journey_id"] in ("referral", "referral_reward")
    }
    assert set(sent) == {("invite", "ann"), ("thank_referrer", "ann"), ("welcome_friend", "sam")}
    # The subjects read the kept answer (step.referrer_credit.credited): the endpoint's example, 500.
    assert sent["thank_referrer", "ann"]["subject"] == "Your friend joined: 500 points for you"
    assert sent["welcome_friend", "sam"]["subject"] == "A welcome gift: 500 points"
