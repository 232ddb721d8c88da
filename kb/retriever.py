"""Reading the index: search (keyword, meaning, both fused), within filters and the viewer's access
rule, and similar projects.

    retriever.search("data sharing agreement took too long", filters=..., viewer=...)
    retriever.search_many(parts_of_a_plan, ...)     # one embedding batch, one filter lookup
    retriever.similar(entry_id, record, limit=5)

Access rules never filter after the cut: the top k are taken over what the viewer may see, on both
sides (the meaning side's plan is kb.nearest's).
"""

from __future__ import annotations

from collections import ChainMap
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from kb.access import sees
from kb.analysis import contains_phrases, tokenize, words
from kb.errors import KBError
from kb.filters import Filters, Scope
from kb.identity import User
from kb.mirror import Mirror
from kb.nearest import NearestPassages
from kb.parts import Parts
from kb.passages import PassageId, body_of
from kb.ranking import Pool
from kb.relevance import close_similarity
from kb.search import (
    BOILERPLATE_SECTIONS,
    DEFAULT_FUSION,
    MODES,
    Fusion,
    Hit,
    SimilarHit,
    parse_query,
)
from kb.spelling import MIN_COUNT, suggest
from kb.vector_index import PassageMatch

CANDIDATES = 100  # passages each retriever returns before fusion
_SIDE_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lighthouse-dense")
SYNONYM_WEIGHT = 0.7  # a passage naming a synonym of the query's theme: a good match, not a literal one


