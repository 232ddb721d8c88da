"""Search building blocks: filters, query parsing, fusion, snippets, synonyms, short queries."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app_pages.ui import highlight_html
from kb.filters import Filters
from kb.search import DEFAULT_FUSION, Fusion, best_per_entry, fuse, parse_query, rrf, weigh_summaries


def test_filters_become_one_chroma_where_clause():
    assert Filters().where() is None
    assert Filters.of(outcome="failed").where() == {"outcome": "failed"}
    where = Filters.of(outcome=["failed", "stopped"], theme="data-quality", lighthouse=True, year_from=2020).where()
    assert where == {
        "$and": [
            {"outcome": {"$in": ["failed", "stopped"]}},
            {"themes": {"$contains": "data-quality"}},
            {"lighthouse": True},
            {"year": {"$gte": 2020}},
        ]
    }
    assert Filters.of(organisation=None, kind="", theme=[]).where() is None


def test_quoted_phrases_are_parsed():
    parsed = parse_query('legacy "data sharing agreement" council')
    assert parsed.phrases == ("data sharing agreement",) and parsed.text == "legacy data sharing agreement council"


def test_rrf_matches_hand_computed_values():
    fused = rrf([["a", "b"], ["b", "c"]], k=60)
    assert fused["a"] == pytest.approx(1 / 61)
    assert fused["b"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["c"] == pytest.approx(1 / 62)
    assert rrf([["a"], ["a"]], weights=[2.0, 0.5], k=0)["a"] == pytest.approx(2.5)


def test_convex_fusion_uses_floors_for_missing_scores():
    dense = {"p1": 0.8, "p2": 0.4}
    keyword = {"p2": 1.0, "p3": 0.5}
    fused = fuse(dense, keyword, Fusion("convex", alpha=0.5), keyword_complete=True)
    assert fused["p1"] == pytest.approx(0.4)  # keyword 0: it matched no query word
    assert fused["p2"] == pytest.approx(0.7)
    assert fused["p3"] == pytest.approx(0.5 * 0.4 + 0.25)  # dense floor: ranked below the dense list
    partial = fuse(dense, keyword, Fusion("convex", alpha=0.5), keyword_complete=False)
    assert partial["p1"] == pytest.approx(0.4 + 0.25)  # keyword list was cut: floor is its lowest score
    assert fuse(dense, keyword, Fusion("rrf"))["p2"] == pytest.approx(1 / 62 + 1 / 61)


def test_a_close_paraphrase_beats_a_stray_keyword_match():
    # p_meaning is the best vector match and shares no word; p_stray matched one word of six.
    fused = fuse({"p_meaning": 0.62, "p_stray": 0.30}, {"p_stray": 0.15}, Fusion("convex", 0.5))
    assert fused["p_meaning"] > fused["p_stray"]


def test_best_passage_per_entry():
    ranked = best_per_entry({"a#0": 0.2, "a#3": 0.9, "b#1": 0.5}, {"a#0": "a", "a#3": "a", "b#1": "b"})
    assert ranked == [("a", "a#3", 0.9), ("b", "b#1", 0.5)]


def test_ties_break_on_the_entry_id_and_within_an_entry_on_the_passage_id():
    scores = {"b#0": 0.5, "a#2": 0.5, "a#1": 0.5, "c#4": 0.7, "c#1": 0.1}
    entry_of = {pid: pid.split("#")[0] for pid in scores}
    assert best_per_entry(scores, entry_of) == [("c", "c#4", 0.7), ("a", "a#2", 0.5), ("b", "b#0", 0.5)]
    assert best_per_entry(dict(reversed(scores.items())), entry_of) == best_per_entry(scores, entry_of)


def test_a_share_of_the_second_best_passage_can_reorder_entries():
    scores = {"one#0": 0.8, "two#0": 0.7, "two#1": 0.6, "two#2": 0.5}
    entry_of = {pid: pid.split("#")[0] for pid in scores}
    assert [e for e, _, _ in best_per_entry(scores, entry_of)] == ["one", "two"]
    ranked = best_per_entry(scores, entry_of, replace(DEFAULT_FUSION, second_passage_weight=0.5))
    assert ranked == [("two", "two#0", pytest.approx(0.7 + 0.5 * 0.6)), ("one", "one#0", 0.8)]
    weighed_titles = best_per_entry(scores, entry_of, replace(DEFAULT_FUSION, summary_weight=0.5))
    assert weighed_titles == [("two", "two#1", 0.6), ("one", "one#0", 0.4)]


def test_an_entry_whose_passages_match_beats_one_whose_title_alone_matches_a_little_better():
    """By meaning, a title and one sentence sit close to every query on their topic: scaled down, the
    title-and-summary passage must be clearly closer than another entry's body to outrank it."""
    dense = {"title#0": 0.60, "title#1": 0.21, "body#0": 0.52, "body#1": 0.58, "body#2": 0.57}
    entry_of = {pid: pid.split("#")[0] for pid in dense}
    plain = replace(DEFAULT_FUSION, summary_similarity_weight=1.0)
    assert [e for e, _, _ in best_per_entry(weigh_summaries(dense, plain), entry_of)] == ["title", "body"]
    ranked = best_per_entry(weigh_summaries(dense), entry_of)
    assert ranked == [("body", "body#1", 0.58), ("title", "title#0", pytest.approx(0.60 * 0.9))]
    assert DEFAULT_FUSION.summary_similarity_weight == 0.9
    assert weigh_summaries({"a#10": 0.5, "a#0": 0.5}) == {"a#10": 0.5, "a#0": pytest.approx(0.45)}  # "#10" is not "#0"
    assert dense["title#0"] == 0.60  # a new dict: closeness is judged on the raw similarity


