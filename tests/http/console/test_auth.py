"""The console's own login: password hashes, the user list, signed sessions and login-form tokens."""

from __future__ import annotations

import base64
import hashlib
import time

import pytest
import redis

from orchestrator.errors import ConfigurationError
from orchestrator.http.console.auth import (
    Revocations,
    Session,
    Sessions,
    Signer,
    User,
    hash_password,
    parse_users,
    same_token,
    session_key,
    verify_password,
)

FAST = 2**12


def test_hash_verifies_only_its_password_and_is_salted() -> None:
    first, second = hash_password("a long passphrase", n=FAST), hash_password("a long passphrase", n=FAST)
    assert first != second  # a fresh salt each time
    assert verify_password("a long passphrase", first) and verify_password("a long passphrase", second)
    assert not verify_password("a long passphrasE", first)
    assert not verify_password("a long passphrase", "scrypt$16$8$1$!!$!!")
    assert not verify_password("a long passphrase", "md5$whatever")
    assert not verify_password("a long passphrase", f"scrypt${2**30}$8$1$AAAA$AAAA")  # refuses a cost bomb


def test_hash_is_rfc7914_scrypt() -> None:
    """The stored digest is plain scrypt of the password and salt (RFC 7914), so any scrypt
    implementation can check it."""
    stored = hash_password("correct horse battery", n=FAST)
    _, n, r, p, salt, digest = stored.split("$")

    def unb64(text: str) -> bytes:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))

    expected = hashlib.scrypt(b"correct horse battery", salt=unb64(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    assert unb64(digest) == expected


def test_short_passwords_are_refused() -> None:
    with pytest.raises(ConfigurationError, match="12 characters"):
        hash_password("short")


def test_user_list_parses_and_names_every_mistake() -> None:
    good = hash_password("a long passphrase", n=FAST)
    users = parse_users(f"ana:{good}:support, vic:{good}:viewer,")
    assert users["ana"].role == "support" and users["vic"].role == "viewer"
    with pytest.raises(ConfigurationError, match="name:hash:role"):
        parse_users("ana:support")
    with pytest.raises(ConfigurationError, match="role 'admin'"):
        parse_users(f"ana:{good}:admin")
    with pytest.raises(ConfigurationError, match="not a scrypt hash"):
        parse_users("ana:hunter2hunter2:viewer")
    with pytest.raises(ConfigurationError, match="listed twice"):
        parse_users(f"ana:{good}:viewer,ana:{good}:support")
    with pytest.raises(ConfigurationError) as caught:
        parse_users("ana:plain-password-here:viewer")
    assert "plain-password-here" not in str(caught.value)


def test_session_key_sources() -> None:
    assert session_key({"LOYALOOP_CONSOLE_SECRET": "x" * 32}) == b"x" * 32
    derived = session_key({"LOYALOOP_SECRET_KEY": "unsubscribe-secret"})
    assert derived != b"unsubscribe-secret" and len(derived) == 32
    assert session_key({}, fallback=b"k" * 32) == b"k" * 32
    with pytest.raises(ConfigurationError, match="32 characters"):
        session_key({"LOYALOOP_CONSOLE_SECRET": "short"})
    with pytest.raises(ConfigurationError, match="LOYALOOP_CONSOLE_SECRET"):
        session_key({})


def test_signed_values_resist_tampering_and_purpose_swaps() -> None:
    signer = Signer(b"k" * 32)
    token = signer.sign("session", "ana|viewer|99|x")
    assert signer.unsign("session", token) == "ana|viewer|99|x"
    assert signer.unsign("login", token) is None
    _body, mac = token.split(".")
    forged = Signer(b"k" * 32).sign("session", "ana|support|99|x").split(".")[0]
    assert signer.unsign("session", f"{forged}.{mac}") is None
    assert Signer(b"other" * 8).unsign("session", token) is None
    assert signer.unsign("session", "garbage") is None


def test_sessions_follow_the_current_user_list() -> None:
    users = {"ana": User("ana", hash_password("a long passphrase", n=FAST), "support")}
    sessions = Sessions(users, b"k" * 32)
    assert sessions.login("ana", "wrong password!") is None
    assert sessions.login("nobody", "a long passphrase") is None
    session = sessions.login("ana", "a long passphrase")
    assert session is not None and session.may_act
    cookie = sessions.cookie(session)
    assert sessions.read(cookie) == session
    demoted = Sessions({"ana": User("ana", users["ana"].password_hash, "viewer")}, b"k" * 32)
    assert demoted.read(cookie) is None  # the role changed: log in again
    assert Sessions({}, b"k" * 32).read(cookie) is None  # the user was removed
    expired = Session("ana", "support", int(time.time()) - 1, "t", "s")
    assert sessions.read(sessions.cookie(expired)) is None


def test_a_new_password_ends_the_users_older_sessions() -> None:
    """The cookie carries a keyed mark of the password hash it was issued under: a user whose
    password was changed in LOYALOOP_CONSOLE_USERS (a new hash) must log in again; the mark is
    not the hash."""
    old = User("ana", hash_password("a long passphrase", n=FAST), "support")
    sessions = Sessions({"ana": old}, b"k" * 32)
    session = sessions.login("ana", "a long passphrase")
    assert session is not None
    cookie = sessions.cookie(session)
    assert Sessions({"ana": old}, b"k" * 32).read(cookie) == session  # same list, another process
    renewed = Sessions({"ana": User("ana", hash_password("another passphrase", n=FAST), "support")}, b"k" * 32)
    assert renewed.read(cookie) is None
    value = Signer(b"k" * 32).unsign("session", cookie)
    assert value is not None and old.password_hash.split("$")[-1] not in value


def test_logging_out_revokes_the_session_on_the_server(redis_client: redis.Redis) -> None:
    """A revoked session's cookie is refused by every process sharing the Redis, until it would
    have expired anyway; the user's other sessions stay open; Redis holds a digest, not the id."""
    users = {"ana": User("ana", hash_password("a long passphrase", n=FAST), "support")}
    sessions = Sessions(users, b"k" * 32, revoked=Revocations(redis_client))
    other_process = Sessions(users, b"k" * 32, revoked=Revocations(redis_client))
    first, second = sessions.login("ana", "a long passphrase"), sessions.login("ana", "a long passphrase")
    assert first is not None and second is not None and first.id != second.id
    sessions.revoke(first)
    assert other_process.read(sessions.cookie(first)) is None
    assert other_process.read(sessions.cookie(second)) == second
    names = list(redis_client.scan_iter(match="lp:console:revoked:*"))
    assert len(names) == 1 and first.id not in names[0]
    assert 0 < redis_client.ttl(names[0]) <= sessions.lifetime


def test_a_cookie_without_a_session_id_is_refused() -> None:
    """Cookies of the earlier four-field format (no id, no password mark) cannot be revoked, so
    they are not accepted."""
    sessions = Sessions({"ana": User("ana", hash_password("a long passphrase", n=FAST), "support")}, b"k" * 32)
    old = Signer(b"k" * 32).sign("session", f"ana|support|{int(time.time()) + 60}|csrf")
    assert sessions.read(old) is None


def test_login_form_tokens_and_csrf_comparison() -> None:
    sessions = Sessions({}, b"k" * 32)
    cookie, token = sessions.login_token()
    assert sessions.check_login_token(cookie, token)
    assert not sessions.check_login_token(cookie, token + "x")
    assert not sessions.check_login_token(None, token)
    assert not sessions.check_login_token(cookie, "")
    session = Session("ana", "viewer", 0, "abc")
    assert same_token("abc", session) and not same_token("abd", session) and not same_token("", session)
