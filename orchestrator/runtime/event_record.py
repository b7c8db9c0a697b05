"""What the runtime keeps of an event it applied (or refused) in the customer's event log
(:mod:`orchestrator.store.event_log`), for the timeline of ``loyaloop explain`` and the console.

Kept small and bounded: the name and the id (cut to :data:`~orchestrator.store.event_log.MAX_TEXT`),
the moment (the event's timestamp, or the moment it was applied when the producer's clock is
ahead, so an event never follows the decisions it caused), and at most
:data:`~orchestrator.store.event_log.MAX_PROPERTIES` scalar properties (the first by name).
Properties are the producer's and may carry personal data: a value that looks like an e-mail
address or a phone number is blanked (:func:`orchestrator.runtime.failures.redact`) before it is
stored, nested values are not kept, and an entry is never logged.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from orchestrator.runtime.failures import redact
from orchestrator.store.event_log import MAX_PROPERTIES, MAX_TEXT, entry_text

#: How an event is marked: listened to by a journey (no mark), by none, or refused as bad input.
UNKNOWN = "unknown"
REFUSED = "refused"


def event_entry(
    name: str,
    event_id: str,
    timestamp: datetime | None,
    properties: Mapping[str, Any],
    now: datetime,
    mark: str = "",
    reason: str = "",
) -> str:
    """The stored text of one event."""
    at = min(timestamp, now) if timestamp is not None and timestamp.tzinfo is not None else now
    return entry_text(
        {
            "t": round(at.timestamp() * 1000),
            "n": str(name)[:MAX_TEXT],
            "i": str(event_id)[:MAX_TEXT],
            "k": mark,
            "p": kept_properties(properties),
            "r": reason[:MAX_TEXT],
        }
    )


def kept_properties(properties: Mapping[str, Any]) -> dict[str, str | int | float | bool]:
    """The first :data:`MAX_PROPERTIES` scalar properties by name, texts cut and redacted."""
    kept: dict[str, str | int | float | bool] = {}
    for key in sorted(properties, key=str)[: MAX_PROPERTIES * 4]:
        value = properties[key]
        if isinstance(value, bool | int | float):
            kept[redact(str(key))[:MAX_TEXT]] = value if isinstance(value, bool) or abs(value) < 1e7 else "<number>"
        elif isinstance(value, str):
            kept[redact(str(key))[:MAX_TEXT]] = redact(value[: MAX_TEXT * 2])[:MAX_TEXT]
        if len(kept) == MAX_PROPERTIES:
            break
    return kept
