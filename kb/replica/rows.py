"""Every passage of the replica's segments as one collection: rows numbered across the segments in order.

An entry lives in the newest segment that holds it. Its rows in older segments are dead: never found,
scored, counted or copied. The view is immutable, like its segments; a change makes a new one.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from functools import cached_property

import numpy as np

from kb.analysis import phrase_words, tokenize, words
from kb.arrays import distinct
from kb.passages import PassageId
from kb.replica.corpus import EntryPassages, decoded
from kb.replica.keywords import KeywordIndex, KeywordMatch
from kb.replica.segment import Segment


class Rows:
    """The passages of these segments (oldest first) without those of the `dead` entries in all but the
    newest segment."""

    def __init__(self, segments: list[Segment], dead: frozenset[str] = frozenset()):
        self.segments = segments
        self.dead = dead
        self.firsts = np.cumsum([0] + [len(s.corpus) for s in segments]).astype(np.int64)
        # Each segment's entries numbered on from the previous segment's: one code per (segment, entry).
        self.entry_firsts = np.cumsum([0] + [len(s.corpus.entries) for s in segments]).astype(np.int64)
        alive = None
        if dead and len(segments) > 1:
            alive = np.ones(int(self.firsts[-1]), dtype=bool)
            for i, segment in enumerate(segments[:-1]):
                corpus = segment.corpus
                codes = [corpus.codes[e] for e in dead if e in corpus.codes]
                alive[self.firsts[i] : self.firsts[i + 1]] = ~np.isin(corpus.row_codes, np.asarray(codes, np.int32))
        self.alive = alive  # per row; None: every row is live
        self.keywords = KeywordIndex([s.words for s in segments], alive)
        dimensions = {s.corpus.dimension for s in segments if len(s.corpus)}
        self.dimension = dimensions.pop() if len(dimensions) == 1 else None

    def __len__(self) -> int:
        return int(self.firsts[-1])

    @property
    def live_count(self) -> int:
        return len(self) if self.alive is None else int(self.alive.sum())

    # ----------------------------------------------------------------- one row, one entry

    def _segment_of(self, row: int) -> tuple[Segment, int]:
        i = int(np.searchsorted(self.firsts, row, side="right")) - 1
        return self.segments[i], row - int(self.firsts[i])

    def text(self, row: int) -> str:
        segment, local = self._segment_of(row)
        return segment.corpus.text(local)

    def passage_id(self, row: int) -> str:
        segment, local = self._segment_of(row)
        return segment.corpus.passage_id(local)

    def section(self, row: int) -> str:
        segment, local = self._segment_of(row)
        return segment.corpus.section(local)

    def ids_of(self, rows: np.ndarray) -> tuple[list[str], list[str]]:
        """The passage ids and entry ids of these rows, in their order."""
        entries = self._entries
        entry_ids = [entries[code] for code in self.entry_codes(rows).tolist()]
        numbers = self.numbers_at(rows).tolist()
        return [PassageId.of(e, n) for e, n in zip(entry_ids, numbers, strict=True)], entry_ids

    def entry_codes(self, rows: np.ndarray) -> np.ndarray:
        """Each row's entry as a number (`entry_of_code` spells it): one per entry and segment, so one per
        live entry, whose live rows are all in its newest segment."""
        return self._per_segment(rows, lambda corpus, local: corpus.row_codes[local], self.entry_firsts)

    def numbers_at(self, rows: np.ndarray) -> np.ndarray:
        """Each row's passage number within its entry."""
        return self._per_segment(rows, lambda corpus, local: corpus.numbers[local])

    def sections_at(self, rows: np.ndarray) -> list[str]:
        """Each row's section."""
        return self._per_segment(rows, lambda corpus, local: corpus.sections_at(local), dtype=object).tolist()

    def in_sections(self, rows: np.ndarray, names: Iterable[str]) -> np.ndarray:
        """Whether each of these rows belongs to one of the named sections."""
        chosen = frozenset(names)
        return self._per_segment(rows, lambda corpus, local: corpus.in_sections(local, chosen), dtype=bool)

    def entry_of_code(self, code: int) -> str:
        return self._entries[code]

    @cached_property
    def _entries(self) -> list[str]:
        """Every segment's entry ids, by code (a dead entry's old code included)."""
        if len(self.segments) == 1:
            return self.segments[0].corpus.entries
        return [entry_id for segment in self.segments for entry_id in segment.corpus.entries]

    def _per_segment(self, rows: np.ndarray, read, offsets: np.ndarray | None = None, dtype=np.int64) -> np.ndarray:
        """`read(corpus, local rows)` for these rows, segment by segment, plus each segment's offset."""
        rows = np.asarray(rows, dtype=np.int64)
        if len(self.segments) == 1:
            return np.asarray(read(self.segments[0].corpus, rows), dtype=dtype)
        part = np.searchsorted(self.firsts, rows, side="right") - 1
        found = np.empty(len(rows), dtype=dtype)
        for i in distinct(part).tolist():
            chosen = part == i
            found[chosen] = read(self.segments[i].corpus, rows[chosen] - self.firsts[i])
            if offsets is not None:
                found[chosen] += offsets[i]
        return found

    def home(self, entry_id: str) -> int | None:
        """The index of the segment an entry lives in (None: it is in none, or was removed)."""
        last = len(self.segments) - 1
        for i in range(last, -1, -1):
            if entry_id in self.segments[i].corpus.codes:
                return i if i == last or entry_id not in self.dead else None
        return None

    def span(self, entry_id: str) -> tuple[int, int] | None:
        """The rows of an entry's passages (they are neighbours), or None if it is not here."""
        i = self.home(entry_id)
        if i is None:
            return None
        corpus, first = self.segments[i].corpus, int(self.firsts[i])
        code = corpus.codes[entry_id]
        return first + int(corpus.starts[code]), first + int(corpus.starts[code + 1])

    def row_of(self, passage_id: str) -> int | None:
        parsed = PassageId.parse(passage_id)
        i = self.home(parsed.entry_id) if parsed else None
        if i is None:
            return None
        local = self.segments[i].corpus.row_of(passage_id)
        return None if local is None else int(self.firsts[i]) + local

    def rows_of(self, passage_ids: list[str]) -> np.ndarray:
        """`row_of` for many passages at once (-1 where one is not here)."""
        found = np.full(len(passage_ids), -1, dtype=np.int64)
        for i in range(len(self.segments) - 1, -1, -1):
            pending = np.flatnonzero(found < 0)
            if not len(pending):
                break
            local = self.segments[i].corpus.rows_of([passage_ids[j] for j in pending.tolist()])
            rows = np.where(local >= 0, local + self.firsts[i], -1)
            if self.alive is not None and i < len(self.segments) - 1:
                rows = np.where((rows >= 0) & self.alive[np.maximum(rows, 0)], rows, -1)
            found[pending] = rows
        return found

    def passages_of(self, entry_id: str) -> EntryPassages | None:
        """One entry's passages, or None if it is not here."""
        i = self.home(entry_id)
        return None if i is None else self.segments[i].corpus.passages_of(entry_id)

    def entries(self) -> list[str]:
        """Every live entry with passages, oldest segment first."""
        last = len(self.segments) - 1
        return [e for i, s in enumerate(self.segments) for e in s.corpus.entries if i == last or e not in self.dead]

    # ----------------------------------------------------------------- many rows

    def mask(self, allowed_entries: Iterable[str]) -> np.ndarray:
        """1.0 for the live passages of these entries, else 0.0."""
        allowed = set(allowed_entries)
        parts = []
        for segment in self.segments:
            codes = segment.corpus.codes
            chosen = (
                [c for e, c in codes.items() if e in allowed]
                if len(allowed) > len(codes)
                else [codes[e] for e in allowed if e in codes]
            )
            parts.append(np.isin(segment.corpus.row_codes, np.asarray(chosen, dtype=np.int32)))
        mask = np.concatenate(parts) if parts else np.zeros(0, dtype=bool)
        if self.alive is not None:
            mask &= self.alive
        return mask.astype(np.float32)

    def vectors_at(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        found = np.empty((len(rows), self.dimension or 0), dtype=np.float32)
        part = np.searchsorted(self.firsts, rows, side="right") - 1
        for i in distinct(part).tolist():
            chosen = part == i
            found[chosen] = self.segments[i].corpus.vectors_at(rows[chosen] - self.firsts[i])
        return found

    def nearest(self, queries: np.ndarray, entry_ids: Iterable[str], k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Exact search among these entries' live passages: for each query the rows of the k most
        similar, most similar first, and their similarities."""
        by_segment: dict[int, list[int]] = {}
        for entry_id in entry_ids:
            i = self.home(entry_id)
            if i is not None:
                by_segment.setdefault(i, []).append(self.segments[i].corpus.codes[entry_id])
        found = [
            [
                (rows + self.firsts[i], sims)
                for rows, sims in self.segments[i].corpus.nearest(queries, np.asarray(codes), k)
            ]
            for i, codes in sorted(by_segment.items())
        ]
        return [_best([f[q] for f in found], k) for q in range(len(queries))]

    def fits_in_memory(self, limit_bytes: int) -> bool:
        return self.dimension is not None and sum(s.vector_bytes for s in self.segments) <= limit_bytes

    def exact(self, queries: np.ndarray, weights: np.ndarray | None, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Exact search over every live passage whose weight is 1 (all live ones without weights), with the
        vectors held in memory: for each query the rows of the k most similar and their similarities."""
        queries = np.asarray(queries, dtype=np.float32)
        queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        similarities = np.concatenate([queries @ s.matrix.T for s in self.segments if len(s.corpus)], axis=1)
        allowed = self.alive if weights is None else (weights > 0) if self.alive is None else (weights > 0) & self.alive
        if allowed is not None:
            similarities[:, ~allowed] = -np.inf
        results = []
        for scores in similarities:
            candidates = len(scores) if allowed is None else int(allowed.sum())
            take = min(k, candidates)
            if take < 1:
                results.append((np.zeros(0, np.int64), np.zeros(0)))
                continue
            best = np.argpartition(-scores, take - 1)[:take] if len(scores) > take else np.arange(len(scores))
            order = best[np.lexsort((best, -scores[best]))]
            results.append((order.astype(np.int64), scores[order].astype(np.float64)))
        return results

    # ----------------------------------------------------------------- keyword answers

    def best(self, terms: list[str], k: int, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The k rows with the highest BM25 score for these query terms (a repeated term counts again),
        best first, scoring above 0 and weighted 1: rows and scores. A selection among the passages that
        matched, never a sort of every passage."""
        rows, scores, _ = self._best(terms, k, weights)
        return rows, scores

    def _best(self, terms: list[str], k: int, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, float]:
        """`best`, and the query's `max_score`, found on the way (each term's postings are read once)."""
        nothing = np.zeros(0, dtype=np.int64), np.zeros(0)
        if not terms:
            return *nothing, 0.0
        if k < 1 or (weights is not None and not weights.any()):
            return *nothing, self.keywords.max_score(terms)
        rows, scores, top = self.keywords.scores(terms, weights)
        keep = scores > 0
        rows, scores = rows[keep], scores[keep]
        if len(rows) > k:
            best = np.argpartition(-scores, k - 1)[:k]
            rows, scores = rows[best], scores[best]
        order = np.lexsort((rows, -scores))  # ties in passage order: the same results every time
        return rows[order], scores[order], top

    def keyword_matches(self, rows: np.ndarray, scores: np.ndarray) -> list[KeywordMatch]:
        passage_ids, entry_ids = self.ids_of(rows)
        sections = self.sections_at(rows)
        return [KeywordMatch(*found) for found in zip(passage_ids, entry_ids, sections, scores.tolist(), strict=True)]

    def scaled_matches(
        self, queries: list[tuple[str, float]], k: int, weights: np.ndarray | None, whole: tuple[str, ...]
    ) -> tuple[list[KeywordMatch], bool]:
        """`scaled_rows` as matches."""
        rows, scores, complete = self.scaled_rows(queries, k, weights, whole)
        return self.keyword_matches(rows, scores), complete

    def scaled_rows(
        self, queries: list[tuple[str, float]], k: int, weights: np.ndarray | None, whole: tuple[str, ...]
    ) -> tuple[np.ndarray, np.ndarray, bool]:
        """Several weighted queries over the rows weighted 1, each scored 0..1 by its own `max_score`; a
        passage keeps its best. A query named in `whole` matches only rows holding its words next to each
        other. The rows and their scores, and whether no query was cut at k."""
        found: list[tuple[np.ndarray, np.ndarray]] = []
        complete = True
        for text, weight in queries:
            terms = tokenize([text])[0]
            if not terms:
                continue
            chosen = weights
            if text in whole and len(words(text)) > 1:  # "legacy IT": "it" is not scored, but must be there
                holding = self.phrase_mask([text])
                chosen = holding if weights is None else weights * holding
            rows, scores, scale = self._best(terms, k, chosen)
            if not scale:
                continue
            complete &= len(rows) < k
            found.append((rows, weight * np.minimum(1.0, scores / scale)))
        if not found:
            return np.zeros(0, np.int64), np.zeros(0), complete
        rows, scores = np.concatenate([r for r, _ in found]), np.concatenate([s for _, s in found])
        if len(found) > 1:  # a passage several queries found keeps its best score
            order = np.lexsort((-scores, rows))
            rows, scores = rows[order], scores[order]
            first = np.ones(len(rows), dtype=bool)
            np.not_equal(rows[1:], rows[:-1], out=first[1:])
            rows, scores = rows[first], scores[first]
        return rows, scores, complete

    def phrase_mask(self, phrases: list[str]) -> np.ndarray:
        """1 for live rows holding every phrase (its words next to each other, in order), else 0. Answered
        from the words' positions: the cost follows the rarest word or kept pair of common words of
        each phrase, and no passage text is read."""
        mask = np.ones(len(self), dtype=np.float32) if self.alive is None else self.alive.astype(np.float32)
        for phrase in phrases:
            wanted = phrase_words(phrase)
            if wanted:
                holding = np.zeros(len(self), dtype=np.float32)
                holding[self.keywords.phrase_rows(wanted)] = 1.0
                mask *= holding
        return mask

    def passages(self) -> Iterator[tuple[str, str, str]]:
        """(passage id, section, text) of every live passage, in row order."""
        for row in range(len(self)):
            if self.alive is None or self.alive[row]:
                segment, local = self._segment_of(row)
                corpus = segment.corpus
                yield corpus.passage_id(local), corpus.section(local), decoded(corpus.raw(local))


def _best(found: list[tuple[np.ndarray, np.ndarray]], k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k most similar of several segments' results, most similar first, ties in row order."""
    if len(found) == 1:
        return found[0]
    if not found:
        return np.zeros(0, np.int64), np.zeros(0)
    rows = np.concatenate([r for r, _ in found])
    sims = np.concatenate([s for _, s in found])
    order = np.lexsort((rows, -sims))[:k]
    return rows[order], sims[order]


def _directions_agree(stored: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Per row: do these vectors point the same way? (Chroma keeps cosine vectors normalised.)"""
    stored = stored / np.maximum(np.linalg.norm(stored, axis=1, keepdims=True), 1e-12)
    expected = expected / np.maximum(np.linalg.norm(expected, axis=1, keepdims=True), 1e-12)
    return np.einsum("ij,ij->i", stored, expected) >= 1.0 - 1e-4


def _batched(stored: Iterable[tuple[str, np.ndarray]], size: int) -> Iterator[tuple[list[str], list[np.ndarray]]]:
    ids: list[str] = []
    vectors: list[np.ndarray] = []
    for item_id, vector in stored:
        ids.append(item_id)
        vectors.append(vector)
        if len(ids) == size:
            yield ids, vectors
            ids, vectors = [], []
    if ids:
        yield ids, vectors


def compare_passages(rows: Rows, stored: Iterable[tuple[str, np.ndarray]], batch: int = 4096) -> str:
    """ "" when `stored` holds exactly the live passages with the same vectors, else what differs."""
    seen = np.zeros(len(rows), dtype=bool)
    for ids, vectors in _batched(stored, batch):
        found = rows.rows_of(ids)
        if (found < 0).any():
            return f"passage '{ids[int(np.flatnonzero(found < 0)[0])]}' is not in the copy"
        if any(len(v) != rows.dimension for v in vectors):
            return "a stored vector has the wrong size"
        if seen[found].any() or len(distinct(found)) != len(found):
            return "a passage is stored twice"
        seen[found] = True
        agree = _directions_agree(np.vstack(vectors), rows.vectors_at(found))
        if not agree.all():
            return f"passage '{ids[int(np.flatnonzero(~agree)[0])]}' has another vector"
    missing = rows.live_count - int(seen.sum())
    return f"{missing} passages are missing" if missing else ""


def compare_entries(rows: Rows, stored: Iterable[tuple[str, np.ndarray]], batch: int = 2048) -> str:
    """ "" when `stored` holds one vector per live entry with passages, the mean of its passages' vectors."""
    seen: set[str] = set()
    for ids, vectors in _batched(stored, batch):
        found = [rows.span(e) for e in ids]
        unknown = next((e for e, span in zip(ids, found, strict=True) if span is None), None)
        if unknown is not None:
            return f"entry '{unknown}' is not in the copy"
        spans = [span for span in found if span is not None]  # every one of them, now
        if any(len(v) != rows.dimension for v in vectors):
            return "a stored entry vector has the wrong size"
        if seen.intersection(ids) or len(set(ids)) != len(ids):
            return "an entry is stored twice"
        seen.update(ids)
        has = [i for i, (a, b) in enumerate(spans) if b > a]  # an entry without passages has no vector of its own
        if not has:
            continue
        lengths = [spans[i][1] - spans[i][0] for i in has]
        chosen = np.concatenate([np.arange(*spans[i]) for i in has])
        sums = np.add.reduceat(rows.vectors_at(chosen), np.cumsum([0, *lengths[:-1]]), axis=0)
        agree = _directions_agree(np.vstack([vectors[i] for i in has]), sums)
        if not agree.all():
            return f"entry '{ids[has[int(np.flatnonzero(~agree)[0])]]}' has another vector"
    missing = len(set(rows.entries()) - seen)
    return f"{missing} entries are missing" if missing else ""
