"""The demo's shop side: the reference receiver standing in for the shop's loyalty ledger, and what
the demo prints of the rewards that reached it and of the vouchers handed out.

``loyaloop demo`` must need no credentials and must never call a real shop with synthetic
customers, yet its referral journeys credit both sides through an ``action`` step.  So for the
length of the run every ``webhook`` endpoint the settings declare points at the reference receiver
(:mod:`orchestrator.cli.reference_receiver`) on a loopback port, signed with a secret made up for
this run: the variables the endpoints name are set to the receiver's URL and that secret (a real
``LOYALTY_LEDGER_URL`` in the environment is overridden, never called) and put back afterwards.
The rewards are then printed as the receiver recorded them: signature checked, applied once per
``Idempotency-Key``.
"""

from __future__ import annotations

import os
import secrets
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from orchestrator.cli.reference_receiver import Credit, Receiver, running
from orchestrator.settings import Settings
from orchestrator.store.vouchers import Vouchers

#: Credits listed one by one; more are summed per reason only.
SHOWN = 8


@dataclass(frozen=True)
class LedgerRecord:
    """What the reference ledger saw in one demo run."""

    credits: list[Credit]
    calls: int
    refused: int

    @property
    def repeats(self) -> int:
        """Calls that repeated a key already applied (answered with the first answer, not applied)."""
        return self.calls - len(self.credits)


@dataclass(frozen=True)
class VoucherRecord:
    """One pool's codes after the run: handed out, distinct among them, and left."""

    pool: str
    given: int
    distinct: int
    free: int


@contextmanager
def demo_ledger(settings: Settings) -> Iterator[Receiver | None]:
    """The reference receiver answering every ``webhook`` endpoint for the block (None: none declared)."""
    names = [
        (spec.url_env, spec.secret_env)
        for spec in settings.endpoints.values()
        if spec.kind == "webhook" and spec.url_env and spec.secret_env
    ]
    if not names:
        yield None
        return
    secret = secrets.token_hex(32)
    with running(secret.encode()) as receiver:
        values: dict[str, str] = {}
        for url_env, secret_env in names:
            values[url_env], values[secret_env] = receiver.url, secret
        before = {name: os.environ.get(name) for name in values}
        os.environ.update(values)
        try:
            yield receiver
        finally:
            for name, value in before.items():
                if value is None:
                    os.environ.pop(name, None)
                else:
                    os.environ[name] = value


def ledger_record(receiver: Receiver | None) -> LedgerRecord | None:
    if receiver is None:
        return None
    return LedgerRecord(receiver.credits(), len(receiver.calls), receiver.refused)


def voucher_records(settings: Settings, vouchers: Vouchers) -> list[VoucherRecord]:
    """Every ``kind: pool`` pool: how many codes went out, whether any went out twice, what is left."""
    found = []
    for name, spec in sorted(settings.vouchers.items()):
        if spec.kind == "pool":
            codes = vouchers.codes_given(name)
            found.append(VoucherRecord(name, len(codes), len(set(codes)), vouchers.stock(name).free))
    return found


def ledger_lines(record: LedgerRecord | None, pools: list[VoucherRecord]) -> list[str]:
    """The demo's account of the rewards: credits as the ledger recorded them, then the vouchers."""
    lines: list[str] = []
    if record is not None:
        lines.append("Rewards at the reference ledger (loopback, every signature verified):")
        lines.append(
            f"  {len(record.credits)} credits, one per Idempotency-Key ({record.calls} signed calls, "
            f"{record.repeats} repeats, {record.refused} refused)"
        )
        reasons = Counter(str(credit.body.get("reason", "-")) for credit in record.credits)
        points: dict[str, float] = {}
        for credit in record.credits:
            reason = str(credit.body.get("reason", "-"))
            points[reason] = points.get(reason, 0) + credit.points
        for reason, count in sorted(reasons.items()):
            plural = "s" if count != 1 else " "
            lines.append(f"  {reason:<20} {count:>4} credit{plural} {points[reason]:>8,g} points")
        for credit in record.credits[:SHOWN]:
            lines.append(f"  {credit.code}  +{credit.points:g} to {credit.body.get('customer', '?')}  ({_why(credit)})")
        if len(record.credits) > SHOWN:
            lines.append(f"  … and {len(record.credits) - SHOWN} more")
    for pool in pools:
        twice = "all unique" if pool.distinct == pool.given else f"{pool.given - pool.distinct} handed out twice"
        lines.append(f"Vouchers {pool.pool}: {pool.given} codes handed out ({twice}), {pool.free} left in the pool")
    return lines


def _why(credit: Credit) -> str:
    extra = ", ".join(f"{k} {v}" for k, v in credit.body.items() if k not in ("customer", "points", "reason"))
    reason = str(credit.body.get("reason", "-"))
    return f"{reason}, {extra}" if extra else reason
