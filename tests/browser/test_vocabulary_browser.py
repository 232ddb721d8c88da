"""Keeping the vocabulary, in a real browser: a search for a word nobody uses finds nothing; a curator adds
it as a synonym of a theme on the Vocabulary page, and the same running app finds that theme's entries for
it at once (no sync). A theme written in an entry that the vocabulary doesn't know is offered as a
candidate term with the entry it came from, and the history lists the change. Screenshots of the page at
1400 and 390 px wide (docs/screenshots/vocabulary.png and vocabulary-phone.png).

Skips when /usr/bin/chromium or Playwright is absent; fails instead when CI=true.
"""

from __future__ import annotations

import re
from urllib.parse import quote_plus

import pytest

from tests.browser.conftest import chromium, running_app
from tests.browser.harness import PHONE, screenshot, settle

pytestmark = pytest.mark.browser

WORD = "zebrafication"
PUBLIC = "benefits-and-housing-data-sharing-pilot"
PUBLIC_TITLE = "Benefits and housing data-sharing pilot"


def search(tab, server: str, query: str) -> None:
    tab.goto(f"{server}/?q={quote_plus(query)}&mode=keyword")
    settle(tab)


def vocabulary_page(tab, server: str) -> None:
    tab.goto(f"{server}/vocabulary")
    tab.get_by_text("Add a synonym", exact=True).wait_for()
    settle(tab)


def test_a_curator_adds_a_synonym_and_search_finds_it_at_once(tmp_path, shots):
    with running_app(tmp_path, KB_USER_ROLES="contributor,curator") as server, chromium() as browser:
        entry = tmp_path / "entries" / f"{PUBLIC}.md"
        entry.write_text(entry.read_text().replace("\nthemes:\n", "\nthemes:\n- ferry timetables\n", 1))
        tab = browser.new_page(viewport={"width": 1400, "height": 1000})
        tab.set_default_timeout(30_000)
        search(tab, server, WORD)
        tab.get_by_text(f"No entries matched “{WORD}”").wait_for()

        vocabulary_page(tab, server)
        screenshot(tab, shots / "vocabulary.png")
        phone = browser.new_context(user_agent=PHONE, viewport={"width": 390, "height": 844}).new_page()
        phone.set_default_timeout(30_000)
        vocabulary_page(phone, server)
        screenshot(phone, shots / "vocabulary-phone.png", width=390)

        synonym = tab.get_by_test_id("stForm").filter(has_text="Add the synonym")
        synonym.get_by_test_id("stSelectbox").click()
        tab.get_by_role("option", name="Data sharing agreements (data-sharing-agreements)").click()
        synonym.get_by_role("textbox", name="Synonym").fill("DSA")
        synonym.get_by_role("button", name="Add the synonym").click()
        tab.get_by_text("already names the theme").first.wait_for()  # refused, and said why

        synonym.get_by_role("textbox", name="Synonym").fill(WORD)
        synonym.get_by_role("button", name="Add the synonym").click()
        tab.get_by_text(f"“{WORD}” now names the theme “Data sharing agreements”").first.wait_for()

        search(tab, server, WORD)  # the same running app: no sync, no rebuild
        tab.get_by_text("Matched in:").first.wait_for()
        tab.get_by_role("link", name=PUBLIC_TITLE).first.wait_for()  # a data sharing agreements entry

        vocabulary_page(tab, server)
        tab.get_by_role("tab", name="Candidate terms").click()
        tab.get_by_text("ferry timetables", exact=True).wait_for()
        card = tab.get_by_test_id("stLayoutWrapper").filter(has_text="ferry timetables").last
        assert card.get_by_role("link", name=re.compile(rf"^{PUBLIC_TITLE}.* · written as a theme$")).count() == 1
        settle(tab)
        screenshot(tab, shots / "vocabulary-candidates.png")

        tab.get_by_role("tab", name="History").click()
        tab.get_by_text(f"added the synonym '{WORD}' to 'data-sharing-agreements'").wait_for()
        assert tab.get_by_text("by Priya Natarajan").count() == 1
