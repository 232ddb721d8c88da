"""The Insights page in a real browser: legends that show every label whole, a list view the keyboard can
walk, failing bars and their text links that open the matching search, a map stacked on a phone, and a
click on a point that opens its entry (its time is a figure of `python -m bench search-page`).

Skips when /usr/bin/chromium or Playwright is absent; fails instead when CI=true.
"""

from __future__ import annotations

import statistics
import time
from urllib.parse import parse_qs, urlsplit

import pytest

from bench.browser import FREE_MAP_POINT
from tests.browser.harness import PHONE, settle

# Every test here only reads (saves, signs in and changes nothing): they share one app.
pytestmark = [pytest.mark.browser, pytest.mark.reads_only]

CHARTS = "[data-testid='stVegaLiteChart']"
OUTCOME_LABELS = {"Succeeded", "Partial", "Failed", "Stopped", "Ongoing", "Not recorded"}
ENTRIES = 40  # published sample entries this user (Department for Work and Welfare) may see
THEMES = 17  # first themes among them


def open_insights(page, server: str, query: str = "") -> None:
    page.goto(f"{server}/insights{query}")
    page.get_by_text("Map of the collection", exact=True).wait_for()
    settle(page)


def phone_tab(page):
    context = page.context.browser.new_context(user_agent=PHONE, viewport={"width": 390, "height": 844})
    tab = context.new_page()
    tab.set_default_timeout(30_000)
    return tab


def map_legend(page) -> list[dict]:
    """Each label of the map's legend: its text, whether it is cut short, and whether it is on screen."""
    page.locator(".lh-legend li").first.wait_for()
    return page.locator(".lh-legend li > span:last-child").evaluate_all(
        """spans => spans.map(s => { const r = s.getBoundingClientRect(); return {
            text: s.innerText, clipped: s.scrollWidth > s.clientWidth + 1 || s.scrollHeight > s.clientHeight + 1,
            inside: r.left >= 0 && r.right <= window.innerWidth && r.width > 0, visible: s.checkVisibility() }; })"""
    )


def year_legend(page) -> list[dict]:
    """The labels of the outcome legend under "Entries by year started", and whether each lies wholly
    within its chart (Vega cuts a label that does not fit with "…", or draws it past the chart's edge)."""
    chart = page.locator(CHARTS).filter(has_text="Entries by year started")
    chart.locator("svg .role-legend-label text").first.wait_for()
    return chart.evaluate(
        """c => { const box = c.querySelector('svg').getBoundingClientRect();
            return [...c.querySelectorAll('svg .role-legend-label text')].map(t => {
                const r = t.getBoundingClientRect();
                return {text: t.textContent, inside: r.left >= box.left - 1 && r.right <= box.right + 1
                        && r.right <= window.innerWidth}; }); }"""
    )


@pytest.mark.parametrize("width", [1400, 390])
def test_every_legend_label_is_whole_and_on_screen(page, server, width):
    tab = page if width == 1400 else phone_tab(page)
    open_insights(tab, server)
    labels = map_legend(tab)
    assert len(labels) == THEMES, labels
    assert all(label["visible"] and label["inside"] and not label["clipped"] for label in labels), labels
    assert all(not label["text"].endswith("…") and label["text"].endswith(")") for label in labels), labels
    assert "Interoperability and standards (4)" in [label["text"] for label in labels]
    outcomes = year_legend(tab)
    # The outcomes the year chart draws (the samples record every outcome but "Not recorded"), each whole.
    assert {o["text"] for o in outcomes} == OUTCOME_LABELS - {"Not recorded"}, outcomes
    assert all(o["inside"] for o in outcomes), outcomes


