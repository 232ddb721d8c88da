"""Suggested themes and the glossary in a real browser: choosing a suggestion adds it to the Themes field
and keeps everything typed, even what has not been sent with the form yet, and the saved entry has it; the
glossary lists every theme, links to its search and fits a phone's screen.

Skips when /usr/bin/chromium or Playwright is absent; fails instead when CI=true.
"""

from __future__ import annotations

import re

import pytest

from kb.entries import slugify
from kb.store import EntryStore
from kb.vocabulary import Vocabulary
from tests.browser.harness import PHONE, screenshot, settle

pytestmark = pytest.mark.browser

TITLE = "Matching records across councils to find the same person"
SUMMARY = "Record linkage and matching of the same person across council datasets, with deduplication."
LESSONS = "Agree how records are matched before any data moves."


def test_a_suggested_theme_is_added_and_the_draft_is_kept(page, server, shots, tmp_path):
    page.goto(f"{server}/submit")
    settle(page)
    title = page.get_by_role("textbox", name="Title", exact=True)
    title.fill(TITLE)
    title.press("Tab")
    summary = page.get_by_placeholder("One to three sentences")
    summary.fill(SUMMARY)
    summary.press("Tab")
    page.get_by_text("Suggested themes:").wait_for()
    settle(page)
    team = page.get_by_role("textbox", name="Team", exact=True)
    team.fill("Linkage team")  # in the form: not sent until a save
    lessons = page.get_by_role("textbox", name=re.compile(r"^Lessons"))
    lessons.fill(LESSONS)
    offered = page.get_by_role("button", name=re.compile(r"^Add theme: "))
    assert offered.count() == 3
    first = offered.first.inner_text().strip().removeprefix("add").strip()
    label = re.sub(r"^Add theme:\s*", "", first)
    screenshot(page, shots / "submit-suggestions.png")
    offered.first.click()
    settle(page)
    themes = page.locator(".st-key-draft_themes")
    assert label in themes.inner_text(), "the chosen theme is in the Themes field"
    assert page.get_by_role("button", name=f"Add theme: {label}").count() == 0
    assert title.input_value() == TITLE and summary.input_value() == SUMMARY
    assert team.input_value() == "Linkage team" and lessons.input_value() == LESSONS

    page.get_by_role("button", name="Save as draft", exact=True).click()
    page.wait_for_url(re.compile(r"/entry\?id="))
    page.get_by_text("Saved as a draft", exact=False).first.wait_for()
    saved = EntryStore(tmp_path / "entries").get(slugify(TITLE))  # the server's copy of the entries
    chosen = next(t.id for t in Vocabulary.load(tmp_path / "entries").themes if t.label == label)
    assert saved.themes == [chosen]
    assert (saved.team, saved.sections.get("Lessons")) == ("Linkage team", LESSONS)

    phone = page.context.browser.new_context(user_agent=PHONE, viewport={"width": 390, "height": 844})
    tab = phone.new_page()
    tab.set_default_timeout(30_000)
    tab.goto(f"{server}/submit")
    settle(tab)
    tab.get_by_role("textbox", name="Title", exact=True).fill(TITLE)
    tab.get_by_role("textbox", name="Title", exact=True).press("Tab")
    tab.get_by_placeholder("One to three sentences").fill(SUMMARY)
    tab.get_by_placeholder("One to three sentences").press("Tab")
    tab.get_by_text("Suggested themes:").wait_for()
    settle(tab)
    assert tab.evaluate("() => document.documentElement.scrollWidth") <= 390
    screenshot(tab, shots / "submit-suggestions-phone.png", width=390)
    phone.close()


def test_the_glossary_lists_every_theme_and_links_to_its_search(page, server, shots):
    page.goto(f"{server}/glossary")
    page.get_by_role("heading", name="Glossary").wait_for()
    page.get_by_role("heading", name="Record linkage and matching").wait_for()
    settle(page)
    assert page.locator("[data-testid=stHeading] h2").count() == 20
    assert page.title() == "Glossary – Lighthouse"
    assert "Also called: data sharing agreement, DSA, MoU" in page.evaluate("() => document.body.innerText")
    screenshot(page, shots / "glossary.png")
    page.get_by_role("link", name="Search entries on Record linkage and matching").click()
    page.wait_for_url(re.compile(r"theme=record-linkage"))
    page.get_by_text("match these filters", exact=False).first.wait_for()

    phone = page.context.browser.new_context(user_agent=PHONE, viewport={"width": 390, "height": 844})
    tab = phone.new_page()
    tab.set_default_timeout(30_000)
    tab.goto(f"{server}/glossary")
    tab.get_by_role("heading", name="Record linkage and matching").wait_for()
    settle(tab)
    assert tab.evaluate("() => document.documentElement.scrollWidth") <= 390
    screenshot(tab, shots / "glossary-phone.png", width=390)
    phone.close()
