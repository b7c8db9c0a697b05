"""The console in a real browser: Debian's chromium driven by Playwright (never a downloaded browser).

Log in, open every page on the seeded store, compare what the flow's nodes say with the store's
counters, change a customer's consent with and without the CSRF token, walk the page with the
keyboard, and take screenshots at 1280x800 and at a phone's width that must not be blank.

``LOYALOOP_CONSOLE_SCREENSHOTS=docs/img`` keeps the screenshots there (the ones docs/console.md
shows); otherwise they go to the test's temporary folder.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from PIL import Image, ImageStat

from orchestrator.gate.consent import read_consent
from orchestrator.runtime.compose import build_runtime
from orchestrator.runtime.event_queue import QueuedEvent
from orchestrator.store import Store
from tests.http.console.conftest import PASSWORDS, Site
from tests.http.console.test_console_http import customer_with_email_consent
from tests.http.console.test_console_story import richest_customer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (tests/run.sh installs it)"),
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    wanted = os.environ.get("LOYALOOP_CONSOLE_SCREENSHOTS")
    folder = Path(wanted) if wanted else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def new_page(browser: object, site: Site, viewport: dict[str, int] = DESKTOP) -> object:
    context = browser.new_context(viewport=viewport, base_url=site.base_url)  # type: ignore[attr-defined]
    page = context.new_page()
    page.on("dialog", lambda dialog: dialog.accept())  # the support actions' confirm()
    return page


def log_in(page: object, user: str) -> None:
    page.goto("/console/")  # type: ignore[attr-defined]
    assert page.url.endswith("/console/login")  # type: ignore[attr-defined]
    page.get_by_label("User name").fill(user)  # type: ignore[attr-defined]
    page.get_by_label("Password").fill(PASSWORDS[user])  # type: ignore[attr-defined]
    page.get_by_role("button", name="Log in").click()  # type: ignore[attr-defined]
    page.wait_for_url("**/console/")  # type: ignore[attr-defined]


def not_blank(path: Path) -> float:
    """The screenshot's grey-level standard deviation: a blank (one-colour) page is ~0."""
    with Image.open(path) as image:
        spread = ImageStat.Stat(image.convert("L")).stddev[0]
    assert spread > 10, f"{path.name} looks blank (grey-level spread {spread:.1f})"
    return spread


def snap(page: object, shots: Path, name: str, *, full: bool = False) -> Path:
    path = shots / f"console-{name}.png"
    page.screenshot(path=str(path), full_page=full)  # type: ignore[attr-defined]
    not_blank(path)
    return path


def test_every_page_in_the_browser(browser: object, site: Site, shots: Path) -> None:
    page = new_page(browser, site)
    page.goto("/console/login")  # type: ignore[attr-defined]
    snap(page, shots, "login")
    log_in(page, "vic")
    rows = page.locator("#journeys tbody tr")  # type: ignore[attr-defined]
    assert rows.count() == len(site.journeys)
    store = Store(site.redis)
    welcome = store.stats("welcome")
    entered = page.locator('tr[data-journey="welcome"] td[data-stat="entered"]')  # type: ignore[attr-defined]
    assert entered.inner_text() == f"{welcome['_journey:entered']:,}"
    records = store.version_figures("welcome")
    today = site.now.date()
    recent = sum(
        counts.entrants
        for version in records
        for days in version.arms.values()
        for day, counts in days.items()
        if 0 <= (today - date.fromisoformat(day)).days < 30
    )
    last_30 = page.locator('tr[data-journey="welcome"] td[data-stat="entered-30d"]')  # type: ignore[attr-defined]
    assert last_30.inner_text() == f"{recent:,}"
    snap(page, shots, "overview")

    page.locator('a[href$="/journeys/welcome"]').first.click()  # type: ignore[attr-defined]
    page.wait_for_url("**/console/journeys/welcome")  # type: ignore[attr-defined]
    trigger = page.locator("#step-_trigger").text_content() or ""  # type: ignore[attr-defined]
    assert f"entered {welcome['_journey:entered']:,}" in trigger
    for step in ("welcome_email", "points_push", "first_order_sms"):
        sent = sum(count for key, count in welcome.items() if key.startswith(f"{step}:sent:"))
        capped = sum(count for key, count in welcome.items() if key.startswith(f"{step}:capped:"))
        deferred = sum(count for key, count in welcome.items() if key.startswith(f"{step}:deferred:"))
        text = page.locator(f"#step-{step}").text_content() or ""  # type: ignore[attr-defined]
        reached = sum(version.step_totals().get(step, {}).get("reached", 0) for version in records)
        assert f"reached {reached:,}" in text, text
        assert f"sent {sent:,}" in text and f"capped {capped:,}" in text and f"deferred {deferred:,}" in text, text
    page.locator("#flow-title").scroll_into_view_if_needed()  # type: ignore[attr-defined]
    snap(page, shots, "journey")
    frames = page.locator("iframe[sandbox]")  # type: ignore[attr-defined]
    assert frames.count() >= 4
    frames.first.scroll_into_view_if_needed()
    body = page.frame_locator("iframe[sandbox]").first.locator("body")  # type: ignore[attr-defined]
    assert body.inner_text().strip()
    snap(page, shots, "previews")

    page.get_by_role("link", name="Calendar").click()  # type: ignore[attr-defined]
    page.wait_for_url("**/console/calendar")  # type: ignore[attr-defined]
    assert page.locator("#calendar tbody tr").count() >= 1  # type: ignore[attr-defined]
    snap(page, shots, "calendar")

    page.get_by_role("link", name="Customers").click()  # type: ignore[attr-defined]
    page.get_by_label("Customer id").fill("cust-0003")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Open").click()  # type: ignore[attr-defined]
    page.wait_for_url("**/console/customers/cust-0003")  # type: ignore[attr-defined]
    assert page.locator("#consent").is_visible()  # type: ignore[attr-defined]
    assert page.get_by_role("button", name="Withdraw email consent").count() == 0  # type: ignore[attr-defined]
    snap(page, shots, "customer-viewer")


