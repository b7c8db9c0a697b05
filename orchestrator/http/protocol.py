"""What the HTTP app needs from the runtime, as a Protocol so any intake (embedded, Dramatiq) fits."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Protocol


class Intake(Protocol):
    """The runtime's front door.

    ``track`` returns the event id once the event is durably enqueued (that is when the HTTP app
    answers 202) and raises :class:`~orchestrator.errors.InputError` with ``field`` for bad input.
    ``track_many`` queues several events (each ``track``'s arguments by name) together, or none
    when one is refused (the error's ``index`` says which); either may raise
    :class:`~orchestrator.errors.NotReplicated` (the events were written, too few replicas
    confirmed them in time: the app answers 503 with their ids).
    ``consent_channels`` are the channels consent may be given for (None: any name), so the app
    can refuse a whole batch before its first item is handed on.
    """

    consent_channels: frozenset[str] | None

    def track(
        self,
        customer_id: str,
        event: str,
        properties: dict[str, Any] | None = None,
        *,
        event_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> str: ...

    def track_many(self, events: Sequence[Mapping[str, Any]]) -> list[str]: ...

    def identify(self, customer_id: str, attributes: dict[str, Any]) -> object: ...


class AsyncIntake(Protocol):
    """:class:`Intake` for the event loop: the same calls, awaited, never blocking the loop.

    The app builds one around the :class:`Intake` it is given
    (:func:`orchestrator.http.queue_intake.async_intake`).
    """

    async def track(
        self,
        customer_id: str,
        event: str,
        properties: dict[str, Any] | None = None,
        *,
        event_id: str | None = None,
        timestamp: datetime | None = None,
    ) -> str: ...

    async def identify(self, customer_id: str, attributes: dict[str, Any]) -> object: ...
