"""The request body limit (the per-key rate limit is :mod:`orchestrator.store.ratelimit`, shared
with the channels' send rates).

The body limit reads the stream itself rather than trusting ``Content-Length``: a chunked upload
has none, and a liar's is wrong.
"""

from __future__ import annotations

from starlette.requests import Request


async def read_body(request: Request, limit: int) -> bytes | None:
    """The request body, or None as soon as it is known to exceed ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)
