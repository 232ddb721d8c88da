"""The ranking: two sides' candidate passages fused, boilerplate weighed down, one passage per entry."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from kb.passages import PassageId
from kb.ranking import Pool
from kb.replica.keywords import KeywordMatch
from kb.search import DEFAULT_FUSION, Fusion
from kb.vector_index import PassageMatch

EVIDENCE = "Evidence and links"


def pool(
    dense: dict[str, float] | None = None,
    keyword: dict[str, float] | None = None,
    sections: dict[str, str] | None = None,
    complete: bool = True,
) -> Pool:
    """A pool of matches given as passage id -> score, each side best first as given (the keyword side
    `complete` or cut); a passage's section is `sections`' or "Lessons", and its text a plain body."""
    sections = sections or {}
    read: list[str] = []

    def text_of(passage_id: str) -> str:
        read.append(passage_id)
        return f"{PassageId.entry_of(passage_id)}\nbody"

    def entry(passage_id: str) -> str:
        return PassageId.entry_of(passage_id)

    def section(passage_id: str) -> str:
        return sections.get(passage_id, "Lessons")

    found = Pool.of_matches(
        None if dense is None else [PassageMatch(p, entry(p), section(p), "", s) for p, s in dense.items()],
        None if keyword is None else [KeywordMatch(p, entry(p), section(p), s) for p, s in keyword.items()],
        text_of,
        complete,
    )
    found.read = read  # type: ignore[attr-defined]  # the texts the ranking asked for
    return found


def by_passage(found: Pool, scores: np.ndarray) -> dict[str, float]:
    return {found.passage_id(slot): float(score) for slot, score in enumerate(scores) if not np.isnan(score)}


def ranked(found: Pool, scores: np.ndarray, fusion: Fusion | None = None, limit: int | None = None):
    return [(found.entry_id(s), found.passage_id(s), score) for s, score in found.best_per_entry(scores, fusion, limit)]


def test_rrf_matches_hand_computed_values():
    found = pool({"a#1": 0.9, "b#1": 0.5}, {"b#1": 0.8, "c#1": 0.2})
    fused = by_passage(found, found.scores("hybrid", Fusion("rrf", rrf_k=60)))
    assert fused["a#1"] == pytest.approx(1 / 61)
    assert fused["b#1"] == pytest.approx(1 / 62 + 1 / 61)
    assert fused["c#1"] == pytest.approx(1 / 62)


def test_convex_fusion_uses_floors_for_missing_scores():
    found = pool({"p#1": 0.8, "p#2": 0.4}, {"p#2": 1.0, "p#3": 0.5})
    half = Fusion("convex", alpha=0.5)
    fused = by_passage(found, found.scores("hybrid", half))
    assert fused["p#1"] == pytest.approx(0.4)  # keyword 0: it matched no query word
    assert fused["p#2"] == pytest.approx(0.7)
    assert fused["p#3"] == pytest.approx(0.5 * 0.4 + 0.25)  # dense floor: ranked below the dense list
    cut = pool({"p#1": 0.8, "p#2": 0.4}, {"p#2": 1.0, "p#3": 0.5}, complete=False)
    partial = by_passage(cut, cut.scores("hybrid", half))
    assert partial["p#1"] == pytest.approx(0.4 + 0.25)  # keyword list was cut: floor is its lowest score
    assert by_passage(found, found.scores("hybrid", Fusion("rrf")))["p#2"] == pytest.approx(1 / 62 + 1 / 61)


def test_one_side_alone_scores_only_what_it_found():
    found = pool({"a#1": 0.8}, {"b#1": 0.5})
    assert by_passage(found, found.scores("dense", DEFAULT_FUSION)) == {"a#1": 0.8}
    assert by_passage(found, found.scores("bm25", DEFAULT_FUSION)) == {"b#1": 0.5}
    assert [e for e, _, _ in ranked(found, found.scores("dense", DEFAULT_FUSION))] == ["a"]


def test_a_close_paraphrase_beats_a_stray_keyword_match():
    # p_meaning is the best vector match and shares no word; p_stray matched one word of six.
    found = pool({"meaning#1": 0.62, "stray#1": 0.30}, {"stray#1": 0.15})
    fused = by_passage(found, found.scores("hybrid", Fusion("convex", 0.5)))
    assert fused["meaning#1"] > fused["stray#1"]


def test_best_passage_per_entry():
    found = pool({"a#0": 0.2, "a#3": 0.9, "b#1": 0.5})
    plain = replace(DEFAULT_FUSION, summary_similarity_weight=1.0)
    assert ranked(found, found.scores("dense", plain)) == [("a", "a#3", 0.9), ("b", "b#1", 0.5)]


def test_ties_break_on_the_entry_id_and_within_an_entry_on_the_passage_id():
    scores = {"b#1": 0.5, "a#2": 0.5, "a#10": 0.5, "c#4": 0.7, "c#1": 0.1}
    expected = [("c", "c#4", 0.7), ("a", "a#2", 0.5), ("b", "b#1", 0.5)]  # "a#2" is greater than "a#10" as text
    for order in (scores, dict(reversed(scores.items()))):
        found = pool(keyword=order)
        assert ranked(found, found.scores("bm25", DEFAULT_FUSION)) == expected
        assert ranked(found, found.scores("bm25", DEFAULT_FUSION), limit=2) == expected[:2]


def test_a_share_of_the_second_best_passage_can_reorder_entries():
    found = pool(keyword={"one#0": 0.8, "two#0": 0.7, "two#1": 0.6, "two#2": 0.5})
    scores = found.scores("bm25", DEFAULT_FUSION)
    assert [e for e, _, _ in ranked(found, scores)] == ["one", "two"]
    again = ranked(found, scores, replace(DEFAULT_FUSION, second_passage_weight=0.5))
    assert again == [("two", "two#0", pytest.approx(0.7 + 0.5 * 0.6)), ("one", "one#0", 0.8)]
    weighed_titles = ranked(found, scores, replace(DEFAULT_FUSION, summary_weight=0.5))
    assert weighed_titles == [("two", "two#1", 0.6), ("one", "one#0", 0.4)]


def test_an_entry_whose_passages_match_beats_one_whose_title_alone_matches_a_little_better():
    """By meaning, a title and one sentence sit close to every query on their topic: scaled down, the
    title-and-summary passage must be clearly closer than another entry's body to outrank it."""
    found = pool({"title#0": 0.60, "title#1": 0.21, "body#0": 0.52, "body#1": 0.58, "body#2": 0.57})
    plain = replace(DEFAULT_FUSION, summary_similarity_weight=1.0)
    assert [e for e, _, _ in ranked(found, found.scores("dense", plain))] == ["title", "body"]
    assert ranked(found, found.scores("dense", DEFAULT_FUSION)) == [
        ("body", "body#1", 0.58),
        ("title", "title#0", pytest.approx(0.60 * 0.9)),
    ]
    assert DEFAULT_FUSION.summary_similarity_weight == 0.9
    tens = pool({"a#10": 0.5, "a#0": 0.5})
    assert by_passage(tens, tens.scores("dense", DEFAULT_FUSION)) == {"a#10": 0.5, "a#0": pytest.approx(0.45)}
    # closeness is judged on the raw similarity
    assert found.closeness(found.best_per_entry(found.scores("dense", DEFAULT_FUSION)), 0.59) == {
        "title": True,
        "body": False,
    }


