"""The shipped referral journeys end to end through the real runtime on a real Redis, with the
shop's ledger played by the reference receiver on loopback: a promoter is invited (``referral``),
a friend arrives with the promoter's code and places a first order, Loyaloop attributes it, and the
friend's run of ``referral_reward`` credits both sides at the ledger once each, by signed calls
under stable run-and-step keys, and tells each so with the ledger's own answer — for every friend,
and for a promoter the invitation held out all the same."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.cli.reference_receiver import Receiver
from orchestrator.language.journey import Journey
from orchestrator.language.loader import load_journeys
from orchestrator.settings import load_settings
from tests.runtime.harness import Harness

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = load_settings(ROOT / "journeys", env={})


def shipped_referral(holdout: int = 0) -> list[Journey]:
    """The shipped invitation (its holdout as given) and the shipped reward journey."""
    journeys = load_journeys(
        ROOT / "journeys", ROOT / "templates", vouchers=SHIPPED.vouchers, endpoints=SHIPPED.endpoints
    )
    return [journeys["referral"].model_copy(update={"holdout": holdout}), journeys["referral_reward"]]


def harness(redis_url: str, tmp_path: Path, journeys: list[Journey]) -> Harness:
    made = Harness(redis_url, tmp_path, journeys, settings={"endpoints": SHIPPED.endpoints})
    shutil.copytree(ROOT / "templates", tmp_path / "templates", dirs_exist_ok=True)  # the shipped templates
    return made.start()


@pytest.fixture
def h(redis_url: str, tmp_path: Path, shop_ledger: Receiver) -> Iterator[Harness]:
    made = harness(redis_url, tmp_path, shipped_referral())
    yield made
    made.stop()


def customer(h: Harness, cid: str, **attributes: object) -> None:
    h.api.identify(cid, {"email": f"{cid}@example.com", "consent": {"email": True}, "first_name": cid, **attributes})


def promoter_invited(h: Harness) -> None:
    customer(h, "ann", referral_code="ANNA-7F3K", points=100)
    h.api.track("ann", "nps.answered", {"score": 10}, event_id="ann-nps")
    h.settle()


def friend_orders(h: Harness, n: int = 1, friend: str = "sam") -> None:
    h.api.track(friend, "order.placed", {"order_id": f"{friend}-{n}", "total": 40}, event_id=f"{friend}-o{n}")
    h.settle()
    h.settle()  # referral.converted / referral.reward_due are queued by the friend's first order


def friend_arrives(h: Harness, friend: str = "sam") -> None:
    customer(h, friend)
    h.api.track(friend, "customer.signed_up", {"referral_code": "anna-7f3k"}, event_id=f"{friend}-signup")
    h.settle()


def reward_run(h: Harness, friend: str = "sam") -> str:
    """The run id of the friend's ``referral_reward`` run (from its message to the friend)."""
    (message,) = [m for m in h.outbox() if m["step_id"] == "welcome_friend" and m["customer_id"] == friend]
    return str(message["run_id"])


def by_step(outbox: list[dict[str, object]]) -> dict[str, dict[str, object]]:
    return {str(message["step_id"]): message for message in outbox}


def test_a_friends_first_order_credits_both_sides_once_at_the_ledger(h: Harness, shop_ledger: Receiver) -> None:
    promoter_invited(h)
    assert list(by_step(h.outbox())) == ["invite"]
    friend_arrives(h)
    assert shop_ledger.calls == []  # signing up is not ordering
    friend_orders(h)
    run_id = reward_run(h)
    # Both credits arrived signed (the receiver verifies before it records), each under its run-and-step key.
    assert shop_ledger.refused == 0 and shop_ledger.incomplete == 0
    assert shop_ledger.calls == [
        (
            f"{run_id}:credit_referrer",
            {"customer": "ann", "points": 500, "reason": "referral_referrer", "friend": "sam"},
        ),
        (
            f"{run_id}:credit_friend",
            {"customer": "sam", "points": 500, "reason": "referral_friend", "referrer": "ann"},
        ),
    ]
    assert [(c.code, c.body["customer"]) for c in shop_ledger.credits()] == [("RWD-0001", "ann"), ("RWD-0002", "sam")]
    # Each side is told with the ledger's own answer (save_as), the referrer's message included,
    # though it goes to another customer than the run's.
    sent = by_step(h.outbox())
    assert sent["thank_referrer"]["customer_id"] == "ann" and "(reference RWD-0001)" in str(
        sent["thank_referrer"]["body"]
    )
    assert sent["welcome_friend"]["customer_id"] == "sam" and "(reference RWD-0002)" in str(
        sent["welcome_friend"]["body"]
    )
    assert "500 points" in str(sent["welcome_friend"]["subject"])
    stats = h.stats("referral_reward")
    assert stats["credit_referrer:sent:action"] == 1 and stats["credit_friend:sent:action"] == 1
    # The invitation's goal: a friend converted within its 30 days.
    assert h.stats("referral")["_journey:completed"] == 1
    # Later orders and a replayed first order credit nobody again.
    friend_orders(h, 2)
    friend_orders(h, 1)
    assert len(shop_ledger.calls) == 2 and len(shop_ledger.applied) == 2


