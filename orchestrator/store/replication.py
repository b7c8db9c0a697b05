"""Closing the replication window for a write that must not be lost: ``WAIT`` on its own connection.

Redis replicates asynchronously: a master acknowledges a write before any replica has it, and a
failover promotes a replica with whatever it had (docs/reliability.md §6).  ``WAIT n timeout`` makes
the master hold its reply until ``n`` replicas have every write *of that connection* so far, or the
timeout has passed, and answers how many did.  So the packer (:mod:`orchestrator.store.batch`)
appends the ``WAIT`` to the very pipeline that made the writes -- on one Redis at its end, on a
cluster at the end of each node's share -- and it costs no round trip of its own, only the
replica's.  Fewer confirmations than asked raise :class:`~orchestrator.errors.NotReplicated`: the
write is on the master and may or may not survive it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.errors import NotReplicated
from orchestrator.settings import Settings


@dataclass(frozen=True)
class ReplicaWait:
    """``WAIT replicas timeout_ms`` after a pipeline's writes (``LOYALOOP_INTAKE_REPLICAS``)."""

    replicas: int
    timeout_ms: int

    @classmethod
    def from_settings(cls, settings: Settings) -> ReplicaWait | None:
        """The intake's wait, or None when ``LOYALOOP_INTAKE_REPLICAS`` is 0 (off)."""
        if settings.intake_replicas < 1:
            return None
        return cls(settings.intake_replicas, settings.intake_replica_timeout_ms)

    def command(self) -> tuple[Any, ...]:
        return ("WAIT", self.replicas, self.timeout_ms)

    def check(self, confirmed: list[Any], replies: list[Any]) -> None:
        """Raise when a ``WAIT`` reply (one per connection written to) is an error, or fewer
        replicas than asked confirmed; ``replies`` are the pipeline's own, carried by the error."""
        for reply in confirmed:
            if isinstance(reply, Exception):
                raise reply
        fewest = min((int(reply) for reply in confirmed), default=self.replicas)
        if fewest < self.replicas:
            raise NotReplicated(self.replicas, fewest, self.timeout_ms, replies=tuple(replies))
