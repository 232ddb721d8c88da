"""Downloads of search results and the showcase: every page of them, under the reader's own rules."""

from __future__ import annotations

import csv
import io
from dataclasses import replace

import openpyxl
import pytest

from kb import Filters, browse, showcase
from kb.access import ANONYMOUS, can_see, entry_meta
from kb.browse import SearchRequest
from kb.exporter import WITHHELD_COLUMN
from kb.identity import User

HOME_AFFAIRS = User("Carl Contributor", "Home Affairs Department", ("contributor",))
ORGANISATION_ONLY = "chatbot-for-policy-guidance-withdrawn"  # Home Affairs, visibility organisation, anonymous
SIGNED_IN_ONLY = "customs-declaration-data-lake-migration"  # visibility internal


def csv_rows(data: bytes) -> list[dict[str, str]]:
    assert data.startswith("\ufeff".encode())  # Excel opens the UTF-8 file with its accents intact
    return list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"))))


def xlsx_rows(data: bytes) -> list[dict[str, object]]:
    sheet = openpyxl.load_workbook(io.BytesIO(data)).active
    header, *rows = sheet.iter_rows(values_only=True)
    return [dict(zip(header, row, strict=True)) for row in rows]


def every_page(kb, request: SearchRequest, viewer) -> list[str]:
    first = browse.find(kb, request, viewer)
    pages = [first, *(browse.find(kb, replace(request, page=p), viewer) for p in range(2, first.pages + 1))]
    return [h.id for r in pages for h in r.hits] or [e.id for r in pages for e in r.newest]


@pytest.mark.parametrize(
    "request_",
    [
        SearchRequest(query="data sharing"),
        SearchRequest(query="records", mode="keyword"),
        SearchRequest(facets=Filters.of(outcome=("failed", "stopped"))),
    ],
    ids=["hybrid", "keyword", "filters"],
)
def test_every_match_is_every_page_in_the_order_shown(kb, request_):
    ids = browse.every_match(kb, request_, ANONYMOUS)
    assert len(ids) > browse.PAGE_SIZE  # more than one page, or the test proves nothing
    assert ids == every_page(kb, request_, ANONYMOUS)
    assert len(ids) == browse.find(kb, request_, ANONYMOUS).total


def test_a_download_holds_exactly_the_entries_asked_for_in_their_order(kb):
    ids = browse.every_match(kb, SearchRequest(query="data sharing agreement"), ANONYMOUS)
    for fmt, read in (("csv", csv_rows), ("xlsx", xlsx_rows)):
        rows = read(browse.download(kb, ids, fmt, ANONYMOUS))
        assert [r["id"] for r in rows] == ids, fmt


@pytest.mark.parametrize("fmt", ["csv", "xlsx"])
def test_a_hidden_entry_is_left_out_exactly_like_a_missing_one(kb, fmt):
    visible = browse.every_match(kb, SearchRequest(query="data"), ANONYMOUS)[:3]
    asked = [*visible, SIGNED_IN_ONLY, ORGANISATION_ONLY]
    with_hidden = browse.download(kb, asked, fmt, ANONYMOUS)
    with_missing = browse.download(kb, [*visible, "no-such-entry", "nor-this-one"], fmt, ANONYMOUS)
    read = csv_rows if fmt == "csv" else xlsx_rows
    assert [r["id"] for r in read(with_hidden)] == visible
    assert read(with_hidden) == read(with_missing)
    if fmt == "csv":
        assert with_hidden == with_missing


def test_a_reader_gets_an_anonymous_entry_without_whom_to_ask_and_the_file_says_so(kb):
    entry = kb.store.get(ORGANISATION_ONLY)
    assert entry.anonymous and entry.team and entry.contact  # stored, but not for this reader
    assert can_see(HOME_AFFAIRS, entry_meta(entry))
    (row,) = csv_rows(browse.download(kb, [ORGANISATION_ONLY], "csv", HOME_AFFAIRS))
    assert row["team"] == row["contact"] == row["author"] == ""
    assert {"team", "contact", "author"} <= set(row[WITHHELD_COLUMN].split("; "))
    (full,) = csv_rows(browse.download(kb, [ORGANISATION_ONLY], "csv", None))
    assert full["team"] == entry.team and full["contact"] == entry.contact


def test_cells_a_spreadsheet_would_run_are_text_in_csv_and_excel(kb, entries_dir):
    path = entries_dir / "health-and-social-care-record-matching-trial.md"
    text = path.read_text(encoding="utf-8")
    title = next(line for line in text.splitlines() if line.startswith("title:"))
    path.write_text(text.replace(title, 'title: "=HYPERLINK(\\"http://evil.example\\", \\"Open\\")"'), encoding="utf-8")
    kb.sync()
    entry_id = "health-and-social-care-record-matching-trial"
    (row,) = csv_rows(browse.download(kb, [entry_id], "csv", ANONYMOUS))
    assert row["title"] == '\'=HYPERLINK("http://evil.example", "Open")'
    workbook = openpyxl.load_workbook(io.BytesIO(browse.download(kb, [entry_id], "xlsx", ANONYMOUS)))
    cells = [cell for row in workbook.active.iter_rows() for cell in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]  # no formula anywhere
    assert '\'=HYPERLINK("http://evil.example", "Open")' in [c.value for c in cells]


def test_the_showcase_download_is_the_cards_shown(kb):
    cards = showcase.lighthouses(kb, viewer=ANONYMOUS)
    assert cards
    ids = [c.entry.id for c in cards]
    assert [r["id"] for r in xlsx_rows(browse.download(kb, ids, "xlsx", ANONYMOUS))] == ids


def test_a_control_character_in_an_entry_does_not_break_the_workbook(kb, entries_dir):
    """A workbook cannot hold most control characters; a form or a hand-edited file may carry one."""
    path = entries_dir / "health-and-social-care-record-matching-trial.md"
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("## Context\n\n", "## Context\n\nBell\x07 and escape\x1b here. "), encoding="utf-8")
    kb.sync()
    entry_id = "health-and-social-care-record-matching-trial"
    assert "\x07" in kb.store.get(entry_id).sections["Context"]
    (row,) = xlsx_rows(browse.download(kb, [entry_id], "xlsx", ANONYMOUS))
    assert "Bell and escape here." in row["section: Context"]
