"""The keyword index: BM25 over segments of passages, scored when a query comes, and quoted phrases
answered from word positions.

A segment's keyword files (`SegmentWords`) are written once and never changed: every passage's words
in order as word ids, the postings of each scored term (its passages and how often it occurs in each),
each passage's length in scored terms, and where each word occurs. A save writes a small segment and
marks the rows it replaces dead; a sync merges the segments into one (kb.replica.folder).

Scores are Lucene's BM25, as bm25s computes it (k1 1.5, b 0.75, idf log(1 + (N - df + 0.5) / (df + 0.5))),
with N, each term's df and the average length taken over the live passages of every segment when the
query comes. So a collection spread over two segments with dead rows scores exactly as the same
passages merged into one.
"""

from __future__ import annotations

import json
from array import array
from collections import Counter
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from kb.analysis import term, words
from kb.arrays import distinct, distinct_counts
from kb.replica.files import DamagedFile, loaded

K1, B = 1.5, 0.75
BUILD_CHUNK = 20_000  # passages (or word positions, times ten) grouped at a time while a segment is written
WORDS_FILE = "words.json"
ARRAYS = (
    "tokens",  # int32: every passage's words as word ids, one run per passage
    "token-starts",  # int64: where each passage's run starts, and the end
    "lengths",  # int32: each passage's number of scored terms
    "word-terms",  # int32: each word's term id, -1 for a word not scored
    "postings-starts",  # int64: where each term's postings start, and the end
    "postings-rows",  # int32: the passages holding each term, ascending
    "postings-tf",  # int32: how often the term occurs in each of them
    "positions-starts",  # int64: where each word's positions start, and the end
    "positions",  # where in `tokens` each word occurs, ascending (int32 while `tokens` fits, else int64)
    "pair-keys",  # int64: the neighbouring pairs of common words kept, as first * words + second, ascending
    "pair-starts",  # int64: where each pair's occurrences start, and the end
    "pair-positions",  # where in `tokens` each pair begins, ascending within each pair (as `positions`)
    "pair-rows",  # int32: the passage each of those occurrences is in
)
MAPPED = {"tokens", "postings-rows", "postings-tf", "positions", "pair-positions", "pair-rows"}
# A word is common in a segment past this many occurrences. A phrase anchors on its rarest word or
# pair of neighbours, and checks the rest word by word: a phrase of common words only ("of the", a
# million positions each at 100,000 entries) would cost a walk of a million positions, so the
# neighbouring pairs of common words are kept too (as Lucene's CommonGrams do), a few per cent of
# the positions.
COMMON = 20_000


