"""The console over plain HTTP: who may open what, CSRF, the security headers, the support actions."""

from __future__ import annotations

import logging
import re
import time
from datetime import UTC, datetime

import httpx
import pytest

from orchestrator.engine.bucketing import is_global_control
from orchestrator.gate.consent import consent_history, read_consent, set_consent
from orchestrator.http.console import create_console
from orchestrator.http.console.web import COOKIE
from orchestrator.language.profile import Profile
from orchestrator.store import Store
from tests.http.console.conftest import API_SECRET, PASSWORDS, Site, fast_users, login
from tests.http.helpers import serve

#: Every console route with a sample path (GET pages, then the POST actions).
PAGES = [
    "/console/",
    "/console/journeys/welcome",
    "/console/journeys/welcome/preview/welcome_email/email/en",
    "/console/customers",
    "/console/customers/cust-0001",
    "/console/calendar",
]
ACTIONS = [
    "/console/logout",
    "/console/customers/cust-0001/consent",
    "/console/customers/cust-0001/runs/welcome-0000000000000000/end",
]


def customer_with_email_consent(site: Site) -> str:
    """A seeded customer whose e-mail consent is given."""
    store = Store(site.redis)
    for batch in store.scan_customers():
        for customer_id in sorted(batch):
            if read_consent(site.redis, customer_id).get("email"):
                return customer_id
    raise AssertionError("the seeded store has no customer with e-mail consent")


def test_every_page_refuses_a_request_without_a_session(site: Site) -> None:
    """GET pages send the browser to the login page and show nothing; POST actions answer 403."""
    with site.client() as http:
        for path in PAGES:
            answer = http.get(path)
            assert answer.status_code == 303, path
            assert answer.headers["location"].endswith("/console/login"), path
            assert "cust-0001" not in answer.text
        for path in ACTIONS:
            answer = http.post(path, data={"csrf": "x", "channel": "email", "granted": "0"})
            assert answer.status_code == 403, path


def test_an_api_key_does_not_open_the_console(site: Site) -> None:
    """The /v1 bearer key is for machines posting events; the console ignores it."""
    with site.client() as http:
        answer = http.get("/console/customers/cust-0001", headers={"Authorization": f"Bearer {API_SECRET}"})
        assert answer.status_code == 303
        forged = http.get("/console/", headers={"Cookie": f"{COOKIE}=YW5hfHN1cHBvcnR8OTk5OTk5OTk5OXx4.AAAA"})
        assert forged.status_code == 303


def test_security_headers_on_pages_and_previews(site: Site) -> None:
    with site.client() as http:
        login(http, "vic")
        page = http.get("/console/journeys/welcome")
        assert page.status_code == 200
        csp = page.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
        assert "unsafe-inline" not in csp
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["cache-control"] == "no-store"
        assert "<script>" not in page.text and " on" + "click=" not in page.text  # no inline script
        assert re.search(r"<iframe sandbox ", page.text)
        preview = http.get("/console/journeys/welcome/preview/welcome_email/email/nl")
        assert preview.status_code == 200
        assert "sandbox" in preview.headers["content-security-policy"]
        assert "default-src 'none'" in preview.headers["content-security-policy"]