def test_snippet_highlights_terms_and_escapes_everything_else():
    html = highlight_html("<script>alert(1)</script> The DSA & agreements took <b>ages</b>", "dsa agreement")
    assert "<script>" not in html and "&lt;script&gt;" in html and "&amp;" in html
    assert "<mark>DSA</mark>" in html and "<mark>agreements</mark>" in html
    assert "<b>" not in html


def test_snippet_marks_only_the_query_s_meaningful_words():
    html = highlight_html(
        "What could the team do for data sharing? Agreements could wait; the database was fine.",
        "what could the team do for data sharing agreement",
    )
    for word in ("team", "data", "sharing", "Agreements"):  # "Agreements" for "agreement": the same stem
        assert f"<mark>{word}</mark>" in html
    for word in ("What", "could", "the", "do", "for", "database"):
        assert f"<mark>{word}</mark>" not in html
    assert "<mark>" not in highlight_html("What could the team do?", "what could we do")


def test_snippet_is_cut_around_the_first_match():
    text = "filler " * 200 + "the mainframe could not deliver " + "filler " * 200
    html = highlight_html(text, "mainframe", max_chars=120)
    assert "<mark>mainframe</mark>" in html and html.startswith("… ") and html.endswith(" …")
    assert len(html) < 200


# ----------------------------------------------------------------------------- on the sample entries


def test_acronyms_and_one_word_queries_find_every_entry_that_contains_them(kb):
    import re

    entries = kb.load().entries
    for word in ("RAP", "mainframe", "TRE", "DPIA", "Power BI"):
        pattern = re.compile(rf"\b{re.escape(word)}\b", re.I)
        containing = {e.id for e in entries.values() if pattern.search(e.text())}
        assert containing, word
        literal = [h.id for h in kb.search(word, limit=len(containing), expand=False)]
        assert set(literal) == containing, word  # containing entries first, every one of them
        expanded = [h.id for h in kb.search(word, limit=20)]
        assert containing <= set(expanded) and expanded[0] in containing, word  # synonyms add, never hide


@pytest.mark.parametrize("mode", ["dense", "bm25"])
def test_the_title_and_summary_passage_is_scaled_by_meaning_only(kb, mode):
    plain = replace(DEFAULT_FUSION, summary_similarity_weight=1.0)
    query = "data sharing agreement took too long"
    scaled = {h.id: h for h in kb.search(query, mode=mode, limit=60)}
    checked = 0
    for hit in kb.search(query, mode=mode, limit=60, fusion=plain):
        if hit.section == "Summary" and hit.id in scaled and scaled[hit.id].section == "Summary":
            weight = DEFAULT_FUSION.summary_similarity_weight if mode == "dense" else 1.0
            assert scaled[hit.id].score == pytest.approx(hit.score * weight, abs=1e-6)
            assert scaled[hit.id].close == hit.close  # closeness reads the raw similarity
            checked += 1
    assert checked, "some entry is found by its title and summary"


def test_synonym_expansion_finds_entries_that_use_another_name(kb, entries_dir):
    (entries_dir / "mou-only.md").write_text(
        "---\nid: mou-only\ntitle: Parish councils pooled their grit bins\nsummary: A signed MoU let "
        "three parishes pool one gritting rota.\nkind: project\noutcome: succeeded\norganisation: Parish "
        "Trust\nstatus: published\nvisibility: public\n---\n## Lessons\n\nAgree the MoU first.\n"
    )
    kb.sync()
    with_synonyms = [h.id for h in kb.search("data sharing agreement", limit=60, mode="bm25")]
    without = [h.id for h in kb.search("data sharing agreement", limit=60, mode="bm25", expand=False)]
    assert "mou-only" in with_synonyms and "mou-only" not in without


def test_synonym_expansion_names_other_theme_names(kb):
    extra = kb.vocabulary.expand("our DSA stalled")
    assert "data sharing agreement" in extra and "MoU" in extra and "DSA" not in extra
    assert kb.vocabulary.expand("a big question") == []  # "IG" must not match inside "big"
