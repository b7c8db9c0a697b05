"""Frequency caps against a plain-Python reference model, on a real Redis.

The model is the specification: rolling windows, every applicable rule at once, the highest
priority first when sends for one customer are due together, idempotent retries, releases, and
the log trimmed to its horizon.  Hypothesis drives random rule sets and random send sequences
through both and the decisions must be identical, so the gate neither exceeds a cap nor loses a
send the rules allow.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import InputError
from orchestrator.gate import caps
from orchestrator.gate.consent import set_consent, suppress, unsuppress
from orchestrator.gate.policy import Gate, GateDecision, SendRequest
from orchestrator.settings import CapRule, Settings
from orchestrator.store import keys

START = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
CUSTOMERS = ("ann", "bob")
CHANNELS = ("email", "sms", "push")
TAGS = ("promo", "vip")


def request(
    key: str,
    *,
    customer: str = "ann",
    channel: str = "email",
    category: str = "marketing",
    tags: tuple[str, ...] = (),
    priority: int = 50,
    journey: str = "j",
    step: str = "s",
    caps_override: list[CapRule] | None = None,
) -> SendRequest:
    return SendRequest(
        customer_id=customer,
        channel=channel,
        category=category,  # type: ignore[arg-type]
        journey_id=journey,
        journey_tags=tags,
        priority=priority,
        idempotency_key=key,
        address=f"{customer}@example.test",
        consent={name: True for name in CHANNELS},
        timezone="UTC",
        caps_override=caps_override,
        step_id=step,
    )


# --- the reference model ------------------------------------------------------------------------
@dataclass
class Logged:
    key: str
    channel: str
    category: str
    tags: tuple[str, ...]
    at: int


@dataclass
class ModelDecision:
    outcome: str
    retry_ms: int | None = None
    rule: CapRule | None = None


class CapModel:
    """What the caps must do, written as plainly as possible."""

    def __init__(self, rules: Sequence[CapRule], *, transactional_counts: bool, horizon: timedelta) -> None:
        self.rules = list(rules)
        self.transactional_counts = transactional_counts
        self.horizon = horizon // caps.MILLISECOND
        self.logs: dict[str, list[Logged]] = defaultdict(list)
        #: Recorded consent (the profile in these tests always says yes) and suppressed customers.
        self.consent: dict[tuple[str, str], bool] = {}
        self.suppressed: set[str] = set()

    def decide(self, req: SendRequest, now: int) -> ModelDecision:
        marketing = req.category == "marketing"
        if req.customer_id in self.suppressed:
            # The gate's script cannot see the (global) suppression list, so it runs as for any
            # send it may record — dropping entries past the horizon — before the send is released.
            script_runs = (
                self.consent.get((req.customer_id, req.channel), True) if marketing else self.transactional_counts
            )
            if script_runs:
                self.logs[req.customer_id] = [e for e in self.logs[req.customer_id] if e.at > now - self.horizon]
            return ModelDecision("suppressed")
        if marketing and not self.consent.get((req.customer_id, req.channel), True):
            return ModelDecision("no_consent")
        if not marketing and not self.transactional_counts:
            return ModelDecision("allowed")
        log = self.logs[req.customer_id] = [e for e in self.logs[req.customer_id] if e.at > now - self.horizon]
        if any(entry.key == req.idempotency_key for entry in log):
            return ModelDecision("allowed")
        blocking: list[tuple[float, CapRule, int | None]] = []
        if marketing:
            for rule in self.rules:
                if not caps.applies(rule, req.channel, req.category, req.journey_tags):
                    continue
                window = rule.window // caps.MILLISECOND
                times = sorted(
                    e.at for e in log if e.at > now - window and caps.applies(rule, e.channel, e.category, e.tags)
                )
                if len(times) >= rule.max:
                    retry = times[len(times) - rule.max] + window if rule.max > 0 else None
                    blocking.append((float("inf") if retry is None else retry, rule, retry))
        if blocking:
            worst = blocking[0]
            for candidate in blocking[1:]:
                if candidate[0] > worst[0]:
                    worst = candidate
            return ModelDecision("capped", worst[2], worst[1])
        log.append(Logged(req.idempotency_key, req.channel, req.category, tuple(req.journey_tags), now))
        return ModelDecision("allowed")

    def decide_many(self, reqs: Sequence[SendRequest], now: int) -> list[ModelDecision]:
        order = sorted(
            range(len(reqs)),
            key=lambda i: (-reqs[i].priority, reqs[i].journey_id, reqs[i].step_id, reqs[i].idempotency_key),
        )
        out: dict[int, ModelDecision] = {}
        for i in order:
            out[i] = self.decide(reqs[i], now)
        return [out[i] for i in range(len(reqs))]

    def release(self, customer: str, key: str) -> bool:
        log = self.logs[customer]
        for entry in log:
            if entry.key == key:
                log.remove(entry)
                return True
        return False


def same(decision: GateDecision, expected: ModelDecision) -> bool:
    retry = None if decision.retry_at is None else caps.to_ms(decision.retry_at)
    if decision.outcome != expected.outcome or retry != expected.retry_ms:
        return False
    return expected.rule is None or decision.rule == expected.rule


# --- strategies ---------------------------------------------------------------------------------
rules_strategy = st.lists(
    st.builds(
        CapRule,
        channel=st.sampled_from(["any", "email", "sms"]),
        window=st.sampled_from([timedelta(hours=1), timedelta(days=1), timedelta(days=7)]),
        max=st.integers(min_value=0, max_value=3),
        category=st.sampled_from([None, "marketing"]),
        tag=st.sampled_from([None, "promo"]),
    ),
    max_size=4,
)

send_strategy = st.fixed_dictionaries(
    {
        "customer": st.sampled_from(CUSTOMERS),
        "channel": st.sampled_from(CHANNELS),
        "category": st.sampled_from(["marketing", "marketing", "marketing", "transactional"]),
        "tags": st.lists(st.sampled_from(TAGS), unique=True, max_size=2).map(tuple),
        "priority": st.sampled_from([10, 50, 90]),
        "journey": st.sampled_from(["a_journey", "b_journey"]),
        "reuse": st.one_of(st.none(), st.integers(min_value=0, max_value=40)),
    }
)

step_strategy = st.one_of(
    st.tuples(
        st.just("send"),
        st.sampled_from([0, 0, 1, 1_000, 60_000, 1_800_000, 3_600_000, 43_200_000, 86_400_000, 300_000_000]),
        st.lists(send_strategy, min_size=1, max_size=4),
    ),
    st.tuples(st.just("release"), st.sampled_from(CUSTOMERS), st.integers(min_value=0, max_value=40)),
    st.tuples(st.just("consent"), st.sampled_from(CUSTOMERS), st.sampled_from(CHANNELS), st.booleans()),
    st.tuples(st.just("suppress"), st.sampled_from(CUSTOMERS), st.booleans()),
)


@settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(rules=rules_strategy, transactional_counts=st.booleans(), steps=st.lists(step_strategy, max_size=25))
def test_gate_decisions_equal_the_reference_model(
    redis_url: str, rules: list[CapRule], transactional_counts: bool, steps: list[Any]
) -> None:
    """For any rules and any sequence of sends, retries, releases, consent changes, suppressions and
    clock moves, the gate decides exactly as the model: never more sends than a cap allows, never a
    send refused that it allows, the same retry time and blocking rule, a retried idempotency key
    never counted twice, and nothing recorded for a suppressed or unconsented send."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    conf = Settings(
        caps=rules, transactional_counts_toward_caps=transactional_counts, send_log_retention=timedelta(hours=2)
    )
    gate = Gate(client, conf)
    horizon = max([timedelta(hours=2), *(rule.window for rule in rules)])
    model = CapModel(rules, transactional_counts=transactional_counts, horizon=horizon)
    now = START
    issued: list[tuple[str, str]] = []
    try:
        for step in steps:
            if step[0] == "release":
                _, customer, index = step
                key = issued[index % len(issued)][1] if issued else "never-sent"
                assert gate.release(customer, key) == model.release(customer, key)
                continue
            if step[0] == "consent":
                _, customer, channel, granted = step
                set_consent(client, customer, channel, granted, source="test")
                model.consent[customer, channel] = granted
                continue
            if step[0] == "suppress":
                _, customer, on = step
                if on:
                    suppress(client, f"{customer}@example.test", "hard_bounce")
                    model.suppressed.add(customer)
                else:
                    unsuppress(client, f"{customer}@example.test")
                    model.suppressed.discard(customer)
                continue
            _, advance, sends = step
            now += timedelta(milliseconds=advance)
            batch = []
            for send in sends:
                if send["reuse"] is not None and issued:
                    customer, key = issued[send["reuse"] % len(issued)]
                else:
                    customer, key = send["customer"], f"k{len(issued)}"
                    issued.append((customer, key))
                fields = {k: v for k, v in send.items() if k not in {"reuse", "customer"}}
                batch.append(request(key, customer=customer, step=f"s{len(batch)}", **fields))
            decisions = gate.check_many(batch, now=now) if len(batch) > 1 else [gate.check(batch[0], now=now)]
            expected = model.decide_many(batch, caps.to_ms(now))
            for req, got, want in zip(batch, decisions, expected, strict=True):
                assert same(got, want), (req, got, want)
        for customer in CUSTOMERS:
            stored = sorted(m.split(b"\x1f")[0].decode() for m in client.zrange(keys.send_log(customer), 0, -1))
            live = sorted(e.key for e in model.logs[customer] if e.at > caps.to_ms(now) - model.horizon)
            assert set(live) <= set(stored)
    finally:
        client.close()


