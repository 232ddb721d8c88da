"""What people look for, in a real browser: a search for nonsense finds nothing; a curator sees it on the
Insights page's curators' tab under "Searches with no close match", asks for a write-up, and the submit
page lists it and starts a draft with its title. Screenshots of the tab at 1400 and 390 px wide.

Skips when /usr/bin/chromium or Playwright is absent; fails instead when CI=true.
"""

from __future__ import annotations

import re
from urllib.parse import quote_plus

import pytest

from tests.browser.conftest import chromium, running_app
from tests.browser.harness import PHONE, screenshot, settle

pytestmark = pytest.mark.browser

NONSENSE = "zzqx flurble wibbleton"
WANTED_TITLE = "Zzqx flurble wibbleton"
PUBLIC = "benefits-and-housing-data-sharing-pilot"


def search(tab, server: str, query: str, mode: str = "hybrid") -> None:
    tab.goto(f"{server}/?q={quote_plus(query)}&mode={mode}")
    settle(tab)


def curators_tab(tab, server: str) -> None:
    tab.goto(f"{server}/insights")
    tab.get_by_role("tab", name="What people look for").click()
    tab.get_by_text("Searches with no close match", exact=True).wait_for()
    settle(tab)


def test_a_search_with_no_match_becomes_a_wanted_write_up(tmp_path, shots):
    with running_app(tmp_path, KB_USER_ROLES="contributor,curator") as server, chromium() as browser:
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.set_default_timeout(30_000)
        search(tab, server, NONSENSE, mode="keyword")
        tab.get_by_text(f"No entries matched “{NONSENSE}”").wait_for()
        for _ in range(2):
            search(tab, server, "data sharing agreement")
        tab.goto(f"{server}/entry?id={PUBLIC}")
        settle(tab)

        curators_tab(tab, server)
        missing = tab.locator("[data-testid='stVerticalBlock'], [data-testid='stHorizontalBlock']").filter(
            has_text=NONSENSE
        )
        card = tab.locator("[data-testid='stLayoutWrapper']").filter(has_text=f"{NONSENSE} · 1 search").last
        screenshot(tab, shots / "insights-curators.png")
        assert missing.count() and card.is_visible()
        opened = tab.get_by_role(
            "link", name=re.compile(r"^Benefits and housing data-sharing pilot.* · opened 1, reused 0$")
        )
        assert opened.count() == 1
        phone = browser.new_context(user_agent=PHONE, viewport={"width": 390, "height": 844}).new_page()
        phone.set_default_timeout(30_000)
        curators_tab(phone, server)
        screenshot(phone, shots / "insights-curators-phone.png", width=390)

        card.get_by_role("button", name="Ask for a write-up").click()
        tab.get_by_text(f"“{WANTED_TITLE}” is listed on the submit page as wanted.").first.wait_for()
        tab.get_by_text(f"Wanted: {WANTED_TITLE}").wait_for()

        tab.goto(f"{server}/submit")
        tab.get_by_text("Write-ups people are looking for").wait_for()
        settle(tab)
        screenshot(tab, shots / "submit-wanted.png")
        phone.goto(f"{server}/submit")
        phone.get_by_text("Write-ups people are looking for").wait_for()
        screenshot(phone, shots / "submit-wanted-phone.png", width=390)
        tab.get_by_role("button", name=WANTED_TITLE).click()
        settle(tab)
        assert tab.get_by_role("textbox", name="Title", exact=True).input_value() == WANTED_TITLE
