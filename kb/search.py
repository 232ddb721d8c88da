"""Search's vocabulary: query parsing, how the two sides' scores fuse (`Fusion`), boilerplate sections,
typed hits and snippets. The ranking itself is kb.ranking's; the retrieval, kb.retriever's.

By meaning, the title-and-summary passage counts a little less than the others
(`Fusion.summary_similarity_weight`), so a short title does not win over a body that answers the query.
Filters go inside both retrievers, so the top k is always taken over the entries the filter allows,
never cut first and filtered after.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any

from kb.analysis import WORD, marked_terms, meaningful, term

MODES = ("hybrid", "dense", "bm25")
RRF_K = 60  # reciprocal rank fusion: each ranking adds 1 / (RRF_K + rank)


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
# Sections that say where the evidence is, not what the work was ("the DSA and the DPIA are available
# from the contact above"): they rank below the passages about the work, and never link similar projects.
BOILERPLATE_SECTIONS = ("Evidence and links",)


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
