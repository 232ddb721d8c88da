"""Search: filters, query parsing, fusion of keyword and vector rankings, and typed hits.

Ranking happens at passage level (each passage ranked by BM25 and by vector similarity, the
rankings fused), then per entry: an entry's score is its best passage's, and that passage is what
the reader is shown. By meaning, the title-and-summary passage counts a little less than the others
(`Fusion.summary_similarity_weight`), so a short title does not win over a body that answers the query. Filters go inside both retrievers, so the top k is always taken over the
entries the filter allows, never cut first and filtered after.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from kb.analysis import WORD, marked_terms, meaningful, term
from kb.passages import PassageId, section_of

MODES = ("hybrid", "dense", "bm25")
RRF_K = 60


@dataclass(frozen=True)
class Hit:
    """One entry found by a search, with the passage that matched best."""

    id: str
    title: str
    score: float
    passage: str
    section: str
    organisation: str = ""
    kind: str = ""
    outcome: str = ""
    year: int | None = None
    themes: tuple[str, ...] = ()
    lighthouse_stage: str = ""
    status: str = ""
    evidence: str = ""
    close: bool | None = None  # its best passage is close to the query by meaning (kb.relevance); None: not judged

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "themes": list(self.themes)}


@dataclass(frozen=True)
class SimilarHit(Hit):
    """An entry similar to another one, with the pair of passages that links them."""

    source_passage: str = ""
    source_section: str = ""
    shared_themes: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "shared_themes": list(self.shared_themes)}


@dataclass(frozen=True)
class ParsedQuery:
    text: str  # the query with quotes removed, for ranking
    phrases: tuple[str, ...] = field(default=())  # quoted phrases a passage must hold (kb.analysis's rule)


def parse_query(query: str) -> ParsedQuery:
    phrases = tuple(p.strip() for p in re.findall(r'"([^"]+)"', query) if p.strip())
    return ParsedQuery(" ".join(query.replace('"', " ").split()), phrases)


@dataclass(frozen=True)
class Fusion:
    """How keyword and vector scores combine into one passage score.

    "convex": alpha * cosine + (1 - alpha) * BM25 scaled by the query's own maximum (0..1), so a
    passage that matched one stray word of a long query cannot outrank a close paraphrase.
    "rrf": reciprocal rank fusion, which needs no scores, only ranks.
    The defaults were chosen on SciFact's training claims (README, "Search quality").
    A query of one or two words ("DSA", "mainframe") says little to an embedding and much to an
    exact match, so it uses `short_alpha`: entries containing the words come first.
    """

    method: str = "convex"
    alpha: float = 0.4
    summary_weight: float = 1.0  # multiplies the title-and-summary passage's score
    # Multiplies the title-and-summary passage's similarity by meaning (the meaning side only). A title
    # and one sentence embed close to every query on their topic, so that short passage often won over
    # a body that answers the query; scaled down it must be clearly closer to win. Measured on SciFact's
    # training claims (README, "Search quality"): dense +0.009 and hybrid +0.005 nDCG@10 at 0.9. The
    # keyword side is left alone: there the same weight cost BM25.
    summary_similarity_weight: float = 0.9
    boilerplate_weight: float = 0.5  # multiplies the score of a passage in a BOILERPLATE_SECTIONS section
    second_passage_weight: float = 0.0  # adds this share of an entry's second-best passage
    short_alpha: float = 0.2
    short_words: int = 2
    rrf_k: int = RRF_K

    def for_query(self, content_words: int) -> Fusion:
        if self.method == "convex" and 0 < content_words <= self.short_words:
            return replace(self, alpha=self.short_alpha)
        return self


DEFAULT_FUSION = Fusion()
SUMMARY_PASSAGE = PassageId.of("", 0)  # "#0": every entry's passage 0 is its title and summary (kb.passages)
# Sections that say where the evidence is, not what the work was ("the DSA and the DPIA are available
# from the contact above"): they rank below the passages about the work, and never link similar projects.
BOILERPLATE_SECTIONS = ("Evidence and links",)


def in_boilerplate(passage_text: str, title: str) -> bool:
    """Whether a passage (as indexed, with its heading line) of the entry with this title is in a
    boilerplate section. The title is needed: an entry called "Pilot — Evidence and links" heads its
    summary with the very line another entry's evidence section starts with."""
    return section_of(passage_text, title) in BOILERPLATE_SECTIONS


def weigh_summaries(dense: dict[str, float], fusion: Fusion = DEFAULT_FUSION) -> dict[str, float]:
    """The meaning side's similarities with each title-and-summary passage's scaled by
    `fusion.summary_similarity_weight` (a new dict; the raw similarities still judge closeness)."""
    weight = fusion.summary_similarity_weight
    if weight == 1.0:
        return dict(dense)
    return {pid: score * weight if pid.endswith(SUMMARY_PASSAGE) else score for pid, score in dense.items()}


