"""Hostile entry text in a real browser: shown as text, never run, never fetched from elsewhere.

Three entry files are added to the copy of the sample entries before the app starts. Two carry a script
tag, an image with an onerror handler, a `javascript:` Markdown link, a Markdown image beacon, an iframe
and a raw <a href> pointing at 198.51.100.7 (a documentation address: nothing is there) in their title,
summary, sections, lighthouse panel and contact. The third carries Markdown images in every short field
that ends up in a label, a tooltip, an option list or a chart: title, organisation, partners, team,
contact, tags, data sources, a theme that is not in the vocabulary, section names, benefits and the
reviewer's comment. Each image points twice: at 198.51.100.7, and at a second HTTP server on 127.0.0.1
that records every request it gets, so a fetch is seen even on a closed network.

The first test opens the entry page, a search that shows the hostile passage and the submit page's
"Looks similar to…" panel, and checks the hostile text is on the entry page as text. The second hovers
every entry link that shows a title (their tooltips) on the search, entry and showcase pages, opens every
select box and multiselect on the search, submit (editing the third entry) and showcase pages, has a
query and an entry id from the address quoted back, and hovers the bars and points of the Insights
charts that show hostile values, and a bar of every other chart (Vega's tooltips), and reads the map's
legend (HTML beside the chart). Both then check
that no dialog fired, that `window.__pwned` was never set, and that nothing was requested from the
recording server or from any host but the app's own.

Uses the server, browser and settle helpers of tests/browser/harness.py. Skips when /usr/bin/chromium
or Playwright is absent; fails instead when CI=true.
"""

from __future__ import annotations

import base64
import textwrap
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, quote_plus, urlsplit

import pytest
import yaml

from tests.browser.conftest import running_app
from tests.browser.harness import screenshot, settle

pytestmark = [pytest.mark.browser, pytest.mark.reads_only]

ELSEWHERE = "198.51.100.7"  # a documentation address: nothing answers there
SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=2">'
JS_LINK = "[click](javascript:window.__pwned=3)"
BEACON = f"![b](http://{ELSEWHERE}/beacon.png)"
IFRAME = f'<iframe src="http://{ELSEWHERE}/"></iframe>'
RAW_LINK = f'<a href="http://{ELSEWHERE}/x">raw link</a>'
HOSTILE = f"{SCRIPT} {IMG} {JS_LINK} {BEACON} {IFRAME} {RAW_LINK}"

FIRST_ID = "quokka-ledger-hostile-entry"
FIRST_TITLE = f"Quokka ledger {SCRIPT} {IMG}"
SECOND_ID = "quokka-ledger-hostile-lighthouse"
SECOND_TITLE = f"Quokka ledger lighthouse {IMG}"
BEACON_ID = "quokka-beacon-register"
BEACON_TITLE = "Quokka beacon register"  # followed by its images
BEACON_ORGANISATION = "Quokka Office"
BEACON_THEME = "Quokka theme"

# A 1x1 PNG, so a fetched beacon is a real image.
PIXEL = base64.b64decode("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAAAAAA6fptVAAAACklEQVR4nGNgAAAAAgABSK+kcQAAAABJRU5ErkJggg==")


@dataclass
class Recorder:
    """A local HTTP server's address and the path of every request it got."""

    url: str
    paths: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def recording_server() -> Iterator[Recorder]:
    """An HTTP server on a free 127.0.0.1 port that answers every request with a pixel and records it."""
    paths: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            paths.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "image/png")
            self.send_header("Content-Length", str(len(PIXEL)))
            self.end_headers()
            self.wfile.write(PIXEL)

        do_POST = do_GET

        def log_message(self, *args) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield Recorder(f"http://127.0.0.1:{httpd.server_address[1]}", paths)
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def recorder(recording_server) -> Recorder:
    """The recording server, asked for nothing yet: not by the shared app starting, nor by an earlier test."""
    assert not recording_server.paths, recording_server.paths
    return recording_server


