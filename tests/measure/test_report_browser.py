"""The HTML report opened in a real headless Chromium (Debian's ``chromium``, driven by
Playwright): it renders (a screenshot that is not blank), shows the journeys and their lifts,
draws its charts, and asks the network for nothing."""

from __future__ import annotations

import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image, ImageStat
from playwright.sync_api import Browser, sync_playwright

from orchestrator.measure.render_html import render_html
from orchestrator.measure.report import build_report
from tests.measure.world import WELCOME_NAME, world

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed (tests/run.sh installs it)"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


def test_the_page_renders_with_its_figures_and_charts(browser: Browser, tmp_path: Path) -> None:
    page_file = tmp_path / "report.html"
    page_file.write_text(render_html(build_report(world())), encoding="utf-8")
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.goto(page_file.as_uri())
    page.wait_for_load_state("load")

    text = page.inner_text("body")
    assert WELCOME_NAME in text  # shown as text, not run as a script
    assert "Win-back" in text and "Receipt" in text
    assert "adds 4.0 pp conversion (95 % CI" in text
    assert "not enough data yet: 6 conversions in the holdout, need 10" in text
    assert "All marketing vs global control: adds" in text
    assert page.locator("script").count() == 0

    charts = page.locator("svg")
    assert charts.count() == 6
    for index in range(charts.count()):
        box = charts.nth(index).bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 100
    lift_labels = page.locator("#lift-chart svg text").all_text_contents()
    assert any("treated vs holdout" in label for label in lift_labels)

    assert requested == [page_file.as_uri()]  # nothing fetched but the page itself

    shot = Image.open(io.BytesIO(page.screenshot(full_page=True))).convert("L")
    assert shot.height > 900
    assert ImageStat.Stat(shot).var[0] > 100  # not a blank page


def test_a_blank_page_fails_the_variance_check(browser: Browser, tmp_path: Path) -> None:
    """The screenshot check has teeth: an empty page's variance is about zero."""
    blank = tmp_path / "blank.html"
    blank.write_text("<!DOCTYPE html><html><body></body></html>", encoding="utf-8")
    page = browser.new_page(viewport={"width": 800, "height": 600})
    page.goto(blank.as_uri())
    shot = Image.open(io.BytesIO(page.screenshot())).convert("L")
    assert ImageStat.Stat(shot).var[0] < 1
