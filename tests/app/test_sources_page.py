"""The Data sources page through AppTest: the list links every source, a source shows the entries that used
it, their grades side by side and over time (chart and the same data as a table), hidden uses stay hidden,
and an unknown source answers like a missing one."""

from __future__ import annotations

from urllib.parse import parse_qs

from app_pages.ui import plain
from kb import KnowledgeBase, Settings, sources
from kb.embedder import HashingEmbedder
from kb.identity import local_user
from tests.app.test_app import assert_clean, linked_ids, open_app, texts
from tests.app.test_insights_page import chart_data


def source_links(at) -> list[str]:
    return [v[0] for link in at.get("page_link") if (v := parse_qs(link.proto.query_string).get("source"))]


def catalogue(entries_dir):
    """The library's catalogue for the person the app runs as: the oracle for the page's list."""
    settings = Settings(entries_dir=entries_dir, index_dir=entries_dir.parent / "index", chroma_url=None, model="x")
    return sources.catalogue(KnowledgeBase(settings, embedder=HashingEmbedder()), local_user())


def test_the_list_links_every_source_and_finds_by_name(entries_dir):
    at = open_app("sources")
    assert_clean(at)
    expected = [s.id for s in catalogue(entries_dir)]
    assert source_links(at) == expected  # the library's order, most used first
    at.text_input(key="sources_find").input("census").run()
    census = [s.id for s in catalogue(entries_dir) if any("census" in n.lower() for n in (s.label, *s.names))]
    assert source_links(at) == census and "school-census" in census
    at.text_input(key="sources_find").input("").run()
    at.toggle(key="sources_graded").set_value(True).run()
    graded = {s.id for s in catalogue(entries_dir) if s.graded}
    assert set(source_links(at)) - {None} == graded


def test_a_source_shows_its_entries_grades_side_by_side_and_over_time(entries_dir):
    at = open_app("sources", source="school-census")
    assert_clean(at)
    assert at.title[0].value == "School census"
    assert linked_ids(at) == ["open-api-for-school-census-data", "school-meals-auto-enrolment-data-share"]
    page = texts(at, "markdown")
    assert "| Dimension |" in page and "| Timeliness |" in page and "Published once a year" in page
    assert "Department for Education and Skills" in page
    ((spec, data),) = chart_data(at)
    assert spec["mark"]["type"] == "line"
    assert sorted(set(data["when"])) == ["2022-03", "2023-09"]
    (table,) = at.table  # the chart's data again, for screen readers
    assert len(table.value) == len(data["when"])


def test_an_anonymous_use_names_no_team_and_a_hidden_or_unknown_source_is_not_found(entries_dir):
    at = open_app("sources", source="Vehicle keeper register")
    assert_clean(at)
    page = texts(at, "markdown")
    assert "Department for Transport and Infrastructure" in page
    assert "Vehicle Compliance Analytics" not in page  # the anonymous entry's team
    for name in ("no-such-register",):
        missing = open_app("sources", source=name)
        assert_clean(missing)
        assert missing.title[0].value == "Data source not found"


def test_the_entry_page_shows_its_grades_and_links_each_source_to_the_catalogue(entries_dir):
    at = open_app("entry", id="school-meals-auto-enrolment-data-share")
    assert_clean(at)
    assert {"school-census", "benefit-claimant-records"} <= set(source_links(at))
    page = texts(at, "markdown")
    assert f"Graded {plain('2023-09')}:" in page
    note = plain("Termly: a pupil who moves school in October is missing until January")
    assert f"- Timeliness: **Fair** ({note})" in page


def test_data_quality_and_evidence_are_search_facets(entries_dir):
    at = open_app("search")
    assert_clean(at)
    labels = [m.label for m in at.multiselect]
    assert "Evidence" in labels and "Data quality" in labels
    quality = next(m for m in at.multiselect if m.label == "Data quality")
    assert quality.options == ["Poor (4)", "Fair (3)", "Good (2)"]  # each entry's worst grade, counted
    poor = open_app("search", quality="poor")
    assert_clean(poor)
    expected = {
        "open-api-for-school-census-data",
        "benefits-and-housing-data-sharing-pilot",
        "analysis-platform-licence-costs-overrun",
        "land-and-property-register-interoperability",
    }
    assert set(linked_ids(poor)) == expected
