"""The Insights page through AppTest: the map's list view, the view kept in the address, the failing bars'
links to the search page, and a collection without themes charted by its tags.

The map's own data (the points Vega draws) is the oracle for the list; kb.insights and the search page's
request model are the oracle for the links.
"""

from __future__ import annotations

import json
from urllib.parse import parse_qs

import pyarrow as pa
import yaml
from streamlit.testing.v1 import AppTest

from app_pages import ui
from kb import KnowledgeBase, Settings, browse, insights
from kb.browse import SearchRequest
from kb.identity import local_user
from tests.app.test_app import APP, assert_clean, linked_ids, open_app

MIN_THEME_ENTRIES = 3  # the page's rule: a theme needs this many entries for its failing bar


def chart_data(at: AppTest) -> list[tuple[dict, dict]]:
    """(spec, data as columns) for each chart on the page."""
    found = []
    for chart in at.get("vega_lite_chart"):
        (dataset,) = chart.proto.datasets
        found.append((json.loads(chart.proto.spec), pa.ipc.open_stream(dataset.data.data).read_all().to_pydict()))
    return found


def map_points(at: AppTest) -> dict:
    """The data of the map of the collection: the chart with a point for each entry."""
    (points,) = [data for spec, data in chart_data(at) if spec.get("mark", {}).get("type") == "circle"]
    return points


def failing_bars(at: AppTest) -> dict:
    (bars,) = [data for spec, data in chart_data(at) if "href" in spec.get("encoding", {})]
    return bars


def search_links(at: AppTest) -> list[SearchRequest]:
    """The page's links to the search page, as the requests they open."""
    return [
        SearchRequest.from_params(parse_qs(link.proto.query_string))
        for link in at.get("page_link")
        if link.proto.page.endswith("search.py") or link.proto.page == ""
    ]


def test_the_list_view_shows_the_entries_on_the_map(entries_dir):
    at = open_app("insights")
    assert_clean(at)
    points = map_points(at)
    assert len(points["id"]) == 40  # the published entries this user may see
    assert not linked_ids(at), "the map view has no entry links"

    at.segmented_control(key="view").set_value("List").run()
    assert_clean(at)
    assert not [s for s, _ in chart_data(at) if s.get("mark", {}).get("type") == "circle"], "the list replaces the map"
    assert sorted(linked_ids(at)) == sorted(points["id"])
    headings = [m.value for m in at.markdown if m.value.startswith("**")]
    for theme in set(points["theme"]):
        count = points["theme"].count(theme)
        assert f"**{ui.plain(theme)}** ({count})" in headings, theme
    captions = [c.value for c in at.caption]
    for outcome, organisation in zip(points["outcome"], points["organisation"], strict=True):
        assert f"Outcome: {outcome} · {ui.plain(organisation)}" in captions


def open_fresh(**query: str) -> AppTest:
    """The Insights page opened at an address with these query parameters, its widgets not drawn yet in
    this session: a shared link, a bookmark, or Back to it from another page."""
    at = AppTest.from_file(APP, default_timeout=60).run()
    at.switch_page(ui.INSIGHTS_PAGE)  # switching clears the address; the new one is set before the page runs
    at.query_params.update(query)
    return at.run()


def test_the_view_lives_in_the_address(entries_dir):
    """The view chosen goes into the address (?view=List), and the address opens it again: a shared link,
    or Back from an entry (tests/browser/test_insights_browser.py follows Back in the browser)."""
    at = open_app("insights")
    assert at.segmented_control(key="view").value == "Map" and "view" not in at.query_params
    at.segmented_control(key="view").set_value("List").run()
    assert at.query_params["view"] == "List" and len(linked_ids(at)) == 40
    at.segmented_control(key="view").set_value("Map").run()
    assert "view" not in at.query_params, "the map is the default: the address stays short"
    assert not linked_ids(at)
    shared = open_fresh(view="List")
    assert_clean(shared)
    assert shared.segmented_control(key="view").value == "List" and shared.query_params["view"] == "List"
    assert len(linked_ids(shared)) == 40
    mapped = open_fresh(view="Map")
    assert mapped.segmented_control(key="view").value == "Map" and not linked_ids(mapped)
    odd = open_fresh(view="Bogus")  # a hand-edited link still opens, on the map
    assert_clean(odd)
    assert odd.segmented_control(key="view").value == "Map" and not linked_ids(odd)


def test_each_failing_bar_and_its_text_link_open_the_search_for_its_failures(entries_dir):
    at = open_app("insights")
    bars = failing_bars(at)
    links = search_links(at)
    base = KnowledgeBase(Settings())
    data = insights.insights(base, viewer=local_user())
    expected = data.failures_by_theme[data.failures_by_theme["entries"] >= MIN_THEME_ENTRIES].head(15)
    assert list(bars["label"]) == list(expected["label"])
    for theme, href in zip(bars["theme"], bars["href"], strict=True):
        assert href == ui.search_href(insights.failures_search(theme, "theme"))
    failed = expected[expected["failed_or_stopped"] > 0]  # a bar of no failures has no text link
    assert len(failed) >= 10
    assert [r.facets.theme for r in links] == [(t,) for t in failed["theme"]]
    for request, row in zip(links, failed.itertuples(), strict=True):
        assert request == insights.failures_search(row.theme, "theme")
        found = browse.find(base, request, local_user())
        assert found.total == row.failed_or_stopped, row.label


def test_link_text_says_how_many_failed(entries_dir):
    at = open_app("insights")
    labels = [link.proto.label for link in at.get("page_link") if "outcome=failed" in link.proto.query_string]
    assert "Data quality (8 of 14)" in [label.replace("\\", "") for label in labels]


def test_a_collection_without_themes_is_charted_and_linked_by_its_tags(empty_entries_dir):
    for n in range(6):
        fields = {
            "id": f"lesson-{n}",
            "title": f"Lesson {n} on the thermal system",
            "summary": "What the team learned.",
            "kind": "project",
            "outcome": ("failed", "succeeded")[n % 2],
            "organisation": "NASA",
            "status": "published",
            "visibility": "public",
            "tags": ["Mission Operations", "Software"][: 1 + n % 2],
        }
        front = yaml.safe_dump(fields, sort_keys=False)
        (empty_entries_dir / f"lesson-{n}.md").write_text(f"---\n{front}---\n\n## Lessons\n\nLesson {n}.\n")
    at = open_app("insights")
    assert_clean(at)
    assert "Entries by tag" in [spec.get("title") for spec, _ in chart_data(at)]
    links = search_links(at)
    assert links == [insights.failures_search("Mission Operations", "tag")], "Software (3 entries) never failed"
    bars = failing_bars(at)
    assert bars["label"] == ["Mission Operations", "Software"]
    assert bars["href"] == [ui.search_href(insights.failures_search(t, "tag")) for t in bars["label"]]
    at.segmented_control(key="view").set_value("List").run()
    assert sorted(linked_ids(at)) == [f"lesson-{n}" for n in range(6)]