# --- targeted behaviour -------------------------------------------------------------------------
def test_rolling_window_frees_a_slot_when_the_oldest_send_leaves(redis_client: redis.Redis) -> None:
    """With 2 per day, the third send is capped until 24 h after the first, then allowed."""
    gate = Gate(redis_client, Settings(caps=[CapRule(window="1d", max=2)]))
    assert gate.check(request("a"), now=START).allowed
    assert gate.check(request("b"), now=START + timedelta(hours=5)).allowed
    third = gate.check(request("c"), now=START + timedelta(hours=6))
    assert third.outcome == "capped"
    assert third.retry_at == START + timedelta(days=1)
    assert third.reason == "cap: at most 2 messages per 1d"
    assert gate.check(request("c"), now=START + timedelta(days=1)).allowed


def test_strictest_rule_decides_and_retry_waits_for_every_blocking_rule(redis_client: redis.Redis) -> None:
    """Two blocking rules: the decision names the one that frees last, and retry_at is then."""
    rules = [CapRule(channel="sms", window="1h", max=1), CapRule(window="7d", max=2)]
    gate = Gate(redis_client, Settings(caps=rules))
    assert gate.check(request("a", channel="email"), now=START).allowed
    assert gate.check(request("b", channel="sms"), now=START + timedelta(minutes=10)).allowed
    capped = gate.check(request("c", channel="sms"), now=START + timedelta(minutes=20))
    assert capped.outcome == "capped"
    assert capped.rule == rules[1]
    assert capped.retry_at == START + timedelta(days=7)


