"""Whom to ask in a real browser: the directory searched from its box (and the search kept in the address),
its organisation links leading to an organisation's page, the entry page's "Others who have worked on this",
and a directory that fits a phone. Screenshots go to KB_SCREENSHOTS_DIR (docs/screenshots for the docs).

Accessibility (axe-core) for these pages is checked with every other page in test_accessibility_browser.py.
Skips when /usr/bin/chromium or Playwright is absent; fails instead when CI=true.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlparse

import pytest

from tests.browser.harness import PHONE, screenshot, settle

# Every test here only reads (saves, signs in and changes nothing): they share one app.
pytestmark = [pytest.mark.browser, pytest.mark.reads_only]

ENTRY_ID = "benefits-and-housing-data-sharing-pilot"
ORG_LINK = "a[data-testid='stPageLink-NavLink'][href*='organisation?org=']"
ORG_LINKS = f"[data-testid='stMain'] {ORG_LINK}"


def team_count(page) -> int:
    """How many team cards the page shows (each starts with the team's name after a groups icon)."""
    return page.evaluate(
        """() => [...document.querySelectorAll('[data-testid="stMain"] [data-testid="stMarkdownContainer"] strong')]
            .filter(s => s.innerText.startsWith('groups')).length"""
    )


def open_people(page, server: str, query: str = "") -> None:
    page.goto(f"{server}/people{query}")
    # the first load also syncs the index and loads the model: slow on a busy machine
    page.get_by_text(re.compile(r"^\d+ teams? in \d+ organisations?$")).first.wait_for(timeout=120_000)
    settle(page)


def test_the_directory_is_searched_and_leads_to_an_organisation(page, server, shots):
    open_people(page, server)
    screenshot(page, shots / "people.png")
    everyone = team_count(page)
    assert everyone >= 20
    box = page.get_by_label("Find a team, contact, theme or organisation")
    box.fill("record linkage")
    box.press("Enter")
    page.wait_for_function("() => location.search.includes('q=record')")
    settle(page)
    found = team_count(page)
    assert 0 < found < everyone
    assert parse_qs(urlparse(page.url).query)["q"] == ["record linkage"]
    page.reload()  # the address alone shows the same search
    page.get_by_text(re.compile(r"^\d+ teams? in")).first.wait_for()
    settle(page)
    assert team_count(page) == found
    link = page.locator(ORG_LINKS).filter(visible=True).first
    name = parse_qs(urlparse(link.get_attribute("href")).query)["org"][0]
    assert name in link.inner_text()
    link.click()
    page.get_by_role("heading", name="Worked with").wait_for()
    assert parse_qs(urlparse(page.url).query)["org"] == [name]
    page.wait_for_function("expected => document.title === expected", arg=f"{name} – Lighthouse", timeout=15_000)


def test_an_organisation_page_lists_partners_and_reuse(page, server, shots):
    page.goto(f"{server}/organisation?org=Cabinet+Digital+Office")
    page.get_by_role("heading", name="Worked with").wait_for()
    settle(page)
    for heading in ("Entries", "Lighthouse projects", "What it reused", "Teams"):
        assert page.get_by_role("heading", name=heading).count() == 1, heading
    partner = page.locator(ORG_LINKS).filter(has_text="Northfield City Council").filter(visible=True).first
    assert "reused 1 lighthouse from here" in partner.inner_text()
    screenshot(page, shots / "organisation.png")
    partner.click()
    page.get_by_role("heading", name="Northfield City Council", level=1).wait_for()
    page.goto(f"{server}/organisation?org=Nowhere+Office")
    page.get_by_text("Organisation not found").first.wait_for()


def test_the_entry_page_says_who_else_worked_on_this(page, server):
    page.goto(f"{server}/entry?id={ENTRY_ID}")
    page.get_by_text("Others who have worked on this").first.wait_for()
    settle(page)
    block = page.locator("[data-testid='stVerticalBlock']").filter(has_text="Others who have worked on this").last
    links = block.locator(ORG_LINK).filter(visible=True)
    assert links.count() >= 2  # others' organisations, and this entry's own
    links.first.click()
    page.get_by_role("heading", name="Worked with").wait_for()


def test_on_a_phone_the_directory_fits_the_screen(page, server, shots):
    context = page.context.browser.new_context(user_agent=PHONE, viewport={"width": 390, "height": 844})
    try:
        tab = context.new_page()
        tab.set_default_timeout(30_000)
        open_people(tab, server, "?q=data+sharing")
        assert tab.evaluate("() => document.documentElement.scrollWidth") <= 390, "nothing runs off the side"
        box = tab.get_by_label("Find a team, contact, theme or organisation").bounding_box()
        assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390
        screenshot(tab, shots / "people-phone.png", width=390)
    finally:
        context.close()