def fuse(
    dense: dict[str, float], keyword: dict[str, float], fusion: Fusion = DEFAULT_FUSION, keyword_complete: bool = True
) -> dict[str, float]:
    """One score per passage from the dense (cosine) and keyword (0..1) candidate lists.

    A passage missing from a list gets that list's lowest score (it ranked below all of them), or 0
    from the keyword list when that list holds every passage that matched at all.
    """
    if fusion.method == "rrf":
        ranked = [sorted(scores, key=lambda p: -scores[p]) for scores in (dense, keyword)]
        return rrf([r for r in ranked if r], k=fusion.rrf_k)
    dense_floor = min(dense.values(), default=0.0)
    keyword_floor = 0.0 if keyword_complete else min(keyword.values(), default=0.0)
    return {
        pid: fusion.alpha * dense.get(pid, dense_floor) + (1 - fusion.alpha) * keyword.get(pid, keyword_floor)
        for pid in dense.keys() | keyword.keys()
    }


def rrf(rankings: list[list[str]], weights: list[float] | None = None, k: int = RRF_K) -> dict[str, float]:
    """Reciprocal rank fusion: each ranking adds weight / (k + rank) to every item it lists."""
    weights = weights or [1.0] * len(rankings)
    fused: dict[str, float] = {}
    for ranking, weight in zip(rankings, weights, strict=True):
        for rank, item in enumerate(ranking, start=1):
            fused[item] = fused.get(item, 0.0) + weight / (k + rank)
    return fused


def best_per_entry(
    scores: dict[str, float], entry_of: dict[str, str], fusion: Fusion | None = None
) -> list[tuple[str, str, float]]:
    """(entry_id, best passage_id, score) per entry, best first; ties break on the entry id, and within
    an entry on the passage id (the greater, as text, first).

    An entry scores as its best passage, plus a share of its second best when the fusion says so
    (an entry that matches in two places is a little more likely to be about the query).
    """
    summary_weight = fusion.summary_weight if fusion else 1.0
    second_weight = fusion.second_passage_weight if fusion else 0.0
    if summary_weight != 1.0:
        scores = {p: s * summary_weight if p.endswith(SUMMARY_PASSAGE) else s for p, s in scores.items()}
    # One pass over the passages best first: an entry's first passage is its best, its next its second.
    ordered = sorted(scores, reverse=True)
    ordered.sort(key=lambda p: (-scores[p], entry_of[p]))
    best: dict[str, tuple[str, float]] = {}
    second: dict[str, float] = {}
    for passage_id in ordered:
        entry_id = entry_of[passage_id]
        if entry_id not in best:
            best[entry_id] = (passage_id, scores[passage_id])
        elif second_weight and entry_id not in second:
            second[entry_id] = scores[passage_id]
    ranked = [
        (entry_id, passage_id, score + second_weight * second.get(entry_id, 0.0))
        for entry_id, (passage_id, score) in best.items()
    ]
    return sorted(ranked, key=lambda t: (-t[2], t[0])) if second else ranked


# ----------------------------------------------------------------------------- snippets


def highlight(text: str, query: str, max_chars: int = 400) -> list[tuple[str, bool]]:
    """The passage around the query's first meaningful word, as (text, marked) pieces. A word is marked
    when it stands for one of the query's meaningful words (kb.analysis: same stem, so "agreements" for
    "agreement"); "what", "could" or "the" never are. Pieces are plain text; whoever renders them
    escapes them."""
    stems = marked_terms(query)
    text = " ".join(text.split())
    first = next((m.start() for m in WORD.finditer(text) if _marked(m.group(0), stems)), 0)
    snippet = _window(text, first, max_chars)
    pieces, last = [], 0
    for match in WORD.finditer(snippet) if stems else ():
        if _marked(match.group(0), stems):
            pieces += [(snippet[last : match.start()], False), (match.group(0), True)]
            last = match.end()
    pieces.append((snippet[last:], False))
    return [(piece, marked) for piece, marked in pieces if piece]


def _marked(word: str, stems: frozenset[str]) -> bool:
    lower = word.lower()
    return meaningful(lower) and term(lower) in stems


def _window(text: str, first: int, max_chars: int) -> str:
    """A slice of the text around the character offset `first`, on word boundaries, with ellipses."""
    if len(text) <= max_chars:
        return text
    start = max(0, first - max_chars // 4)
    start = text.rfind(" ", 0, start) + 1 if start else 0
    end = min(len(text), start + max_chars)
    end = text.rfind(" ", start, end) if end < len(text) else end
    return ("… " if start else "") + text[start:end].strip() + (" …" if end < len(text) else "")