def test_a_ledger_that_fails_for_a_while_is_called_again_with_the_same_key_and_credits_once(
    h: Harness, shop_ledger: Receiver
) -> None:
    promoter_invited(h)
    friend_arrives(h)
    shop_ledger.fail_next(503, times=2, retry_after=1)
    friend_orders(h)
    assert shop_ledger.calls == [] and "thank_referrer" not in by_step(h.outbox())
    for _ in range(6):  # the retries are timers: move the clock past each back-off
        h.tick(seconds=30)
    run_id = reward_run(h)
    assert [key for key, _body in shop_ledger.calls] == [f"{run_id}:credit_referrer", f"{run_id}:credit_friend"]
    assert h.stats("referral_reward")["credit_referrer:retry:action"] == 2
    assert "(reference RWD-0001)" in str(by_step(h.outbox())["thank_referrer"]["body"])


def test_a_wrong_signing_secret_is_refused_by_the_ledger_and_nobody_is_told_of_a_credit(
    h: Harness, shop_ledger: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The receiver checks every signature: a worker signing with another secret credits nobody, and
    the thank-you that needs the ledger's answer fails visibly rather than claim a credit."""
    monkeypatch.setenv("LOYALTY_LEDGER_SECRET", "another-secret-of-at-least-32-characters!")
    promoter_invited(h)
    friend_arrives(h)
    friend_orders(h)
    assert shop_ledger.refused == 2 and shop_ledger.applied == {}
    stats = h.stats("referral_reward")
    assert stats["credit_referrer:failed:action"] == 1 and stats["credit_friend:failed:action"] == 1
    assert set(by_step(h.outbox())) == {"invite"}


def test_every_friend_is_rewarded_even_two_converting_in_one_batch(h: Harness, shop_ledger: Receiver) -> None:
    """The reward hangs on the friend: two friends ordering in the same drain both credit the
    referrer, each in its own run (a run on the referrer could only wait for one)."""
    promoter_invited(h)
    friend_arrives(h, "sam")
    friend_arrives(h, "tom")
    for friend in ("sam", "tom"):
        h.api.track(friend, "order.placed", {"order_id": f"{friend}-1", "total": 40}, event_id=f"{friend}-o1")
    h.settle()
    h.settle()
    credited = sorted((c.body["customer"], c.body["reason"]) for c in shop_ledger.credits())
    assert credited == [
        ("ann", "referral_referrer"),
        ("ann", "referral_referrer"),
        ("sam", "referral_friend"),
        ("tom", "referral_friend"),
    ]
    keys = {key for key, _body in shop_ledger.calls}
    assert keys == {
        f"{reward_run(h, f)}:{step}" for f in ("sam", "tom") for step in ("credit_referrer", "credit_friend")
    }
    thanks = [m for m in h.outbox() if m["step_id"] == "thank_referrer"]
    assert [m["customer_id"] for m in thanks] == ["ann", "ann"]


def test_a_promoter_held_out_of_the_invitation_is_still_paid(
    redis_url: str, tmp_path: Path, shop_ledger: Receiver
) -> None:
    """The holdout measures the invitation, not the promise: a held-out promoter whose code a
    friend still used gets the referrer's credit (the reward journey has no holdout)."""
    held = harness(redis_url, tmp_path, shipped_referral(holdout=100))
    try:
        promoter_invited(held)
        assert by_step(held.outbox()) == {}  # held out: not invited
        friend_arrives(held)
        friend_orders(held)
        assert sorted(c.body["customer"] for c in shop_ledger.credits()) == ["ann", "sam"]
        assert set(by_step(held.outbox())) == {"thank_referrer", "welcome_friend"}
    finally:
        held.stop()