def beacons(recorder: Recorder, name: str) -> str:
    """Two Markdown images named after the field they sit in: one elsewhere, one at the recording server."""
    return f"![{name}](http://{ELSEWHERE}/{name}.png) ![{name}]({recorder.url}/{name}.png)"


def entry_file(fields: dict, sections: dict[str, str]) -> str:
    body = "\n\n".join(f"## {name}\n\n{text.strip()}" for name, text in sections.items())
    return f"---\n{yaml.safe_dump(fields, sort_keys=False, allow_unicode=True, width=1000)}---\n\n{body}\n"


def common_fields(entry_id: str, title: str, theme: str) -> dict:
    return {
        "id": entry_id,
        "title": title,
        "summary": f"Quokka ledger reconciliation went wrong. {HOSTILE}",
        "kind": "experiment",
        "outcome": "failed",
        "organisation": "Department for Work and Welfare",
        "team": f"Quokka team {SCRIPT}",
        "contact": f"quokka@dww.example.gov {IMG}",
        "anonymous": False,
        "themes": [theme, "data-governance"],  # the hostile theme first: the map colours points by it
        "tags": [f"quokka {IMG}"],
        "started": "2023-01",
        "ended": "2023-06",
        "evidence": "observed",
        "visibility": "public",
        "status": "published",
        "created": "2023-07-01",
        "author": "Priya Natarajan",
        "reviewer": "Tom Okafor",
    }


def beacon_entry(recorder: Recorder, theme: str) -> tuple[dict, dict[str, str]]:
    """An entry with Markdown images in every short field a label, tooltip, option or chart shows."""
    fields = common_fields(BEACON_ID, f"{BEACON_TITLE} {beacons(recorder, 'title')}", theme) | {
        "summary": f"Quokka beacon register reconciliation stopped. {beacons(recorder, 'summary')}",
        "outcome": "stopped",
        "organisation": f"{BEACON_ORGANISATION} {beacons(recorder, 'organisation')} {IMG}",
        "partners": [f"Quokka Partner {beacons(recorder, 'partner')}"],
        "team": f"Quokka team {beacons(recorder, 'team')}",
        "contact": f"quokka@dww.example.gov {beacons(recorder, 'contact')}",
        "tags": [f"quokka {beacons(recorder, 'tag')}"],
        "data_sources": [f"Quokka register {beacons(recorder, 'data-source')}"],
        "review_comment": f"Check the figures. {beacons(recorder, 'review-comment')}",
        "related": [FIRST_ID],
        "lighthouse": {
            "stage": "pilot",
            "impact": f"Quokka beacon impact. {beacons(recorder, 'impact')}",
            "benefits": [f"Quokka benefit {beacons(recorder, 'benefit')}"],
            "reused_by": [FIRST_ID],
        },
    }
    sections = {
        "What happened": f"Quokka beacon register reconciliation stopped. {beacons(recorder, 'section-text')}",
        f"Lessons {beacons(recorder, 'section-name')}": f"Quokka beacon register lessons. {HOSTILE}",
    }
    return fields, sections


def hostile_theme(recorder: Recorder) -> str:
    """A theme not in the vocabulary: kept as written, and shown wherever a theme's label is."""
    return f"{BEACON_THEME} {beacons(recorder, 'theme')} {IMG}"


