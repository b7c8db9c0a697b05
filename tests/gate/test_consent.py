"""Consent per channel and the suppression list: stored apart from the profile, addresses only as
hashes, and the gate obeying both."""

from __future__ import annotations

import ast
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from orchestrator.errors import InputError
from orchestrator.gate.consent import (
    address_hash,
    consent_history,
    is_suppressed,
    normalize_address,
    read_consent,
    set_consent,
    set_consents,
    suppress,
    suppression_reason,
    unsuppress,
)
from orchestrator.gate.policy import Gate, SendRequest
from orchestrator.settings import Settings
from orchestrator.store import keys

NOW = datetime(2026, 2, 2, 12, 0, tzinfo=UTC)


def send(key: str, *, category: str = "marketing", consent: dict[str, bool] | None = None) -> SendRequest:
    return SendRequest(
        customer_id="ann",
        channel="email",
        category=category,  # type: ignore[arg-type]
        journey_id="welcome",
        journey_tags=(),
        priority=50,
        idempotency_key=key,
        address="Ann@Example.test",
        consent={"email": True} if consent is None else consent,
        timezone="UTC",
    )


def test_consent_round_trip_and_history(redis_client: redis.Redis) -> None:
    """Consent lives in its own hash as "1"/"0"; every change leaves an audit entry with its source."""
    assert read_consent(redis_client, "ann") == {}
    set_consent(redis_client, "ann", "email", True, source="signup")
    set_consent(redis_client, "ann", "sms", False, source="api")
    assert read_consent(redis_client, "ann") == {"email": True, "sms": False}
    assert redis_client.hgetall(keys.consent("ann")) == {"email": "1", "sms": "0"}
    history = consent_history(redis_client, "ann")
    assert [(h["channel"], h["granted"], h["source"]) for h in history] == [
        ("email", "1", "signup"),
        ("sms", "0", "api"),
    ]


def test_several_channels_change_in_one_call_each_with_its_entry(redis_client: redis.Redis) -> None:
    """identify's ``consent: {...}`` is one MULTI: every channel set and each in the history."""
    set_consents(redis_client, "ann", {"email": True, "sms": False, "push": True}, source="identify")
    assert read_consent(redis_client, "ann") == {"email": True, "sms": False, "push": True}
    assert [(h["channel"], h["granted"], h["source"]) for h in consent_history(redis_client, "ann")] == [
        ("email", "1", "identify"),
        ("sms", "0", "identify"),
        ("push", "1", "identify"),
    ]
    with pytest.raises(InputError) as caught:
        set_consents(redis_client, "ann", {"": True}, source="api")
    assert caught.value.field == "channel"


#: Redis commands that change a key; none may touch the consent keys outside the one writer.
WRITES = {"set", "hset", "hsetnx", "hmset", "hdel", "delete", "unlink", "xadd", "xtrim", "xdel", "expire", "rename"}
ROOT = Path(__file__).resolve().parents[2] / "orchestrator"


def consent_writes() -> list[str]:
    """Every call of a Redis write command on ``keys.consent(…)``/``keys.consent_history(…)`` in the code."""
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        scopes = {
            id(child): node.name
            for node in ast.walk(tree)
            if isinstance(node, ast.FunctionDef)
            for child in ast.walk(node)
        }
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in WRITES):
                continue
            for arg in node.args:
                if (
                    isinstance(arg, ast.Call)
                    and isinstance(arg.func, ast.Attribute)
                    and arg.func.attr in ("consent", "consent_history")
                    and isinstance(arg.func.value, ast.Name)
                    and arg.func.value.id == "keys"
                ):
                    found.append(f"{path.relative_to(ROOT.parent)}:{scopes.get(id(node))}:{node.func.attr}")
    return found


def test_only_the_one_writer_writes_consent_keys() -> None:
    """The consent hash and its history are written in one function, queue_consent, which writes both."""
    assert consent_writes() == [
        "orchestrator/store/profiles.py:queue_consent:hset",
        "orchestrator/store/profiles.py:queue_consent:xadd",
    ]


def test_consent_needs_a_source(redis_client: redis.Redis) -> None:
    """A change without a source cannot be audited, so it is refused."""
    with pytest.raises(InputError) as caught:
        set_consent(redis_client, "ann", "email", True, source="")
    assert caught.value.field == "source"


def test_withdrawn_consent_blocks_marketing_and_resubscribe_allows(redis_client: redis.Redis) -> None:
    """Withdrawn in Redis beats a stale profile saying yes; re-granting lets the next send through;
    transactional mail ignores marketing consent."""
    gate = Gate(redis_client, Settings())
    assert gate.check(send("m1"), now=NOW).allowed
    set_consent(redis_client, "ann", "email", False, source="unsubscribe")
    blocked = gate.check(send("m2"), now=NOW)
    assert blocked.outcome == "no_consent" and blocked.reason == "no marketing consent for email"
    assert gate.check(send("receipt", category="transactional"), now=NOW).allowed
    set_consent(redis_client, "ann", "email", True, source="preference-center")
    assert gate.check(send("m3", consent={}), now=NOW).allowed