class SegmentWords:
    """One segment's keyword files, opened: the small arrays read, the large ones memory-mapped."""

    def __init__(self, vocabulary: dict, arrays: dict[str, np.ndarray]):
        self.words: list[str] = vocabulary["words"]
        self.terms: list[str] = vocabulary["terms"]
        for name, values in arrays.items():
            setattr(self, name.replace("-", "_"), values)
        self.tokens: np.ndarray
        self.token_starts: np.ndarray
        self.lengths: np.ndarray
        self.word_terms: np.ndarray
        self.postings_starts: np.ndarray
        self.postings_rows: np.ndarray
        self.postings_tf: np.ndarray
        self.positions_starts: np.ndarray
        self.positions: np.ndarray
        self.pair_keys: np.ndarray
        self.pair_starts: np.ndarray
        self.pair_positions: np.ndarray
        self.pair_rows: np.ndarray

    @classmethod
    def open(cls, folder: Path, passages: int) -> SegmentWords:
        """The keyword files in `folder`, for a segment of this many passages; DamagedFile where they do
        not fit together."""
        vocabulary = loaded(WORDS_FILE, lambda: json.loads((folder / WORDS_FILE).read_text(encoding="utf-8")))
        arrays = {
            name: loaded(
                f"{name}.npy", lambda n=name: np.load(folder / f"{n}.npy", mmap_mode="r" if n in MAPPED else None)
            )
            for name in ARRAYS
        }
        found = cls(vocabulary, arrays)
        found._check(passages)
        return found

    def _check(self, passages: int) -> None:
        n_words, n_terms = len(self.words), len(self.terms)
        if len(self.token_starts) != passages + 1 or len(self.lengths) != passages:
            raise DamagedFile("token-starts.npy: not one run of words per passage")
        if int(self.token_starts[-1]) != len(self.tokens) or len(self.word_terms) != n_words:
            raise DamagedFile("tokens.npy: not the length token-starts.npy gives")
        if len(self.postings_starts) != n_terms + 1 or int(self.postings_starts[-1]) != len(self.postings_rows):
            raise DamagedFile("postings-starts.npy: not one run of postings per term")
        if len(self.postings_tf) != len(self.postings_rows):
            raise DamagedFile("postings-tf.npy: not one count per posting")
        if len(self.positions_starts) != n_words + 1 or int(self.positions_starts[-1]) != len(self.positions):
            raise DamagedFile("positions-starts.npy: not one run of positions per word")
        if len(self.pair_starts) != len(self.pair_keys) + 1 or int(self.pair_starts[-1]) != len(self.pair_positions):
            raise DamagedFile("pair-starts.npy: not one run of positions per pair")
        if len(self.pair_rows) != len(self.pair_positions):
            raise DamagedFile("pair-rows.npy: not one passage per pair position")

    @cached_property
    def word_ids(self) -> dict[str, int]:
        return {w: i for i, w in enumerate(self.words)}

    @cached_property
    def term_ids(self) -> dict[str, int]:
        return {t: i for i, t in enumerate(self.terms)}

    def postings(self, term_name: str) -> tuple[np.ndarray, np.ndarray]:
        """The segment's rows holding a term, and how often it occurs in each."""
        t = self.term_ids.get(term_name)
        if t is None:
            return np.zeros(0, np.int64), np.zeros(0, np.int32)
        a, b = int(self.postings_starts[t]), int(self.postings_starts[t + 1])
        return np.asarray(self.postings_rows[a:b], dtype=np.int64), np.asarray(self.postings_tf[a:b])

    def phrase_rows(self, phrase: list[str]) -> np.ndarray:
        """The segment's rows holding these words next to each other, in this order (ascending).

        Starts from the positions of the phrase's rarest word, or of its rarest kept pair of neighbours,
        and checks the other words at the offsets the phrase gives: the cost follows the rarest anchor,
        not the passages."""
        ids = [self.word_ids.get(w, -1) for w in phrase]
        if not phrase or min(ids) < 0:  # a word no passage here holds
            return np.zeros(0, np.int64)
        # (first and end of its positions, its offset in the phrase, how many words it covers)
        anchors = [(*self._span(self.positions_starts, i), offset, 1) for offset, i in enumerate(ids)]
        for offset, (first, second) in enumerate(zip(ids, ids[1:], strict=False)):
            pair = self._pair(first, second)
            if pair is not None:
                anchors.append((*self._span(self.pair_starts, pair), offset, 2))
        a, b, anchor, width = min(anchors, key=lambda found: found[1] - found[0])
        if width == 2:
            begin = np.asarray(self.pair_positions[a:b], dtype=np.int64) - anchor
            row = np.asarray(self.pair_rows[a:b], dtype=np.int64)
        else:
            begin, row = np.asarray(self.positions[a:b], dtype=np.int64) - anchor, None
        keep = (begin >= 0) & (begin + len(phrase) <= len(self.tokens))
        for offset, word_id in enumerate(ids):
            if not anchor <= offset < anchor + width:
                keep[keep] = np.asarray(self.tokens[begin[keep] + offset]) == word_id
        begin = begin[keep]
        row = np.searchsorted(self.token_starts, begin, side="right") - 1 if row is None else row[keep]
        # Not reaching into a neighbouring passage (a pair's passage is its own, not the phrase's start's).
        within = (begin >= self.token_starts[row]) & (begin + len(phrase) <= self.token_starts[row + 1])
        return distinct(row[within])

    @staticmethod
    def _span(starts: np.ndarray, i: int) -> tuple[int, int]:
        return int(starts[i]), int(starts[i + 1])

    def _pair(self, first: int, second: int) -> int | None:
        """The index of a kept pair of neighbouring words, or None."""
        key = first * len(self.words) + second
        at = int(np.searchsorted(self.pair_keys, key))
        return at if at < len(self.pair_keys) and int(self.pair_keys[at]) == key else None