def test_consent_change_with_and_without_the_csrf_token(browser: object, site: Site, shots: Path) -> None:
    customer = customer_with_email_consent(site)
    page = new_page(browser, site)
    log_in(page, "ana")
    page.goto(f"/console/customers/{customer}")  # type: ignore[attr-defined]
    snap(page, shots, "customer", full=True)
    form = 'tr[data-channel="email"] form'
    page.eval_on_selector(form, "f => f.querySelector('input[name=csrf]').remove()")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Withdraw email consent").click()  # type: ignore[attr-defined]
    page.wait_for_load_state()  # type: ignore[attr-defined]
    assert "stale or not sent by this console" in page.content()  # type: ignore[attr-defined]
    assert read_consent(site.redis, customer)["email"] is True
    page.goto(f"/console/customers/{customer}")  # type: ignore[attr-defined]
    page.get_by_role("button", name="Withdraw email consent").click()  # type: ignore[attr-defined]
    page.wait_for_url(f"**/console/customers/{customer}?done=consent-withdrawn")  # type: ignore[attr-defined]
    cell = page.locator('tr[data-channel="email"] td[data-consent]')  # type: ignore[attr-defined]
    assert cell.inner_text() == "withdrawn"
    assert read_consent(site.redis, customer)["email"] is False
    page.get_by_role("button", name="Restore email consent").click()  # type: ignore[attr-defined]
    page.wait_for_url(f"**/console/customers/{customer}?done=consent-restored")  # type: ignore[attr-defined]
    assert read_consent(site.redis, customer)["email"] is True


def test_keyboard_reaches_the_main_controls_and_every_control_is_labelled(browser: object, site: Site) -> None:
    customer = customer_with_email_consent(site)
    page = new_page(browser, site)
    log_in(page, "ana")
    page.goto(f"/console/customers/{customer}")  # type: ignore[attr-defined]
    reached: list[str] = []
    for _ in range(40):
        page.keyboard.press("Tab")  # type: ignore[attr-defined]
        reached.append(
            page.evaluate(  # type: ignore[attr-defined]
                "() => { const e = document.activeElement; return e.getAttribute('aria-label') || e.innerText || ''; }"
            ).strip()
        )
    assert reached[0] == "Skip to content"
    for wanted in ("Journeys", "Calendar", "Customers", "Log out", "Withdraw email consent"):
        assert wanted in reached, reached
    assert reached.index("Journeys") < reached.index("Withdraw email consent")
    unlabelled = page.evaluate(  # type: ignore[attr-defined]
        """() => [...document.querySelectorAll('input:not([type=hidden]), button, select, textarea, iframe')]
             .filter(e => !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
                          && !e.getAttribute('title') && !(e.innerText || '').trim())
             .map(e => e.outerHTML)"""
    )
    assert unlabelled == []
    page.goto("/console/journeys/welcome")  # type: ignore[attr-defined]
    frames = page.evaluate("() => [...document.querySelectorAll('iframe')].filter(f => !f.title).length")  # type: ignore[attr-defined]
    assert frames == 0


def test_pages_fit_a_phone(browser: object, site: Site, shots: Path) -> None:
    page = new_page(browser, site, PHONE)
    log_in(page, "vic")
    for path in ("/console/", "/console/journeys/welcome", "/console/customers/cust-0001", "/console/calendar"):
        page.goto(path)  # type: ignore[attr-defined]
        overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")  # type: ignore[attr-defined]
        assert overflow <= 0, f"{path} is {overflow}px wider than a phone"
    page.goto("/console/")  # type: ignore[attr-defined]
    snap(page, shots, "phone")


