"""GET/POST /u/{token}: a confirmation page that unsubscribes nobody, and RFC 8058 one-click POST."""

from __future__ import annotations

from orchestrator.gate import consent
from orchestrator.gate.unsubscribe import make_token
from tests.http.conftest import Served
from tests.http.helpers import SECRET_KEY


def token(customer_id: str = "c-1", channel: str = "email") -> str:
    return make_token(SECRET_KEY.encode(), customer_id, channel, "welcome")


def test_get_shows_a_confirmation_form_and_changes_nothing(served: Served) -> None:
    """Link scanners fetch every URL: GET must only show the page."""
    response = served.client.get(f"/u/{token()}")
    assert response.status_code == 200
    assert '<form method="post">' in response.text and "e-mail" in response.text
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert consent.read_consent(served.redis, "c-1") == {}


def test_one_click_post_unsubscribes(served: Served) -> None:
    """The mailbox provider's POST with List-Unsubscribe=One-Click withdraws consent at once (RFC 8058)."""
    response = served.client.post(
        f"/u/{token()}",
        content=b"List-Unsubscribe=One-Click",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert response.status_code == 200
    assert "You are unsubscribed" in response.text
    assert consent.read_consent(served.redis, "c-1") == {"email": False}
    assert consent.consent_history(served.redis, "c-1")[-1]["source"] == "unsubscribe:welcome"


def test_unsubscribing_twice_is_harmless(served: Served) -> None:
    """A second click shows the same confirmation."""
    link = f"/u/{token(channel='sms')}"
    assert served.client.post(link).status_code == 200
    assert served.client.post(link).status_code == 200
    assert consent.read_consent(served.redis, "c-1") == {"sms": False}


def test_tampered_or_foreign_tokens_are_refused(served: Served) -> None:
    """A token signed with another secret or altered shows an error page (400) and changes nothing."""
    foreign = make_token(b"another-secret-of-enough-length", "c-1", "email")
    payload, signature = token().split(".")
    altered = f"{token('c-2').split('.')[0]}.{signature}"
    for bad in (foreign, altered, "garbage", f"{payload}.", "a.b.c"):
        assert served.client.get(f"/u/{bad}").status_code == 400
        assert served.client.post(f"/u/{bad}").status_code == 400
    assert consent.read_consent(served.redis, "c-1") == {}
    assert consent.read_consent(served.redis, "c-2") == {}


def test_the_page_escapes_what_it_shows(served: Served) -> None:
    """A channel name from a (validly signed) token is HTML-escaped."""
    response = served.client.get(f"/u/{token(channel='<b>x</b>')}")
    assert "<b>x</b>" not in response.text and "&lt;b&gt;" in response.text