class WordsWriter:
    """Gathers a new segment's passages' words, by tokenizing texts or by copying another segment's rows
    as word ids (a merge reads no text again), and writes its keyword files."""

    def __init__(self) -> None:
        self.words: list[str] = []
        self._word_ids: dict[str, int] = {}
        self._tokens, self._starts = array("i"), array("q", [0])  # grown in place: no copy to concatenate
        self._maps: dict[int, tuple[SegmentWords, np.ndarray]] = {}

    def _id(self, word: str) -> int:
        found = self._word_ids.get(word)
        if found is None:
            found = self._word_ids[word] = len(self.words)
            self.words.append(word)
        return found

    def add_text(self, text: str) -> None:
        self._tokens.extend([self._id(w) for w in words(text)])
        self._starts.append(len(self._tokens))

    def copy(self, source: SegmentWords, start: int, end: int) -> None:
        """Rows start..end-1 of another segment, their words renumbered into this one's: only the words
        they use join this segment's vocabulary, so words of removed entries go at the next merge."""
        known = self._maps.get(id(source))
        if known is None or known[0] is not source:
            known = self._maps[id(source)] = (source, np.full(len(source.words), -1, dtype=np.int32))
        renumber = known[1]
        lo, hi = int(source.token_starts[start]), int(source.token_starts[end])
        ids = np.asarray(source.tokens[lo:hi])
        for word in distinct(ids[renumber[ids] < 0]).tolist():
            renumber[word] = self._id(source.words[word])
        shift = len(self._tokens) - lo
        self._tokens.frombytes(renumber[ids].astype(np.int32).tobytes())
        self._starts.extend((np.asarray(source.token_starts[start + 1 : end + 1], dtype=np.int64) + shift).tolist())

    def write(self, folder: Path) -> None:
        """The segment's keyword files. Each group of arrays is saved and let go before the next is built:
        at 100,000 entries the postings, the positions and the pairs are each 100 to 300 MB, and a sync
        builds them after Chroma and the model have taken their share of memory."""
        tokens = np.frombuffer(self._tokens, dtype=np.int32) if self._tokens else np.zeros(0, np.int32)
        starts = np.asarray(self._starts, dtype=np.int64)
        terms: dict[str, int] = {}
        word_terms = np.fromiter(
            (-1 if (t := term(w)) is None else terms.setdefault(t, len(terms)) for w in self.words),
            dtype=np.int32,
            count=len(self.words),
        )
        lengths, postings = _postings(tokens, starts, word_terms, len(terms))
        _save(folder, {"tokens": tokens, "token-starts": starts, "lengths": lengths, "word-terms": word_terms})
        _save(folder, postings)
        del postings
        _save(folder, _positions(tokens, len(self.words)))
        _save(folder, _common_pairs(tokens, starts, len(self.words)))
        (folder / WORDS_FILE).write_text(json.dumps({"words": self.words, "terms": list(terms)}), encoding="utf-8")


def _save(folder: Path, arrays: dict[str, np.ndarray]) -> None:
    for name, values in arrays.items():
        np.save(folder / f"{name}.npy", values)


