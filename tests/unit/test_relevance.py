"""Honest results: which hits are close matches, and "Did you mean" for misspelt words."""

from __future__ import annotations

import re

import pytest

from kb import browse
from kb.browse import SearchRequest
from kb.relevance import CLOSE_SIMILARITY, close_similarity
from kb.spelling import correction, suggest

COUNTS = {"data": 40, "sharing": 12, "agreement": 9, "agreements": 3, "share": 5, "mainframe": 2, "main": 7, "typo": 1}


# --------------------------------------------------------------------------- spelling


@pytest.mark.parametrize(
    "query, expected",
    [
        ("data sharring agrement", "data sharing agreement"),  # a letter doubled, a letter dropped
        ("Data shairng", "Data sharing"),  # two letters swapped; the capital kept
        ("mainfrmae", "mainframe"),
        ("data sharing agreement", None),  # every word known: nothing to offer
        ("DSA RAP", None),  # short words are acronyms more often than typos
        ("tpyo", None),  # a word used once may itself be a typo: never suggested
        ("2024 data", None),  # numbers are left alone
    ],
)
def test_misspelt_words_are_replaced_by_the_collection_s_own(query, expected):
    assert suggest(query, COUNTS) == expected


def test_the_most_frequent_of_several_near_words_wins():
    assert correction("sharng", {"sharing": 12, "sharia": 2}) == "sharing"
    assert correction("agreemnt", COUNTS) == "agreement"


def test_a_suggestion_keeps_the_rest_of_the_query_as_typed():
    assert suggest('"data sharring" -- agreement?', COUNTS) == '"data sharing" -- agreement?'


def test_the_knowledge_base_suggests_from_its_passages_and_its_vocabulary(kb):
    assert kb.did_you_mean("data sharring agrement") == "data sharing agreement"
    assert kb.did_you_mean("data sharing agreement") is None
    # a theme's name counts as a known word even where no passage uses it
    names = [w for t in kb.vocabulary.themes for n in t.names for w in n.lower().split() if len(w) > 6 and w.isalpha()]
    unused = next(w for w in names if kb.did_you_mean(w) is None)
    assert kb.did_you_mean(unused[:-2] + unused[-1] + unused[-2]) == unused


# --------------------------------------------------------------------------- close matches


def test_a_model_without_a_measured_threshold_judges_nothing(kb):
    assert close_similarity("hashing-bow") is None and close_similarity("some-other-model") is None
    assert all(h.close is None for h in kb.search("data sharing agreement", mode="hybrid"))
    results = browse.find(kb, SearchRequest(query="asdfghjkl"))
    assert results.close is None


@pytest.fixture
def judged(kb, monkeypatch):
    """The fake embedder given a threshold, so that the rule is tested without the model."""
    monkeypatch.setitem(CLOSE_SIMILARITY, kb.embedder.name, 0.3)
    return kb


def test_a_hit_is_close_when_its_best_passage_is_similar_enough(judged):
    from dataclasses import replace

    from kb.search import DEFAULT_FUSION

    # closeness is the raw similarity, before boilerplate passages are scored down
    plain = replace(DEFAULT_FUSION, boilerplate_weight=1.0)
    dense = judged.search("data sharing agreement took too long", mode="dense", limit=20, fusion=plain)
    assert [h.close for h in dense] == [h.score >= 0.3 for h in dense]
    assert any(h.close for h in dense) and not all(h.close for h in dense)
    hybrid = judged.search("data sharing agreement took too long", mode="hybrid", limit=20)
    by_id = {h.id: h.close for h in dense}
    assert all(h.close == by_id.get(h.id, False) for h in hybrid), "the same judgement in every mode by meaning"
    assert all(h.close is None for h in judged.search("data sharing agreement", mode="bm25"))


def test_close_matches_come_first_then_the_loosely_related(judged):
    results = browse.find(judged, SearchRequest(query="data sharing agreement took too long"))
    every = [
        h
        for page in range(1, results.pages + 1)
        for h in browse.find(judged, SearchRequest(query="data sharing agreement took too long", page=page)).hits
    ]
    assert 0 < results.close < results.total == len(every)
    assert [h.close for h in every] == [True] * results.close + [False] * (results.total - results.close)


