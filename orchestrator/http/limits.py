"""The request body limit (the per-key rate limit is :mod:`orchestrator.store.ratelimit`, shared
with the channels' send rates).

A declared ``Content-Length`` over the limit is refused before a byte of the body is read; the
stream itself is still counted, because a chunked upload has no length and a liar's is wrong.
Nothing here trusts a header to be what it claims: ``'²'.isdigit()`` is true, and ``int()`` of a
5,000-digit string raises, so a length is only read from a few ASCII digits.
"""

from __future__ import annotations

from starlette.requests import Request

#: Digits a Content-Length may have (19 hold any 63-bit size); a longer one is refused unread.
MAX_LENGTH_DIGITS = 19


def ascii_number(text: str | None, max_digits: int) -> int | None:
    """``text`` as a non-negative integer when it is 1 to ``max_digits`` ASCII digits, else None."""
    if text is None or not 0 < len(text) <= max_digits or not text.isascii() or not text.isdigit():
        return None
    return int(text)


def declared_too_large(request: Request, limit: int) -> bool:
    """Whether the request declares a body over ``limit`` (or a length that is not a number)."""
    declared = request.headers.get("content-length")
    if declared is None:
        return False
    size = ascii_number(declared, MAX_LENGTH_DIGITS)
    return size is None or size > limit


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to exceed ``limit`` bytes (by its declared
    length, before reading, or while it streams in: reading stops at the first chunk past it)."""
    if declared_too_large(request, limit):
        return None
    body = bytearray()
    async for chunk in request.stream():
        if len(body) + len(chunk) > limit:
            return None
        body += chunk
    return bytes(body)