def test_max_zero_blocks_for_good_without_retry(redis_client: redis.Redis) -> None:
    """A ``max: 0`` rule switches a channel off: capped with no retry time, and defer gives up."""
    gate = Gate(redis_client, Settings(caps=[CapRule(channel="sms", window="1d", max=0)]))
    decision = gate.check(request("a", channel="sms"), now=START)
    assert decision.outcome == "capped" and decision.retry_at is None
    assert gate.defer_until(decision, request("a", channel="sms"), START, timedelta(days=30)) is None


def test_tag_and_category_rules_count_only_matching_sends(redis_client: redis.Redis) -> None:
    """A rule for tag ``promo`` ignores untagged sends and does not hold back untagged journeys."""
    gate = Gate(redis_client, Settings(caps=[CapRule(window="1d", max=1, tag="promo")]))
    assert gate.check(request("a"), now=START).allowed
    assert gate.check(request("b", tags=("promo",)), now=START).allowed
    assert gate.check(request("c", tags=("promo", "vip")), now=START).outcome == "capped"
    assert gate.check(request("d", tags=("vip",)), now=START).allowed


def test_retried_send_is_allowed_again_and_counted_once(redis_client: redis.Redis) -> None:
    """The same idempotency key is ``allowed`` (flagged duplicate) even when the cap is now full."""
    gate = Gate(redis_client, Settings(caps=[CapRule(window="1d", max=1)]))
    first = gate.check(request("run1:welcome"), now=START)
    again = gate.check(request("run1:welcome"), now=START + timedelta(minutes=5))
    assert first.allowed and not first.duplicate
    assert again.allowed and again.duplicate
    assert redis_client.zcard(keys.send_log("ann")) == 1
    assert gate.check(request("run2:welcome"), now=START).outcome == "capped"


def test_higher_priority_takes_the_last_free_slot_in_one_batch(redis_client: redis.Redis) -> None:
    """Three sends due together for one customer with one free slot: the priority-90 journey wins,
    whatever order they arrive in, and decisions come back in the caller's order."""
    gate = Gate(redis_client, Settings(caps=[CapRule(window="1d", max=1)]))
    batch = [
        request("low", priority=10, journey="b_low"),
        request("high", priority=90, journey="z_high"),
        request("mid", priority=50, journey="a_mid"),
        request("other", customer="bob", priority=10),
    ]
    decisions = gate.check_many(batch, now=START)
    assert [d.outcome for d in decisions] == ["capped", "allowed", "capped", "allowed"]


def test_equal_priority_ties_break_on_journey_then_step(redis_client: redis.Redis) -> None:
    """Same priority: journey id decides, then step id, so reruns give the same winner."""
    gate = Gate(redis_client, Settings(caps=[CapRule(window="1d", max=1)]))
    batch = [request("x", journey="b"), request("y", journey="a", step="s2"), request("z", journey="a", step="s1")]
    assert [d.outcome for d in gate.check_many(batch, now=START)] == ["capped", "capped", "allowed"]