def _postings(tokens: np.ndarray, starts: np.ndarray, word_terms: np.ndarray, n_terms: int):
    """Each passage's length in scored terms, and each term's postings (passages ascending, with counts),
    built a chunk of passages at a time straight into the final arrays."""
    n_passages = len(starts) - 1
    chunks = [(a, min(a + BUILD_CHUNK, n_passages)) for a in range(0, n_passages, BUILD_CHUNK)]
    lengths = np.zeros(n_passages, dtype=np.int32)

    def counted(a: int, b: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lo, hi = int(starts[a]), int(starts[b])
        terms = word_terms[tokens[lo:hi]] if hi > lo else np.zeros(0, np.int32)
        rows = np.repeat(np.arange(a, b, dtype=np.int64), np.diff(starts[a : b + 1]))
        scored = terms >= 0
        rows, terms = rows[scored], terms[scored].astype(np.int64)
        lengths[a:b] = np.bincount(rows - a, minlength=b - a)
        pairs, counts = distinct_counts(rows * max(n_terms, 1) + terms)  # by row, then term
        return pairs // max(n_terms, 1), pairs % max(n_terms, 1), counts

    frequency = np.zeros(n_terms, dtype=np.int64)
    for a, b in chunks:
        frequency += np.bincount(counted(a, b)[1], minlength=n_terms)
    term_starts = np.concatenate([[0], np.cumsum(frequency)]).astype(np.int64)
    rows_out = np.empty(int(term_starts[-1]), dtype=np.int32)
    tf_out = np.empty(int(term_starts[-1]), dtype=np.int32)
    cursor = term_starts[:-1].copy()
    for a, b in chunks:
        rows, terms, counts = counted(a, b)
        order = np.argsort(terms, kind="stable")  # by term, rows ascending within each
        rows, terms, counts = rows[order], terms[order], counts[order]
        rank = np.arange(len(terms)) - np.searchsorted(terms, terms, side="left")
        rows_out[cursor[terms] + rank], tf_out[cursor[terms] + rank] = rows, counts
        cursor += np.bincount(terms, minlength=n_terms)
    return lengths, {"postings-starts": term_starts, "postings-rows": rows_out, "postings-tf": tf_out}


def _position_type(n_tokens: int) -> type:
    """Positions in a segment of this many words: half the memory and disk while they fit in 32 bits."""
    return np.int32 if n_tokens < 2**31 else np.int64


def _positions(tokens: np.ndarray, n_words: int) -> dict[str, np.ndarray]:
    """Where each word occurs in `tokens`, grouped by word, ascending; a chunk of positions at a time."""
    counts = np.bincount(tokens, minlength=n_words) if len(tokens) else np.zeros(n_words, np.int64)
    word_starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    positions: np.ndarray = np.empty(len(tokens), dtype=_position_type(len(tokens)))
    cursor = word_starts[:-1].copy()
    step = BUILD_CHUNK * 10
    for a in range(0, len(tokens), step):
        ids = tokens[a : a + step].astype(np.int64)
        order = np.argsort(ids, kind="stable")
        ranked = ids[order]
        rank = np.arange(len(ranked)) - np.searchsorted(ranked, ranked, side="left")
        positions[cursor[ranked] + rank] = order + a
        cursor += np.bincount(ids, minlength=n_words)
    return {"positions-starts": word_starts, "positions": positions}


@dataclass(frozen=True)
class KeywordMatch:
    passage_id: str
    entry_id: str
    section: str
    score: float


class KeywordIndex:
    """BM25 and phrases over the segments of a replica, rows numbered across them in order; dead rows
    (passages of entries replaced since their segment was written) are never found or counted."""

    def __init__(self, segments: list[SegmentWords], alive: np.ndarray | None):
        self.segments = segments
        self.firsts = np.concatenate([[0], np.cumsum([len(s.lengths) for s in segments])]).astype(np.int64)
        self.alive = alive  # per row; None: every row is live
        lengths = np.concatenate([np.asarray(s.lengths, dtype=np.float64) for s in segments] or [np.zeros(0)])
        live = lengths if alive is None else lengths[alive]
        self.live = len(live)
        self.average_length = float(live.mean()) if len(live) else 0.0
        self._lengths = lengths

    def postings(self, term_name: str) -> tuple[np.ndarray, np.ndarray]:
        """The live rows holding a term, ascending, and how often it occurs in each."""
        found = [
            (rows + first, tf)
            for s, first in zip(self.segments, self.firsts.tolist(), strict=False)
            for rows, tf in [s.postings(term_name)]
            if len(rows)
        ]
        if not found:
            return np.zeros(0, np.int64), np.zeros(0, np.int32)
        rows = np.concatenate([r for r, _ in found])
        tf = np.concatenate([t for _, t in found])
        if self.alive is not None:
            keep = self.alive[rows]
            rows, tf = rows[keep], tf[keep]
        return rows, tf

    def idf(self, df: int) -> float:
        return float(np.log(1.0 + (self.live - df + 0.5) / (df + 0.5)))

    def scores(self, terms: list[str], weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, float]:
        """The live rows matching any term with their BM25 scores (a term repeated in the query counts
        again, as in bm25s), and the query's `max_score`; only rows weighted above 0, when weights are
        given (a phrase's passages, a reader's): a common term's postings are cut before they are scored."""
        found, top = [], 0.0
        for name, times in Counter(terms).items():
            rows, tf = self.postings(name)
            idf = self.idf(len(rows))
            top += idf
            if weights is not None:
                kept = weights[rows] > 0
                rows, tf = rows[kept], tf[kept]
            if len(rows):
                tf = tf.astype(np.float64)
                norm = K1 * (1.0 - B + B * self._lengths[rows] / self.average_length)
                found.append((rows, times * idf * tf / (tf + norm)))
        if not found:
            return np.zeros(0, np.int64), np.zeros(0), top
        if len(found) == 1:
            return found[0][0], found[0][1], top
        summed = np.bincount(
            np.concatenate([r for r, _ in found]), weights=np.concatenate([s for _, s in found]), minlength=self.rows
        )
        rows = np.flatnonzero(summed)
        return rows, summed[rows], top

    def max_score(self, terms: list[str]) -> float:
        """What a passage holding every query term once, at average length, would score (the sum of the
        terms' idf): dividing by it puts BM25 on a 0..1 scale meaning "how much of the query matched"."""
        return sum(self.idf(len(self.postings(name)[0])) for name in set(terms))

    @property
    def rows(self) -> int:
        return int(self.firsts[-1])

    @cached_property
    def word_counts(self) -> Counter[str]:
        """How often each word occurs (dead rows included: a hint for spelling, never a score)."""
        counts: Counter[str] = Counter()
        for segment in self.segments:
            occurrences = np.diff(np.asarray(segment.positions_starts)).tolist()
            counts.update(dict(zip(segment.words, occurrences, strict=True)))
        return counts

    def phrase_rows(self, phrase: list[str]) -> np.ndarray:
        """The live rows holding these words next to each other, in this order, ascending."""
        rows = np.concatenate(
            [s.phrase_rows(phrase) + first for s, first in zip(self.segments, self.firsts.tolist(), strict=False)]
            or [np.zeros(0, np.int64)]
        )
        return rows if self.alive is None else rows[self.alive[rows]]


def _common_pairs(tokens: np.ndarray, starts: np.ndarray, n_words: int) -> dict[str, np.ndarray]:
    """Where each pair of neighbouring common words occurs within a passage, grouped by pair (keys
    ascending), positions ascending within each, with each occurrence's passage; a chunk at a time."""
    counts = np.bincount(tokens, minlength=n_words) if len(tokens) else np.zeros(n_words, np.int64)
    common = counts > COMMON
    step = BUILD_CHUNK * 10
    if common.any():
        opens = np.zeros(len(tokens) + 1, dtype=bool)  # where a passage begins: no pair reaches across
        opens[starts] = True

    def chunk(a: int) -> tuple[np.ndarray, np.ndarray]:
        """The chunk's pair keys and where they begin (a pair may reach one word past the chunk)."""
        first = np.asarray(tokens[a : min(a + step, len(tokens) - 1)], dtype=np.int64)
        second = np.asarray(tokens[a + 1 : a + 1 + len(first)], dtype=np.int64)
        at = np.flatnonzero(common[first] & common[second] & ~opens[a + 1 : a + 1 + len(first)]) + a
        return np.asarray(tokens[at], dtype=np.int64) * n_words + np.asarray(tokens[at + 1]), at

    chunks = range(0, max(len(tokens) - 1, 0), step) if common.any() else range(0)
    keys = np.zeros(0, dtype=np.int64)
    for a in chunks:  # first the distinct keys, so the positions can be placed straight into one array
        keys = distinct(np.concatenate([keys, chunk(a)[0]]))
    frequency = np.zeros(len(keys), dtype=np.int64)
    for a in chunks:
        frequency += np.bincount(np.searchsorted(keys, chunk(a)[0]), minlength=len(keys))
    pair_starts = np.concatenate([[0], np.cumsum(frequency)]).astype(np.int64)
    positions: np.ndarray = np.empty(int(pair_starts[-1]), dtype=_position_type(len(tokens)))
    cursor = pair_starts[:-1].copy()
    for a in chunks:
        found, at = chunk(a)
        pair = np.searchsorted(keys, found)
        order = np.argsort(pair, kind="stable")  # by pair, positions ascending within each
        ranked = pair[order]
        rank = np.arange(len(ranked)) - np.searchsorted(ranked, ranked, side="left")
        positions[cursor[ranked] + rank] = at[order]
        cursor += np.bincount(pair, minlength=len(keys))
    rows = (np.searchsorted(starts, positions, side="right") - 1).astype(np.int32)
    return {"pair-keys": keys, "pair-starts": pair_starts, "pair-positions": positions, "pair-rows": rows}