def test_nothing_close_is_said_and_a_misspelling_is_offered_only_where_it_helps(judged, monkeypatch):
    monkeypatch.setitem(CLOSE_SIMILARITY, judged.embedder.name, 0.99)  # nothing is that close
    results = browse.find(judged, SearchRequest(query="purple monkey dishwasher"))
    assert results.close == 0 and results.hits and results.suggestion is None
    monkeypatch.setitem(CLOSE_SIMILARITY, judged.embedder.name, 0.3)
    typo = browse.find(judged, SearchRequest(query="sharring agrement"))
    assert typo.close == 0 and typo.suggestion == "sharing agreement"
    assert browse.find(judged, SearchRequest(query="sharing agreement")).close > 0, (
        "the correction finds what it lacked"
    )
    unknown = browse.find(judged, SearchRequest(query="quantum basket weaving for llamas"))
    assert unknown.suggestion is None, "words the collection does not use are not typos when fixing them finds nothing"


# --------------------------------------------------------------------------- other names of a theme


@pytest.mark.parametrize("query", ["mainframe", "DSA", "MoU"])
def test_a_theme_s_other_name_matches_whole_never_one_of_its_words(kb, query):
    """ "mainframe" also looks for "legacy systems", but never finds a passage just for saying "systems"."""
    names = kb.vocabulary.expand(query)
    assert len(names) > 1
    wanted = [" ".join(n.lower().replace("-", " ").split()) for n in [query, *names]]

    def holds_a_name(hit) -> bool:
        text = " ".join(kb.get(hit.id).text().lower().replace("-", " ").split())
        return any(re.search(rf"\b{re.escape(name)}\b", text) for name in wanted)

    hits = kb.search(query, mode="bm25", limit=60)
    assert hits and all(holds_a_name(h) for h in hits), [h.id for h in hits if not holds_a_name(h)]
    assert {h.id for h in kb.search(query, mode="bm25", limit=60, expand=False)} <= {h.id for h in hits}


def test_other_names_add_the_entries_that_use_them(kb):
    assert len(kb.search("DSA", mode="bm25", limit=60)) > len(kb.search("DSA", mode="bm25", limit=60, expand=False))


def test_the_search_page_says_which_other_names_it_searched_and_can_leave_them_out(kb):
    results = browse.find(kb, SearchRequest(query="DSA", mode="keyword"))
    assert "data sharing agreement" in results.other_names and results.total > 1
    exact = browse.find(kb, SearchRequest(query="DSA", mode="keyword", exact=True))
    assert exact.other_names == results.other_names, "still named, as not searched"
    assert {h.id for h in exact.hits} < {h.id for h in results.hits}
    assert SearchRequest.from_params({"q": "mainframe", "exact": "1"}).exact
    assert SearchRequest(query="mainframe", exact=True).to_params() == {"q": "mainframe", "exact": "1"}
    assert browse.find(kb, SearchRequest(query="mainframe", mode="meaning")).other_names == []


# --------------------------------------------------------------------------- boilerplate


