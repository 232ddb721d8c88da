"""Keyword scoring: BM25 (bm25s, Lucene scoring, English stemming and stop words) over the replica's passages."""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

from kb.replica.corpus import Corpus

_STEMMER = Stemmer.Stemmer("english")


BUILD_CHUNK = 20_000  # passages scored at a time while the BM25 matrix is built


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lowercased, stemmed words without English stop words: the same for passages and queries."""
    return bm25s.tokenize(texts, stopwords="en", stemmer=_STEMMER, return_ids=False, show_progress=False)


@dataclass(frozen=True)
class KeywordMatch:
    passage_id: str
    entry_id: str
    score: float


@dataclass(frozen=True)
class TokenIds:
    """Every passage's token ids as one flat array and where each passage starts: four bytes a token
    rather than a Python list per passage (a 400,000-passage corpus holds 25 million tokens)."""

    flat: np.ndarray  # int32
    starts: np.ndarray  # int64, one more than there are passages

    def __len__(self) -> int:
        return len(self.starts) - 1


def token_ids(
    corpus: Corpus, chunk: int = 10_000, *, previous: Path | None = None, kept: np.ndarray | None = None
) -> tuple[bm25s.tokenization.Tokenized, bm25s.tokenization.Tokenizer]:
    """Every passage as token ids for the BM25 build: the same words and stems as `tokenize`.

    With `previous` (the folder being replaced) and `kept` (its rows that lead the new corpus, in
    order), those passages' token ids are copied from it and only the rest are tokenized, so a save
    that changes one entry tokenizes its few passages, not 400,000. Texts are read back from the
    written corpus a chunk at a time, never all held at once.
    """
    tokenizer = bm25s.tokenization.Tokenizer(stemmer=_STEMMER, stopwords="en")
    flat, starts = array("i"), array("q", [0])  # grown in place: no second copy to concatenate
    first = 0
    if previous is not None and kept is not None and len(kept):
        tokenizer.load_vocab(str(previous))  # the same ids for the same stems; new stems get new ones
        old_flat = np.load(previous / "tokens.npy", mmap_mode="r")
        old_starts = np.load(previous / "token-starts.npy")
        for run in np.split(kept, np.flatnonzero(np.diff(kept) != 1) + 1):  # runs of consecutive rows
            base = len(flat) - int(old_starts[run[0]])
            flat.frombytes(np.ascontiguousarray(old_flat[old_starts[run[0]] : old_starts[run[-1] + 1]]).tobytes())
            starts.extend((old_starts[run[0] + 1 : run[-1] + 2] + base).tolist())
        first = len(kept)
    for texts in corpus.texts(chunk, start=first):
        for ids in tokenizer.tokenize(texts, update_vocab=True, return_as="ids", show_progress=False):
            flat.extend(ids)
            starts.append(len(flat))
    token_ids = TokenIds(np.frombuffer(flat, dtype=np.int32) if flat else np.zeros(0, np.int32), np.asarray(starts))
    return bm25s.tokenization.Tokenized(ids=token_ids, vocab=tokenizer.get_vocab_dict()), tokenizer


class CompactBM25(bm25s.BM25):
    """bm25s's BM25 with Lucene scoring (its default), its index built from `TokenIds` through bm25s's
    extension point `build_index_from_ids`: the same scores in the same sparse matrix, built a chunk
    of passages at a time straight into the final arrays. bm25s's own build holds a Python list per
    passage, three arrays the size of the matrix and SciPy's copy of them: at 400,000 passages, most
    of a full sync's memory peak."""

    def build_index_from_ids(
        self, unique_token_ids, corpus_token_ids: TokenIds, show_progress=False, leave_progress=False
    ):
        if self.method != "lucene" or self.idf_method != "lucene":
            raise ValueError("CompactBM25 scores as Lucene does; use bm25s.BM25 for other variants")
        self.nonoccurrence_array = None  # only BM25L and BM25+ have one
        n_docs, n_vocab = len(corpus_token_ids), len(unique_token_ids)
        lengths = np.diff(corpus_token_ids.starts)
        avg_doc_len = lengths.mean() if n_docs else 0.0
        chunks = [(start, min(start + BUILD_CHUNK, n_docs)) for start in range(0, n_docs, BUILD_CHUNK)]
        # Pass 1: in how many passages each token occurs, and so its idf.
        doc_freqs = np.zeros(n_vocab, dtype=np.int64)
        for start, end in chunks:
            _, tokens, _ = self._counts(corpus_token_ids, start, end, n_vocab)
            doc_freqs += np.bincount(tokens, minlength=n_vocab)
        idf = np.zeros(n_vocab, dtype=self.dtype)
        seen = doc_freqs > 0
        idf[seen] = np.log(1 + (n_docs - doc_freqs[seen] + 0.5) / (doc_freqs[seen] + 0.5))
        # Pass 2: each (passage, token) score straight to its place in the token's column.
        indptr = np.concatenate([[0], np.cumsum(doc_freqs)])
        data = np.empty(int(indptr[-1]), dtype=self.dtype)
        indices = np.empty(int(indptr[-1]), dtype=self.int_dtype)
        cursor = indptr[:-1].copy()
        for start, end in chunks:
            docs, tokens, counts = self._counts(corpus_token_ids, start, end, n_vocab)
            tf = counts.astype(self.dtype)
            tfc = tf / (self.k1 * ((1 - self.b) + self.b * lengths[docs] / avg_doc_len) + tf)
            order = np.argsort(tokens, kind="stable")  # by token, passages ascending within each
            docs, tokens, scores = docs[order], tokens[order], (idf[tokens] * tfc)[order]
            rank = np.arange(len(tokens)) - np.searchsorted(tokens, tokens, side="left")  # within its token
            data[cursor[tokens] + rank], indices[cursor[tokens] + rank] = scores, docs
            cursor += np.bincount(tokens, minlength=n_vocab)
        indptr = indptr.astype(self.int_dtype) if indptr[-1] < 2**31 else indptr
        return {"data": data, "indices": indices, "indptr": indptr, "num_docs": n_docs}

    @staticmethod
    def _counts(corpus: TokenIds, start: int, end: int, n_vocab: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(passage, token, term frequency) for each distinct token of passages start..end."""
        lo, hi = int(corpus.starts[start]), int(corpus.starts[end])
        doc_of = np.repeat(np.arange(start, end, dtype=np.int64), np.diff(corpus.starts[start : end + 1]))
        pairs, counts = np.unique(doc_of * n_vocab + corpus.flat[lo:hi], return_counts=True)
        return (pairs // n_vocab).astype(np.int32), (pairs % n_vocab).astype(np.int32), counts
