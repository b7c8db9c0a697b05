"""Who may use the console: its own user list, scrypt password hashes, signed session cookies, CSRF.

The console does not trust ``/v1`` API keys (they are for machines posting events, and a leaked
shop key must not show anyone's consent), nor a header set by a proxy: users come from
``LOYALOOP_CONSOLE_USERS``, a comma-separated list of ``name:hash:role``, where ``hash`` is what
``loyaloop console hash-password`` prints (``scrypt$n$r$p$salt$digest``, RFC 7914 through Python's
``hashlib.scrypt``) and ``role`` is ``viewer`` (reads every page) or ``support`` (also changes a
customer's consent and removes customers from journeys).  A list in the environment keeps the
console usable on a laptop after ``loyaloop demo`` and in a container alike, with no proxy to
configure, and the hashes may sit in a secret store because they are not the passwords.

A session is a cookie holding ``name|role|expiry|csrf|id|password mark`` signed with HMAC-SHA256
under a key of the console's own (:func:`session_key`).  A signed cookie alone cannot be taken
back, so every request also checks, on the server: the user and role against the current user list
(removing a user or lowering a role takes effect at once); the password mark (a keyed digest of
the user's password hash: changing a password in ``LOYALOOP_CONSOLE_USERS`` ends that user's older
sessions); the expiry; and the session id against the revoked sessions in Redis
(:class:`Revocations`: logging out ends the session there and then, on every server process).
The CSRF token of a form is the session's own random token (the synchronizer pattern); the login
form, which has no session yet, carries the token of a short-lived signed pre-login cookie.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import os
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, Protocol

import redis

from orchestrator.errors import ConfigurationError
from orchestrator.store import keys

Role = Literal["viewer", "support"]
ROLES: tuple[Role, ...] = ("viewer", "support")
USERS_VARIABLE = "LOYALOOP_CONSOLE_USERS"
SECRET_VARIABLE = "LOYALOOP_CONSOLE_SECRET"
#: scrypt cost: n=2**15, r=8, p=1 takes ~50 ms and 32 MiB per login on these machines (OWASP's
#: minimum is n=2**17 with r=8, p=1 *or* an equivalent trade; 2**15 keeps a login under 0.1 s).
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**15, 8, 1
MAX_SCRYPT_N = 2**20
SESSION_SECONDS = 8 * 3600
LOGIN_FORM_SECONDS = 1800


@dataclass(frozen=True)
class User:
    name: str
    password_hash: str
    role: Role


@dataclass(frozen=True)
class Session:
    """A logged-in user: ``csrf`` is the token every form of this session must send back."""

    user: str
    role: Role
    expires: int
    csrf: str
    #: Names the session for revocation (:class:`Revocations`); random, never shown.
    id: str = ""

    @property
    def may_act(self) -> bool:
        """Whether the user may change a customer's consent or runs (``support``)."""
        return self.role == "support"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> str:
    """The ``scrypt$n$r$p$salt$digest`` form stored in ``LOYALOOP_CONSOLE_USERS`` (a fresh salt each time)."""
    if len(password) < 12:
        raise ConfigurationError("a console password needs at least 12 characters (a passphrase is best)")
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """Whether ``password`` matches ``stored``, compared in constant time; a malformed hash never matches."""
    parts = stored.split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        return False
    try:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, expected = _unb64(parts[4]), _unb64(parts[5])
    except (ValueError, binascii.Error):
        return False
    if not (1 < n <= MAX_SCRYPT_N and 0 < r <= 32 and 0 < p <= 16 and expected):
        return False
    digest = hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * 1024 * 1024, dklen=len(expected)
    )
    return hmac.compare_digest(digest, expected)


def parse_users(text: str) -> dict[str, User]:
    """``name:hash:role,…`` as users by name; every mistake is named (never the hash itself)."""
    users: dict[str, User] = {}
    for index, item in enumerate(part.strip() for part in text.split(",")):
        if not item:
            continue
        fields = item.split(":")
        if len(fields) != 3:
            raise ConfigurationError(
                f"{USERS_VARIABLE} entry {index + 1} must be name:hash:role "
                "(hash from `loyaloop console hash-password`, role viewer or support)"
            )
        name, password_hash, role = (field.strip() for field in fields)
        if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
            raise ConfigurationError(f"{USERS_VARIABLE} entry {index + 1}: user name {name!r} must be letters/digits")
        if not password_hash.startswith("scrypt$") or password_hash.count("$") != 5:
            raise ConfigurationError(
                f"{USERS_VARIABLE}: the hash of user {name!r} is not a scrypt hash; "
                "make one with `loyaloop console hash-password`"
            )
        if role not in ROLES:
            raise ConfigurationError(f"{USERS_VARIABLE}: user {name!r} has role {role!r}; expected viewer or support")
        if name in users:
            raise ConfigurationError(f"{USERS_VARIABLE}: user {name!r} is listed twice")
        users[name] = User(name, password_hash, "support" if role == "support" else "viewer")
    return users


def session_key(environ: Mapping[str, str], fallback: bytes | None = None) -> bytes:
    """The key sessions are signed with: ``LOYALOOP_CONSOLE_SECRET``, else one derived from
    ``LOYALOOP_SECRET_KEY`` (a different purpose, so a different key), else ``fallback`` (the local
    ``loyaloop console``: a random key of the process, so sessions end with it)."""
    own = environ.get(SECRET_VARIABLE, "")
    if own:
        if len(own) < 32:
            raise ConfigurationError(f"{SECRET_VARIABLE} must be at least 32 characters (e.g. `openssl rand -hex 32`)")
        return own.encode("utf-8")
    shared = environ.get("LOYALOOP_SECRET_KEY", "")
    if shared:
        return hmac.new(shared.encode("utf-8"), b"loyaloop console sessions", hashlib.sha256).digest()
    if fallback is not None:
        return fallback
    raise ConfigurationError(
        f"the console signs its sessions with {SECRET_VARIABLE} (or LOYALOOP_SECRET_KEY); set one of them"
    )


