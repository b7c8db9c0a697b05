"""The customer page's story over HTTP: the timeline and the finished runs are the store's own
(as ``loyaloop explain`` reads them), staff actions appear on it, and logging out ends a session
on the server."""

from __future__ import annotations

import html
import logging
import re

import pytest

from orchestrator.gate.consent import read_consent
from orchestrator.http.console.web import COOKIE
from orchestrator.runtime.story import StoreStory, Told
from orchestrator.store import Store, journal
from tests.http.console.conftest import Site, login

ROW = re.compile(r"<tr data-kind=\"([^\"]*)\">(.*?)</tr>", re.S)
FINISHED = re.compile(r"<tr data-run=\"([^\"]*)\">(.*?)</tr>", re.S)
CELL = re.compile(r"<t[dh][^>]*>(.*?)</t[dh]>", re.S)


def cells(row: str) -> list[str]:
    return [html.unescape(re.sub(r"<[^>]+>", "", cell)).strip() for cell in CELL.findall(row)]


def table(page: str, table_id: str) -> str:
    start = page.find(f'<table id="{table_id}">')
    return page[start : page.index("</table>", start)] if start >= 0 else ""


def richest_customer(site: Site) -> tuple[str, Told]:
    """The seeded customer whose story has the most kinds of rows and at least one finished run."""
    best: tuple[int, str, Told] | None = None
    story = StoreStory(site.redis)
    for batch in Store(site.redis).scan_customers():
        for customer_id in sorted(batch):
            told = story.read(customer_id)
            score = len({m.kind for m in told.moments}) if told.ended else -1
            if best is None or score > best[0]:
                best = (score, customer_id, told)
    assert best is not None and best[0] > 0, "the seeded store has no customer with a finished run"
    return best[1], best[2]


def test_the_timeline_and_finished_runs_are_the_stores(site: Site) -> None:
    """Every row of the page's timeline (newest first) and of its finished runs is the store's
    story of the customer: entries, held sends with their reasons, sends with provider feedback."""
    customer, told = richest_customer(site)
    kinds = {m.kind for m in told.moments}
    assert {"entered", "sent"} <= kinds and kinds & {"completed", "converted", "exited"}, kinds
    with site.client() as http:
        login(http, "vic")
        page = http.get(f"/console/customers/{customer}").text
    rows = [(kind, cells(row)) for kind, row in ROW.findall(table(page, "timeline"))]
    expected = [
        (m.kind, [m.at[:19].replace("T", " "), m.kind.replace("_", " "), m.journey_id, m.step_id, m.text])
        for m in reversed(told.moments)
    ]
    assert rows == expected
    finished = [(run, cells(row)) for run, row in FINISHED.findall(table(page, "finished"))]
    assert finished == [
        (
            run.run_id,
            [
                run.journey_id,
                run.version,
                f"{run.entered_at:%Y-%m-%d %H:%M} UTC" if run.entered_at else "—",
                f"{run.ended_at:%Y-%m-%d %H:%M} UTC" if run.ended_at else "—",
                run.how,
            ],
        )
        for run in told.ended
    ]


def test_held_sends_show_their_reason(site: Site) -> None:
    """A send the gate held is on the customer's timeline with its reason (the seeded demo caps
    and defers some): the same words as the journal entry."""
    store = Store(site.redis)
    for batch in store.scan_customers():
        for customer_id in sorted(batch):
            held = [e for e in journal.read(site.redis, customer_id) if e.get("kind") == "held"]
            if held:
                with site.client() as http:
                    login(http, "vic")
                    page = http.get(f"/console/customers/{customer_id}").text
                shown = [cells(row) for _kind, row in ROW.findall(table(page, "timeline"))]
                for entry in held:
                    assert any(entry["reason"] in row[4] and row[3] == entry["step"] for row in shown), entry
                return
    pytest.fail("the seeded demo held no send")


def test_staff_actions_are_on_the_timeline_and_in_the_audit_log(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    """A consent change and a removal by support staff: on the customer's timeline (who, what),
    the removed run among the finished runs as removed by staff, and one audit line each (who,
    when, what) without the customer's address."""
    store = Store(site.redis)
    customer = next(
        c
        for batch in store.scan_customers()
        for c in sorted(batch)
        if store.live_runs(c) and read_consent(site.redis, c)
    )
    run_id, journey_id = sorted(store.live_runs(customer).items())[0]
    channel = sorted(read_consent(site.redis, customer))[0]
    granted = read_consent(site.redis, customer)[channel]
    with site.client() as http, caplog.at_level(logging.INFO, logger="loyaloop.console.audit"):
        token = login(http, "ana")
        change = {"channel": channel, "granted": "0" if granted else "1", "csrf": token}
        assert http.post(f"/console/customers/{customer}/consent", data=change).status_code == 303
        removal = {"csrf": token, "run": run_id}
        assert http.post(f"/console/customers/{customer}/runs/{run_id}/end", data=removal).status_code == 303
        page = http.get(f"/console/customers/{customer}").text
    staff = [cells(row) for kind, row in ROW.findall(table(page, "timeline")) if kind == "staff"]
    action = "consent.withdraw" if granted else "consent.restore"
    assert staff[:2] == [
        [staff[0][0], "staff", journey_id, "", f"ana: journey.remove (run {run_id})"],
        [staff[1][0], "staff", "", "", f"ana: {action} (channel {channel})"],
    ]
    finished = dict((run, cells(row)) for run, row in FINISHED.findall(table(page, "finished")))
    assert finished[run_id][4] == "removed by staff (ana)"
    lines = [r.getMessage() for r in caplog.records if r.name == "loyaloop.console.audit"]
    assert any(
        re.search(rf"at=\S+ user=ana action={action} channel={channel} customer={customer}$", line) for line in lines
    )
    assert any("action=journey.remove" in line and f"run={run_id}" in line for line in lines)
    profile = store.get_profile(customer)
    assert profile is not None
    for address in (profile.email, profile.phone):
        assert not address or all(address not in line for line in lines)
        assert not address or address not in page


def test_logging_out_ends_the_session_on_the_server(site: Site) -> None:
    """After logging out, a copy of the old cookie (kept by an attacker, or another tab) opens
    nothing: pages send it to the log-in page and actions are refused."""
    with site.client() as http:
        token = login(http, "ana")
        kept = http.cookies.get(COOKIE)
        assert kept and http.get("/console/").status_code == 200
        assert http.post("/console/logout", data={"csrf": token}).status_code == 303
    with site.client() as replay:
        replay.cookies.set(COOKIE, kept)
        page = replay.get("/console/")
        assert page.status_code == 303 and page.headers["location"].endswith("/console/login")
        action = replay.post(
            "/console/customers/cust-0001/consent", data={"channel": "email", "granted": "0", "csrf": token}
        )
        assert action.status_code == 403
