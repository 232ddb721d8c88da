"""The replica's answers from its current rows: keyword searches (BM25, quoted phrases, word counts),
exact searches over the copy of the vectors, both sides of a search at once (`sides`, the rows and scores
a ranking pools), passage texts, and the check of a vector index against it.

Each read takes the rows once and answers from them alone: segments never change in place, so a save
swapping in new ones meanwhile cannot mix two folders in one answer. A search or text read that meets a
damaged file marks the folder untrusted and gives what an absent index gives (untrusted_if_damaged).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterable, Mapping

import numpy as np

from kb.analysis import tokenize
from kb.replica.corpus import EntryPassages, VectorMatch
from kb.replica.files import locked, untrusted_if_damaged
from kb.replica.keywords import KeywordMatch
from kb.replica.rows import Rows, compare_entries, compare_passages

Found = tuple[np.ndarray, np.ndarray]  # rows, best first, and their similarities
Scored = tuple[np.ndarray, np.ndarray, bool]  # rows, their keyword scores, and whether none was cut
EXACT_BYTES = 128 << 20  # vectors up to this size are held in memory and every search over them is exact


class ReplicaReads:
    """The reads of kb.replica.folder.Replica, which keeps the folder and gives them its rows."""

    # Provided by the folder side: the rows as opened, the lock `locked` takes, and what
    # `untrusted_if_damaged` calls when a read finds a damaged file.
    _current: Callable[[], Rows]
    _lock: threading.RLock
    _distrust: Callable[[str], None]

    def __init__(self) -> None:
        # By allowed set: the set, the rows it was computed over, the mask. The folder side empties it
        # whenever its rows change, so no mask keeps old segments open.
        self._masks: dict[int, tuple[frozenset[str], Rows, np.ndarray]] = {}
        self._masks_lock = threading.Lock()

    # ----------------------------------------------------------------- keywords

    @locked
    def weights(self, allowed_entries: set[str] | None = None, phrases: list[str] | None = None) -> np.ndarray | None:
        """A 0/1 weight per row: a live passage whose entry is allowed and that holds every phrase.
        None: every live passage passes.

        Computed once per search and shared by every keyword query of that search (query words, synonyms).
        """
        return self._weights(self._current(), allowed_entries, phrases)

    def _weights(self, rows: Rows, allowed_entries: set[str] | None, phrases: list[str] | None) -> np.ndarray | None:
        weights = None if allowed_entries is None else self._mask(rows, allowed_entries)
        if phrases:
            has_all = rows.phrase_mask(phrases)
            weights = has_all if weights is None else weights * has_all
        return weights

    def _mask(self, rows: Rows, allowed_entries: set[str] | frozenset[str]) -> np.ndarray:
        """1 for the live passages of allowed entries among these rows. A frozen set (the knowledge base
        keeps one per reader and filters until the index changes) keeps its mask while the rows are the
        same: at 100k entries it costs tens of ms. Always built from the rows the caller reads, so a save
        landing meanwhile cannot pair a mask with other rows."""
        with self._masks_lock:
            cached = self._masks.get(id(allowed_entries))
        if cached is not None and cached[0] is allowed_entries and cached[1] is rows:
            return cached[2]
        mask = rows.mask(allowed_entries)
        mask.flags.writeable = False  # shared by every search that reuses it
        if isinstance(allowed_entries, frozenset):
            with self._masks_lock:
                while len(self._masks) >= 64:
                    self._masks.pop(next(iter(self._masks)))
                self._masks[id(allowed_entries)] = (allowed_entries, rows, mask)
        return mask

    @untrusted_if_damaged("the keyword files", list)
    @locked
    def search(self, query: str, k: int, weights: np.ndarray | None = None) -> list[KeywordMatch]:
        """Top k live passages by BM25 among those whose weight (from `weights`) is 1."""
        rows = self._current()
        return rows.keyword_matches(*rows.best(tokenize([query])[0], k, weights))

    @untrusted_if_damaged("keyword search", lambda: ([], False))
    @locked
    def scaled_search(
        self,
        queries: list[tuple[str, float]],
        k: int,
        allowed_entries: set[str] | None = None,
        phrases: list[str] | None = None,
        whole: tuple[str, ...] = (),
    ) -> tuple[list[KeywordMatch], bool]:
        """Several weighted queries, each scored 0..1 by its own `max_score`; a passage keeps its best.
        A query named in `whole` (a theme's other name, "legacy systems") matches only passages that
        hold all its words next to each other, never one of them alone ("systems").

        Returns the matches and whether they are complete (no query was cut at k, so a passage
        missing here matched none of the words). All in one step, so an update cannot slip between.
        """
        rows = self._current()
        return rows.scaled_matches(queries, k, self._weights(rows, allowed_entries, phrases), whole)

    @untrusted_if_damaged("the keyword files", dict)
    @locked
    def word_counts(self) -> Mapping[str, int]:
        """How often each word occurs in the passages (for spelling suggestions)."""
        return self._current().keywords.word_counts

    @untrusted_if_damaged("the keyword files", float)
    @locked
    def max_score(self, query: str) -> float:
        """What a passage holding every query word once, at average length, would score (Lucene IDF sum).

        Dividing by it puts BM25 on a 0..1 scale that means "how much of the query matched", which a
        per-query min-max would erase: a passage that matched one stray word must not look perfect.
        """
        return self._current().keywords.max_score(tokenize([query])[0])

    @untrusted_if_damaged("the keyword files", lambda: np.zeros(0, dtype=np.float32))
    def phrase_mask(self, phrases: list[str]) -> np.ndarray:
        """1 for live passages holding every phrase (its words next to each other, in order), else 0."""
        return self._current().phrase_mask(phrases)

    @untrusted_if_damaged("the keyword files", list)
    def holding(self, phrases: list[str]) -> list[str]:
        """The live passages holding every phrase, by id, in row order."""
        rows = self._current()
        return rows.ids_of(np.flatnonzero(rows.phrase_mask(phrases)))[0]

    # ----------------------------------------------------------------- vectors and texts

    @property
    def has_vectors(self) -> bool:
        """True when this folder keeps its passages' vectors (every row came with one)."""
        return self._current().dimension is not None

    def holds_vectors_in_memory(self) -> bool:
        """True when every vector fits in EXACT_BYTES: searches over them are then exact and in memory."""
        return self._current().fits_in_memory(EXACT_BYTES)

    @untrusted_if_damaged("vectors.bin", lambda: None)
    def nearest(
        self,
        queries: np.ndarray,
        entry_ids: Iterable[str] | None,
        k: int,
        *,
        allowed_entries: set[str] | frozenset[str] | None = None,
    ) -> list[list[VectorMatch]] | None:
        """The k passages most similar to each query, by exact search over the kept vectors: among the
        passages of `entry_ids`, reading just their vectors; or, with `entry_ids` None, among every live
        passage (of `allowed_entries`, when given) over the vectors held in memory. None when this
        folder has no vectors of the queries' size (or they turn out damaged: the vector index answers).

        No lock, like `text_of`: segments never change in place, and the rows are read once.
        """
        rows = self._current()
        if rows.dimension is None or np.shape(queries)[-1] != rows.dimension:
            return None
        if entry_ids is None:
            weights = None if allowed_entries is None else self._mask(rows, allowed_entries)
            found = rows.exact(queries, weights, k)
        else:
            found = rows.nearest(queries, entry_ids, k)
        matches = []
        for found_rows, similarities in found:
            passage_ids, owners = rows.ids_of(found_rows)
            found_matches = zip(passage_ids, owners, rows.sections_at(found_rows), similarities.tolist(), strict=True)
            matches.append([VectorMatch(*m) for m in found_matches])
        return matches

    @untrusted_if_damaged("the replica's files", lambda: None)
    def sides(
        self,
        vectors: np.ndarray | None,
        keyword_queries: list[list[tuple[str, float]]] | None,
        k: int,
        *,
        allowed_entries: frozenset[str] | None = None,
        phrases: list[tuple[str, ...]] | None = None,
        whole: list[tuple[str, ...]] | None = None,
    ) -> tuple[RowView, list[tuple[Found | None, Scored | None]]] | None:
        """For each query, from one reading of the rows: its k nearest passages by exact search over the
        vectors held in memory (with `vectors`, one row per query), as rows and similarities, and its k
        best by keywords (with `keyword_queries`: `scaled_search`'s weighted queries, `whole` its names
        that match only whole), as rows, scores and whether that side is complete; among the passages of
        `allowed_entries` (all when None). A query's quoted `phrases` keep, of its k nearest, those
        holding them, and are required of its keyword matches. With them, a view of the rows read, to
        spell the few a ranking needs (kb.ranking.Pool.of_rows). None where the vectors are not held in
        memory here: ask `nearest` and `scaled_search`."""
        rows = self._current()
        queries = len(vectors) if vectors is not None else len(keyword_queries or [])
        if vectors is not None and (
            rows.dimension is None or np.shape(vectors)[-1] != rows.dimension or not rows.fits_in_memory(EXACT_BYTES)
        ):
            return None
        allowed = None if allowed_entries is None else self._mask(rows, allowed_entries)
        dense = rows.exact(vectors, allowed, k) if vectors is not None else [None] * queries
        found: list[tuple[Found | None, Scored | None]] = []
        for i in range(queries):
            holding = rows.phrase_mask(list(phrases[i])) if phrases and phrases[i] else None
            nearest = dense[i]
            if nearest is not None and holding is not None:
                keep = holding[nearest[0]] > 0
                nearest = (nearest[0][keep], nearest[1][keep])
            matched = None
            if keyword_queries is not None:
                weights = allowed if holding is None else holding if allowed is None else allowed * holding
                with self._lock:  # as `scaled_search` takes it
                    matched = rows.scaled_rows(keyword_queries[i], k, weights, whole[i] if whole else ())
            found.append((nearest, matched))
        return RowView(self, rows), found

    @untrusted_if_damaged("the passage files", lambda: None)
    def entry_passages(self, entry_id: str) -> EntryPassages | None:
        """One entry's passages, in passage order, vectors included; None when not all are here."""
        held = self._current().passages_of(entry_id)
        return None if held is None or held.vectors is None else held

    def vector_check(self) -> tuple[Callable[[Iterable[tuple[str, np.ndarray]]], str], ...] | None:
        """Two checks of what a vector index holds against this folder's copy of the vectors, one for the
        passages and one for the entries (each takes (id, vector) pairs and returns "" or what differs);
        None when this folder keeps no vectors."""
        rows = self._current()
        if rows.dimension is None:
            return None
        return functools.partial(compare_passages, rows), functools.partial(compare_entries, rows)

    @untrusted_if_damaged("texts.bin", lambda: None)
    def _text_at(self, rows: Rows, row: int) -> str | None:
        """The text of one of these rows (as `sides` read them, for its RowView)."""
        return rows.text(row)

    @untrusted_if_damaged("texts.bin", lambda: None)
    def text_of(self, passage_id: str) -> str | None:
        """A passage's text, or None if this index does not hold it. No lock: segments never change in
        place, so a vector search filling in its matches never waits for a keyword search."""
        rows = self._current()
        row = rows.row_of(passage_id)
        return None if row is None else rows.text(row)

    @untrusted_if_damaged("texts.bin", lambda: None)
    def passage(self, passage_id: str) -> tuple[str, str] | None:
        """A passage's section and text, or None if this index does not hold it (no lock, as `text_of`)."""
        rows = self._current()
        row = rows.row_of(passage_id)
        return None if row is None else (rows.section(row), rows.text(row))


class RowView:
    """The rows a read of `sides` answered from, for the few of them a ranking spells out: their entries
    (as codes), passage numbers, sections and texts. A text that turns out damaged reads as empty, and marks the
    folder untrusted as any read does."""

    def __init__(self, reads: ReplicaReads, rows: Rows):
        self._reads, self._rows = reads, rows

    def entry_codes(self, rows: np.ndarray) -> np.ndarray:
        return self._rows.entry_codes(rows)

    def numbers_at(self, rows: np.ndarray) -> np.ndarray:
        return self._rows.numbers_at(rows)

    def entry_id(self, code: int) -> str:
        return self._rows.entry_of_code(code)

    def in_sections(self, rows: np.ndarray, names: Iterable[str]) -> np.ndarray:
        return self._rows.in_sections(rows, names)

    def section(self, row: int) -> str:
        return self._rows.section(row)

    def text(self, row: int) -> str:
        return self._reads._text_at(self._rows, row) or ""
