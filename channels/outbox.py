"""The outbox: every message as one JSON line in a local file, the channel used when a provider has no credentials.

``loyaloop demo`` and development run on it, so it must behave like a provider under load:
many threads and worker processes append to the same file at once.  Each line is written with a
single ``write()`` on an ``O_APPEND`` descriptor while holding an exclusive ``flock``, so lines never
interleave.  Under that same lock the writer first reads whatever other processes appended since
it last looked, so an ``idempotency_key`` already in the file is never written again, by this
process or another one (a repeat returns a receipt marked ``duplicate``).  This is in addition to
the runtime's own at-most-once record in Redis.
"""

from __future__ import annotations

import fcntl
import json
import os
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from orchestrator.hookspecs import hookimpl
from orchestrator.message import Channel, Message, Receipt
from orchestrator.settings import Settings

PROVIDER = "outbox"
#: The fields of one outbox line, in order (tests and ``loyaloop demo`` read them back).
FIELDS = (
    "idempotency_key",
    "channel",
    "customer_id",
    "journey_id",
    "step_id",
    "run_id",
    "category",
    "locale",
    "to",
    "subject",
    "body",
    "html",
    "title",
    "data",
    "headers",
    "metadata",
    "sent_at",
)


def record(message: Message, sent_at: datetime) -> dict[str, Any]:
    """The JSON object written for ``message``."""
    values: dict[str, Any] = {name: getattr(message, name) for name in FIELDS if name != "sent_at"}
    values["data"] = dict(message.data)
    values["headers"] = dict(message.headers)
    values["metadata"] = dict(message.metadata)
    values["sent_at"] = sent_at.isoformat()
    return values


class OutboxWriter:
    """Appends lines to one file; one instance per file per process (see :meth:`for_path`)."""

    _instances: dict[Path, OutboxWriter] = {}
    _instances_lock = threading.Lock()

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._identity: tuple[int, int] | None = None
        self._offset = 0
        self._seen: set[str] = set()

    @classmethod
    def for_path(cls, path: Path) -> OutboxWriter:
        """The shared writer for ``path``, so every channel writing there shares one duplicate check."""
        resolved = Path(os.path.abspath(path))
        with cls._instances_lock:
            writer = cls._instances.get(resolved)
            if writer is None:
                writer = cls._instances[resolved] = cls(resolved)
            return writer

    def _catch_up(self, fd: int) -> None:
        """Read the keys of lines appended since we last looked (by any process).

        The file is opened per append (no descriptor outlives a call, so forks and deleted files
        need no special care); a different inode means a new file, so what we knew is dropped.
        """
        status = os.fstat(fd)
        identity = (status.st_dev, status.st_ino)
        if identity != self._identity or status.st_size < self._offset:
            self._identity, self._offset, self._seen = identity, 0, set()
        if status.st_size == self._offset:
            return
        chunk = os.pread(fd, status.st_size - self._offset, self._offset)
        complete = chunk[: chunk.rfind(b"\n") + 1]
        for line in complete.splitlines():
            try:
                key = json.loads(line).get("idempotency_key")
            except (ValueError, AttributeError):
                continue
            if isinstance(key, str):
                self._seen.add(key)
        self._offset += len(complete)

    def append(self, message: Message, now: datetime | None = None) -> tuple[bool, datetime]:
        """Write ``message`` unless its key is already in the file; returns (written, time).
        ``now`` stamps ``sent_at`` (the wall clock when not given)."""
        now = now if now is not None else datetime.now(UTC)
        line = (json.dumps(record(message, now), ensure_ascii=False) + "\n").encode()
        with self._lock:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._catch_up(fd)
                if message.idempotency_key in self._seen:
                    return False, now
                written = os.write(fd, line)
                if written != len(line):  # pragma: no cover - a full disk; never leave half a line unnoticed
                    raise OSError(f"outbox {self.path}: short write ({written} of {len(line)} bytes)")
                self._offset += written
                self._seen.add(message.idempotency_key)
                return True, now
            finally:
                os.close(fd)  # also releases the flock


class OutboxChannel:
    """A channel that writes to the outbox file under any channel name (``email`` without SendGrid…)."""

    def __init__(
        self,
        name: str,
        path: Path,
        *,
        address_field: str = "email",
        consent_key: str | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.name = name
        self.address_field = address_field
        self.consent_key = consent_key or name
        self.path = path
        self._writer = OutboxWriter.for_path(path)
        self._clock = clock

    def use_clock(self, clock: Callable[[], datetime]) -> None:
        """Stamp ``sent_at`` from ``clock`` instead of the wall clock: the runtime's own clock, so
        ``loyaloop demo`` and ``simulate`` (a simulated clock) show when in the story a message went
        (see :func:`orchestrator.plugins.use_clock`)."""
        self._clock = clock

    def send(self, message: Message) -> Receipt:
        written, when = self._writer.append(message, self._clock() if self._clock is not None else None)
        details: dict[str, Any] = {"path": str(self.path), "sent_at": when.isoformat()}
        if not written:
            details["duplicate"] = True
        return Receipt(
            channel=self.name, provider=PROVIDER, provider_message_id=message.idempotency_key, details=details
        )


def fallback(name: str, settings: Settings, *, address_field: str, consent_key: str) -> Channel:
    """The outbox stand-in a provider plugin registers under its own name when it has no credentials."""
    return OutboxChannel(name, settings.outbox_path, address_field=address_field, consent_key=consent_key)


@hookimpl
def loyaloop_register_channels(register: Callable[[Channel], None], settings: Settings) -> None:
    """The ``outbox`` channel itself, usable by name in a journey (``send: outbox``) for dry runs."""
    register(OutboxChannel("outbox", settings.outbox_path, address_field="email", consent_key="email"))