def write_hostile_entries(folder: Path, recorder: Recorder) -> None:
    """Written into the app's entries folder before `running_app` copies the sample entries beside them."""
    folder.mkdir(parents=True, exist_ok=True)
    theme = hostile_theme(recorder)
    sections = {
        "What happened": textwrap.dedent(
            f"""
            The quokka ledger reconciliation passage: {SCRIPT} and {IMG} were pasted in.

            Press {JS_LINK} to see more. A tracking pixel: {BEACON}

            {IFRAME}

            And a raw link: {RAW_LINK}
            """
        ),
        f"Lessons {IMG}": f"Quokka ledger lessons. {HOSTILE}",
    }
    first = common_fields(FIRST_ID, FIRST_TITLE, theme) | {"related": [SECOND_ID]}
    (folder / f"{FIRST_ID}.md").write_text(entry_file(first, sections), encoding="utf-8")
    second = common_fields(SECOND_ID, SECOND_TITLE, theme) | {
        "kind": "project",
        "outcome": "succeeded",
        "lighthouse": {
            "stage": "proven",
            "impact": f"Quokka ledger impact. {HOSTILE}",
            "benefits": [f"Saved time {SCRIPT}", f"Fewer errors {IMG}"],
            "reused_by": [FIRST_ID],
        },
    }
    (folder / f"{SECOND_ID}.md").write_text(entry_file(second, sections), encoding="utf-8")
    (folder / f"{BEACON_ID}.md").write_text(entry_file(*beacon_entry(recorder, theme)), encoding="utf-8")


@pytest.fixture(scope="module")
def shared_app(tmp_path_factory, recording_server) -> Iterator[str]:
    """The app, started only after the hostile entries are in its entries folder. Both tests only read
    (nothing is saved), so they share it; each has a browser context of its own."""
    folder = tmp_path_factory.mktemp("hostile")
    write_hostile_entries(folder / "entries", recording_server)
    with running_app(folder) as url:
        yield url


@pytest.fixture
def app(server, recorder) -> str:
    return server


def pwned(page) -> object:
    return page.evaluate("() => window.__pwned === undefined ? null : window.__pwned")


class Watch:
    """Every request, dialog and tab of a browser context, from the moment it is made."""

    def __init__(self, page) -> None:
        self.requests: list[str] = []
        self.dialogs: list[str] = []
        self.pages = [page]
        # Every request from the tab and from any tab it opens (a link clicked may open a new one).
        page.context.on("request", lambda r: self.requests.append(r.url))
        page.context.on("page", lambda tab: (self.pages.append(tab), self.watch(tab)))
        self.watch(page)

    def watch(self, tab) -> None:
        tab.on("dialog", lambda d: (self.dialogs.append(f"{d.type}: {d.message}"), d.dismiss()))

    def assert_nothing_escaped(self, app: str, recorder: Recorder) -> None:
        """No script ran, no dialog fired, and nothing was fetched from anywhere but the app."""
        for tab in self.pages:
            if not tab.is_closed() and tab.url.startswith(app):
                assert pwned(tab) is None, f"window.__pwned was set in {tab.url}"
        assert not self.dialogs, f"dialogs fired: {self.dialogs}"
        assert not recorder.paths, f"the recording server was asked for {recorder.paths}"
        own = urlsplit(app).netloc
        offenders = sorted(
            {
                u
                for u in self.requests
                if urlsplit(u).scheme not in ("data", "blob", "about") and urlsplit(u).netloc != own
            }
        )
        assert not offenders, f"requests went to other hosts: {offenders}"
        assert any(urlsplit(u).netloc == own for u in self.requests), "requests were recorded"


