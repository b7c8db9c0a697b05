"""Consent changes mid-journey take effect on the very next send, both ways, through the real runtime."""

from __future__ import annotations

from pathlib import Path

from orchestrator.gate.consent import set_consent
from orchestrator.gate.unsubscribe import make_token, unsubscribe
from tests.runtime.harness import journey, running

DRIP = journey(
    {
        "id": "drip",
        "name": "Drip",
        "trigger": {"event": "signup"},
        "steps": [
            {"id": "first", "send": "email", "template": "hello"},
            {"id": "day_one", "wait": "1d"},
            {"id": "second", "send": "email", "template": "tips"},
            {"id": "day_two", "wait": "1d"},
            {"id": "third", "send": "email", "template": "winback"},
        ],
    }
)


def test_unsubscribe_stops_the_next_send_and_resubscribing_lets_the_one_after_through(
    redis_url: str, tmp_path: Path
) -> None:
    """first is sent; an unsubscribe (the signed one-click token) blocks second, recorded as no
    consent while the journey carries on; a re-subscribe before third lets third through."""
    with running(redis_url, tmp_path, [DRIP]) as h:
        h.api.identify("c1", {"email": "c1@example.com", "consent": {"email": True}})
        h.api.track("c1", "signup", {})
        h.settle()
        assert [m["step_id"] for m in h.outbox()] == ["first"]

        secret = h.settings.secret_key
        assert secret is not None
        token = make_token(secret.get_secret_value().encode(), "c1", "email", "drip")
        unsubscribe(h.client, secret.get_secret_value().encode(), token)
        h.tick(days=1, minutes=1)
        assert [m["step_id"] for m in h.outbox()] == ["first"]
        assert h.stats("drip")["second:no_consent:email"] == 1

        set_consent(h.client, "c1", "email", True, source="preference-center")
        h.tick(days=1, minutes=1)
        assert [m["step_id"] for m in h.outbox()] == ["first", "third"]
        assert h.runtime.store.live_runs("c1") == {}