def test_an_opt_in_older_than_the_last_opt_out_is_refused(redis_client: redis.Redis) -> None:
    """A change that says when it was made (a webhook) is ordered against the history: an opt-in
    dated before the channel's last opt-out is refused and leaves no entry; one at or after it applies."""
    assert set_consent(redis_client, "ann", "sms", False, source="twilio:stop", at=200.0)
    assert not set_consent(redis_client, "ann", "sms", True, source="twilio:start", at=100.0)
    assert read_consent(redis_client, "ann") == {"sms": False}
    assert len(consent_history(redis_client, "ann")) == 1
    assert set_consents(redis_client, "ann", {"sms": True, "email": True}, source="identify", at=150.0) == {
        "email": True
    }
    assert set_consent(redis_client, "ann", "sms", True, source="twilio:start", at=200.0)
    assert read_consent(redis_client, "ann") == {"sms": True, "email": True}
    assert consent_history(redis_client, "ann")[-1]["at"] == "200.000"


def test_an_opt_out_always_applies_and_an_undated_change_is_now(redis_client: redis.Redis) -> None:
    """An opt-out dated before the last opt-in still applies (a late one errs towards sending less);
    a change without a time is made now and applies as it is."""
    set_consent(redis_client, "ann", "email", True, source="signup", at=300.0)
    assert set_consent(redis_client, "ann", "email", False, source="sendgrid:unsubscribe", at=100.0)
    assert read_consent(redis_client, "ann") == {"email": False}
    set_consent(redis_client, "ann", "email", False, source="twilio:stop", at=9e9)
    assert set_consent(redis_client, "ann", "email", True, source="preference-center")
    assert read_consent(redis_client, "ann") == {"email": True}
    with pytest.raises(InputError):
        set_consent(redis_client, "ann", "email", True, source="x", at=float("nan"))


def test_an_opt_out_written_while_an_older_opt_in_is_decided_wins(redis_client: redis.Redis) -> None:
    """The history is read under WATCH: an opt-out that lands between the read and the write of an
    older opt-in makes the opt-in read again, and refuse itself."""
    other = redis.Redis(connection_pool=redis_client.connection_pool)
    interleaved = []

    class Interleaving(redis.Redis):
        def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
            pipe = super().pipeline(transaction, shard_hint)
            read = pipe.xrevrange

            def xrevrange(*args: Any, **kwargs: Any) -> Any:
                entries = read(*args, **kwargs)
                if not interleaved:
                    interleaved.append(set_consent(other, "ann", "sms", False, source="twilio:stop", at=200.0))
                return entries

            pipe.xrevrange = xrevrange  # type: ignore[method-assign]
            return pipe

    client = Interleaving(connection_pool=redis_client.connection_pool)
    assert not set_consent(client, "ann", "sms", True, source="twilio:start", at=100.0)
    assert interleaved == [True]
    assert read_consent(redis_client, "ann") == {"sms": False}


def test_profile_consent_decides_when_nothing_recorded(redis_client: redis.Redis) -> None:
    """Without a recorded choice the profile's consent counts: absent or False means no."""
    gate = Gate(redis_client, Settings())
    assert gate.check(send("a", consent={}), now=NOW).outcome == "no_consent"
    assert gate.check(send("b", consent={"email": False}), now=NOW).outcome == "no_consent"
    assert gate.check(send("c", consent={"sms": True}), now=NOW).outcome == "no_consent"


def test_addresses_are_normalized_before_hashing() -> None:
    """Case and spacing of e-mails, punctuation of phone numbers do not dodge the list; push tokens
    keep their case."""
    assert normalize_address("  Ann@Example.TEST ") == "ann@example.test"
    assert normalize_address("+31 6-1234 (5678)") == "+31612345678"
    assert normalize_address("fcmTokenAbC") == "fcmTokenAbC"
    assert address_hash("ANN@example.test") == hashlib.sha256(b"ann@example.test").hexdigest()


def test_suppression_stores_only_hashes(redis_client: redis.Redis) -> None:
    """The list maps SHA-256 digests to reasons; the address itself is nowhere in Redis."""
    suppress(redis_client, "Ann@Example.test", "hard_bounce")
    assert is_suppressed(redis_client, "ann@example.test")
    assert suppression_reason(redis_client, " ANN@example.test") == "hard_bounce"
    stored = redis_client.hgetall(keys.suppressed())
    assert stored == {address_hash("ann@example.test"): "hard_bounce"}
    dump = " ".join(str(redis_client.dump(key)) for key in redis_client.keys("*"))
    assert "example" not in dump.lower()
    assert unsuppress(redis_client, "ann@example.test") is True
    assert unsuppress(redis_client, "ann@example.test") is False
    assert not is_suppressed(redis_client, "ann@example.test")


def test_suppressed_address_blocks_every_category_and_outranks_other_checks(redis_client: redis.Redis) -> None:
    """A suppressed address gets no marketing and no receipts, and nothing is recorded for it."""
    gate = Gate(redis_client, Settings())
    suppress(redis_client, "ann@example.test", "spam_report")
    assert gate.check(send("m"), now=NOW).outcome == "suppressed"
    assert gate.check(send("t", category="transactional"), now=NOW).outcome == "suppressed"
    assert gate.check(send("n", consent={}), now=NOW).outcome == "suppressed"
    assert redis_client.exists(keys.send_log("ann")) == 0


def test_empty_address_cannot_be_suppressed(redis_client: redis.Redis) -> None:
    """Suppressing "" would be a silent no-op in practice; it is refused instead."""
    with pytest.raises(InputError):
        suppress(redis_client, "  ", "hard_bounce")
