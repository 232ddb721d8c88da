"""Reading the index: search (keyword, meaning, both fused), within filters and the viewer's access
rule, and similar projects.

    retriever.search("data sharing agreement took too long", filters=..., viewer=...)
    retriever.search_many(parts_of_a_plan, ...)     # one embedding batch, one filter lookup
    retriever.similar(entry_id, record, limit=5)

Access rules never filter after the cut: the top k are taken over what the viewer may see. A narrow
filter is searched exactly over the mirror's copy of the vectors; a broad one asks Chroma for more
neighbours without the clause and keeps the allowed ones (see `_nearest`).
"""

from __future__ import annotations

import itertools
from collections import ChainMap
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np

from kb.access import sees
from kb.analysis import contains_phrases, tokenize, words
from kb.errors import KBError
from kb.filters import Filters, Scope
from kb.identity import User
from kb.mirror import Mirror
from kb.parts import Parts
from kb.passages import PassageId
from kb.relevance import close_similarity
from kb.search import (
    BOILERPLATE_SECTIONS,
    DEFAULT_FUSION,
    MODES,
    Fusion,
    Hit,
    SimilarHit,
    best_per_entry,
    fuse,
    in_boilerplate,
    parse_query,
    weigh_summaries,
)
from kb.spelling import MIN_COUNT, suggest
from kb.vector_index import PassageMatch

CANDIDATES = 100  # passages each retriever returns before fusion
OVERFETCH = 3  # nearest passages asked for without a filter, per passage needed with it
DEEPER_FETCH = 10  # ... and how many times that again when too few of them were allowed
_SIDE_POOL = ThreadPoolExecutor(max_workers=4, thread_name_prefix="lighthouse-dense")
SYNONYM_WEIGHT = 0.7  # a passage naming a synonym of the query's theme: a good match, not a literal one


