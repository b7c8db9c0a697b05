"""The code a send's templates show as ``{{ voucher.code }}``: from the step's pool, once per run and step.

Asked for before the message is rendered, after the gate allowed it and the send was claimed, so a
capped or deferred send takes no code from the pool.  Keyed by run and step, not channel: a retry,
a re-drive after a crash and a fallback channel show the same code.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from orchestrator.language.journey import Journey, SendStep
from orchestrator.language.vouchers import generated_code
from orchestrator.settings import Settings
from orchestrator.store.vouchers import Vouchers

log = logging.getLogger("loyaloop.vouchers")


@dataclass(frozen=True)
class VoucherCode:
    """The code a send shows; None when the pool is empty and has no ``fallback_code`` (the send
    cannot go out: counted as ``voucher_empty``)."""

    code: str | None
    #: The pool was empty and this is its ``fallback_code`` (counted as ``voucher_fallback``).
    fallback: bool = False

    def context(self) -> dict[str, str]:
        return {"code": self.code or ""}


@dataclass
class VoucherDesk:
    settings: Settings
    vouchers: Vouchers
    secret: bytes

    def code_for(self, journey: Journey, step_id: str, run_id: str) -> VoucherCode | None:
        """The code for a step that names a pool, None for one that does not."""
        step = journey.step(step_id)
        pool = step.voucher if isinstance(step, SendStep) else None
        if pool is None:
            return None
        spec = self.settings.vouchers.get(pool)
        if spec is None:  # the loader refuses this; a version stored before the pool was removed
            log.warning("voucher pool is not declared in settings", extra={"journey": journey.id, "pool": pool})
            return VoucherCode(None)
        key = f"{run_id}:{step_id}"
        if spec.kind == "generated":
            return VoucherCode(generated_code(self.secret, pool, key, spec))
        code = self.vouchers.hand_out(pool, key)
        if code is not None:
            return VoucherCode(code)
        if spec.fallback_code is not None:
            log.warning("voucher pool is empty; sent the fallback code", extra={"journey": journey.id, "pool": pool})
            return VoucherCode(spec.fallback_code, fallback=True)
        log.warning("voucher pool is empty; the send fails", extra={"journey": journey.id, "pool": pool})
        return VoucherCode(None)