def test_hostile_entry_text_is_shown_not_run(app, page, recorder, tmp_path):
    started = time.monotonic()
    watch = Watch(page)

    # The entry page: title, summary, sections, facts, lighthouse panel, contact, similar and related.
    page.goto(f"{app}/entry?id={FIRST_ID}")
    page.get_by_text("Similar projects", exact=True).wait_for()
    settle(page)
    page.wait_for_timeout(1000)  # room for any image or frame to start loading
    text = page.evaluate("() => document.body.innerText")
    for hostile in (SCRIPT, IMG, "raw link"):
        assert hostile in text, f"{hostile!r} is shown as text on the entry page"
    assert page.locator(f"iframe[src*='{ELSEWHERE}'], img[src*='{ELSEWHERE}'], img[src='x']").count() == 0
    assert pwned(page) is None, "window.__pwned was set on the entry page"
    screenshot(page, tmp_path / "hostile-entry.png")

    links = page.get_by_role("link", name="click", exact=True)
    hrefs: list[str] = []
    for i in range(links.count()):
        link = links.nth(i)
        href = link.get_attribute("href") or ""
        assert not href.strip().lower().startswith("javascript:"), f"a javascript: link was rendered: {href!r}"
        link.click(timeout=5_000)
        hrefs.append(href)
        page.wait_for_timeout(500)
        for tab in watch.pages:
            if not tab.is_closed() and tab.url.startswith(app):
                assert pwned(tab) is None, f"window.__pwned was set after clicking `click` (href {href!r})"
        if not page.url.startswith(f"{app}/entry"):
            page.goto(f"{app}/entry?id={FIRST_ID}")
            settle(page)

    # The second entry: its lighthouse panel and "Reused by".
    page.goto(f"{app}/entry?id={SECOND_ID}")
    page.get_by_text("Similar projects", exact=True).wait_for()
    settle(page)
    assert pwned(page) is None, "window.__pwned was set on the lighthouse entry page"

    # A search whose results show the hostile passage.
    page.goto(f"{app}/?q={quote_plus('quokka ledger reconciliation passage')}")
    page.get_by_text("window.__pwned=1").first.wait_for()
    settle(page)
    page.wait_for_timeout(500)
    assert pwned(page) is None, "window.__pwned was set on the search page"

    # The submit page: the hostile title typed in, so "Looks similar to…" shows the hostile entries.
    page.goto(f"{app}/submit")
    settle(page)
    title = page.get_by_role("textbox", name="Title", exact=True)
    title.fill(FIRST_TITLE)
    title.press("Tab")
    page.get_by_text("Add your evidence to this entry").first.wait_for()
    settle(page)
    page.wait_for_timeout(500)
    panel_text = page.evaluate("() => document.body.innerText")
    assert "Quokka ledger" in panel_text, "the hostile entry is among the similar ones"
    assert pwned(page) is None, "window.__pwned was set on the submit page"

    watch.assert_nothing_escaped(app, recorder)
    print(f"browser part: {time.monotonic() - started:.0f}s")  # a figure to watch, not a timed test
    print(f"clicked {len(hrefs)} `click` link(s), hrefs {hrefs}; {len(watch.requests)} requests, all to the app")


# --------------------------------------------------------------------------- tooltips, option lists, charts


ENTRY_LINKS = "a[data-testid='stPageLink-NavLink'][href*='id=']"


def steady(read):
    """What `read()` returns once the page has stopped adding elements: Streamlit draws a page in steps."""
    last = read()
    for _ in range(20):
        time.sleep(0.4)
        now = read()
        if now and now == last:
            break
        last = now
    return last


def entry_links(page) -> list[str]:
    """The addresses of the entry links on screen that show a title, which is also their tooltip
    (Streamlit keeps a hidden copy of each link; "Open the entry" has no tooltip)."""
    script = (
        f"() => [...document.querySelectorAll(`{ENTRY_LINKS}`)]"
        ".filter(a => a.offsetParent && !a.innerText.includes('Open the entry')).map(a => a.href)"
    )
    return steady(lambda: page.evaluate(script))


def hover_entry_links(page, shots: Path) -> list[str]:
    """Hover every link to an entry and return the text of the tooltip each one showed."""
    from playwright.sync_api import expect  # here: without Playwright the `page` fixture skips the test

    tooltip = page.locator("[data-testid='stTooltipContent']").filter(visible=True)
    tips = []
    hrefs = entry_links(page)
    for i, href in enumerate(hrefs):
        nth = hrefs[:i].count(href)  # an entry may be linked twice (similar and related)
        link = page.locator(f"{ENTRY_LINKS}[href='{href.rsplit('/', 1)[-1]}']").filter(visible=True)
        link.filter(has_not_text="Open the entry").nth(nth).hover()
        tooltip.first.wait_for(timeout=5_000)
        tips.append(tooltip.first.inner_text())
        if i == 0:
            page.screenshot(path=str(shots.with_suffix(".tooltip.png")))
        page.mouse.move(1, 1)  # off the link, so its tooltip closes before the next one opens
        expect(tooltip).to_have_count(0, timeout=5_000)
    return tips


