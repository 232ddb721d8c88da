"""The scale benchmark's collections and derived vectors, and a small run of the whole benchmark."""

from __future__ import annotations

import numpy as np
import pytest

from bench.scale import (
    ORGANISATIONS,
    DerivedEmbedder,
    LessonVectors,
    build_collection,
    format_markdown,
    format_report,
    recipes,
    run_scale_bench,
)
from kb.entry_files import parse_entry, render_entry
from kb.passages import split_entry
from kb.store import EntryStore
from kb.vocabulary import Vocabulary
from tests.conftest import ROOT, SAMPLE_ENTRIES, SHARED_DATA, require

NASA_XLSX = SHARED_DATA / "nasa_llis" / "llis.xlsx"
NASA_MAPPING = ROOT / "mappings" / "nasa-llis.yaml"


@pytest.fixture
def lessons():
    """The sample entries stand in for the lessons a collection is cut from."""
    store = EntryStore(SAMPLE_ENTRIES)
    return [store.load_file(p)[0] for p in store.files()]


@pytest.fixture
def themes():
    return sorted(t.id for t in Vocabulary.load(SAMPLE_ENTRIES).themes)


def test_recipes_are_deterministic_and_cover_every_lesson():
    first, again = recipes(40, 100), recipes(40, 100)
    assert first == again
    assert {r.a for r in first[:40]} == set(range(40)), "each round uses every lesson once as the base"
    assert [r.round for r in first[38:42]] == [0, 0, 1, 1]
    assert recipes(40, 100, seed=1) != first


def test_recombined_entries_are_valid_distinct_and_mixed(lessons, themes):
    collection = build_collection(lessons, 3 * len(lessons) + 5, themes)
    entries = [e for e, _ in collection]
    assert len({e.id for e in entries}) == len(entries), "ids are unique across rounds"
    for entry in entries[:: max(1, len(entries) // 30)]:
        again, warnings = parse_entry(render_entry(entry), f"{entry.id}.md")  # raises on any error
        assert not warnings, warnings
        assert set(again.themes) <= set(themes)
        assert again.title == entry.title and again.sections == entry.sections
        assert len(again.title) <= 200
    visibility = {v: sum(e.visibility == v for e in entries) / len(entries) for v in ("public", "internal")}
    assert 0.7 < visibility["public"] < 0.9 and 0.05 < visibility["internal"] < 0.2
    restricted = [e for e in entries if e.visibility == "organisation"]
    assert restricted and all(e.partners and e.organisation in ORGANISATIONS for e in restricted)
    assert len({e.organisation for e in entries}) == len(ORGANISATIONS)
    entry, recipe = collection[len(lessons) + 1]
    assert entry.title.startswith(lessons[recipe.a].title[:100]) and entry.title.endswith("(2)")
    assert set(entry.sections) <= set(lessons[recipe.b].sections)


def test_derived_vectors_are_stable_unit_and_close_to_their_sources(lessons, themes, fake_embedder, tmp_path):
    vectors = LessonVectors(lessons, fake_embedder, tmp_path / "cache")
    assert list((tmp_path / "cache").glob("lesson-vectors-*.npy")), "the real vectors are cached"
    derived = DerivedEmbedder(fake_embedder, vectors)
    entry, recipe = build_collection(lessons, 5, themes)[3]
    assert derived.learn(entry, recipe) > 1
    passages = split_entry(entry, derived.count_tokens, derived.max_tokens)
    texts = [p.text for p in passages]
    first, second = derived.embed(texts), derived.embed(texts)
    np.testing.assert_array_equal(first, second)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, rtol=1e-5)
    assert len({row.tobytes() for row in first}) == len(texts), "no two passages share a vector"
    summary = vectors.vectors[vectors.summary_row(recipe.a)]
    assert float(first[0] @ summary) > 0.8, "a summary passage stays near the lesson it was cut from"
    # Text it was not told about (a query) goes to the model itself.
    query = "a question nobody indexed"
    np.testing.assert_allclose(derived.embed([query])[0], fake_embedder.embed([query])[0], rtol=1e-6)
    # The sync process loads what the preparing process learnt, and derives the very same vectors.
    derived.save(tmp_path / "derived.npz")
    loaded = DerivedEmbedder.load(fake_embedder, vectors, tmp_path / "derived.npz")
    np.testing.assert_array_equal(loaded.embed([*texts, query]), derived.embed([*texts, query]))


@pytest.mark.data
def test_a_small_run_measures_every_figure_for_both_backends(tmp_path):
    require(NASA_XLSX.is_file(), f"{NASA_XLSX} is absent (../shared/data)")
    results = run_scale_bench(
        NASA_XLSX,
        NASA_MAPPING,
        sizes=(120,),
        model="hashing-bow",
        server=True,
        work_dir=tmp_path,
        real_up_to=0,
        repeats=1,
        browser=False,
    )
    assert [(r["size"], r["backend"]) for r in results] == [(120, "embedded"), (120, "server")]
    for figures in results:
        assert figures["entries"] == 120 and figures["passages"] > 120
        assert figures["vectors"] == "derived"
        assert set(figures["search"]) == {"hybrid", "dense", "bm25"}
        assert set(figures["search"]["hybrid"]) == {"none", "viewer", "facets"}
        assert figures["recall_at_10"] >= 0.9, "HNSW at this size is all but exact"
        assert figures["peak_rss_search_mb"] > 0 and figures["index_mb"] > 0
        assert figures["resync_unchanged_s"] > 0
        assert figures["phrase"]["p95_ms"] > 0 and figures["save"]["p95_ms"] > 0
    assert results[1]["peak_rss_server_mb"] > 0
    table = format_markdown(results, "test machine")
    assert "| 120 embedded | 120 server |" in table and "recall@10" in table
    assert "saving one entry" in table and "quoted phrase" in table
    report = format_report(results, "test machine")
    assert "120 entries" in report and "server Chroma" in report and "recall@10" in report
