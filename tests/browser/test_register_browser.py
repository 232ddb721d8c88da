"""A register that is not ours, in a real browser: about 300 of NASA's lessons, imported with the NASA
mapping as an organisation bringing its own register would, and every page checked for being useful on
them: tag and team facets that filter, searches to try taken from the collection, charts by tag with a
sentence where the register records no outcome, and the showcase and entry pages.

One app server for the module (the import and the first sync are the slow part). Skips when
../shared/data, /usr/bin/chromium or Playwright is absent; fails instead when CI=true.
"""

from __future__ import annotations

import csv
import json
import os
import re
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.browser import CHROMIUM
from kb.entries import NOT_RECORDED
from kb.importer import import_table, load_mapping
from kb.store import EntryStore
from tests.browser.conftest import chromium
from tests.browser.harness import (
    START_SECONDS,
    free_port,
    pick,
    settle,
    stop,
    streamlit_command,
    wait_until_healthy,
)
from tests.conftest import ROOT, SHARED_DATA, require

pytestmark = [pytest.mark.browser, pytest.mark.data]

NASA = SHARED_DATA / "nasa_llis"
EVERY = 7  # every 7th of the 2,101 lessons: 301 rows over fifty years, 69 of them with NASA's topics
STRAY_NUMBER = re.compile(r"\d\.\d{5,}")  # "0.000000": a number no person wrote


def nasa_sample(folder: Path) -> Path:
    """Every EVERY-th row of NASA's register as a CSV with the spreadsheet's own header, imported with the
    NASA mapping into folder/entries."""
    import openpyxl  # the header exactly as the spreadsheet names its columns

    book = openpyxl.load_workbook(NASA / "llis.xlsx", read_only=True)
    header = [cell.value for cell in next(book.worksheets[0].iter_rows(max_row=1))]
    book.close()
    with (NASA / "llis.jsonl").open(encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines][::EVERY]
    register = folder / "register.csv"
    with register.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for row in rows:  # the JSONL's keys are the spreadsheet's columns, in order, then its url
            writer.writerow(["" if value is None else value for value in list(row.values())[: len(header)]])
    report = import_table(EntryStore(folder / "entries"), register, load_mapping(ROOT / "mappings" / "nasa-llis.yaml"))
    assert len(report.created) >= 290 and not report.errors, report.errors
    return folder / "entries"


@pytest.fixture(scope="module")
def imported(tmp_path_factory) -> Path:
    """The entries folder the sample of NASA's register was imported into."""
    require(NASA.is_dir(), f"NASA's register is absent from {NASA}")
    return nasa_sample(tmp_path_factory.mktemp("nasa"))


@pytest.fixture(scope="module")
def lessons(imported) -> dict:
    """The imported lessons as the reader below sees them: published ones (all are public or internal)."""
    return {e.id: e for e in EntryStore(imported).load().entries.values() if e.status == "published"}


@pytest.fixture(scope="module")
def nasa(imported) -> Iterator[str]:
    """The app on the imported lessons, signed in as a NASA engineer (a contributor, not a reviewer)."""
    require(CHROMIUM.is_file(), f"{CHROMIUM} is absent; install it with `apt-get install chromium`")
    folder = imported
    port = free_port()
    env = {
        **os.environ,
        "KB_MODEL": "hashing-bow",
        "KB_ENTRIES_DIR": str(folder),
        "KB_INDEX_DIR": str(folder.parent / "index"),
        "KB_USER_NAME": "Katherine Johnson",
        "KB_USER_ORGANISATION": "NASA",
        "KB_USER_ROLES": "contributor",
    }
    env.pop("KB_CHROMA_URL", None)
    log = (folder.parent / "streamlit.log").open("w")
    process = subprocess.Popen(streamlit_command(port), cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process, START_SECONDS)
        yield url
    finally:
        stop(process)
        log.close()


@pytest.fixture(scope="module")
def browser(nasa):
    with chromium() as launched:
        yield launched


@pytest.fixture
def page(browser):
    tab = browser.new_page(viewport={"width": 1400, "height": 1000})
    tab.set_default_timeout(60_000)  # the first page load syncs the lessons
    yield tab
    tab.close()


def main_text(page) -> str:
    return page.locator("[data-testid='stMain']").inner_text()


def options_of(page, label: str) -> list[str]:
    """The options a multiselect filter offers, read by opening it."""
    page.locator("[data-testid='stMultiSelect']").filter(has_text=label).first.click()
    page.get_by_role("option").first.wait_for()  # the list is drawn after the click, later on a busy machine
    options = [o.strip() for o in page.get_by_role("option").all_inner_texts()]
    page.keyboard.press("Escape")
    return options


def matching(lessons: dict, **wanted: str) -> int:
    """How many lessons have every one of these values (a tag among their tags)."""
    return sum(
        1
        for e in lessons.values()
        if all(value in (e.tags if field == "tag" else [getattr(e, field)]) for field, value in wanted.items())
    )


