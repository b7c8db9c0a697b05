"""Voucher pools: how a pool is declared in ``settings.yaml``, how a code file is read, and the
codes a ``generated`` pool derives.

A reward a customer can redeem must be theirs alone: one code per customer and run, never handed
out twice.  A shop either loads single-use codes its own system issued (``kind: pool``, loaded with
``loyaloop vouchers load``) or lets Loyaloop derive them (``kind: generated``): an HMAC of the run
and step under the secret key, in an alphabet without look-alike characters, ending in a check
character the shop can verify offline (:func:`is_well_formed`) before it looks the code up.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from orchestrator.errors import Problem, ValidationFailed

#: Codes a file may hold: what shops' systems issue (letters, digits, ``-`` and ``_``), 3 to 64 long.
CODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{2,63}$")
#: Generated codes use Crockford's base 32: no I, L, O or U, so a code read aloud or typed from a
#: phone is not misread (a shop may map O to 0 and I/L to 1 before checking, as Crockford does).
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


class VoucherPool(BaseModel):
    """One pool, as ``settings.yaml`` declares it under ``vouchers:``."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["pool", "generated"] = "pool"
    #: ``loyaloop status`` and ``doctor`` warn when fewer free codes than this are left.
    low_stock: Annotated[int, Field(ge=0)] = 100
    #: Handed out when the pool is empty (counted as ``voucher_fallback``); without it a send that
    #: needs a code fails (counted as ``voucher_empty``) and the step's fallback channels do too.
    fallback_code: Annotated[str, Field(pattern=CODE.pattern)] | None = None
    #: Generated codes only: a fixed start (e.g. ``BDAY-``) and the number of characters after it.
    prefix: Annotated[str, Field(pattern=r"^[A-Z0-9-]{0,12}$")] = ""
    length: Annotated[int, Field(ge=6, le=32)] = 10


def _check_character(body: str) -> str:
    """Luhn mod N over the alphabet: catches every single wrong character and most swaps."""
    total, factor = 0, 2
    for char in reversed(body):
        addend = factor * ALPHABET.index(char)
        total += addend // len(ALPHABET) + addend % len(ALPHABET)
        factor = 1 if factor == 2 else 2
    return ALPHABET[(len(ALPHABET) - total % len(ALPHABET)) % len(ALPHABET)]


def generated_code(secret: bytes, pool: str, key: str, spec: VoucherPool) -> str:
    """The code of ``key`` (a run and step) in a generated pool: the same on every retry and
    worker, different for every run, unguessable without the secret key."""
    digest = hmac.new(secret, f"voucher\x00{pool}\x00{key}".encode(), hashlib.sha256).digest()
    number = int.from_bytes(digest, "big")
    body = ""
    for _ in range(spec.length - 1):
        number, index = divmod(number, len(ALPHABET))
        body += ALPHABET[index]
    return spec.prefix + body + _check_character(body)


def is_well_formed(code: str, spec: VoucherPool) -> bool:
    """Whether a code could have come from this generated pool (prefix, length, check character)."""
    if not code.startswith(spec.prefix):
        return False
    rest = code[len(spec.prefix) :]
    if len(rest) != spec.length or any(char not in ALPHABET for char in rest):
        return False
    return _check_character(rest[:-1]) == rest[-1]


def read_codes(path: Path) -> list[str]:
    """The codes of a file: one per line, or a CSV whose first column is headed ``code``.

    Every problem is reported at once with its line (a blank line, a code that repeats an earlier
    line, a code with characters no till can type), and nothing is loaded from a file with any."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ValidationFailed([Problem(str(path), 1, 1, f"cannot read the file: {exc}")]) from None
    problems: list[Problem] = []
    start = 1 if lines and lines[0].split(",")[0].strip().lower() == "code" else 0
    codes: list[str] = []
    first_line: dict[str, int] = {}
    for number, line in enumerate(lines[start:], start=start + 1):
        code = line.split(",")[0].strip()
        if not code:
            problems.append(Problem(str(path), number, 1, "blank line", "remove it: every line holds one code"))
        elif not CODE.match(code):
            shown = code if len(code) <= 40 else code[:40] + "…"
            problems.append(
                Problem(str(path), number, 1, f"{shown!r} is not a code", "use 3-64 letters, digits, '-' or '_'")
            )
        elif code in first_line:
            problems.append(
                Problem(str(path), number, 1, f"code {code!r} repeats line {first_line[code]}", "each code once")
            )
        else:
            first_line[code] = number
            codes.append(code)
    if not codes and not problems:
        problems.append(Problem(str(path), 1, 1, "the file holds no codes", "one code per line"))
    if problems:
        raise ValidationFailed(problems)
    return codes
