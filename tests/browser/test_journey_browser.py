"""The everyday journey in a real browser: what is on screen survives Back, Enter searches, and a plan has
its own place.

Skips when /usr/bin/chromium or Playwright is absent; fails instead when CI=true.
"""

from __future__ import annotations

import re

import pytest

from tests.browser.harness import PHONE, pick, settle

QUERY = "data sharing agreement took too long"

# Every test here only reads (saves, signs in and changes nothing): they share one app.
pytestmark = [pytest.mark.browser, pytest.mark.reads_only]


def search_box(page):
    return page.get_by_role("textbox", name="Search", exact=True)


def mode(page, name: str):
    return page.get_by_role("radiogroup", name="Search mode").get_by_role("radio", name=name, exact=True)


def selected_mode(page) -> str:
    return page.get_by_role("radiogroup", name="Search mode").locator("[aria-checked='true']").inner_text().strip()


def test_back_from_an_entry_restores_the_search_and_a_filter_keeps_the_query(page, server):
    page.goto(server)
    page.get_by_text("Newest entries").wait_for()
    settle(page)

    assert selected_mode(page) == "Hybrid", "the default mode is shown chosen"
    search_box(page).fill(QUERY)
    search_box(page).press("Enter")  # a one-line box: Enter searches
    page.wait_for_url(re.compile(r"q=data\+sharing\+agreement"))
    settle(page)
    assert selected_mode(page) == "Hybrid"
    mode(page, "Keyword").click()
    page.wait_for_url(re.compile(r"mode=keyword"))
    settle(page)
    first = page.locator("[data-testid='stPageLink'] a").first
    title = first.inner_text().strip()
    on_screen = page.url

    first.click()
    page.get_by_text("Similar projects", exact=True).wait_for()
    page.go_back()
    page.wait_for_url(on_screen)
    settle(page)
    assert search_box(page).input_value() == QUERY, "the search box shows the search again"
    assert selected_mode(page) == "Keyword", "and the mode it ran in"
    assert page.locator("[data-testid='stPageLink'] a").first.inner_text().strip() == title

    pick(page, "Outcome", "Stopped")  # a filter changed after Back keeps the query and the mode
    page.wait_for_url(re.compile(r"outcome=stopped"))
    assert "q=data+sharing+agreement" in page.url and "mode=keyword" in page.url
    assert search_box(page).input_value() == QUERY


def test_a_plan_is_pasted_into_its_own_labelled_area(page, server):
    page.goto(server)
    page.get_by_text("Newest entries").wait_for()
    settle(page)
    mode(page, "Project plan").click()
    settle(page)
    plan = page.get_by_role("textbox", name=re.compile("^Your project plan"))
    plan.fill("Share housing records with the benefits team.\nMatch records across councils.\nBuild a dashboard.")
    page.get_by_role("button", name="Find lessons for this plan", exact=True).click()
    page.wait_for_url(re.compile(r"mode=plan"))
    settle(page)
    page.get_by_text(re.compile(r"Your plan, read as 3 parts")).wait_for()
    assert search_box(page).count() == 0, "one place to type at a time"


def test_on_a_phone_results_start_near_the_top_and_the_filters_wait_behind_one_control(page, server, shots):
    phone = page.context.browser.new_context(user_agent=PHONE, viewport={"width": 390, "height": 844})
    tab = phone.new_page()
    tab.set_default_timeout(30_000)
    tab.goto(f"{server}/?q=data+sharing+agreement")
    tab.get_by_text(re.compile(r"best match|close match")).first.wait_for()
    settle(tab)
    first_title = tab.locator("[data-testid='stMain'] a[href*='entry?id=']:visible").first
    assert first_title.bounding_box()["y"] < 844, "the first result is on the first screen"
    assert not tab.get_by_text("Organisation", exact=True).is_visible(), "the filters are folded away"
    tab.screenshot(path=str(shots / "search-phone.png"))
    tab.get_by_text("Filters (0)").click()
    tab.get_by_text("Organisation", exact=True).wait_for()
    settle(tab)
    pick(tab, "Outcome", "Failed")
    tab.wait_for_url(re.compile(r"outcome=failed"))
    settle(tab)
    tab.get_by_text("Filters (1)").wait_for()
    tab.locator("[data-testid='stMain'] a[href*='entry?id=']:visible").first.click()
    tab.get_by_text("Whom to ask").first.wait_for()
    settle(tab)
    tab.screenshot(path=str(shots / "entry-phone.png"))
    phone.close()