def test_an_entry_about_the_subject_outranks_those_that_only_point_to_their_evidence(kb):
    """For "DPIA", "…the DSA and the DPIA are available from the contact above" came first."""
    from dataclasses import replace

    from kb.search import DEFAULT_FUSION

    about = "data-protection-impact-assessment-fast-track"
    assert kb.search("DPIA", mode="bm25", limit=5)[0].id == about
    unweighted = kb.search("DPIA", mode="bm25", limit=5, fusion=replace(DEFAULT_FUSION, boilerplate_weight=1.0))
    assert unweighted[0].id != about and unweighted[0].section == "Evidence and links", "what the weight fixes"


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
def test_an_entry_titled_like_a_boilerplate_section_is_not_weighed_down_by_its_title(kb, mode):
    """Its summary is headed by its title alone, which reads like another entry's evidence heading."""
    from dataclasses import replace

    from kb.search import DEFAULT_FUSION
    from tests.following import write_entry

    entry = write_entry(
        kb, "Records matching pilot — Evidence and links", summary="Quokka ledgers reconciled by hand each month."
    )
    plain = replace(DEFAULT_FUSION, boilerplate_weight=1.0)
    weighed = kb.search("quokka ledgers", mode=mode, limit=3)[0]
    unweighed = kb.search("quokka ledgers", mode=mode, limit=3, fusion=plain)[0]
    assert (weighed.id, weighed.section) == (entry.id, "Summary")
    assert weighed.score == pytest.approx(unweighed.score, abs=1e-6)


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
@pytest.mark.parametrize("in_memory", [True, False], ids=["in-memory", "over-chroma"])
def test_a_boilerplate_passage_scores_its_weight_times_what_it_would(kb, mode, in_memory, monkeypatch):
    """Whether the pool is read from the replica's rows or made of Chroma's matches, a passage's stored
    section says it is boilerplate."""
    from dataclasses import replace

    from kb.search import DEFAULT_FUSION

    monkeypatch.setattr("kb.replica.reads.EXACT_BYTES", (1 << 30) if in_memory else 0)

    plain = replace(DEFAULT_FUSION, boilerplate_weight=1.0)
    halved = {h.id: h for h in kb.search("data sharing agreement contact", mode=mode, limit=60)}
    checked = 0
    for hit in kb.search("data sharing agreement contact", mode=mode, limit=60, fusion=plain):
        if hit.section == "Evidence and links" and hit.id in halved and halved[hit.id].section == hit.section:
            assert halved[hit.id].score == pytest.approx(hit.score * DEFAULT_FUSION.boilerplate_weight, abs=1e-6)
            checked += 1
    assert checked, "some entry is still found by its evidence passage"


@pytest.mark.parametrize("mode", ["bm25", "dense", "hybrid"])
@pytest.mark.parametrize("query", ["DPIA", "data sharing agreement contact", "evidence report dashboard", "DSA"])
def test_the_first_hits_are_the_same_however_many_are_asked_for(kb, mode, query):
    """The first ten hits do not depend on how many are asked for. (Up to 33 hits the same 100
    candidates are fused; more candidates move fused scores.)"""
    few = [(h.id, round(h.score, 6)) for h in kb.search(query, mode=mode, limit=10)]
    many = [(h.id, round(h.score, 6)) for h in kb.search(query, mode=mode, limit=33)[:10]]
    assert few == many


def test_a_spelling_never_offers_a_word_only_hidden_entries_hold(kb):
    """ "Did you mean" reads every passage indexed: a word from an entry the viewer may not see is never
    offered to them, whatever else the correction finds."""
    from kb.access import ANONYMOUS
    from kb.entries import Entry
    from kb.identity import User

    kb.save(
        Entry(
            id="secret-zephyrgram-pilot",
            title="The zephyrgram pilot",
            summary="A zephyrgram data sharing pilot that only its own organisation may read.",
            kind="experiment",
            outcome="failed",
            organisation="Secret Office",
            status="published",
            visibility="organisation",
        )
    )
    member = User("Sam Secret", "Secret Office", ("contributor",))
    query = "data sharring zephyrgrem"
    assert browse.find(kb, SearchRequest(query=query, mode="keyword"), member).suggestion == "data sharing zephyrgram"
    for outsider in (ANONYMOUS, User("Olly Outsider", "Other Office", ("contributor",))):
        offered = browse.find(kb, SearchRequest(query=query, mode="keyword"), outsider).suggestion
        assert offered is None or "zephyrgram" not in offered


def test_without_a_judgement_by_meaning_a_spelling_must_find_its_words_together(kb):
    assert close_similarity(kb.embedder.name) is None
    typo = browse.find(kb, SearchRequest(query="data sharring agrement", mode="keyword"))
    assert typo.suggestion == "data sharing agreement"
    real_words = browse.find(kb, SearchRequest(query="quantum basket weaving for llamas", mode="keyword"))
    assert real_words.suggestion is None
