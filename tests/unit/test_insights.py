"""Insights: counts of published entries, failures by theme, and the 2-D map of the collection."""

from __future__ import annotations

import numpy as np
import pytest

from kb import insights


def test_insights_counts_published_entries(kb):
    data = insights.insights(kb)
    published = len(kb.index.entry_ids({"status": "published"}))
    assert data.entries == published == data.by_outcome["entries"].sum()
    assert data.by_year["entries"].sum() <= published
    assert 0 < data.failed_share < 1
    shares = data.failures_by_theme["share"].tolist()
    assert shares == sorted(shares, reverse=True)
    row = data.failures_by_theme.iloc[0]
    assert row["share"] == pytest.approx(row["failed_or_stopped"] / row["entries"])


def test_insights_on_an_empty_collection(fake_embedder, tmp_path):
    from kb import KnowledgeBase, Settings

    (tmp_path / "no-entries").mkdir()
    empty = KnowledgeBase(
        Settings(entries_dir=tmp_path / "no-entries", index_dir=tmp_path / "i"), embedder=fake_embedder
    )
    empty.sync()
    data = insights.insights(empty)
    assert data.entries == 0 and data.by_theme.empty and data.failed_share == 0
    assert insights.collection_map(empty).empty


def test_project_2d_is_deterministic_and_handles_small_inputs():
    rng = np.random.default_rng(1)
    vectors = rng.normal(size=(20, 8))
    first, second = insights.project_2d(vectors), insights.project_2d(vectors.copy())
    assert first.shape == (20, 2) and np.allclose(first, second)
    assert np.allclose(first.mean(axis=0), 0, atol=1e-5)
    assert insights.project_2d(np.zeros((0, 8))).shape == (0, 2)
    assert np.allclose(insights.project_2d(vectors[:1]), 0)
    assert insights.project_2d(vectors[:2]).shape == (2, 2)


def test_collection_map_has_a_point_per_published_entry(kb):
    points = insights.collection_map(kb)
    assert len(points) == len(kb.index.entry_ids({"status": "published"}))
    assert set(points.columns) >= {"id", "title", "theme", "x", "y"}
    assert points["x"].std() > 0


def test_a_collection_without_themes_is_charted_by_its_tags(fake_embedder, tmp_path):
    """An imported register (NASA's) has topics as tags and no themes: its chart is by tag, not empty."""
    from kb import KnowledgeBase, Settings
    from kb.entries import Entry

    register = KnowledgeBase(Settings(entries_dir=tmp_path / "e", index_dir=tmp_path / "i"), embedder=fake_embedder)
    lessons = [
        Entry(
            id=f"lesson-{n}",
            title=f"Lesson {n} on the thermal system",
            summary="What the team learned.",
            kind="project",
            outcome=("failed", "succeeded")[n % 2],
            organisation="NASA",
            status="published",
            tags=["Mission Operations", "Software"][: 1 + n % 2],
        )
        for n in range(6)
    ]
    register.sync_entries(lessons)
    data = insights.insights(register)
    assert data.grouped_by == "tag"
    assert dict(zip(data.by_theme["label"], data.by_theme["entries"], strict=True)) == {
        "Mission Operations": 6,
        "Software": 3,
    }
    failing = dict(zip(data.failures_by_theme["label"], data.failures_by_theme["failed_or_stopped"], strict=True))
    assert failing == {"Mission Operations": 3, "Software": 0}
    from kb import browse

    for tag, failed in failing.items():  # each bar's search, filtered on the tag, finds what it counts
        assert browse.find(register, insights.failures_search(tag, data.grouped_by)).total == failed


def test_a_collection_with_themes_is_charted_by_them(kb):
    data = insights.insights(kb)
    assert data.grouped_by == "theme" and set(data.by_theme["theme"]) <= {t.id for t in kb.vocabulary.themes}


def test_a_failing_bar_s_search_lists_exactly_its_failed_or_stopped_entries(kb):
    """The search behind each bar of "where do we keep failing" finds the entries the bar counts: the
    search page is the oracle."""
    from kb import browse

    data = insights.insights(kb)
    assert len(data.failures_by_theme) >= 5
    for row in data.failures_by_theme.itertuples():
        request = insights.failures_search(row.theme, data.grouped_by)
        assert request.facets.theme == (row.theme,) and set(request.facets.outcome) == {"failed", "stopped"}
        assert not request.query and browse.SearchRequest.from_params(request.to_params()) == request
        found = browse.find(kb, request)
        assert found.total == row.failed_or_stopped, row.label
        assert all(e.outcome in ("failed", "stopped") and row.theme in e.themes for e in found.newest)


def test_a_failing_tag_s_search_filters_on_the_tag():
    request = insights.failures_search("Mission Operations", "tag")
    assert request.facets.tag == ("Mission Operations",) and not request.facets.theme
    assert request.to_params() == {"outcome": ["failed", "stopped"], "tag": ["Mission Operations"]}
    with pytest.raises(ValueError):
        insights.failures_search("x", "organisation")


def test_an_unrecorded_outcome_is_never_counted_as_a_failure(fake_embedder, tmp_path):
    """A register that does not say how the work turned out: shares of failures are of the entries that
    say, and a tag whose entries never say has no share at all (rather than 0%)."""
    from kb import KnowledgeBase, Settings
    from kb.entries import Entry

    register = KnowledgeBase(Settings(entries_dir=tmp_path / "e", index_dir=tmp_path / "i"), embedder=fake_embedder)
    outcomes = ["failed", "succeeded", "not-recorded", "not-recorded", "not-recorded", "not-recorded"]
    register.sync_entries(
        [
            Entry(
                id=f"lesson-{n}",
                title=f"Lesson {n} on the thermal system",
                summary="What the team learned.",
                kind="project",
                outcome=outcome,
                organisation="NASA",
                status="published",
                tags=["Thermal"] if n < 4 else ["Software"],
            )
            for n, outcome in enumerate(outcomes)
        ]
    )
    data = insights.insights(register)
    assert (data.entries, data.recorded) == (6, 2)
    assert data.failed_share == pytest.approx(0.5)
    rows = data.failures_by_theme.set_index("label")
    assert list(rows.index) == ["Thermal"], "Software's entries record no outcome"
    assert (rows.loc["Thermal", "entries"], rows.loc["Thermal", "failed_or_stopped"]) == (2, 1)


def test_the_map_of_a_collection_without_themes_is_coloured_by_its_most_used_tags(fake_embedder, tmp_path):
    from kb import KnowledgeBase, Settings
    from kb.entries import Entry

    register = KnowledgeBase(Settings(entries_dir=tmp_path / "e", index_dir=tmp_path / "i"), embedder=fake_embedder)
    tags = [[f"Topic {n}", "Everywhere"] for n in range(insights.MAP_TAGS + 2)] + [[]]
    register.sync_entries(
        [
            Entry(
                id=f"lesson-{n}",
                title=f"Lesson {n}",
                summary="What the team learned.",
                kind="project",
                outcome="not-recorded",
                organisation="NASA",
                status="published",
                tags=these,
            )
            for n, these in enumerate(tags)
        ]
    )
    points = insights.collection_map(register).set_index("id")["theme"]
    assert "No theme" not in set(points)
    assert points["lesson-0"] == "Everywhere" and points[f"lesson-{len(tags) - 1}"] == "No tag"
    assert len(set(points)) <= insights.MAP_TAGS + 2
