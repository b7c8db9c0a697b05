"""The built-in webhook action kind against loopback servers: what it signs and how a receiver checks
it, which answers are transient or permanent, the bounded response, and plugin-added kinds."""

from __future__ import annotations

import time
from typing import Any

import pytest
import requests

from channels.webhook import Webhook, sign
from orchestrator.cli.reference_receiver import running, verify
from orchestrator.errors import PermanentError, TransientError
from orchestrator.message import ActionCall, ActionReply
from tests.channels.loopback import LoopbackServer, Reply

SECRET = "a-secret-of-at-least-thirty-two-chars!"
CONFIG = {"kind": "webhook", "url_env": "HOOK_URL", "secret_env": "HOOK_SECRET", "timeout": 2.0, "max_response": 2048}
CALL = ActionCall("ledger", "run-1:credit", "ann", "reward", "credit", "run-1", {"points": 250})


def hook(url: str) -> Webhook:
    return Webhook(env={"HOOK_URL": url, "HOOK_SECRET": SECRET})


def test_the_signature_covers_time_and_body_and_the_reference_receiver_checks_both() -> None:
    body, now = b'{"points":250}', int(time.time())
    header = sign(SECRET.encode(), now, body)
    assert verify(SECRET.encode(), header, body, now)
    assert not verify(SECRET.encode(), header, b'{"points":2500}', now)  # tampered body
    assert not verify(SECRET.encode(), header, body, now + 301)  # replayed later than five minutes
    assert not verify(b"another-secret-another-secret-000", header, body, now)


def test_a_call_reaches_the_reference_receiver_signed_and_keyed() -> None:
    with running(SECRET.encode()) as receiver:
        reply = hook(receiver.url).call(CALL, CONFIG)
        again = hook(receiver.url).call(CALL, CONFIG)
    assert reply == again == ActionReply(200, {"code": "RWD-0001", "credited": 250})
    assert receiver.refused == 0 and [key for key, _ in receiver.calls] == ["run-1:credit", "run-1:credit"]
    assert len(receiver.applied) == 1


def test_the_reference_receiver_refuses_a_body_cut_off_by_a_dead_sender_without_counting_a_bad_signature() -> None:
    """A sender killed between a request's headers and its body: not a call, not a forged one."""
    body, now = b'{"points":250}', int(time.time())
    headers = {"loyaloop-signature": sign(SECRET.encode(), now, body), "idempotency-key": "run-1:credit"}
    with running(SECRET.encode()) as receiver:
        status, _, _ = receiver.handle({**headers, "content-length": str(len(body))}, body[:5])
        assert (status, receiver.incomplete, receiver.refused, receiver.calls) == (400, 1, 0, [])
        status, _, _ = receiver.handle({**headers, "content-length": str(len(body))}, body)
    assert (status, receiver.incomplete, len(receiver.applied)) == (200, 1, 1)


@pytest.mark.parametrize(
    ("reply", "error", "retry_after"),
    [
        (Reply(503, {"e": 1}, {"Retry-After": "7"}), TransientError, 7.0),
        (Reply(429, {"e": 1}), TransientError, None),
        (Reply(400, {"email": "ann@example.com"}), PermanentError, None),
        (Reply(200, {"blob": "x" * 5000}), PermanentError, None),
    ],
)
def test_answers_are_sorted_into_transient_and_permanent(
    loopback: LoopbackServer, reply: Reply, error: type, retry_after: float | None
) -> None:
    loopback.queue(reply)
    with pytest.raises(error) as caught:
        hook(loopback.url + "/credit").call(CALL, CONFIG)
    assert "ann@example.com" not in str(caught.value)  # a refusal's body is never quoted
    if retry_after is not None:
        assert caught.value.retry_after == retry_after


def test_an_unreachable_endpoint_is_transient() -> None:
    with pytest.raises(TransientError, match="unreachable"):
        hook("http://127.0.0.1:9/credit").call(CALL, CONFIG)


def test_every_call_meets_the_published_contract(actions_prism: Any) -> None:
    """Prism serves docs/actions.openapi.json and checks the request: required headers, the
    signature's shape, a JSON object body.  The contract is what docs/actions.md promises shops."""
    mark = actions_prism.mark()
    reply = hook(actions_prism.url + "/loyaloop/action").call(CALL, CONFIG)
    assert reply.status == 200 and actions_prism.violations(mark) == []
    # A call missing the signature is a violation Prism reports: the check can fail.
    mark = actions_prism.mark()
    url = actions_prism.url + "/loyaloop/action"
    requests.post(url, json={"points": 1}, headers={"Idempotency-Key": "k-1"}, timeout=5)
    assert actions_prism.violations(mark) != []
