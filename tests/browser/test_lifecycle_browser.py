"""Lighthouses with a lifecycle in a real browser: the showcase's collaboration map (select an organisation,
read its entries; the same as a list), a lighthouse's stage timeline as an ordered list, and no serious or
moderate axe-core violation on either page at 1400 px or 390 px.

Screenshots go to the test's temporary folder, and to KB_SCREENSHOTS_DIR when set (`KB_SCREENSHOTS_DIR=
docs/screenshots pytest tests/browser/test_lifecycle_browser.py` refreshes docs/screenshots/showcase-map*.png
and lighthouse-timeline.png). Skips when /usr/bin/chromium, Playwright or axe-core is absent; fails instead
when CI=true.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator

import pytest

from tests.browser.conftest import running_app
from tests.browser.harness import PHONE, settle
from tests.browser.test_accessibility_browser import FRAMEWORK, WIDTHS, State, axe_script, browser, violations

pytestmark = pytest.mark.browser
__all__ = ["axe_script", "browser"]  # the accessibility module's fixtures, used here too

TEMPLATE = "cross-government-data-sharing-agreement-template"
MAP = "[data-testid='stVegaLiteChart']"
STATES = {
    "showcase with its map": State("/showcase", "Who worked with whom"),
    "a lighthouse's timeline": State(f"/entry?id={TEMPLATE}", "Stage history"),
}


@pytest.fixture(scope="module")
def app(tmp_path_factory, sample_index) -> Iterator[str]:
    # The docs' screenshots use the real model, whose index is made before the app starts.
    index = None if os.environ.get("KB_SCREENSHOTS_DIR") else sample_index
    with running_app(tmp_path_factory.mktemp("lifecycle"), index=index) as url:
        yield url


def open_map(browser, app: str, width: str):
    context = browser.new_context(**WIDTHS[width])
    tab = context.new_page()
    tab.set_default_timeout(60_000)
    tab.goto(f"{app}/showcase")
    tab.get_by_text("Who worked with whom").first.wait_for()
    chart = tab.locator(MAP).first
    chart.scroll_into_view_if_needed()
    tab.locator(f"{MAP} canvas, {MAP} svg").first.wait_for()
    settle(tab)
    return context, tab, chart


def to_top(tab, text: str) -> None:
    """Scroll the text to the top of the screen, for a screenshot of what follows it."""
    settle(tab)
    tab.get_by_text(text).first.evaluate("e => e.scrollIntoView({block: 'start'})")
    tab.wait_for_timeout(500)


def click_top_node(tab, chart) -> None:
    """Click the organisation at the top of the circle: the busiest one (the layout puts it there, at y = 1
    on a scale from -1.25 to 1.25, so a tenth of the way down the plot, in the middle)."""
    box = chart.locator("canvas, svg").first.bounding_box()
    tab.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] * 0.1)


def test_selecting_an_organisation_on_the_map_lists_its_entries_and_the_list_says_the_same(browser, app, shots):
    context, tab, chart = open_map(browser, app, "1400 px")
    try:
        tab.get_by_text("Select an organisation or a line on the map").first.wait_for()
        click_top_node(tab, chart)
        said = re.compile(r"\d+ entr(y|ies), worked with \d+ organisations?")
        picked = tab.locator("[data-testid='stMarkdownContainer']").filter(has_text=said).first
        picked.wait_for()
        links = tab.locator("[data-testid='stMain'] li a[href*='entry?id=']")
        assert links.count() >= 2
        tab.get_by_text("The map as a list").first.click()  # the keyboard's and screen reader's way in
        listing = tab.get_by_text("Cabinet Digital Office and Northfield City Council").first
        listing.wait_for()
        assert tab.locator("a[href*='entry?id=emergency-food-parcel-data-share']").count() >= 1
        # the list names every organisation too, each a link to its page, as a click on its point would
        assert tab.locator("[data-testid='stExpander'] a[href*='organisation?org=']").count() >= 2
        tab.set_viewport_size({"width": 1400, "height": 1250})
        to_top(tab, "Who worked with whom")
        tab.screenshot(path=str(shots / "showcase-map.png"))
    finally:
        context.close()
    context = browser.new_context(viewport={"width": 390, "height": 844}, user_agent=PHONE)
    try:
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        tab.goto(f"{app}/showcase")
        tab.get_by_text("Who worked with whom").first.wait_for()
        tab.locator(f"{MAP} canvas, {MAP} svg").first.wait_for()
        box = tab.locator(MAP).first.bounding_box()
        assert box["width"] <= 390, box  # the map fits a phone's screen
        to_top(tab, "Who worked with whom")
        tab.screenshot(path=str(shots / "showcase-map-phone.png"))
    finally:
        context.close()


def test_a_lighthouse_s_stage_history_is_an_ordered_list_with_its_reuse_chain(browser, app, shots):
    context = browser.new_context(**WIDTHS["1400 px"])
    try:
        tab = context.new_page()
        tab.set_default_timeout(60_000)
        tab.goto(f"{app}/entry?id={TEMPLATE}")
        tab.get_by_text("Stage history").first.wait_for()
        steps = tab.locator("[data-testid='stMain'] ol").filter(has_text="Pilot").first.locator("li")
        assert [s.inner_text().split(",")[0].strip() for s in steps.all()] == ["Pilot", "Proven", "Replicated"]
        assert tab.get_by_text("Where the value spread").first.is_visible()
        assert tab.get_by_text("Saved about 40 days of legal work on the agreement").first.is_visible()
        to_top(tab, "Review by 2027-03")
        tab.screenshot(path=str(shots / "lighthouse-timeline.png"))
    finally:
        context.close()


@pytest.mark.parametrize("name", STATES)
def test_no_serious_or_moderate_violation(browser, axe_script, app, name):
    problems = []
    for width in WIDTHS:
        context = browser.new_context(**WIDTHS[width])
        try:
            found_here = violations(context, axe_script, app, STATES[name])
        finally:
            context.close()
        for found in found_here:
            if found["id"] not in FRAMEWORK:
                problems.append(
                    f"{width}: {found['id']} ({found['impact']}) {found['help']}\n    {found['targets'][:4]}"
                )
    assert not problems, "axe-core found:\n" + "\n".join(problems)
