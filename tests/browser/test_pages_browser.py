"""What the everyday journey's pages look like in a real browser: each page's tab title, result titles that
are links a keyboard can see and that wrap on a phone, and an entry page that says whom to ask first.

Skips when /usr/bin/chromium or Playwright is absent; fails instead when CI=true.
"""

from __future__ import annotations

import re

import pytest

from tests.browser.harness import PHONE, screenshot, settle

# Every test here only reads (saves, signs in and changes nothing): they share one app.
pytestmark = [pytest.mark.browser, pytest.mark.reads_only]

ENTRY_ID = "benefits-and-housing-data-sharing-pilot"
ENTRY_TITLE = "Benefits and housing data-sharing pilot between two departments"
TITLE_LINKS = "[data-testid='stMain'] a[data-testid='stPageLink-NavLink'][href*='entry?id=']:has(strong)"


def tab_title(page, expected: str) -> str:
    """The tab's title once the page has set it (Streamlit sets it as the script runs)."""
    page.wait_for_function("expected => document.title === expected", arg=expected, timeout=15_000)
    return page.title()


def contrast(one: str, two: str) -> float:
    """WCAG contrast ratio of two CSS rgb() colours."""

    def luminance(colour: str) -> float:
        channels = [int(c) / 255 for c in re.findall(r"\d+", colour)[:3]]
        r, g, b = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
        return 0.2126 * r + 0.7152 * g + 0.0722 * b

    high, low = sorted((luminance(one), luminance(two)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def test_every_page_has_its_own_tab_title(page, server):
    page.goto(server)
    page.get_by_text("Newest entries").wait_for()  # the first load also syncs the index
    assert tab_title(page, "Search – Lighthouse")
    page.goto(f"{server}/?q=data+sharing")
    page.get_by_text("Matched in:").first.wait_for()
    assert tab_title(page, "Search: data sharing – Lighthouse")
    page.goto(f"{server}/?q=Share+housing+records%0A%0ABuild+a+dashboard&mode=plan")
    assert tab_title(page, "Lessons for your plan – Lighthouse"), "a pasted plan is not the tab's title"
    page.goto(f"{server}/entry?id={ENTRY_ID}")
    page.get_by_text("Similar projects", exact=True).wait_for()
    assert tab_title(page, f"{ENTRY_TITLE} – Lighthouse")
    page.goto(f"{server}/entry?id=no-such-entry")
    assert tab_title(page, "Entry not found – Lighthouse")
    for path, title in (
        ("showcase", "Lighthouse showcase"),
        ("submit", "Submit an entry"),
        ("insights", "Insights"),
        ("sources", "Data sources"),
        ("review", "Review queue"),
    ):
        page.goto(f"{server}/{path}")
        assert tab_title(page, f"{title} – Lighthouse")


def test_a_result_title_is_the_card_s_largest_text_and_a_link_the_keyboard_shows(page, server):
    page.goto(f"{server}/?q=data+sharing+agreement")
    page.get_by_text("Matched in:").first.wait_for()
    settle(page)
    title = page.locator(TITLE_LINKS).filter(visible=True).first  # Streamlit keeps a hidden copy of a link
    style = title.evaluate(
        """a => {
            const card = a.closest('[data-testid="stVerticalBlock"]');
            const sizes = [...card.querySelectorAll('p, span, mark, li')]
                .filter(e => !a.contains(e) && e.checkVisibility() && e.innerText.trim())
                .map(e => parseFloat(getComputedStyle(e).fontSize));
            const own = getComputedStyle(a.querySelector('p'));
            return {size: parseFloat(own.fontSize), others: Math.max(...sizes),
                    line: getComputedStyle(a).textDecorationLine, colour: getComputedStyle(a).color};
        }"""
    )
    assert style["size"] > style["others"], style
    assert "underline" in style["line"], "the title looks like a link"
    assert contrast(style["colour"], "rgb(255, 255, 255)") >= 4.5, style

    page.get_by_role("textbox", name="Search", exact=True).focus()
    for _ in range(80):  # walk with the keyboard to the first result's title
        page.keyboard.press("Tab")
        if page.evaluate("() => (document.activeElement.getAttribute('href') || '').includes('entry?id=')"):
            break
    else:
        pytest.fail("Tab never reached a result's title")
    ring = page.evaluate(
        """() => { const s = getComputedStyle(document.activeElement);
                   return {style: s.outlineStyle, width: parseFloat(s.outlineWidth), colour: s.outlineColor}; }"""
    )
    assert ring["style"] == "solid" and ring["width"] >= 3, ring
    assert contrast(ring["colour"], "rgb(255, 255, 255)") >= 3, ring


def test_on_a_phone_titles_wrap_and_whom_to_ask_comes_before_the_story(page, server):
    page.set_viewport_size({"width": 390, "height": 900})
    page.goto(f"{server}/?q=data+sharing+agreement")
    page.get_by_text("Matched in:").first.wait_for()
    settle(page)
    labels = page.locator(f"{TITLE_LINKS} > span")
    measured = labels.evaluate_all(
        """spans => spans.filter(s => s.offsetParent).map(s => ({
            text: s.innerText, clipped: s.scrollWidth > s.clientWidth + 1,
            lines: Math.round(s.getBoundingClientRect().height / parseFloat(getComputedStyle(s.querySelector('p')).lineHeight)),
        }))"""
    )
    assert len(measured) >= 5
    assert not [m for m in measured if m["clipped"]], measured
    assert any(m["lines"] >= 2 for m in measured), "long titles take a second line rather than being cut"
    assert all("…" not in m["text"] for m in measured)

    page.goto(f"{server}/entry?id={ENTRY_ID}")
    page.get_by_text("Similar projects", exact=True).wait_for()
    settle(page)
    ask = page.locator("[data-testid='stMain']").get_by_text("Whom to ask:").first.bounding_box()  # not the page link
    story = page.get_by_role("heading", name="Context").bounding_box()
    facts = page.get_by_text("Outcome: Stopped").first.bounding_box()
    assert facts["y"] < ask["y"] < story["y"], (facts, ask, story)
    assert page.evaluate("() => document.documentElement.scrollWidth") <= 390, "nothing wider than the phone"


@pytest.mark.parametrize("path", ["showcase", "insights", "submit", "review"])
def test_on_a_phone_no_page_is_wider_than_the_screen(page, server, shots, path):
    """Charts, cards and forms fit 390 px: nothing scrolls sideways, the page or any part of it."""
    phone = page.context.browser.new_context(user_agent=PHONE, viewport={"width": 390, "height": 844})
    tab = phone.new_page()
    tab.set_default_timeout(30_000)
    tab.goto(f"{server}/{path}")
    tab.locator("[data-testid='stMain'] h1").first.wait_for()
    settle(tab)
    wider = tab.evaluate(
        """() => [...document.querySelectorAll('[data-testid="stMain"] *')]
            .filter(e => e.offsetParent && e.getBoundingClientRect().right > window.innerWidth + 1)
            .map(e => e.tagName + '.' + (e.getAttribute('data-testid') || e.className || ''))
            .slice(0, 5)"""
    )
    assert not wider, f"wider than the phone on /{path}: {wider}"
    assert tab.evaluate("() => document.documentElement.scrollWidth") <= 390
    screenshot(tab, shots / f"{path}-phone.png", width=390)
    phone.close()


def test_the_charts_words_are_as_legible_as_the_page_s(page, server):
    """Axis labels, axis titles and legends inside the Insights charts (SVG text, which axe-core cannot
    judge) have at least WCAG's 4.5:1 contrast on white."""
    page.goto(f"{server}/insights")
    page.locator("[data-testid='stVegaLiteChart'] svg text").first.wait_for()
    settle(page)
    fills = page.locator("[data-testid='stVegaLiteChart'] svg text").evaluate_all(
        "texts => texts.filter(t => t.textContent.trim()).map(t => getComputedStyle(t).fill)"
    )
    assert len(fills) > 20
    faint = {fill for fill in fills if contrast(fill, "rgb(255, 255, 255)") < 4.5}
    assert not faint, faint
