"""The app in a real browser: `streamlit run app.py` driven by Debian's Chromium through Playwright.

Search, open an entry and see its similar projects, submit a new entry and find it, and take a screenshot
of every page. Screenshots go to the test's temporary folder, and also to KB_SCREENSHOTS_DIR when set
(`KB_SCREENSHOTS_DIR=docs/screenshots pytest -m browser` refreshes the ones in the docs).

Skips when /usr/bin/chromium or Playwright is absent; fails instead when CI=true.
"""

from __future__ import annotations

import re
from urllib.parse import quote_plus

import pytest

from tests.browser.harness import choose, pick, screenshot, settle

NEW_TITLE = "Finding young carers by matching school and health records"

pytestmark = pytest.mark.browser


def test_search_entry_similar_submit_and_find(page, server, shots):
    page.goto(server)
    page.get_by_text("Newest entries").wait_for()  # the first load also syncs the index
    settle(page)

    page.get_by_placeholder("Ask a question").fill("data sharing agreement took too long")
    page.get_by_role("button", name="Search", exact=True).click()
    page.get_by_text("Benefits and housing data-sharing pilot").first.wait_for()
    settle(page)
    assert "q=data+sharing+agreement" in page.url
    assert page.locator("mark").count() > 0, "the query's words are marked in the passages"

    pick(page, "Outcome", "Stopped")
    page.wait_for_url(re.compile(r"outcome=stopped"))
    pick(page, "Kind", "Experiment")  # a second filter, after the counts on the first have changed
    page.wait_for_url(re.compile(r"outcome=stopped.*kind=experiment|kind=experiment.*outcome=stopped"))
    settle(page)
    assert page.get_by_text("Failed", exact=True).count() == 0, "only stopped work is listed"
    screenshot(page, shots / "search.png")

    page.go_back()  # the URL holds the search and its filters, so back and forward step through them
    page.wait_for_url(re.compile(r"^(?!.*kind=).*outcome=stopped"))
    page.go_back()
    page.go_back()
    page.get_by_text("What to try", exact=True).wait_for()
    page.go_forward()
    page.get_by_text("Benefits and housing data-sharing pilot").first.wait_for()
    settle(page)

    page.get_by_text("Benefits and housing data-sharing pilot").first.click()
    page.get_by_text("Similar projects", exact=True).wait_for()
    settle(page)
    assert "/entry?id=benefits-and-housing-data-sharing-pilot" in page.url
    assert page.get_by_text("What links them").count() >= 3, "similar projects show the passage that links them"
    screenshot(page, shots / "entry.png")

    page.goto(f"{server}/submit")
    settle(page)
    title = page.get_by_role("textbox", name="Title", exact=True)
    title.fill(NEW_TITLE)
    title.press("Tab")
    summary = page.get_by_placeholder("One to three sentences")
    summary.fill("We matched school and health records to find young carers early. It worked in two councils.")
    summary.press("Tab")
    page.get_by_text("Add your evidence to this entry").first.wait_for()
    settle(page)
    choose(page, "Outcome", "Partial")
    lessons = page.get_by_role("textbox", name=re.compile(r"^Lessons"))
    lessons.fill("Agree the legal basis with both councils before you touch the data.")
    screenshot(page, shots / "submit.png")
    page.get_by_role("button", name="Send for review", exact=True).click()
    page.get_by_text("Sent for review").first.wait_for()
    settle(page)
    new_id = "finding-young-carers-by-matching-school-and-health-records"
    assert f"/entry?id={new_id}" in page.url

    page.goto(f"{server}/?q={quote_plus('young carers school health records')}&status=in-review")
    settle(page)
    page.get_by_text(NEW_TITLE).first.wait_for()

    page.goto(f"{server}/showcase")
    page.get_by_text("Measured benefits").first.wait_for()
    screenshot(page, shots / "showcase.png")

    page.goto(f"{server}/review")
    page.get_by_text(NEW_TITLE).first.wait_for()
    screenshot(page, shots / "review.png")

    page.goto(f"{server}/insights")
    page.get_by_text("Map of the collection", exact=True).wait_for()
    page.locator("[data-testid='stVegaLiteChart']").nth(4).wait_for()
    screenshot(page, shots / "insights.png")