def test_the_search_page_suggests_the_register_s_own_searches_and_filters_by_its_tags_and_teams(page, nasa, lessons):
    page.goto(nasa)
    page.get_by_text("Newest entries").wait_for(timeout=180_000)
    settle(page)
    text = main_text(page)
    caption = page.locator("[data-testid='stMain'] [data-testid='stCaptionContainer']").first.inner_text()
    placeholder = page.get_by_role("textbox", name="Search", exact=True).get_attribute("placeholder")
    for words in (caption, placeholder):  # nothing that speaks only to a civil servant
        assert not re.search(r"government|data sharing", words, re.IGNORECASE), words

    # What to try: the collection's most used tags (it has no themes), not fixed civil-service examples.
    tags = Counter(tag for e in lessons.values() for tag in e.tags)
    most_used = [tag for tag, _ in sorted(tags.items(), key=lambda kv: (-kv[1], kv[0]))[:5]]
    tried = page.locator("[data-testid='stMain'] [data-testid='stButton'] button").all_inner_texts()
    suggestions = [t.replace("search", "", 1).strip() for t in tried if t.strip()]
    assert suggestions == most_used, (suggestions, most_used)
    titles = {e.title for e in lessons.values()}
    newest = page.locator("[data-testid='stMain'] a[href*='entry?id=']").filter(visible=True).all_inner_texts()
    assert newest and all(t.strip() in titles for t in newest), newest

    # The register records no outcome: every lesson says so, never a guess such as "Partial".
    assert {e.outcome for e in lessons.values()} == {NOT_RECORDED}
    assert "Outcome: Not recorded" in text and "Partial" not in text
    assert options_of(page, "Outcome") == [f"Not recorded ({len(lessons)})"]

    # Tag and team facets are offered, with counts, and filter.
    teams = Counter(e.team for e in lessons.values() if e.team)
    team, count = teams.most_common(1)[0]
    assert f"{team} ({count})" in options_of(page, "Team")
    pick(page, "Team", team)
    page.wait_for_url(re.compile(rf"team={team}"))
    settle(page)
    assert f"{count} entries match these filters" in main_text(page)
    tag = Counter(t for e in lessons.values() if e.team == team for t in e.tags).most_common(1)[0][0]
    both = matching(lessons, team=team, tag=tag)
    assert f"{tag} ({both})" in options_of(page, "Tag"), "a facet counts within the other filters"
    pick(page, "Tag", tag)
    page.wait_for_url(re.compile(r"tag="))
    settle(page)
    assert f"{both} entr{'ies' if both != 1 else 'y'} match these filters" in main_text(page)


def test_a_search_leads_to_a_lesson_page_that_says_whom_to_ask(page, nasa, lessons):
    page.goto(f"{nasa}/?q=parachute&mode=keyword")
    page.get_by_text(re.compile(r"best match(es)? among|close match")).first.wait_for(timeout=180_000)
    settle(page)
    first = page.locator("[data-testid='stMain'] a[href*='entry?id=']").filter(visible=True).first
    title = first.inner_text().strip()
    lesson = next(e for e in lessons.values() if e.title == title)
    assert "parachute" in (lesson.title + lesson.summary + " ".join(lesson.sections.values())).lower()
    first.click()
    page.get_by_text("Similar projects", exact=True).wait_for()
    settle(page)
    text = main_text(page)
    assert lesson.title in text and "Outcome: Not recorded" in text
    assert f"Team: {lesson.team}" in text and "Traceback" not in text


def test_insights_charts_tags_and_never_counts_an_unrecorded_outcome_as_a_failure(page, nasa, lessons):
    page.goto(f"{nasa}/insights")
    page.get_by_text("Map of the collection").wait_for(timeout=180_000)
    settle(page)
    page.locator("[data-testid='stVegaLiteChart'] svg").last.wait_for()
    text = main_text(page)  # the charts are SVG: their titles, axes and legends are text too
    assert not STRAY_NUMBER.search(text), STRAY_NUMBER.search(text)
    assert "Entries by tag" in text and "Entries by theme" not in text
    assert "Entries by outcome" not in text, "one bar as tall as the collection is not a chart"
    assert f"None of these {len(lessons)} entries records how its work turned out" in text
    failed = page.locator("[data-testid='stMetric']").filter(has_text="Failed or stopped")
    assert "Not recorded" in failed.inner_text() and "0%" not in failed.inner_text()
    assert "there is no pattern of failures to show" in text
    charts = page.locator("[data-testid='stVegaLiteChart']").all_inner_texts()
    assert not [c for c in charts if "Failed or stopped" in c], "no chart of failures that are all zero"
    by_year = next(c for c in charts if "Entries by year started" in c)
    assert "Succeeded" not in by_year and "Partial" not in by_year, "the legend names only what is drawn"
    the_key = page.locator(".lh-legend").last.inner_text()  # the map's key: a list beside the map
    assert "No theme" not in the_key, "a collection without themes is coloured by its tags"
    assert "Most used tag" in the_key and "First theme" not in the_key, the_key
    top_tag = Counter(t for e in lessons.values() for t in e.tags).most_common(1)[0][0]
    assert top_tag in the_key


def test_the_showcase_offers_no_empty_theme_filter(page, nasa):
    page.goto(f"{nasa}/showcase")
    page.get_by_text("No lighthouse projects yet").wait_for(timeout=180_000)
    settle(page)
    text = main_text(page)
    assert "sharing data across teams" not in text
    assert not page.locator("[data-testid='stMultiSelect']").filter(has_text="Theme").count()
    assert page.locator("[data-testid='stMultiSelect']").filter(has_text="Stage").count() == 1