def test_transactional_bypasses_caps_and_counts_when_configured(redis_client: redis.Redis) -> None:
    """A receipt is sent even when marketing is capped, and (by default) fills a marketing slot."""
    gate = Gate(redis_client, Settings(caps=[CapRule(window="1d", max=1)]))
    assert gate.check(request("m1"), now=START).allowed
    assert gate.check(request("t1", category="transactional"), now=START).allowed
    assert gate.check(request("t2", category="transactional"), now=START).allowed
    assert redis_client.zcard(keys.send_log("ann")) == 3
    gate = Gate(redis_client, Settings(caps=[CapRule(window="1d", max=1)], transactional_counts_toward_caps=False))
    assert gate.check(request("t1", customer="bob", category="transactional"), now=START).allowed
    assert gate.check(request("m1", customer="bob"), now=START).allowed
    assert redis_client.zcard(keys.send_log("bob")) == 1


def test_journey_caps_override_replaces_the_settings_rules(redis_client: redis.Redis) -> None:
    """A journey with its own rules is held to those; its sends still count for everyone else."""
    gate = Gate(redis_client, Settings(caps=[CapRule(window="1d", max=1)]))
    loose = [CapRule(window="1d", max=3)]
    assert gate.check(request("a", caps_override=loose), now=START).allowed
    assert gate.check(request("b", caps_override=loose), now=START).allowed
    assert gate.check(request("c"), now=START).outcome == "capped"


def test_release_frees_the_slot_of_a_failed_send(redis_client: redis.Redis) -> None:
    """After a permanent channel failure the send is released and the next one may use the slot."""
    gate = Gate(redis_client, Settings(caps=[CapRule(window="1d", max=1)]))
    assert gate.check(request("bounced"), now=START).allowed
    assert gate.release("ann", "bounced") is True
    assert gate.release("ann", "bounced") is False
    assert gate.check(request("next"), now=START).allowed


def test_log_is_trimmed_to_the_horizon_and_expires(redis_client: redis.Redis) -> None:
    """Sends older than the longest window are dropped from the log, and the key carries a TTL."""
    gate = Gate(redis_client, Settings(caps=[CapRule(window="1d", max=5)], send_log_retention=timedelta(days=2)))
    assert gate.check(request("old"), now=START).allowed
    assert gate.check(request("new"), now=START + timedelta(days=3)).allowed
    members = redis_client.zrange(keys.send_log("ann"), 0, -1)
    assert [m.split("\x1f")[0] for m in members] == ["new"]
    assert 0 < redis_client.pttl(keys.send_log("ann")) <= timedelta(days=2) // caps.MILLISECOND


def test_gate_reloads_its_script_after_redis_forgot_it(redis_client: redis.Redis) -> None:
    """After SCRIPT FLUSH (or a Redis restart) the next decision reloads the script and still counts."""
    gate = Gate(redis_client, Settings(caps=[CapRule(window="1d", max=1)]))
    assert gate.check(request("a"), now=START).allowed
    redis_client.script_flush()
    batch = [request("b"), request("c", customer="bob")]
    assert [d.outcome for d in gate.check_many(batch, now=START)] == ["capped", "allowed"]


def test_release_and_a_batch_after_script_flush_reload_and_record_each_send_once(redis_client: redis.Redis) -> None:
    """Release reloads its script too; a batch whose scripts Redis refused is sent again without
    its suppression read, and every allowed send is in the log exactly once."""
    gate = Gate(redis_client, Settings(caps=[CapRule(window="1d", max=3)]))
    assert gate.check(request("a"), now=START).allowed
    redis_client.script_flush()
    assert gate.release("ann", "a") is True
    redis_client.script_flush()
    batch = [request("b"), request("c"), request("d", customer="bob")]
    assert [d.outcome for d in gate.check_many(batch, now=START)] == ["allowed", "allowed", "allowed"]
    logged = [str(m).split("\x1f")[0] for m in redis_client.zrange(keys.send_log("ann"), 0, -1)]
    assert sorted(logged) == ["b", "c"]


def test_naive_now_is_refused(redis_client: redis.Redis) -> None:
    """A clock without a zone would shift every window by the server's offset; it is refused."""
    gate = Gate(redis_client, Settings())
    with pytest.raises(ValueError, match="timezone-aware"):
        gate.check(request("a"), now=START.replace(tzinfo=None))


def test_separator_in_idempotency_key_is_refused(redis_client: redis.Redis) -> None:
    """Keys that would corrupt the log encoding are refused before anything is recorded."""
    gate = Gate(redis_client, Settings())
    with pytest.raises(InputError) as caught:
        gate.check(replace(request("a"), idempotency_key="a\x1fb"), now=START)
    assert caught.value.field == "idempotency_key"
    assert redis_client.exists(keys.send_log("ann")) == 0
