"""Action steps through the real runtime on a real Redis, calling the reference receiver on loopback:
signed, idempotent, retried on 503 with Retry-After, recorded as failed on a 4xx, the answer kept
for the next message, and a worker that cannot reach its endpoint's configuration refuses to start."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pluggy
import pytest

import channels.webhook
from orchestrator.cli.reference_receiver import Receiver, running
from orchestrator.errors import ConfigurationError
from orchestrator.language.endpoints import Endpoint
from orchestrator.plugins import get_plugin_manager
from tests.runtime import harness as harness_module
from tests.runtime.harness import Harness, journey

SECRET = "s3cret-for-the-loyalty-ledger-0123456789"
ENDPOINTS = {"ledger": Endpoint(url_env="LEDGER_URL", secret_env="LEDGER_SECRET", timeout=2)}

REWARD = journey(
    {
        "id": "review_reward",
        "name": "Points for a review",
        "trigger": {"event": "review.posted"},
        "re_entry": "always",
        "category": "transactional",
        "steps": [
            {
                "id": "credit",
                "action": "ledger",
                "body": {"customer": "{{ profile.id }}", "points": "{{ 250 }}", "reason": "review"},
                "save_as": "reward",
            },
            {"id": "thanks", "send": "email", "template": "thanks"},
        ],
    }
)


def with_webhook() -> pluggy.PluginManager:
    """The plugin manager with the built-in webhook kind (an entry point once the package is installed)."""
    pm = get_plugin_manager()
    if not pm.is_registered(channels.webhook) and pm.get_plugin("webhook") is None:
        pm.register(channels.webhook, name="webhook")
    return pm


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    with running(SECRET.encode()) as receiver:
        monkeypatch.setenv("LEDGER_URL", receiver.url)
        monkeypatch.setenv("LEDGER_SECRET", SECRET)
        monkeypatch.setattr(harness_module, "get_plugin_manager", with_webhook)
        yield receiver


@pytest.fixture
def h(redis_url: str, tmp_path: Path, receiver: Receiver) -> Iterator[Harness]:
    harness = Harness(redis_url, tmp_path, [REWARD], settings={"endpoints": ENDPOINTS}, templates=["hello"])
    (tmp_path / "templates" / "email").mkdir(parents=True, exist_ok=True)
    for part in ("subject", "html", "txt"):
        (tmp_path / "templates" / "email" / f"thanks.{part}.j2").write_text(
            "Your code {{ step.reward.code }} for {{ step.reward.credited }} points", encoding="utf-8"
        )
    harness.start()
    yield harness
    harness.stop()


def review(h: Harness, customer: str, n: int = 1) -> None:
    h.api.identify(customer, {"email": f"{customer}@example.com"})
    h.api.track(customer, "review.posted", event_id=f"{customer}-review-{n}")
    h.settle()


def test_an_action_is_signed_applied_once_and_its_answer_reaches_the_next_message(h: Harness, receiver: Any) -> None:
    review(h, "ann")
    assert len(receiver.calls) == 1 and receiver.refused == 0
    key, body = receiver.calls[0]
    assert key.endswith(":credit") and body == {"customer": "ann", "points": 250, "reason": "review"}
    (message,) = h.outbox()
    assert message["body"] == "Your code RWD-0001 for 250 points"
    assert h.stats("review_reward")["credit:sent:action"] == 1


def test_a_503_with_retry_after_is_retried_with_the_same_key_and_applied_once(h: Harness, receiver: Any) -> None:
    receiver.fail_next(503, times=2, retry_after=1)
    review(h, "bob")
    assert receiver.calls == [] and h.outbox() == []
    for _ in range(6):  # the retries are timers: move the clock past each back-off
        h.tick(seconds=30)
    assert len(receiver.applied) == 1 and len(receiver.calls) == 1
    assert h.outbox()[0]["body"] == "Your code RWD-0001 for 250 points"
    assert h.stats("review_reward")["credit:retry:action"] == 2


def test_a_refusal_is_recorded_as_failed_and_the_run_goes_on(h: Harness, receiver: Any) -> None:
    receiver.fail_next(422)
    review(h, "cyd")
    stats = h.stats("review_reward")
    assert receiver.applied == {} and stats["credit:failed:action"] == 1
    # The run went on to the thank-you, whose template needs the answer that never came: it fails
    # visibly (counted), rather than sending a message with an empty code.
    assert h.outbox() == [] and stats["thanks:template_error:email"] == 1


def test_a_missing_url_or_short_secret_stops_the_runtime_from_starting(
    redis_url: str, tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LEDGER_URL")
    with pytest.raises(ConfigurationError, match="LEDGER_URL is not set"):
        Harness(redis_url, tmp_path, [REWARD], settings={"endpoints": ENDPOINTS})
    monkeypatch.setenv("LEDGER_URL", "http://shop.example/credit")
    with pytest.raises(ConfigurationError, match="must use https://"):
        Harness(redis_url, tmp_path, [REWARD], settings={"endpoints": ENDPOINTS})
    monkeypatch.setenv("LEDGER_URL", receiver.url)
    monkeypatch.setenv("LEDGER_SECRET", "short")
    with pytest.raises(ConfigurationError, match="at least 32 characters"):
        Harness(redis_url, tmp_path, [REWARD], settings={"endpoints": ENDPOINTS})