def test_the_customer_timeline_in_the_browser_is_the_stores_story(browser: object, site: Site, shots: Path) -> None:
    """The rendered timeline (newest first) and finished runs hold exactly the store's story of
    the customer, the one ``loyaloop explain`` prints; then a staff action lands on top of it."""
    customer, told = richest_customer(site)
    page = new_page(browser, site)
    log_in(page, "ana")
    page.goto(f"/console/customers/{customer}")  # type: ignore[attr-defined]
    rows = page.eval_on_selector_all(  # type: ignore[attr-defined]
        "#timeline tbody tr", "rows => rows.map(r => [...r.cells].map(c => c.innerText.trim()))"
    )
    assert rows == [
        [m.at[:19].replace("T", " "), m.kind.replace("_", " "), m.journey_id, m.step_id, m.text]
        for m in reversed(told.moments)
    ]
    finished = page.eval_on_selector_all(  # type: ignore[attr-defined]
        "#finished tbody tr", "rows => rows.map(r => [r.dataset.run, r.cells[4].innerText.trim()])"
    )
    assert finished == [[run.run_id, run.how] for run in told.ended]
    page.locator("#timeline").scroll_into_view_if_needed()  # type: ignore[attr-defined]
    snap(page, shots, "timeline")
    channel = page.locator("tr[data-channel] button").first  # type: ignore[attr-defined]
    label = channel.get_attribute("aria-label")
    channel.click()
    page.wait_for_url("**?done=consent-*")  # type: ignore[attr-defined]
    top = page.eval_on_selector("#timeline tbody tr", "r => [r.dataset.kind, r.cells[4].innerText]")  # type: ignore[attr-defined]
    assert top[0] == "staff" and top[1].startswith("ana: consent.") and label.split()[1] in top[1]
    # Put the consent back as it was, for the other tests on this store.
    page.locator("tr[data-channel] button").first.click()  # type: ignore[attr-defined]
    page.wait_for_url("**?done=consent-*")  # type: ignore[attr-defined]


def test_the_customers_events_are_on_the_timeline_in_the_browser(browser: object, site: Site) -> None:
    """The events the demo's workers applied are on the page's timeline, each below (before) the
    entry it caused; an event with a typo'd name, applied now by the real runtime, is on top,
    marked as one no journey listens to."""
    customer, told = richest_customer(site)
    now = datetime.now(UTC)  # after the staff actions other tests took (the console writes them at the wall clock)
    runtime = build_runtime(site.settings, site.redis, check_endpoints=False, clock=lambda: now)
    try:
        typo = QueuedEvent(customer, "ordr.placed", {"total": 30}, "typo-1", now)
        assert runtime.handle_events([typo]) == 1
    finally:
        runtime.close()
    page = new_page(browser, site)
    log_in(page, "vic")
    page.goto(f"/console/customers/{customer}")  # type: ignore[attr-defined]
    rows = page.eval_on_selector_all(  # type: ignore[attr-defined]
        "#timeline tbody tr", "rows => rows.map(r => [r.dataset.kind, r.cells[0].innerText, r.cells[4].innerText])"
    )
    assert rows[0][0] == "unknown_event" and rows[0][2].startswith('ordr.placed {"total": 30} (id typo-1)')
    assert "no journey listens to this event" in rows[0][2]
    oldest_first = list(reversed(rows))
    events = [row for row in oldest_first if row[0] == "event"]
    assert len(events) == len([m for m in told.moments if m.kind == "event"]) > 0
    entered = next(index for index, row in enumerate(oldest_first) if row[0] == "entered")
    assert any(row[0] == "event" and row[1] <= oldest_first[entered][1] for row in oldest_first[:entered])


def test_a_revoked_cookie_is_refused_in_the_browser(browser: object, site: Site) -> None:
    """Log out in one browser context, then replay its session cookie in a fresh one: the console
    shows the log-in page, not the overview."""
    page = new_page(browser, site)
    log_in(page, "vic")
    cookies = page.context.cookies()  # type: ignore[attr-defined]
    session = [c for c in cookies if c["name"] == "loyaloop_console"]
    assert session
    page.get_by_role("button", name="Log out").click()  # type: ignore[attr-defined]
    page.wait_for_url("**/console/login")  # type: ignore[attr-defined]
    replay = browser.new_context(viewport=DESKTOP, base_url=site.base_url)  # type: ignore[attr-defined]
    replay.add_cookies(session)
    other = replay.new_page()
    other.goto("/console/")
    assert other.url.endswith("/console/login")
    assert other.get_by_label("Password").count() == 1
    replay.close()