def test_closeness_is_each_ranked_entry_s_best_similarity_by_meaning():
    found = pool({"a#1": 0.7, "a#2": 0.4, "b#1": 0.5}, {"c#1": 1.0})
    best = found.best_per_entry(found.scores("hybrid", DEFAULT_FUSION))
    assert [found.entry_id(slot) for slot, _ in best] == ["c", "a", "b"]
    assert found.closeness(best, 0.6) == {"c": False, "a": True, "b": False}  # c: not found by meaning
    assert found.closeness(best[:1], 0.6) == {"c": False}  # judged, though only the other side found it
    assert found.closeness(best, None) is None  # no threshold for this model: not judged
    by_keywords = pool(keyword={"c#1": 1.0})
    nothing_by_meaning = by_keywords.best_per_entry(by_keywords.scores("hybrid", DEFAULT_FUSION))
    assert by_keywords.closeness(nothing_by_meaning, 0.6) is None  # the meaning side found nothing: not judged


@pytest.mark.parametrize("mode", ["dense", "bm25", "hybrid"])
@pytest.mark.parametrize("method", ["convex", "rrf"])
def test_boilerplate_passages_weigh_half_in_every_mode_and_no_text_is_read(mode, method):
    found = pool(
        {"a#3": 0.9, "a#1": 0.6, "b#1": 0.7, "c#2": 0.2},
        {"a#3": 0.9, "a#1": 0.6, "b#1": 0.7, "c#2": 0.2},
        sections={"a#3": EVIDENCE, "c#2": EVIDENCE},
    )
    fusion = Fusion(method, summary_similarity_weight=1.0)
    weighed = by_passage(found, found.scores(mode, fusion))
    plain = by_passage(found, found.scores(mode, replace(fusion, boilerplate_weight=1.0)))
    assert weighed == pytest.approx({p: s * (0.5 if p in ("a#3", "c#2") else 1.0) for p, s in plain.items()})
    assert [e for e, _, _ in ranked(found, found.scores(mode, replace(fusion, boilerplate_weight=1.0)))][0] == "a"
    assert ranked(found, found.scores(mode, fusion))[0][:2] == ("b", "b#1")  # a's best is now its body
    assert found.read == [], "the section comes with the passage: no text is read to weigh it"


