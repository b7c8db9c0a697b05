"""Every error Loyaloop raises, in one tree.

Callers catch the branch they can act on; nobody has to catch ``Exception``::

    LoyaloopError
    ├── ConfigurationError          settings, environment, plugins wired wrongly (start-up only)
    │   └── PluginError             a plugin broke the hook contract (duplicate channel, bad hook)
    ├── JourneyError                a journey or template a marketer wrote is wrong
    │   └── ValidationFailed        carries every Problem found, each with file:line:col and a hint
    ├── TemplateError               a template failed to render for one customer (bad data, not bad syntax)
    ├── InputError                  an event, profile or request from the outside is malformed
    │   └── UnsubscribeTokenError   a signed token was tampered with or is malformed
    ├── StateConflict               a compare-and-set on an enrollment lost the race (harmless, re-read)
    ├── ServiceUnavailable          a request cannot be served now (a shared resource is busy); carries retry_after
    │   └── NotReplicated           written on the master, not confirmed by enough replicas in time
    └── DeliveryError               a channel could not deliver a message
        ├── TransientError          try again later (429, 5xx, timeout); carries retry_after seconds
        └── PermanentError          never retry (bad address, unsubscribed); may ask to suppress the address

The messages follow one rule: say what was wrong (the bad value with ``!r``), what was expected,
and how to fix it.  Nothing here may carry an e-mail address, a phone number or a secret.
"""

from __future__ import annotations

from dataclasses import dataclass


class LoyaloopError(Exception):
    """The root: catching it catches everything Loyaloop raises on purpose."""


class ConfigurationError(LoyaloopError):
    """Settings or environment are wrong; raised at start-up so a worker never half-runs."""


class PluginError(ConfigurationError):
    """A plugin broke the contract in ``orchestrator/hookspecs.py``."""


@dataclass(frozen=True)
class Problem:
    """One thing wrong in a journey or template, located so an editor can jump to it."""

    path: str
    line: int
    column: int
    message: str
    hint: str = ""

    def __str__(self) -> str:
        text = f"{self.path}:{self.line}:{self.column}: {self.message}"
        return f"{text} (hint: {self.hint})" if self.hint else text


class JourneyError(LoyaloopError):
    """A journey or a template that a marketer wrote is wrong."""


class ValidationFailed(JourneyError):
    """Raised with every problem found, not only the first, so one run fixes them all."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(str(problem) for problem in self.problems))


class TemplateError(LoyaloopError):
    """A template could not be rendered for one customer (a missing value, a bad filter input).

    ``field`` names the missing value (``event.voucher_code``) and ``where`` the template file and
    line, when known: the worker logs those, never the message's values (personal data)."""

    def __init__(self, message: str, *, field: str | None = None, where: str | None = None) -> None:
        self.field = field
        self.where = where
        super().__init__(message)


class InputError(LoyaloopError):
    """Something from the outside (event, profile, request body) is malformed; it was not stored.

    ``index`` is the position of the input to blame when several came together (``track_many``)."""

    def __init__(self, message: str, *, field: str | None = None, index: int | None = None) -> None:
        self.field = field
        self.index = index
        super().__init__(message)


class UnsubscribeTokenError(InputError):
    """An unsubscribe token is malformed or its signature does not match."""


class StateConflict(LoyaloopError):
    """Another worker changed the enrollment first; the loser re-reads instead of overwriting."""


class ServiceUnavailable(LoyaloopError):
    """A request cannot be served right now (e.g. the HTTP front door's worker threads are all busy
    with a Redis that stopped answering); the client should come back after ``retry_after`` seconds."""

    def __init__(self, reason: str, *, retry_after: int = 1) -> None:
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(f"{reason} (retry after {retry_after}s)")


class NotReplicated(ServiceUnavailable):
    """An intake write reached its master, but fewer replicas than ``LOYALOOP_INTAKE_REPLICAS`` confirmed
    it within ``LOYALOOP_INTAKE_REPLICA_TIMEOUT_MS``: it stands unless that master fails before a
    replica catches up, so the caller is told "not confirmed" instead of "accepted" and resends with
    the same event ids (an event is handled once per id, however often it is queued).

    ``replies`` are the replies to the commands that were sent (the caller may still act on them,
    e.g. nudge a drain); ``event_ids`` the events concerned, once the intake knows them."""

    def __init__(
        self, wanted: int, acknowledged: int, timeout_ms: int, *, replies: tuple[object, ...] = (), retry_after: int = 1
    ) -> None:
        self.wanted = wanted
        self.acknowledged = acknowledged
        self.timeout_ms = timeout_ms
        self.replies = replies
        self.event_ids: tuple[str, ...] = ()
        #: Where it happened, said before the reason (``import stopped at line 12: ``).
        self.where = ""
        super().__init__(
            f"the write reached Redis but {acknowledged} of the {wanted} replica(s) asked for "
            f"(LOYALOOP_INTAKE_REPLICAS) confirmed it within {timeout_ms} ms; it may or may not have been kept: "
            "send it again with the same event id (events are handled once per id)",
            retry_after=retry_after,
        )

    def __str__(self) -> str:
        shown = f" (event id {self.event_ids[0]})" if len(self.event_ids) == 1 else ""
        return f"{self.where}{self.reason}{shown}"


class DeliveryError(LoyaloopError):
    """A channel could not deliver a message; the subclasses say whether to try again."""


class TransientError(DeliveryError):
    """The provider may accept the same message later; ``retry_after`` is in seconds if it said."""

    def __init__(self, reason: str, *, retry_after: float | None = None) -> None:
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(reason if retry_after is None else f"{reason} (retry after {retry_after:g}s)")


class PermanentError(DeliveryError):
    """The provider will never accept this message; ``suppress`` asks to stop using the address.

    ``withdraw_consent`` is set when the provider tells us the customer opted out (for example a
    Twilio 21610 after the customer replied STOP), so the profile's consent is withdrawn too.
    """

    def __init__(
        self,
        reason: str,
        *,
        suppress: bool = False,
        withdraw_consent: bool = False,
        remove_address: bool = False,
        code: str | None = None,
    ) -> None:
        self.reason = reason
        self.suppress = suppress
        self.withdraw_consent = withdraw_consent
        self.remove_address = remove_address
        self.code = code
        super().__init__(reason)
