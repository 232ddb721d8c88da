"""Search building blocks: filters, query parsing, snippets, synonyms, short queries (the ranking: test_ranking)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from app_pages.ui import highlight_html
from kb.filters import Filters
from kb.search import DEFAULT_FUSION, parse_query


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