def test_the_list_view_is_in_the_address_and_reached_by_tab(page, server):
    open_insights(page, server)
    page.get_by_text("With a keyboard or a screen reader", exact=False).wait_for()  # the caption says how
    settle(page)
    # Five charts and the map; a sixth, "Lessons we keep re-learning", once another test added a note.
    with_map = page.locator(CHARTS).count()
    assert with_map in (6, 7), with_map
    view = page.get_by_role("radiogroup", name="Show the collection as")
    view.get_by_role("radio", name="List", exact=True).click()
    page.wait_for_url("**/insights?view=List")
    settle(page)
    assert page.locator(CHARTS).count() == with_map - 1, "the list in place of the map, the charts above kept"

    view.get_by_role("radio", name="List", exact=True).focus()
    reached = []
    for _ in range(ENTRIES + 40):  # walk the page with Tab until every entry in the list has had focus
        page.keyboard.press("Tab")
        href = page.evaluate("() => document.activeElement.getAttribute('href') || ''")
        if "entry?id=" in href:
            reached.append(parse_qs(urlsplit(href).query)["id"][0])
        if len(set(reached)) == ENTRIES:
            break
    assert len(set(reached)) == ENTRIES, f"Tab reached {len(set(reached))} of the {ENTRIES} entries"

    last = page.evaluate("() => document.activeElement.getAttribute('href')")  # open it with Enter
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/entry?id={parse_qs(urlsplit(last).query)['id'][0]}")
    page.get_by_text("Similar projects", exact=True).wait_for()
    page.go_back()
    page.wait_for_url("**/insights?view=List")  # Back keeps the list
    page.locator("[data-testid='stMain'] a[href*='entry?id=']").first.wait_for()
    assert view.get_by_role("radio", name="List", exact=True).get_attribute("aria-checked") == "true"


def search_on_screen(page) -> dict[str, list[str]]:
    """The search page's address once it shows a filtered list, as query parameters."""
    page.get_by_text("match these filters").wait_for()
    settle(page)
    return parse_qs(urlsplit(page.url).query)


def test_a_failing_bar_and_its_text_link_open_the_matching_search(page, server):
    open_insights(page, server)
    bars = page.locator(CHARTS).nth(4).locator("svg .role-mark path")
    assert "Legacy infrastructure" in (bars.first.get_attribute("aria-label") or ""), "the top failing theme"
    bars.first.click()
    params = search_on_screen(page)
    assert params == {"outcome": ["failed", "stopped"], "theme": ["legacy-infrastructure"]}, params
    assert page.get_by_text("5 entries match these filters").is_visible()

    open_insights(page, server)
    link = page.get_by_role("link", name="Cloud migration (2 of 3)")
    link.focus()  # a text link the keyboard reaches: Enter opens it
    page.keyboard.press("Enter")
    params = search_on_screen(page)
    assert params == {"outcome": ["failed", "stopped"], "theme": ["cloud-migration"]}, params
    assert page.get_by_text("2 entries match these filters").is_visible()


def test_on_a_phone_the_map_is_full_width_with_its_legend_under_it(page, server, shots):
    tab = phone_tab(page)
    open_insights(tab, server)
    chart = tab.locator(CHARTS).last.locator("svg").first
    chart.scroll_into_view_if_needed()
    box = chart.bounding_box()
    legend = tab.locator(".lh-legend").bounding_box()
    assert box["width"] >= 330, f"the map takes the screen's width: {box}"
    assert legend["y"] >= box["y"] + box["height"] - 1, "the legend comes under the map, not beside it"
    assert legend["width"] >= 330, legend
    assert tab.evaluate("() => document.documentElement.scrollWidth") <= 390, "nothing runs off the side"
    tab.screenshot(path=str(shots / "insights-map-phone.png"))


def free_point(page) -> dict:
    """The centre of a point on the map that no other point covers, and the title in its description."""
    return page.evaluate(FREE_MAP_POINT)


def test_clicking_a_point_opens_its_entry_quickly(page, server):
    timings = []
    for _ in range(3):
        open_insights(page, server)
        page.locator(CHARTS).last.scroll_into_view_if_needed()
        point = free_point(page)
        assert point, "a point on the map that nothing covers"
        started = time.monotonic()
        page.mouse.click(point["x"], point["y"])
        page.get_by_role("heading", name=point["title"]).wait_for()
        timings.append(time.monotonic() - started)
        assert "/entry?id=" in page.url
    median = statistics.median(timings)
    print(
        f"point click -> entry shown: median {median * 1000:.0f} ms ({', '.join(f'{t * 1000:.0f}' for t in timings)})"
    )
    assert median < 5, "the entry opens within a rerun, not after a page load and the charts"
