"""The submit form in a real browser, at a phone's width: after a save that found problems, focus moves to
the error summary, its links take you to each field, the fields are marked, and a rejected link typed by the
user is text, never a link; "Add your evidence to this entry" keeps everything typed, even what has not been
sent with the form yet.

Skips when /usr/bin/chromium or Playwright is absent; fails instead when CI=true.
"""

from __future__ import annotations

import re

import pytest

from tests.browser.harness import PHONE, settle

pytestmark = pytest.mark.browser

TITLE = "Finding young carers by matching school and health records"
SUMMARY = "We matched school and health records to find young carers early. It worked in two councils."
BAD_LINKS = ["javascript:window.__pwned=1", "http://evil.example/my report.pdf"]
SUMMARY_BOX = ".st-key-draft_error_summary"
ERROR_RED = "rgb(212, 53, 28)"


def phone(page) -> None:
    page.set_viewport_size({"width": 390, "height": 844})


def title_box(page):
    return page.get_by_role("textbox", name="Title", exact=True)


def test_errors_are_summarised_focused_linked_and_never_make_a_link(page, server):
    phone(page)
    page.goto(f"{server}/submit")
    settle(page)
    title_box(page).fill(TITLE)
    title_box(page).press("Tab")
    settle(page)
    links = page.get_by_role("textbox", name="Web links", exact=True)
    links.fill("\n".join(["https://www.gov.uk/young-carers", *BAD_LINKS]))
    page.get_by_role("button", name="Send for review", exact=True).click()
    page.get_by_text("There is a problem", exact=True).wait_for()
    settle(page)

    summary = page.locator(SUMMARY_BOX)
    page.wait_for_function(f"() => document.querySelector({SUMMARY_BOX!r})?.contains(document.activeElement)")
    top = summary.evaluate("box => box.getBoundingClientRect().top")
    header = page.evaluate(
        "() => document.querySelector('[data-testid=stHeader]')?.getBoundingClientRect().bottom || 0"
    )
    assert header - 1 <= top < 844 / 2, f"the summary is on screen, below the header ({top}, {header})"

    # Each item links to its field's message; nothing on the page links to a rejected address.
    hrefs = summary.locator("a").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert hrefs and all(re.fullmatch(r"#problem-[\w-]+", h) for h in hrefs), hrefs
    every_href = page.locator("a[href]").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert not [h for h in every_href if "javascript" in h.lower() or "evil.example" in h], every_href
    shown = page.evaluate("() => document.body.innerText")
    for link in BAD_LINKS:  # quoted back as typed, in the summary and at the field
        assert shown.count(f"“{link}”") == 2, link
    assert page.evaluate("() => window.__pwned") is None

    # The link for the summary field moves focus into it; it is marked, for the eye and for screen readers.
    summary.get_by_role("link", name="Write a summary of one to three sentences.").click()
    page.wait_for_function("() => document.activeElement?.closest('.st-key-draft_summary')")
    field = page.get_by_role("textbox", name="Summary", exact=True)
    # Marked by the summary's script once the page has drawn: on a busy machine that can come a moment later.
    page.wait_for_function("() => document.querySelector('.st-key-draft_summary [aria-invalid=true]') !== null")
    assert field.get_attribute("aria-invalid") == "true"
    described = field.get_attribute("aria-describedby")
    said = " ".join(page.locator(f"#{described}").text_content().split())  # as a screen reader reads it
    assert said == "Error: Write a summary of one to three sentences."
    border = page.locator(".st-key-draft_summary").evaluate("box => getComputedStyle(box).borderLeftColor")
    assert border == ERROR_RED
    assert "#" not in page.url, "the address stays as it was"
    assert title_box(page).input_value() == TITLE

    # A draft keeps the links as typed; the entry page shows the rejected ones as text, not even auto-linked.
    page.get_by_role("button", name="Save as draft", exact=True).click()
    page.wait_for_url(re.compile(r"/entry\?id="))
    page.get_by_text("Saved as a draft", exact=False).first.wait_for()
    settle(page)
    every_href = page.locator("a[href]").evaluate_all("links => links.map(a => a.getAttribute('href'))")
    assert "https://www.gov.uk/young-carers" in every_href
    assert not [h for h in every_href if "javascript" in h.lower() or "evil.example" in h], every_href
    shown = page.evaluate("() => document.body.innerText")
    assert all(link in shown for link in BAD_LINKS)


@pytest.mark.reads_only  # nothing is saved: it shares the module's app
def test_add_your_evidence_keeps_everything_typed(page, server):
    phone(page)
    page.goto(f"{server}/submit")
    settle(page)
    title_box(page).fill(TITLE)
    title_box(page).press("Tab")
    summary = page.get_by_placeholder("One to three sentences")
    summary.fill(SUMMARY)
    summary.press("Tab")
    settle(page)
    lessons = page.get_by_role("textbox", name=re.compile(r"^Lessons"))
    lessons.fill("Agree the legal basis with both councils first.")  # in the form: not sent until a save
    page.get_by_role("button", name="Add your evidence to this entry").first.click()
    page.get_by_text("Your draft is kept here", exact=False).wait_for()
    settle(page)
    assert "/submit" in page.url and "edit=" not in page.url
    assert title_box(page).input_value() == TITLE
    assert summary.input_value() == SUMMARY
    assert lessons.input_value() == "Agree the legal basis with both councils first."
    opener = page.get_by_role("link", name="Open that entry in a new tab")
    assert opener.get_attribute("target") == "_blank"
    assert re.fullmatch(r"entry\?id=[a-z0-9-]+", opener.get_attribute("href"))


@pytest.mark.reads_only  # nothing is saved: it shares the module's app
def test_on_a_phone_the_duplicate_check_sits_under_the_title(page, server):
    context = page.context.browser.new_context(user_agent=PHONE, viewport={"width": 390, "height": 844})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    tab.goto(f"{server}/submit")
    settle(tab)
    title_box(tab).fill("Data sharing agreement between councils took a year")
    title_box(tab).press("Tab")
    summary = tab.get_by_placeholder("One to three sentences")
    summary.fill("The agreement with the councils took a year to sign.")
    summary.press("Tab")
    settle(tab)
    similar = tab.get_by_text("Looks similar to…")
    first_hit = tab.get_by_role("button", name="Add your evidence to this entry").first
    first_hit.wait_for()
    organisation = tab.get_by_text("Organisation", exact=True).first
    below_summary = summary.bounding_box()["y"] < similar.bounding_box()["y"]
    assert below_summary and similar.bounding_box()["y"] < organisation.bounding_box()["y"], (
        "the closest entries show right under the title and summary, before the rest of the form"
    )
    assert first_hit.bounding_box()["y"] < organisation.bounding_box()["y"]
    context.close()
