"""Downloads in a real browser: the search page's every result and the showcase's projects, as files.

Skips when /usr/bin/chromium or Playwright is absent; fails instead when CI=true.
"""

from __future__ import annotations

import csv
import io
import re

import openpyxl
import pytest

# Every test here only reads (saves, signs in and changes nothing): they share one app.
pytestmark = [pytest.mark.browser, pytest.mark.reads_only]


def downloaded(page, button: str) -> tuple[str, bytes]:
    with page.expect_download() as info:
        page.get_by_role("button", name=button).click()
    download = info.value
    return download.suggested_filename, download.path().read_bytes()


def test_search_results_download_every_page_as_csv_and_excel(page, server):
    page.goto(f"{server}/?q=data+sharing")
    caption = page.get_by_text(re.compile(r"page 1 of \d+")).first
    caption.wait_for()
    shown = int(re.search(r"(\d+) close match|(\d+) best match", caption.inner_text()).group(0).split()[0])
    loose = re.search(r"then (\d+) loosely related", caption.inner_text())
    total = shown + (int(loose.group(1)) if loose else 0)
    assert total > 10  # more than the page on screen

    name, data = downloaded(page, "Download as CSV")
    assert name == "lighthouse-data-sharing.csv"
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    assert len(rows) == total
    first_title = page.locator("[data-testid='stMain'] a[href*='entry?id='] strong").first.inner_text()
    assert rows[0]["title"] == first_title  # in the order shown

    name, data = downloaded(page, "Download as Excel")
    assert name == "lighthouse-data-sharing.xlsx"
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    header, *cells = sheet.iter_rows(values_only=True)
    assert [dict(zip(header, row, strict=True))["id"] for row in cells] == [r["id"] for r in rows]
    assert page.get_by_text(re.compile(r"page 1 of \d+")).first.is_visible()  # the page did not rerun away


def test_the_showcase_downloads_the_projects_shown(page, server):
    page.goto(f"{server}/showcase")
    # the buttons are drawn after the gallery, so once they show every card is on the page
    page.get_by_role("button", name="Download as CSV").wait_for()
    shown = page.locator("[data-testid='stMain'] a[href*='entry?id='] strong").all_inner_texts()
    name, data = downloaded(page, "Download as CSV")
    assert name == "lighthouse-showcase.csv"
    rows = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))
    titles = [r["title"] for r in rows]
    assert sorted(titles) == sorted(set(shown))  # the gallery lays the cards out in three columns
    assert titles[0] == shown[0]  # most reused first
