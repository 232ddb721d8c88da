"""Hostile entry text in a real browser: shown as text, never run, never fetched from elsewhere.

Two entry files whose title, summary, sections, lighthouse panel and contact carry a script tag, an
image with an onerror handler, a `javascript:` Markdown link, a Markdown image beacon, an iframe and a
raw <a href> pointing at 198.51.100.7 (a documentation address: nothing is there) are added to the copy
of the sample entries before the app starts. Chromium then opens the entry page, a search that shows
the hostile passage, and the submit page's "Looks similar to…" panel, and the test checks that no
dialog fired, that `window.__pwned` was never set, that nothing was requested from any host but the
app's own, and that the hostile text is on the entry page as text.

Uses the server, browser and settle helpers of tests/test_browser.py. Skips when /usr/bin/chromium
or Playwright is absent; fails instead when CI=true.
"""

from __future__ import annotations

import textwrap
import time
from pathlib import Path
from urllib.parse import quote_plus, urlsplit

import pytest
import yaml

try:  # `python -m pytest` from the repository root puts the root on sys.path
    from tests.test_browser import page, screenshot, server, settle  # noqa: F401 (page, server: fixtures)
except ImportError:  # plain `pytest`: only tests/ is on sys.path
    from test_browser import page, screenshot, server, settle  # noqa: F401

pytestmark = pytest.mark.browser

SCRIPT = "<script>window.__pwned=1</script>"
IMG = '<img src=x onerror="window.__pwned=2">'
JS_LINK = "[click](javascript:window.__pwned=3)"
BEACON = "![b](http://198.51.100.7/beacon.png)"
IFRAME = '<iframe src="http://198.51.100.7/"></iframe>'
RAW_LINK = '<a href="http://198.51.100.7/x">raw link</a>'
HOSTILE = f"{SCRIPT} {IMG} {JS_LINK} {BEACON} {IFRAME} {RAW_LINK}"
LOCAL_HOSTS = {"127.0.0.1", "localhost"}

FIRST_ID = "quokka-ledger-hostile-entry"
FIRST_TITLE = f"Quokka ledger {SCRIPT} {IMG}"
SECOND_ID = "quokka-ledger-hostile-lighthouse"
SECOND_TITLE = f"Quokka ledger lighthouse {IMG}"


def entry_file(fields: dict, sections: dict[str, str]) -> str:
    body = "\n\n".join(f"## {name}\n\n{text.strip()}" for name, text in sections.items())
    return f"---\n{yaml.safe_dump(fields, sort_keys=False, allow_unicode=True, width=1000)}---\n\n{body}\n"


def common_fields(entry_id: str, title: str) -> dict:
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
        "themes": ["data-governance"],
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


@pytest.fixture
def hostile_entries(tmp_path) -> Path:
    """Written into tmp_path/entries before `server` copies the sample entries beside them and starts."""
    folder = tmp_path / "entries"
    folder.mkdir(parents=True, exist_ok=True)
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
    first = common_fields(FIRST_ID, FIRST_TITLE) | {"related": [SECOND_ID]}
    (folder / f"{FIRST_ID}.md").write_text(entry_file(first, sections), encoding="utf-8")
    second = common_fields(SECOND_ID, SECOND_TITLE) | {
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
    return folder


@pytest.fixture
def app(hostile_entries, server) -> str:
    """The app, started only after the hostile entries are in its entries folder."""
    return server


def pwned(page) -> object:
    return page.evaluate("() => window.__pwned === undefined ? null : window.__pwned")


def test_hostile_entry_text_is_shown_not_run(app, page, tmp_path):
    started = time.monotonic()
    requests: list[str] = []
    dialogs: list[str] = []
    pages = [page]

    def watch(tab) -> None:
        tab.on("dialog", lambda d: (dialogs.append(f"{d.type}: {d.message}"), d.dismiss()))

    # Every request from the tab and from any tab it opens (a link clicked may open a new one).
    page.context.on("request", lambda r: requests.append(r.url))
    page.context.on("page", lambda tab: (pages.append(tab), watch(tab)))
    watch(page)

    # The entry page: title, summary, sections, facts, lighthouse panel, contact, similar and related.
    page.goto(f"{app}/entry?id={FIRST_ID}")
    page.get_by_text("Similar projects", exact=True).wait_for()
    settle(page)
    page.wait_for_timeout(1000)  # room for any image or frame to start loading
    text = page.evaluate("() => document.body.innerText")
    for hostile in (SCRIPT, IMG, "raw link"):
        assert hostile in text, f"{hostile!r} is shown as text on the entry page"
    assert page.locator("iframe[src*='198.51.100.7'], img[src*='198.51.100.7'], img[src='x']").count() == 0
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
        for tab in pages:
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

    for tab in pages:
        if not tab.is_closed() and tab.url.startswith(app):
            assert pwned(tab) is None, f"window.__pwned was set in {tab.url}"
    assert not dialogs, f"dialogs fired: {dialogs}"
    offenders = sorted(
        {
            u
            for u in requests
            if urlsplit(u).scheme not in ("data", "blob", "about") and urlsplit(u).hostname not in LOCAL_HOSTS
        }
    )
    assert not offenders, f"requests went to other hosts: {offenders}"
    assert any(urlsplit(u).hostname in LOCAL_HOSTS for u in requests), "requests were recorded"
    assert time.monotonic() - started < 60, "the browser part took over a minute"
    print(f"clicked {len(hrefs)} `click` link(s), hrefs {hrefs}; {len(requests)} requests, all to the app")