class Retriever:
    """Search and similar projects over the vector index and the local mirror."""

    def __init__(self, parts: Parts, mirror: Mirror):
        self.parts = parts
        self.mirror = mirror
        self.nearest = NearestPassages(parts, mirror)

    def search(
        self,
        query: str,
        *,
        limit: int = 10,
        filters: Filters | None = None,
        mode: str = "hybrid",
        fusion: Fusion = DEFAULT_FUSION,
        expand: bool = True,
        viewer: User | None = None,
    ) -> list[Hit]:
        """Entries best matching the query, each with its best passage, within the filters.

        With expand, a query naming a theme or a synonym also matches the theme's other names
        (keyword side only: the vector side already knows that "MoU" and "agreement" are close).
        """
        return self.search_many(
            [query], limit=limit, filters=filters, mode=mode, fusion=fusion, expand=expand, viewer=viewer
        )[0]

    def search_many(
        self,
        queries: list[str],
        *,
        limit: int = 10,
        filters: Filters | None = None,
        mode: str = "hybrid",
        fusion: Fusion = DEFAULT_FUSION,
        expand: bool = True,
        viewer: User | None = None,
    ) -> list[list[Hit]]:
        """`search` for several queries at once (the parts of a plan): one embedding batch, one
        filter lookup and one vector query for all of them."""
        if mode not in MODES:
            raise KBError(f"unknown search mode '{mode}'; use one of: {', '.join(MODES)}")
        parsed = [parse_query(q) for q in queries]
        live = [i for i, p in enumerate(parsed) if p.text]
        results: list[list[Hit]] = [[] for _ in queries]
        if not live:
            return results
        where = _where(filters, viewer)
        candidates = max(CANDIDATES, limit * 3)
        self.mirror.refresh()  # first: it may swap in a newer replica, which both sides then read
        # A synonym counts as a name matched on its own scale, weighted below the query's own words, so
        # "DSA" finds "MoU" without every passage saying "data" tying with "DSA". Keyword mode lists exact
        # matches only: a name there matches whole ("mainframe" finds "legacy systems", never "systems"
        # alone); hybrid keeps the partial credit, which ranks better (README, "Search quality").
        asked = []
        for i in live:
            synonyms = self.parts.vocabulary.expand(parsed[i].text) if expand else []
            weighted = [(parsed[i].text, 1.0)] + [(name, SYNONYM_WEIGHT) for name in synonyms]
            asked.append(_Asked(parsed[i].text, parsed[i].phrases, weighted, tuple(synonyms) if mode == "bm25" else ()))
        in_memory = (mode == "bm25" or self.nearest.in_memory()) and self.mirror.table() is not None
        vectors = self.parts.embedder.embed([q.text for q in asked]) if in_memory and mode != "bm25" else None
        pools = self._pools_in_memory(asked, mode, candidates, where, vectors) if in_memory else None
        if pools is None:
            pools = self._pools(asked, mode, candidates, where, vectors)
        threshold = close_similarity(self.parts.embedder.name) if mode != "bm25" else None
        for i, query, pool in zip(live, asked, pools, strict=True):
            used = fusion.for_query(len(tokenize([query.text])[0])) if mode == "hybrid" else fusion
            scores = pool.scores(mode, used)
            ranked = pool.best_per_entry(scores, used, limit)
            results[i] = self._hits(pool, ranked, viewer, pool.closeness(ranked, threshold))
        return results

    def _pools_in_memory(
        self, asked: list[_Asked], mode: str, candidates: int, where: dict[str, Any] | None, vectors: np.ndarray | None
    ) -> list[Pool] | None:
        """Each query's pool from one reading of the replica's rows, where its vectors are held in memory
        (None where the replica cannot answer so). Each side is then a millisecond or two of Python, which
        a second thread would only make wait for the GIL while the model runs its own Python: they run in
        turn."""
        allowed = self.mirror.allowed_entries(where) if where is not None else None
        read = self.mirror.replica.sides(
            vectors,
            [q.weighted for q in asked] if mode != "dense" else None,
            candidates,
            allowed_entries=allowed,
            phrases=[q.phrases for q in asked],
            whole=[q.whole for q in asked],
        )
        if read is None:
            return None
        view, found = read
        return [Pool.of_rows(view, nearest, matched) for nearest, matched in found]

    def _pools(
        self, asked: list[_Asked], mode: str, candidates: int, where: dict[str, Any] | None, vectors: np.ndarray | None
    ) -> list[Pool]:
        """Each query's pool from the plan over Chroma (kb.nearest) and the replica's keyword search
        (`vectors`: the queries', when already embedded).

        Over Chroma (a collection too large to hold its vectors in memory) the model and Chroma's search
        release the GIL and each side takes tens of milliseconds: the two sides run at once, and a search
        costs the slower one."""
        texts = [q.text for q in asked]

        def dense_side(vectors: np.ndarray) -> list[list[PassageMatch]]:
            # Texts are needed only to check quoted phrases; the hits read their own few afterwards.
            phrases = any(q.phrases for q in asked)
            return self.nearest.find(vectors, candidates, where, entries_where=where, texts=phrases)

        dense: list = [None] * len(asked)
        pending = None
        if mode == "hybrid" and vectors is None and not self.nearest.in_memory():
            embedding = _SIDE_POOL.submit(self.parts.embedder.embed, texts)
            pending = _SIDE_POOL.submit(lambda: dense_side(embedding.result()))
        elif mode != "bm25":
            dense = dense_side(vectors if vectors is not None else self.parts.embedder.embed(texts))
        keyword: list = [None] * len(asked)
        if mode in ("bm25", "hybrid"):
            allowed = self.mirror.allowed_entries(where) if where is not None else None
            keyword = [
                self.mirror.replica.scaled_search(q.weighted, candidates, allowed, list(q.phrases), whole=q.whole)
                for q in asked
            ]
        if pending is not None:
            dense = pending.result()
        pools = []
        for query, matches, found in zip(asked, dense, keyword, strict=True):
            if matches is not None and query.phrases:
                matches = [m for m in matches if contains_phrases(m.text, query.phrases)]
            keyword_matches, complete = found if found is not None else (None, True)
            pools.append(Pool.of_matches(matches, keyword_matches, self.mirror.replica.text_of, complete))
        return pools

    def did_you_mean(self, query: str) -> str | None:
        self.mirror.refresh()
        # The common language's words count too, even where no entry uses them yet.
        vocabulary = {
            word: MIN_COUNT for theme in self.parts.vocabulary.themes for name in theme.names for word in words(name)
        }
        return suggest(query, ChainMap(self.mirror.replica.word_counts(), vocabulary))

    def _hits(
        self, pool: Pool, ranked: list[tuple[int, float]], viewer: User | None, closeness: dict[str, bool] | None
    ) -> list[Hit]:
        """Hits for the ranked entries the viewer may see; with `closeness` (a search by meaning), each
        says whether it is a close match (None: not judged)."""
        if not ranked:
            return []
        ids = [pool.entry_id(slot) for slot, _ in ranked]
        meta = self.mirror.records_of(ids)  # as of the mark `refresh` read when the search began
        visible = sees(viewer)
        hits = []
        for entry_id, (slot, score) in zip(ids, ranked, strict=True):
            record = meta.get(entry_id, {})
            if not visible(record):
                continue
            close = closeness[entry_id] if closeness is not None else None
            hits.append(_hit(Hit, entry_id, score, pool.section(slot), pool.text(slot), record, close=close))
        return hits

    def similar(
        self,
        entry_id: str,
        own: dict[str, Any] | None,
        *,
        limit: int = 5,
        filters: Filters | None = None,
        viewer: User | None = None,
    ) -> list[SimilarHit]:
        """The entries nearest to this one by their passages (never itself), with the linking passages.
        `own` is the entry's index record (None: not indexed yet); the caller has checked that the viewer
        may see the entry."""
        self.mirror.refresh()  # keeps the mirror and the allowed-entry sets current
        passages, vectors = self._own_passages(entry_id) if own is not None else ([], np.zeros((0, 0)))
        if not passages:
            raise KBError(f"'{entry_id}' is not indexed yet; run `python -m kb sync`")
        # "Evidence and links" says where the evidence is, not what the work was: two entries that
        # both say "ask the contact above" are not similar projects.
        keep = [i for i, p in enumerate(passages) if p.section not in BOILERPLATE_SECTIONS] or list(
            range(len(passages))
        )
        passages, vectors = [passages[i] for i in keep], vectors[keep]
        where = _where(
            filters, viewer, [{"entry_id": {"$ne": entry_id}}, {"section": {"$nin": list(BOILERPLATE_SECTIONS)}}]
        )
        results = self.nearest.find(
            vectors,
            max(50, limit * 10),
            where,
            entries_where=_where(filters, viewer),
            keep=lambda m: m.entry_id != entry_id and m.section not in BOILERPLATE_SECTIONS,
        )
        best: dict[str, tuple[float, Any, Any]] = {}
        for source, matches in zip(passages, results, strict=True):
            for match in matches:
                if match.entry_id not in best or match.similarity > best[match.entry_id][0]:
                    best[match.entry_id] = (match.similarity, source, match)
        ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))[:limit]
        meta = self.mirror.records_of([e for e, _ in ranked] + [entry_id])
        own_themes = set(meta.get(entry_id, {}).get("themes") or ())
        hits = []
        for other_id, (score, source, match) in ranked:
            m = meta.get(other_id, {})
            hits.append(
                _hit(
                    SimilarHit,
                    other_id,
                    score,
                    match.section,
                    match.text,
                    m,
                    source_passage=body_of(source.text),
                    source_section=source.section,
                    shared_themes=tuple(t for t in (m.get("themes") or ()) if t in own_themes),
                )
            )
        return hits

    def _own_passages(self, entry_id: str) -> tuple[list[PassageMatch], np.ndarray]:
        """An entry's passages and vectors: from the local copy while it mirrors the index, else from
        the index, by id when the mirror knows how many there are. (At 100,000 entries each read by id
        from embedded Chroma left about 3 MB more resident in the process.)"""
        table = self.mirror.table()
        if table is None or entry_id not in table.position:
            return self.parts.index.passages(entry_id)
        local = self.mirror.replica.entry_passages(entry_id)
        if local is None:
            count = int(np.nan_to_num(table.column("passages")[table.position[entry_id]]))
            return self.parts.index.passages(ids=[PassageId.of(entry_id, i) for i in range(count)])
        passages = zip(local.ids, local.sections, local.texts, strict=True)
        return [PassageMatch(p, entry_id, section, text, 1.0) for p, section, text in passages], local.vectors


