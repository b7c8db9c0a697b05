"""A send step with a voucher pool, through the real runtime on a real Redis: each run its own code,
the same code on every channel and retry, an empty pool counted and failed or covered by a fallback."""

from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.language.vouchers import VoucherPool, is_well_formed
from orchestrator.store.vouchers import Vouchers
from tests.runtime.harness import Harness, journey, running


def gift(pool: str, channels: tuple[str, ...] = ("email",)) -> object:
    return journey(
        {
            "id": "gift",
            "name": "Gift",
            "trigger": {"event": "customer.signed_up"},
            "category": "transactional",
            "steps": [
                {"id": "give", "send": channels[0], "fallback": list(channels[1:]), "template": "gift", "voucher": pool}
            ],
        }
    )


def write_gift_templates(h: Harness) -> None:
    root = h.settings.templates_dir
    for channel, parts in (("email", ("subject", "html", "txt")), ("sms", ("txt",))):
        for part in parts:
            (root / channel / f"gift.{part}.j2").write_text("Your code is {{ voucher.code }}", encoding="utf-8")


def sign_up(h: Harness, customer_id: str, **contact: str) -> None:
    h.api.identify(customer_id, contact or {"email": f"{customer_id}@example.com"})
    h.api.track(customer_id, "customer.signed_up", event_id=f"{customer_id}-signup")
    h.settle()


def codes_sent(h: Harness) -> dict[str, str]:
    return {m["customer_id"]: m["body"].rsplit(" ", 1)[-1] for m in h.outbox()}


@pytest.mark.parametrize("kind", ["pool", "generated"])
def test_every_run_gets_its_own_code_in_its_message(redis_url: str, tmp_path: Path, kind: str) -> None:
    spec = VoucherPool(kind=kind, prefix="GIFT-" if kind == "generated" else "")
    with running(redis_url, tmp_path, [gift("birthday")], settings={"vouchers": {"birthday": spec}}) as h:
        write_gift_templates(h)
        Vouchers(h.client).load("birthday", ["B-100", "B-101", "B-102"])
        for customer in ("ann", "bob"):
            sign_up(h, customer)
        sent = codes_sent(h)
        assert set(sent) == {"ann", "bob"} and sent["ann"] != sent["bob"]
        if kind == "pool":
            assert sent == {"ann": "B-100", "bob": "B-101"}
            assert Vouchers(h.client).stock("birthday").free == 1
        else:
            assert all(is_well_formed(code, spec) for code in sent.values())
            assert Vouchers(h.client).stock("birthday").free == 3  # a generated pool takes nothing


def test_an_empty_pool_fails_the_send_and_counts_it_and_a_fallback_code_covers_it(
    redis_url: str, tmp_path: Path
) -> None:
    pools = {"birthday": VoucherPool(), "welcome": VoucherPool(fallback_code="WELCOME10")}
    with running(redis_url, tmp_path, [gift("birthday")], settings={"vouchers": pools}) as h:
        write_gift_templates(h)
        Vouchers(h.client).load("birthday", ["B-100"])
        sign_up(h, "ann")
        sign_up(h, "bob")  # the pool is empty now
        assert codes_sent(h) == {"ann": "B-100"}
        stats = h.stats("gift")
        assert stats["give:voucher_empty:email"] == 1 and stats["give:sent:email"] == 1
    (tmp_path / "outbox.jsonl").unlink()
    with running(redis_url, tmp_path, [gift("welcome")], settings={"vouchers": pools}) as h:
        write_gift_templates(h)
        sign_up(h, "cyd")
        assert codes_sent(h) == {"cyd": "WELCOME10"}
        assert h.stats("gift")["give:voucher_fallback"] == 1


def test_a_code_is_taken_only_by_the_channel_that_sends(redis_url: str, tmp_path: Path) -> None:
    """Email without an address falls back to SMS: the gate refuses the e-mail before any code is
    taken, so the run takes one code, shown by the SMS."""
    with running(
        redis_url, tmp_path, [gift("birthday", ("email", "sms"))], settings={"vouchers": {"birthday": VoucherPool()}}
    ) as h:
        write_gift_templates(h)
        Vouchers(h.client).load("birthday", ["B-100", "B-101"])
        sign_up(h, "dan", phone="+31612345678")
        assert codes_sent(h) == {"dan": "B-100"} and h.outbox()[0]["channel"] == "sms"
        assert Vouchers(h.client).stock("birthday").given == 1