def open_every_list(page, shots: Path) -> list[str]:
    """Open every select box and multiselect in the main area, then filter it to the hostile options;
    return the options each one showed."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    listbox = page.locator("[role='listbox']")
    boxes = page.locator("[data-testid='stMain'] :is([data-testid='stSelectbox'], [data-testid='stMultiSelect'])")
    shown = []
    for i in range(steady(boxes.count)):
        box = boxes.nth(i)
        box.scroll_into_view_if_needed()
        page.wait_for_timeout(200)  # a list closes when the page scrolls under it
        box.locator("input").first.click()
        try:
            listbox.first.wait_for(timeout=1_000)
        except PlaywrightTimeout:  # a click on a box that has a value may only focus it
            box.get_by_role("button", name="Open").click()
            listbox.first.wait_for(timeout=5_000)
        shown.append(listbox.first.inner_text())
        page.keyboard.type("quokka")  # long lists show only their first options
        page.wait_for_timeout(200)
        if listbox.count():
            shown[-1] += "\n" + listbox.first.inner_text()
        if "Quokka" in shown[-1]:
            page.screenshot(path=str(shots.with_name(f"{shots.name}.list-{i}.png")))
        page.keyboard.press("Escape")
        page.keyboard.press("Escape")  # the second clears what was typed
        listbox.first.wait_for(state="detached", timeout=5_000)
    return shown


def chips(page) -> list[str]:
    """The chosen values shown in the multiselects."""
    return page.locator("[data-testid='stMultiSelect'] [data-tag]").all_inner_texts()


def hover_chart_marks(page, shots: Path, word: str) -> list[str]:
    """Hover the bars and points of every chart whose data mention a word (or a chart's first bar, where
    none does) and return the text of each Vega tooltip. Vega writes its tooltip as HTML from the data,
    so the tooltip must hold nothing but its own table."""
    tooltip = page.locator("#vg-tooltip-element.visible")
    tags = "() => [...document.querySelectorAll('#vg-tooltip-element *')].map(e => e.tagName)"
    charts = page.locator("[data-testid='stVegaLiteChart']")
    tips = []
    for c in range(charts.count()):
        marks = charts.nth(c).locator("svg .role-mark path")
        labels = [marks.nth(i).get_attribute("aria-label") or "" for i in range(marks.count())]
        for i in [i for i, label in enumerate(labels) if word in label] or [0]:
            page.mouse.move(1, 1)  # off the chart, so the last tooltip (which may cover this mark) closes
            tooltip.wait_for(state="hidden", timeout=5_000)
            marks.nth(i).hover(force=True)  # points overlap: the one on top shows its tooltip
            tooltip.wait_for(timeout=5_000)
            tips.append(tooltip.inner_text())
            assert set(page.evaluate(tags)) <= {"TABLE", "TBODY", "TR", "TD", "H2"}, "markup in a Vega tooltip"
            if word in tips[-1] and not shots.with_name(f"{shots.name}.chart-{c}.png").exists():
                page.screenshot(path=str(shots.with_name(f"{shots.name}.chart-{c}.png")))
    return tips


def test_hostile_labels_and_tooltips_fetch_nothing(app, page, recorder, tmp_path):
    started = time.monotonic()
    watch = Watch(page)
    shots = tmp_path / "shots"
    shots.mkdir()

    # Search: hover each result's title link; open every filter (organisations and themes in the lists).
    page.goto(
        f"{app}/?q={quote_plus('quokka beacon register reconciliation')}&theme={quote_plus(hostile_theme(recorder))}"
    )
    page.get_by_text("Matched in:").first.wait_for()
    settle(page)
    tips = hover_entry_links(page, shots / "search")
    assert any(t.startswith(f"{BEACON_TITLE} ![title](") for t in tips), f"titles shown as text: {tips}"
    lists = open_every_list(page, shots / "search")
    assert len(lists) == 10, "8 facet multiselects (evidence, tag and team among them) and the 2 year select boxes"
    assert any(f"{BEACON_ORGANISATION} ![organisation](" in t for t in lists), lists
    for hostile in ("quokka ![tag](", "Quokka team ![team]("):  # the tag and team facets show them as text
        assert any(hostile in t for t in lists), (hostile, lists)
    assert any(t.startswith(f"{BEACON_THEME} ![theme](") for t in chips(page)), "the chosen theme, as text"

    # Text from the URL echoed back: a query with no results, an unknown entry id.
    page.goto(f"{app}/?q={quote_plus(beacons(recorder, 'query'))}&organisation=Nobody")
    page.get_by_text("No entries matched").wait_for()
    page.goto(f"{app}/entry?id={quote(beacons(recorder, 'entry-id'))}")
    page.get_by_text("There is no entry").wait_for()
    settle(page)

    # The entry: its facts, sections and panels, then its similar projects, related and reused-by links.
    page.goto(f"{app}/entry?id={BEACON_ID}")
    page.get_by_text("Similar projects", exact=True).wait_for()
    settle(page)
    tips = hover_entry_links(page, shots / "entry")
    assert len(tips) >= 3, "similar projects, related entries and reuses"

    # Editing it: its partners, tags, data sources and themes in the chips; titles in the entry lists.
    page.goto(f"{app}/submit?edit={BEACON_ID}")
    page.get_by_text("Looks similar to…").wait_for()
    settle(page)
    lists = open_every_list(page, shots / "submit")
    assert len(lists) == 10, "partners, outcome, themes, evidence, visibility, tags, sources, stage, reused, related"
    assert any(SECOND_TITLE in t for t in lists), "a hostile title among the entries to link, as text"
    chosen = chips(page)
    for text in ("Quokka Partner ![partner](", "quokka ![tag](", "Quokka register ![data-source](", FIRST_TITLE):
        assert any(t.startswith(text) for t in chosen), f"{text!r} is among the chosen values, as text: {chosen}"

    # The showcase: the theme and stage filters, and the links to entries that reused a lighthouse.
    page.goto(f"{app}/showcase")
    page.get_by_text("Quokka beacon impact").wait_for()
    settle(page)
    lists = open_every_list(page, shots / "showcase")
    assert any(f"{BEACON_THEME} ![theme](" in t for t in lists), lists
    tips = hover_entry_links(page, shots / "showcase")
    assert FIRST_TITLE in tips, tips

    # Insights: the tooltips of the bars and points that show hostile values, and a bar of every other chart.
    page.goto(f"{app}/insights")
    page.get_by_text("Map of the collection", exact=True).wait_for()
    page.locator("[data-testid='stVegaLiteChart']").nth(5).locator("svg .role-mark path").first.wait_for()
    settle(page)
    tips = hover_chart_marks(page, shots / "insights", "Quokka")
    assert len(tips) >= 6, "a tooltip from each of the six charts"
    for text in (f"{BEACON_TITLE} ![title](", f"{BEACON_ORGANISATION} ![organisation](", f"{BEACON_THEME} ![theme]("):
        assert any(text in t for t in tips), f"{text!r} is in a chart tooltip, as text"
    legend = page.locator(".lh-legend li").all_inner_texts()  # the map's legend, drawn as HTML beside it
    assert any(t.startswith(f"{BEACON_THEME} ![theme](") for t in legend), f"the theme as text: {legend}"

    page.wait_for_timeout(500)  # room for any image to start loading
    watch.assert_nothing_escaped(app, recorder)
    seconds = time.monotonic() - started  # a figure to watch, not a timed test
    print(f"{len(tips)} chart tooltips; {len(watch.requests)} requests, all to the app; {seconds:.0f}s")