@dataclass(frozen=True)
class _Asked:
    """One query as both sides take it."""

    text: str  # without its quotes
    phrases: tuple[str, ...]  # quoted: a passage must hold them
    weighted: list[tuple[str, float]]  # the keyword side's queries: the text itself, then its synonyms
    whole: tuple[str, ...]  # names the keyword side matches only whole


def _where(filters: Filters | None, viewer: User | None, extra: list[dict[str, Any]] | None = None):
    """The facet filters, what the viewer may see, and any extra clauses, as one clause."""
    return Scope(filters or Filters(), viewer).where(extra or [])


def _hit(cls, entry_id: str, score: float, section: str, text: str, meta: dict[str, Any], **extra: Any):
    return cls(
        id=entry_id,
        title=str(meta.get("title", entry_id)),
        score=round(float(score), 6),
        passage=body_of(text),
        section=section,
        organisation=str(meta.get("organisation", "")),
        kind=str(meta.get("kind", "")),
        outcome=str(meta.get("outcome", "")),
        year=meta.get("year"),
        themes=tuple(meta.get("themes") or ()),
        lighthouse_stage=str(meta.get("lighthouse_stage", "")),
        status=str(meta.get("status", "")),
        evidence=str(meta.get("evidence", "")),
        **extra,
    )