def test_a_boilerplate_passage_tied_with_a_body_passage_falls_below_it():
    found = pool(keyword={"a#2": 0.5, "b#1": 0.5}, sections={"a#2": EVIDENCE})
    unweighed = found.scores("bm25", replace(DEFAULT_FUSION, boilerplate_weight=1.0))
    assert [e for e, _, _ in ranked(found, unweighed)] == ["a", "b"]  # tied: the entry id decides
    assert ranked(found, found.scores("bm25", DEFAULT_FUSION)) == [("b", "b#1", 0.5), ("a", "a#2", 0.25)]


def test_the_boilerplate_weight_never_raises_a_score():
    found = pool({"a#1": -0.2, "a#2": 0.4, "b#1": -0.1}, sections={"a#1": EVIDENCE, "a#2": EVIDENCE})
    scores = by_passage(found, found.scores("dense", replace(DEFAULT_FUSION, summary_similarity_weight=1.0)))
    assert scores == pytest.approx({"a#1": -0.3, "a#2": 0.2, "b#1": -0.1})  # a negative cosine goes further down


def test_only_the_boilerplate_sections_are_weighed():
    found = pool(keyword={"pilot#0": 0.5, "pilot#1": 0.4}, sections={"pilot#0": "Summary", "pilot#1": "Evidence"})
    assert by_passage(found, found.scores("bm25", DEFAULT_FUSION)) == {"pilot#0": 0.5, "pilot#1": 0.4}


def test_a_boilerplate_passage_tied_with_the_last_entry_needed_is_weighed_whatever_the_order():
    for order in ({"b#1": 0.5, "a#2": 0.5}, {"a#2": 0.5, "b#1": 0.5}):
        found = pool(keyword=order, sections={"a#2": EVIDENCE})
        scores = found.scores("bm25", DEFAULT_FUSION)
        assert ranked(found, scores, limit=1) == [("b", "b#1", 0.5)], order
