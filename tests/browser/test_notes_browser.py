"""Evidence notes in a real browser, the whole loop: open an entry, add a note ("we hit this too"), see it
under "Evidence from others" and the entry's recurrence change; then the same from the submit form's
duplicate check, with the draft kept. Screenshots at 1400 and 390 px go to the test's temporary folder, and to
KB_SCREENSHOTS_DIR when set (docs/screenshots: `notes*.png`, `submit-evidence*.png`).

Skips when /usr/bin/chromium or Playwright is absent; fails instead when CI=true.
"""

from __future__ import annotations

import re

import pytest

from tests.browser.harness import screenshot, settle

pytestmark = pytest.mark.browser

FLOOD = "flood-response-data-cell"  # Environment and Rural Agency, started in 2024
NOTE = "Our winter response met the same late data from councils; a standing agreement fixed it."
TITLE = "A flood data cell for the 2025 winter storms"
SUMMARY = "We stood up a data cell for the winter storms using the emergency playbook; council data came late."


def shown_text(page) -> str:
    return page.evaluate("() => document.body.innerText")


def test_add_a_note_on_an_entry_and_see_it_and_the_recurrence(page, server, shots):
    page.goto(f"{server}/entry?id={FLOOD}")
    settle(page)
    assert "Seen in" not in shown_text(page), "no recurrence line before anyone adds evidence"
    page.get_by_text("We hit this too: add your evidence").click()
    page.get_by_role("textbox", name="What happened to you").fill(NOTE)
    year = page.get_by_role("spinbutton", name="Year")
    year.fill("2021")
    year.press("Tab")
    page.get_by_role("button", name="Add my evidence").click()
    page.get_by_text("Your evidence was added").wait_for()
    settle(page)
    text = shown_text(page)
    heading = text.index("Evidence from others")
    assert text.index(NOTE) > heading, "the note is under its own heading"
    assert "Department for Work and Welfare, 2021" in text[heading:]
    assert re.search(r"Seen in 2 organisations since 2021", text), text[:600]
    # the recurrence line links to the notes
    assert (
        page.get_by_role("link", name=re.compile("1 evidence note"))
        .get_attribute("href")
        .endswith("#evidence-from-others")
    )
    page.get_by_text("Your evidence was added").scroll_into_view_if_needed()
    screenshot(page, shots / "notes.png")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    settle(page)
    assert "Seen in 2 organisations since 2021" in shown_text(page)
    screenshot(page, shots / "notes-phone.png", width=390)


def test_add_your_evidence_from_the_submit_form_keeps_the_draft(page, server, shots):
    page.goto(f"{server}/submit")
    settle(page)
    page.get_by_role("textbox", name="Title", exact=True).fill(TITLE)
    summary = page.get_by_role("textbox", name="Summary", exact=True)
    summary.fill(SUMMARY)
    summary.press("Tab")
    settle(page)
    page.get_by_role("button", name="Add your evidence to this entry").first.click()
    settle(page)
    page.get_by_role("textbox", name="What happened to you").fill(NOTE)
    page.get_by_role("button", name="Add my evidence").click()
    page.get_by_text("Your evidence was added to this entry").wait_for()
    settle(page)
    assert page.get_by_role("textbox", name="Title", exact=True).input_value() == TITLE
    assert page.get_by_role("textbox", name="Summary", exact=True).input_value() == SUMMARY
    assert page.get_by_role("button", name="Add my evidence").count() == 0, "the note is added: the form goes"
    screenshot(page, shots / "submit-evidence.png")
    page.set_viewport_size({"width": 390, "height": 844})
    settle(page)
    page.get_by_text("Your evidence was added to this entry").scroll_into_view_if_needed()  # below the form here
    page.wait_for_timeout(500)
    page.screenshot(path=str(shots / "submit-evidence-phone.png"))