def test_login_sets_a_hardened_cookie_and_refuses_wrong_passwords(site: Site) -> None:
    with site.client() as http:
        form = http.get("/console/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        wrong = http.post("/console/login", data={"user": "ana", "password": "not it at all", "csrf": token.group(1)})
        assert wrong.status_code == 401
        assert COOKIE not in wrong.cookies
        no_token = http.post("/console/login", data={"user": "ana", "password": "ana's long passphrase"})
        assert no_token.status_code == 403
        form = http.get("/console/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        ok = http.post(
            "/console/login", data={"user": "ana", "password": "ana's long passphrase", "csrf": token.group(1)}
        )
        assert ok.status_code == 303
        cookie = ok.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Max-Age=" in cookie


def test_consent_change_needs_the_session_csrf_token(site: Site) -> None:
    """Without (or with another session's) token nothing changes; with it, the one consent writer
    records the change with the console user as its source."""
    customer = customer_with_email_consent(site)
    with site.client() as http, site.client() as other:
        token = login(http, "ana")
        foreign = login(other, "ana")
        assert token != foreign
        for data in ({"channel": "email", "granted": "0"}, {"channel": "email", "granted": "0", "csrf": foreign}):
            refused = http.post(f"/console/customers/{customer}/consent", data=data)
            assert refused.status_code == 403
            assert read_consent(site.redis, customer)["email"] is True
        done = http.post(
            f"/console/customers/{customer}/consent", data={"channel": "email", "granted": "0", "csrf": token}
        )
        assert done.status_code == 303
        assert read_consent(site.redis, customer)["email"] is False
        assert consent_history(site.redis, customer)[-1]["source"] == "console:ana"
        again = http.post(
            f"/console/customers/{customer}/consent", data={"channel": "email", "granted": "1", "csrf": token}
        )
        assert again.status_code == 303
        assert read_consent(site.redis, customer)["email"] is True


def test_a_viewer_may_look_but_not_act(site: Site) -> None:
    customer = customer_with_email_consent(site)
    with site.client() as http:
        token = login(http, "vic")
        page = http.get(f"/console/customers/{customer}")
        assert page.status_code == 200
        assert "Withdraw" not in page.text
        answer = http.post(
            f"/console/customers/{customer}/consent", data={"channel": "email", "granted": "0", "csrf": token}
        )
        assert answer.status_code == 403
        assert read_consent(site.redis, customer)["email"] is True


def test_customer_page_masks_contact_points(site: Site) -> None:
    store = Store(site.redis)
    profile = store.get_profile("cust-0001")
    assert profile is not None and profile.email
    with site.client() as http:
        login(http, "vic")
        page = http.get("/console/customers/cust-0001")
        assert page.status_code == 200
        assert profile.email not in page.text
        assert "c•••@•••.com" in page.text
        if profile.phone:
            assert profile.phone not in page.text


def test_support_removes_a_customer_from_a_journey_and_it_is_logged(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    store = Store(site.redis)
    live = None
    for batch in store.scan_customers():
        for customer_id in sorted(batch):
            runs = store.live_runs(customer_id)
            if runs:
                live = (customer_id, *sorted(runs.items())[0])
                break
        if live:
            break
    assert live is not None, "the seeded store has no live run"
    customer_id, run_id, journey_id = live
    profile = store.get_profile(customer_id)
    before = store.stats(journey_id).get("_journey:exited", 0)
    with site.client() as http, caplog.at_level(logging.INFO, logger="loyaloop.console.audit"):
        token = login(http, "ana")
        page = http.get(f"/console/customers/{customer_id}")
        assert f'data-run="{run_id}"' in page.text
        answer = http.post(f"/console/customers/{customer_id}/runs/{run_id}/end", data={"csrf": token, "run": run_id})
        assert answer.status_code == 303
    assert run_id not in store.live_runs(customer_id)
    assert store.stats(journey_id).get("_journey:exited", 0) == before + 1
    lines = [record.getMessage() for record in caplog.records if record.name == "loyaloop.console.audit"]
    assert any("user=ana action=journey.remove" in line and f"run={run_id}" in line for line in lines)
    assert profile is not None and profile.email
    assert all(profile.email not in line for line in lines)


def test_unknown_customer_and_journey_are_404(site: Site) -> None:
    with site.client() as http:
        login(http, "vic")
        assert http.get("/console/customers/nobody-here").status_code == 404
        assert http.get("/console/journeys/nope").status_code == 404
        assert http.get("/console/journeys/welcome/preview/nope/email/en").status_code == 404


def test_secure_cookie_behind_https(site: Site) -> None:
    """A request that arrived over HTTPS (``X-Forwarded-Proto`` from the trusted local proxy) gets
    ``Secure`` cookies; one over plain HTTP does not (the browser would drop them)."""
    with site.client() as http:
        proxied = http.get("/console/login", headers={"X-Forwarded-Proto": "https"})
        assert proxied.status_code == 200
        assert "Secure" in proxied.headers["set-cookie"]
        plain = http.get("/console/login")
        assert "Secure" not in plain.headers["set-cookie"]


def test_failed_log_ins_are_limited_per_address(site: Site) -> None:
    """After the address's budget of failures (10 a minute) even the right password waits (429)."""
    site.redis.delete(*site.redis.keys("lp:http:authfail:console:*") or ["-"])
    with site.client() as http:
        statuses = []
        for _ in range(11):
            form = http.get("/console/login")
            token = re.search(r'name="csrf" value="([^"]+)"', form.text)
            assert token is not None
            answer = http.post(
                "/console/login", data={"user": "ana", "password": "guess guess guess", "csrf": token.group(1)}
            )
            statuses.append(answer.status_code)
        assert statuses[:10] == [401] * 10 and statuses[10] == 429
        form = http.get("/console/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        right = http.post(
            "/console/login", data={"user": "ana", "password": "ana's long passphrase", "csrf": token.group(1)}
        )
        assert right.status_code == 429 and int(right.headers["retry-after"]) >= 1
    site.redis.delete(*site.redis.keys("lp:http:authfail:console:*") or ["-"])


def test_the_access_log_names_routes_not_customers(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    with site.client() as http, caplog.at_level(logging.INFO, logger="loyaloop.http.access"):
        login(http, "vic")
        assert http.get("/console/customers/cust-0001").status_code == 200
    lines = [record.getMessage() for record in caplog.records if record.name == "loyaloop.http.access"]
    assert lines, "no access log line"
    assert not any("cust-0001" in line or "passphrase" in line for line in lines)


def calendar_cells(page: str, marker: str) -> dict[tuple[str, str], int]:
    shown: dict[tuple[str, str], int] = {}
    for day, row in re.findall(r'<tr data-day="([0-9-]+)">(.*?)</tr>', page, re.S):
        for name, count in re.findall(rf'{marker}="(\w+)">([\d,]+)<', row):
            if count != "0":
                shown[day, name] = int(count.replace(",", ""))
    return shown


def test_calendar_shows_the_recorded_sends_and_gate_outcomes_per_day(site: Site) -> None:
    """With the records' reader, each cell equals the records' ``sent:<channel>``, ``capped`` and
    ``deferred`` counts of that day, over every journey, version and step.  The calendar shows
    messages (what the fatigue policy is about): a call to the shop's ledger (``sent:action``, the
    referral journeys' credits) is none."""
    sends: dict[tuple[str, str], int] = {}
    gate: dict[tuple[str, str], int] = {}
    for version in Store(site.redis).version_figures():
        for days in version.steps.values():
            for day, outcomes in days.items():
                for outcome, count in outcomes.items():
                    if outcome.startswith("sent:") and outcome != "sent:action":
                        sends[day, outcome[5:]] = sends.get((day, outcome[5:]), 0) + count
                    elif outcome in ("capped", "deferred"):
                        gate[day, outcome] = gate.get((day, outcome), 0) + count
    assert sends and gate, "the seeded store recorded no sends or gate outcomes"
    with site.client() as http:
        login(http, "vic")
        page = http.get("/console/calendar").text
    assert calendar_cells(page, "data-channel") == sends
    assert calendar_cells(page, "data-gate") == gate


def test_without_records_the_calendar_counts_the_send_logs(site: Site) -> None:
    """Without the records' reader, each cell equals the entries of that UTC day and channel in all
    customers' frequency-cap logs."""
    expected: dict[tuple[str, str], int] = {}
    for key in site.redis.scan_iter(match="lp:c:*:sends"):
        for member, score in site.redis.zrange(key, 0, -1, withscores=True):
            day = datetime.fromtimestamp(score / 1000, UTC).date().isoformat()
            channel = member.split("\x1f")[1]
            expected[day, channel] = expected.get((day, channel), 0) + 1
    assert expected, "the seeded store has no sends"
    app = create_console(site.settings, site.redis, site.journeys, fast_users(), b"n" * 32, clock=lambda: site.now)
    with serve(app) as base, httpx.Client(base_url=base) as http:
        form = http.get("/login")
        token = re.search(r'name="csrf" value="([^"]+)"', form.text)
        assert token is not None
        http.post("/login", data={"user": "vic", "password": PASSWORDS["vic"], "csrf": token.group(1)})
        page = http.get("/calendar").text
        # The logs are added up in a thread beside the requests; on a loaded machine the first
        # request may come before the first reading, and the page says so instead of waiting.
        deadline = time.monotonic() + 30
        while "frequency-cap logs" not in page and time.monotonic() < deadline:
            assert "Reload in a moment" in page
            time.sleep(0.2)
            page = http.get("/calendar").text
    assert "frequency-cap logs" in page
    assert calendar_cells(page, "data-channel") == expected


def test_values_from_the_store_are_escaped(site: Site) -> None:
    """A profile field or a consent source holding markup is shown as text, never run."""
    store = Store(site.redis)
    store.save_profile(
        Profile(id="evil-1", timezone="<script>alert(1)</script>", locale='"><img src=x onerror=alert(2)>'),
        source="<b>import</b>",
    )
    set_consent(site.redis, "evil-1", "email", True, source="<script>alert(3)</script>")
    with site.client() as http:
        login(http, "vic")
        page = http.get("/console/customers/evil-1").text
    assert "<script>alert" not in page and "<img src=x" not in page and "<b>import</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;script&gt;alert(3)&lt;/script&gt;" in page


def test_static_files_are_public_and_carry_the_policy(site: Site) -> None:
    """The stylesheet and script are served without a session (the log-in page needs them), with the
    same headers, and nothing else is served from there."""
    with site.client() as http:
        css = http.get("/console/static/console.css")
        assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
        assert "default-src 'self'" in css.headers["content-security-policy"]
        js = http.get("/console/static/console.js")
        assert js.status_code == 200 and "confirm" in js.text
        assert http.get("/console/static/..%2Fauth.py").status_code == 404
        assert http.get("/console/static/nothing.css").status_code == 404


def test_customer_page_says_whether_the_customer_is_in_the_global_control_group(site: Site) -> None:
    percent = site.settings.global_holdout
    with site.client() as http:
        login(http, "vic")
        for customer_id in ("cust-0001", "cust-0002", "cust-0003", "cust-0004"):
            page = http.get(f"/console/customers/{customer_id}").text
            member = is_global_control(customer_id, percent)
            assert f'data-global-control="{"yes" if member else "no"}"' in page
