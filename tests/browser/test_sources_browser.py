"""The Data sources page in a real browser: from the list to one source, its entries as links, the grades
side by side and the chart over time; on a phone nothing runs off the side of the page. Screenshots at 1400
and 390 px go to the test's temporary folder, and to KB_SCREENSHOTS_DIR when set (docs/screenshots:
`sources.png`, `sources-phone.png`).

Skips when /usr/bin/chromium or Playwright is absent; fails instead when CI=true.
"""

from __future__ import annotations

import pytest

from tests.browser.harness import PHONE, screenshot, settle

# Every test here only reads (saves, signs in and changes nothing): they share one app.
pytestmark = [pytest.mark.browser, pytest.mark.reads_only]


def test_from_the_list_to_a_source_its_grades_and_its_entries(page, server, shots):
    page.goto(f"{server}/sources")
    page.get_by_text("Find a data source").first.wait_for(timeout=120_000)  # the first load syncs the index
    page.wait_for_function("() => document.title === 'Data sources – Lighthouse'", timeout=15_000)
    page.get_by_role("link", name="School census ·").first.click()
    page.get_by_text("Grades side by side").wait_for()
    page.wait_for_url("**/sources?source=school-census")  # the address can be shared
    page.wait_for_function("() => document.title === 'School census – Data sources – Lighthouse'", timeout=15_000)
    settle(page)
    grid = page.locator("[data-testid='stMain'] table").filter(has_text="Dimension").first
    assert "Timeliness" in grid.inner_text() and "Published once a year" in grid.inner_text()
    assert page.locator("[data-testid='stVegaLiteChart'] canvas, [data-testid='stVegaLiteChart'] svg").count()
    screenshot(page, shots / "sources.png")

    phone = page.context.browser.new_context(viewport={"width": 390, "height": 844}, user_agent=PHONE)
    try:
        tab = phone.new_page()
        tab.set_default_timeout(30_000)
        tab.goto(f"{server}/sources?source=school-census")
        tab.get_by_text("Grades side by side").wait_for()
        settle(tab)
        overflow = tab.evaluate(
            """() => { const main = document.querySelector('[data-testid="stMain"]');
                       return main.scrollWidth - main.clientWidth; }"""
        )
        assert overflow <= 1, "the page itself never scrolls sideways on a phone"
        tables = tab.locator("[data-testid='stMain'] table").filter(has_text="Dimension", visible=True)
        assert tables.count() == 2, "on a phone, one narrow table of grades per entry"
        screenshot(tab, shots / "sources-phone.png", width=390)
    finally:
        phone.close()

    page.get_by_role("link", name="An open API for school census statistics").first.click()
    page.get_by_text("Similar projects", exact=True).wait_for()
    assert "entry?id=open-api-for-school-census-data" in page.url


def test_an_unknown_source_is_not_found(page, server):
    page.goto(f"{server}/sources?source=no-such-register")
    page.get_by_text("Data source not found").first.wait_for()
