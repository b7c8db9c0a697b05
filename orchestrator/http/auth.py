"""Bearer API keys for the intake endpoints.

Keys come from ``LOYALOOP_API_KEYS`` as a comma-separated list of ``ID:SECRET`` (or bare
``SECRET``, whose id is then a short hash of it).  The id is what rate limits, metrics and logs use,
so a key never has to be written anywhere; the secret is compared in constant time against every
configured key so the response time says nothing about how close a guess was.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field

from orchestrator.errors import ConfigurationError

MIN_SECRET_LENGTH = 16
_ID = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")


@dataclass(frozen=True)
class ApiKey:
    """One API key: a public id and its secret (never printed, never logged)."""

    id: str
    secret: bytes = field(repr=False)


def key_id_for(secret: str) -> str:
    """The id of a key given without one: stable, short, and useless for guessing the secret."""
    return "key-" + hashlib.sha256(secret.encode()).hexdigest()[:10]


def parse_api_keys(value: str) -> tuple[ApiKey, ...]:
    """Parse ``LOYALOOP_API_KEYS``; refuse short secrets and duplicate ids at start-up."""
    keys: list[ApiKey] = []
    for position, item in enumerate(part.strip() for part in value.split(",")):
        if not item:
            continue
        key_id, sep, secret = item.partition(":")
        if not sep or not _ID.match(key_id):
            key_id, secret = key_id_for(item), item
        if len(secret) < MIN_SECRET_LENGTH:
            raise ConfigurationError(
                f"LOYALOOP_API_KEYS entry {position + 1} (id {key_id!r}) has a secret shorter than "
                f"{MIN_SECRET_LENGTH} characters; generate one with `python -c 'import secrets; "
                "print(secrets.token_urlsafe(32))'`"
            )
        if any(existing.id == key_id for existing in keys):
            raise ConfigurationError(f"LOYALOOP_API_KEYS names key id {key_id!r} twice; give each key its own id")
        keys.append(ApiKey(key_id, secret.encode()))
    return tuple(keys)


class KeyRing:
    """The configured keys; :meth:`authenticate` turns an ``Authorization`` header into a key id."""

    def __init__(self, keys: tuple[ApiKey, ...]) -> None:
        self._keys = keys

    def __bool__(self) -> bool:
        return bool(self._keys)

    def authenticate(self, authorization: str | None) -> str | None:
        """The id of the key presented as ``Bearer <secret>``, or None.

        Every key is compared (no early exit) with :func:`hmac.compare_digest`.
        """
        if not authorization:
            return None
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token:
            return None
        presented = token.strip().encode()
        found: str | None = None
        for key in self._keys:
            if hmac.compare_digest(presented, key.secret):
                found = key.id
        return found

    def id_in_bearer(self, authorization: str | None) -> bool:
        """True when the header reads ``Bearer ID:SECRET`` for a configured key, written as
        ``LOYALOOP_API_KEYS`` writes it: the caller sent the id along with the secret.  Checked only
        against the secret (constant time), so the answer reveals no key id to a guesser."""
        if not authorization:
            return False
        scheme, _, token = authorization.partition(" ")
        key_id, sep, secret = token.strip().partition(":")
        if scheme.lower() != "bearer" or not sep:
            return False
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(secret.encode(), key.secret) and hmac.compare_digest(
                key_id.encode(), key.id.encode()
            )
        return matched