class Retriever:
    """Search and similar projects over the vector index and the local mirror."""

    def __init__(self, parts: Parts, mirror: Mirror):
        self.parts = parts
        self.mirror = mirror

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
        query_texts = [parsed[i].text for i in live]

        def dense_side(vectors: np.ndarray) -> dict[int, list[PassageMatch]]:
            # Texts are needed only to check quoted phrases; the hits read their own few afterwards.
            phrases = any(parsed[i].phrases for i in live)
            nearest = self._nearest(vectors, candidates, where, entries_where=where, texts=phrases)
            return dict(zip(live, nearest, strict=True))

        # Over Chroma (a collection too large to hold its vectors in memory) the model and Chroma's search
        # release the GIL and each side takes tens of milliseconds: the two sides run at once, and a search
        # costs the slower one. Over vectors held in memory each side is a millisecond or two of Python,
        # which would only contend with the model's own Python for the GIL: there they run in turn, and
        # a search costs less (`python -m bench overhead`).
        dense_matches: dict[int, list[PassageMatch]] = {}
        pending = None
        if mode == "hybrid" and not self._in_memory():
            embedding = _SIDE_POOL.submit(self.parts.embedder.embed, query_texts)
            pending = _SIDE_POOL.submit(lambda: dense_side(embedding.result()))
        elif mode != "bm25":
            dense_matches = dense_side(self.parts.embedder.embed(query_texts))
        keyword_results: dict[int, tuple[list, bool]] = {}
        if mode in ("bm25", "hybrid"):
            allowed = self.mirror.allowed_entries(where) if where is not None else None
            for i in live:
                query = parsed[i]
                synonyms = self.parts.vocabulary.expand(query.text) if expand else []
                # A synonym counts as a name matched on its own scale, weighted below the query's own
                # words, so "DSA" finds "MoU" without every passage saying "data" tying with "DSA". Keyword
                # mode lists exact matches only: a name there matches whole ("mainframe" finds "legacy
                # systems", never "systems" alone); hybrid keeps the partial credit, which ranks better
                # (README, "Search quality").
                weighted = [(query.text, 1.0)] + [(name, SYNONYM_WEIGHT) for name in synonyms]
                keyword_results[i] = self.mirror.replica.scaled_search(
                    weighted, candidates, allowed, list(query.phrases), whole=tuple(synonyms) if mode == "bm25" else ()
                )
        if pending is not None:
            dense_matches = pending.result()
        for i in live:
            query = parsed[i]
            entry_of: dict[str, str] = {}
            texts: dict[str, str] = {}
            dense: dict[str, float] = {}
            keyword: dict[str, float] = {}
            keyword_complete = True
            if mode in ("bm25", "hybrid"):
                matches, keyword_complete = keyword_results[i]
                keyword = {m.passage_id: m.score for m in matches}
                entry_of.update((m.passage_id, m.entry_id) for m in matches)
            if mode in ("dense", "hybrid"):
                matches = dense_matches[i]
                if query.phrases:
                    matches = [m for m in matches if contains_phrases(m.text, query.phrases)]
                dense = {m.passage_id: m.similarity for m in matches}
                entry_of.update((m.passage_id, m.entry_id) for m in matches)
                texts.update((m.passage_id, m.text) for m in matches)
            used = fusion
            meaning = weigh_summaries(dense, fusion)
            if mode == "hybrid":
                used = fusion.for_query(len(tokenize([query.text])[0]))
                scores = fuse(meaning, keyword, used, keyword_complete)
            else:
                scores = meaning if mode == "dense" else dict(keyword)
            self._weigh_boilerplate(scores, texts, entry_of, used.boilerplate_weight, limit)
            closeness = self._closeness(dense, entry_of) if mode != "bm25" else {}
            results[i] = self._hits(best_per_entry(scores, entry_of, used)[:limit], texts, viewer, closeness)
        return results

    def _in_memory(self) -> bool:
        """Whether a search by meaning is answered from the vectors held in memory (`_exact_in_memory`)."""
        return self.mirror.table() is not None and self.mirror.replica.holds_vectors_in_memory()

    def _weigh_boilerplate(
        self, scores: dict[str, float], texts: dict[str, str], entry_of: dict[str, str], weight: float, limit: int
    ) -> None:
        """Scale the scores of boilerplate passages (kb.search.BOILERPLATE_SECTIONS) by `weight`, in place,
        as far as the top `limit` entries need: passages are read best first until `limit` entries have a
        passage that is not boilerplate, scoring at least as much as any passage not yet read (the weight
        only lowers scores, so none of those can rise above them). The texts read are kept in `texts`."""
        if weight == 1.0:
            return
        settled: set[str] = set()
        for passage_id in sorted(scores, key=scores.__getitem__, reverse=True):
            if len(settled) >= limit:
                return
            text = texts.get(passage_id)
            if not text:  # a match found without its text (the light path)
                text = texts[passage_id] = self.mirror.replica.text_of(passage_id) or ""
            if in_boilerplate(text):
                scores[passage_id] *= weight
            else:
                settled.add(entry_of[passage_id])

    def did_you_mean(self, query: str) -> str | None:
        self.mirror.refresh()
        # The common language's words count too, even where no entry uses them yet.
        vocabulary = {
            word: MIN_COUNT for theme in self.parts.vocabulary.themes for name in theme.names for word in words(name)
        }
        return suggest(query, ChainMap(self.mirror.replica.word_counts(), vocabulary))

    def _closeness(self, dense: dict[str, float], entry_of: dict[str, str]) -> dict[str, bool]:
        """Whether each entry the meaning side found is a close match (kb.relevance); an entry it did not
        find is further away than all of these, so it is not close either."""
        threshold = close_similarity(self.parts.embedder.name)
        if threshold is None:
            return {}
        best: dict[str, float] = {}
        for passage_id, similarity in dense.items():
            entry_id = entry_of[passage_id]
            best[entry_id] = max(similarity, best.get(entry_id, -1.0))
        return {entry_id: similarity >= threshold for entry_id, similarity in best.items()}

    def _nearest(
        self,
        vectors: np.ndarray,
        k: int,
        where: dict[str, Any] | None,
        *,
        entries_where: dict[str, Any] | None = None,
        keep: Callable[[PassageMatch], bool] | None = None,
        texts: bool = True,
    ) -> list[list[PassageMatch]]:
        """The k nearest passages to each vector among those `where` allows, as Chroma's filtered query
        gives them, but fast on a large collection. With `texts` False the matches may come without
        their text and section (only when nothing here needs them: `keep` is None).

        Chroma evaluates a `where` clause over the metadata of every passage before it searches: at
        400,000 passages that takes seconds. So the clause is split in two that together say what
        `where` says: `entries_where` picks entries (all of them when None), run on the entry table in
        memory, and `keep` picks passages. Then:
        - a narrow choice (few passages allowed): exact search among just those passages, over the
          keyword index's copy of their vectors, or by Chroma among their ids where there is no copy;
        - a broad one: OVERFETCH times k neighbours without the clause, keeping the allowed ones. When
          at least k survive they are exactly the k nearest allowed passages: any allowed passage
          further out ranks below all of them. When fewer survive, DEEPER_FETCH times as many.
        Where neither answers, Chroma's filtered query does. Nothing outside the clause is returned.
        """
        if where is None or entries_where is not None:
            in_memory = self._exact_in_memory(vectors, k, entries_where, keep, texts or keep is not None)
            if in_memory is not None:
                return in_memory
        if where is None:
            return [kept for kept, _ in self._query(vectors, k, k)]
        allowed = self.mirror.allowed_entries(entries_where) if entries_where is not None else None
        wanted = k if keep is None else k * OVERFETCH
        narrow = self.mirror.narrow_choice(entries_where) if entries_where is not None else None
        if narrow is not None:
            found = self._exact_among(vectors, wanted, k, narrow.entry_ids, allowed, keep)
            if found is None:
                found = self._query(vectors, wanted, k, ids=narrow.passage_ids, allowed=allowed, keep=keep)
            exhausted = narrow.passages
        else:
            wanted = k * OVERFETCH
            found = self._query(vectors, wanted, k, allowed=allowed, keep=keep)
            exhausted = None
        results: list[list[PassageMatch] | None] = []
        for kept, returned in found:
            complete = returned < wanted or (exhausted is not None and returned >= exhausted)
            results.append(kept if len(kept) >= k or complete else None)
        missing = [i for i, r in enumerate(results) if r is None]
        if missing and narrow is not None:
            # `keep` turned down most of the nearest: rank every passage of the chosen entries instead.
            retry = self._exact_among(vectors[missing], narrow.passages, k, narrow.entry_ids, allowed, keep)
            for i, (kept, _) in zip(missing, retry or [], strict=False):
                results[i] = kept
            missing = [i for i, r in enumerate(results) if r is None]
        if missing and narrow is None:
            # Too few allowed among the nearest (a passage deep in a cluster the clause excludes): a
            # deeper walk without the clause costs tens of milliseconds, Chroma's filtered query a second.
            deeper = wanted * DEEPER_FETCH
            retry = self._query(vectors[missing], deeper, k, allowed=allowed, keep=keep)
            for i, (kept, returned) in zip(missing, retry, strict=True):
                results[i] = kept if len(kept) >= k or returned < deeper else None
            missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            for i, matches in zip(missing, self.parts.index.query(vectors[missing], k, where), strict=True):
                results[i] = matches
        return results  # type: ignore[return-value]

    def _query(
        self,
        vectors: np.ndarray,
        fetch: int,
        take: int,
        *,
        ids: list[str] | None = None,
        allowed: frozenset[str] | None = None,
        keep: Callable[[PassageMatch], bool] | None = None,
    ) -> list[tuple[list[PassageMatch], int]]:
        """Chroma's `fetch` nearest passages to each vector (among `ids`) without a clause: the first
        `take` of them whose entry is `allowed` and that `keep` accepts, and how many Chroma returned.

        While the local mirror is current, Chroma returns ids and distances only, and just the passages
        kept are filled in with their text and section from the mirror: filling 300 neighbours cost
        more than finding them.
        """
        table = self.mirror.table()
        if table is not None:
            light = self.parts.index.query(vectors, fetch, None, ids, light=True)
            filled = [self._fill(matches, table, take, allowed, keep) for matches in light]
            if all(f is not None for f in filled):
                return [(f, len(matches)) for f, matches in zip(filled, light, strict=True)]  # type: ignore[misc]
        return [
            (_accepted(matches, take, allowed, keep), len(matches))
            for matches in self.parts.index.query(vectors, fetch, None, ids)
        ]

    def _exact_in_memory(
        self,
        vectors: np.ndarray,
        k: int,
        entries_where: dict[str, Any] | None,
        keep: Callable[[PassageMatch], bool] | None,
        texts: bool,
    ) -> list[list[PassageMatch]] | None:
        """The k nearest passages to each vector among the allowed entries' and that `keep` accepts, by
        exact search over every vector held in memory, while the mirror is current and its vectors fit
        (None otherwise). Exact, so no neighbour is missed, and for a collection of this size faster
        than asking Chroma: a matrix product over tens of thousands of rows takes a millisecond."""
        if not self._in_memory():
            return None
        table, replica = self.mirror.table(), self.mirror.replica
        allowed = self.mirror.allowed_entries(entries_where) if entries_where is not None else None
        fetch = k if keep is None else k * OVERFETCH
        found = replica.nearest(vectors, None, fetch, allowed_entries=allowed)
        if found is not None and not texts:
            return [_light(matches) for matches in found]
        results: list[list[PassageMatch]] = []
        for i, matches in enumerate(found or []):
            size = fetch
            kept = self._fill(_light(matches), table, k, None, keep)
            while kept is not None and len(kept) < k and len(matches) == size:
                size *= DEEPER_FETCH  # `keep` turned down most of the nearest: look further
                (matches,) = replica.nearest(vectors[i : i + 1], None, size, allowed_entries=allowed) or [[]]
                kept = self._fill(_light(matches), table, k, None, keep)
            if kept is None:
                return None
            results.append(kept)
        return results if found is not None else None

    def _exact_among(
        self,
        vectors: np.ndarray,
        fetch: int,
        take: int,
        entry_ids: list[str],
        allowed: frozenset[str] | None,
        keep: Callable[[PassageMatch], bool] | None,
    ) -> list[tuple[list[PassageMatch], int]] | None:
        """`_query` among these entries' passages, answered by exact search over the keyword index's
        copy of the vectors while it mirrors the index; None where it cannot answer.

        Chroma answers a long id list with a filtered walk of its graph, which at 400,000 passages
        costs tens of milliseconds more than reading 12,000 vectors and one matrix product.
        """
        table = self.mirror.table()
        local = self.mirror.replica.nearest(vectors, entry_ids, fetch) if table is not None else None
        if local is None:
            return None
        found = []
        for matches in local:
            filled = self._fill(_light(matches), table, take, allowed, keep)
            if filled is None:
                return None
            found.append((filled, len(matches)))
        return found

    def _fill(
        self,
        matches: list[PassageMatch],
        table,
        take: int,
        allowed: frozenset[str] | None,
        keep: Callable[[PassageMatch], bool] | None,
    ) -> list[PassageMatch] | None:
        """The first `take` accepted matches, text and section filled from the mirror (None: not mirrored)."""
        titles = table.column("title")
        kept: list[PassageMatch] = []
        for m in matches:
            if len(kept) == take:
                break
            if allowed is not None and m.entry_id not in allowed:
                continue
            text = self.mirror.replica.text_of(m.passage_id)
            position = table.position.get(m.entry_id)
            if text is None or position is None:
                return None
            filled = PassageMatch(
                m.passage_id, m.entry_id, _section_of(text, {"title": titles[position]}), text, m.similarity
            )
            if keep is None or keep(filled):
                kept.append(filled)
        return kept

    def _hits(
        self,
        ranked: list[tuple[str, str, float]],
        texts: dict[str, str],
        viewer: User | None,
        closeness: dict[str, bool] | None = None,
    ) -> list[Hit]:
        """Hits for the ranked entries the viewer may see; with `closeness` (a search by meaning), each
        says whether it is a close match."""
        if not ranked:
            return []
        ids = [e for e, _, _ in ranked]
        meta = self.mirror.records_of(ids)  # as of the mark `refresh` read when the search began
        visible = sees(viewer)
        hits = []
        for entry_id, passage_id, score in ranked:
            record = meta.get(entry_id, {})
            if not visible(record):
                continue
            text = texts.get(passage_id) or self.mirror.replica.text_of(passage_id) or ""
            close = closeness.get(entry_id, False) if closeness else None
            hits.append(_hit(Hit, entry_id, score, text, record, close=close))
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
        results = self._nearest(
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
                    match.text,
                    m,
                    source_passage=_body(source.text),
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
        ids, texts, vectors = local
        title = {"title": table.column("title")[table.position[entry_id]]}
        return [
            PassageMatch(p, entry_id, _section_of(t, title), t, 1.0) for p, t in zip(ids, texts, strict=True)
        ], vectors


def _where(filters: Filters | None, viewer: User | None, extra: list[dict[str, Any]] | None = None):
    """The facet filters, what the viewer may see, and any extra clauses, as one clause."""
    return Scope(filters or Filters(), viewer).where(extra or [])


def _light(matches) -> list[PassageMatch]:
    """Vector matches as passage matches whose text and section are still to be filled in."""
    return [PassageMatch(m.passage_id, m.entry_id, "", "", m.similarity) for m in matches]


def _accepted(
    matches: list[PassageMatch],
    take: int,
    allowed: frozenset[str] | None,
    keep: Callable[[PassageMatch], bool] | None,
) -> list[PassageMatch]:
    accepted = (m for m in matches if (allowed is None or m.entry_id in allowed) and (keep is None or keep(m)))
    return list(itertools.islice(accepted, take))


def _body(passage_text: str) -> str:
    """What a reader sees of a passage: its text without the "title — section" line."""
    return passage_text.split("\n", 1)[1] if "\n" in passage_text else passage_text


def _hit(cls, entry_id: str, score: float, text: str, meta: dict[str, Any], **extra: Any):
    return cls(
        id=entry_id,
        title=str(meta.get("title", entry_id)),
        score=round(float(score), 6),
        passage=_body(text),
        section=_section_of(text, meta),
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


def _section_of(text: str, meta: dict[str, Any]) -> str:
    first = text.split("\n", 1)[0]
    title = str(meta.get("title", ""))
    if first.startswith(f"{title} — "):
        return first[len(title) + 3 :]
    return "Summary"