class Signer:
    """HMAC-SHA256 over ``purpose|value``: session and login-form cookies cannot be swapped."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def sign(self, purpose: str, value: str) -> str:
        mac = hmac.new(self._key, f"{purpose}|{value}".encode(), hashlib.sha256).digest()
        return f"{_b64(value.encode('utf-8'))}.{_b64(mac)}"

    def unsign(self, purpose: str, token: str) -> str | None:
        body, dot, mac = token.partition(".")
        if not dot:
            return None
        try:
            value = _unb64(body).decode("utf-8")
            given = _unb64(mac)
        except (ValueError, binascii.Error):
            return None
        expected = hmac.new(self._key, f"{purpose}|{value}".encode(), hashlib.sha256).digest()
        return value if hmac.compare_digest(given, expected) else None


class Revoked(Protocol):
    """The sessions ended before their expiry (by logging out)."""

    def revoke(self, session_id: str, until: int) -> None:
        """End ``session_id`` now; it would have expired at epoch ``until`` anyway."""

    def is_revoked(self, session_id: str) -> bool: ...


class Revocations:
    """Revoked session ids in Redis, shared by every server process: one key per revoked session
    (named by a digest of its id), expiring when the session would have; one GET per request."""

    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    @staticmethod
    def _key(session_id: str) -> str:
        return keys.console_revoked(hashlib.sha256(session_id.encode()).hexdigest()[:32])

    def revoke(self, session_id: str, until: int) -> None:
        self.client.set(self._key(session_id), "1", exat=max(until, int(time.time()) + 1))

    def is_revoked(self, session_id: str) -> bool:
        return bool(self.client.exists(self._key(session_id)))


class Sessions:
    """Issues and reads session and login-form cookies against the current user list and, when
    given, the revoked sessions (``revoked``; the console always gives its Redis one)."""

    def __init__(
        self,
        users: Mapping[str, User],
        key: bytes,
        *,
        lifetime: int = SESSION_SECONDS,
        revoked: Revoked | None = None,
    ) -> None:
        self.users = dict(users)
        self._signer = Signer(key)
        self._key = key
        self.lifetime = lifetime
        self.revoked = revoked
        # Verified against when the name is unknown, so a wrong name costs as long as a wrong password.
        self._decoy = hash_password(secrets.token_urlsafe(16))

    def login(self, name: str, password: str) -> Session | None:
        user = self.users.get(name)
        ok = verify_password(password, user.password_hash if user else self._decoy)
        if user is None or not ok:
            return None
        expires = int(time.time()) + self.lifetime
        return Session(user.name, user.role, expires, secrets.token_urlsafe(24), secrets.token_urlsafe(18))

    def password_mark(self, user: User) -> str:
        """A keyed digest of the user's password hash: a new password (a new hash) changes it."""
        return _b64(hmac.new(self._key, f"password|{user.password_hash}".encode(), hashlib.sha256).digest()[:12])

    def cookie(self, session: Session) -> str:
        user = self.users[session.user]
        fields = (session.user, session.role, str(session.expires), session.csrf, session.id, self.password_mark(user))
        return self._signer.sign("session", "|".join(fields))

    def read(self, cookie: str | None) -> Session | None:
        """The session a cookie proves, or None: unsigned, expired, user gone, role or password
        changed since it was issued, or revoked (logged out)."""
        if not cookie:
            return None
        value = self._signer.unsign("session", cookie)
        if value is None:
            return None
        fields = value.split("|")
        if len(fields) != 6 or not fields[2].isdigit() or not fields[4]:
            return None
        name, role, expires, csrf, session_id, mark = fields[0], fields[1], int(fields[2]), *fields[3:]
        user = self.users.get(name)
        if user is None or user.role != role or expires < time.time():
            return None
        if not hmac.compare_digest(mark.encode(), self.password_mark(user).encode()):
            return None
        if self.revoked is not None and self.revoked.is_revoked(session_id):
            return None
        return Session(name, user.role, expires, csrf, session_id)

    def revoke(self, session: Session) -> None:
        """End ``session`` on the server (logging out): its cookie is refused from now on."""
        if self.revoked is not None:
            self.revoked.revoke(session.id, session.expires)

    def login_token(self) -> tuple[str, str]:
        """A fresh (cookie, form token) pair for the login form."""
        token = secrets.token_urlsafe(24)
        return self._signer.sign("login", f"{int(time.time()) + LOGIN_FORM_SECONDS}|{token}"), token

    def check_login_token(self, cookie: str | None, token: str) -> bool:
        value = self._signer.unsign("login", cookie or "")
        if value is None:
            return False
        expires, _, expected = value.partition("|")
        return (
            expires.isdigit() and int(expires) >= time.time() and bool(token) and hmac.compare_digest(token, expected)
        )


def same_token(given: str, session: Session) -> bool:
    """Whether a form's CSRF token is this session's (constant time)."""
    return bool(given) and hmac.compare_digest(given.encode(), session.csrf.encode())


def random_key() -> bytes:
    return os.urandom(32)
