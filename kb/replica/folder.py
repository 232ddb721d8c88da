"""The local replica beside the vector index: one folder holding the passages' texts and vectors, the BM25
index over them and the entry records, with the vector index's generation mark it matches.

It records which entry versions it was built from, so a missing or stale replica is noticed and rebuilt
from the vector index's passages. While its mark is the index's, the ledger, facet counts and access
filters are read here in milliseconds instead of from Chroma in seconds, and a search confined to a few
entries is answered exactly over the copy of their vectors.

Memory stays small at hundreds of thousands of passages: passage texts and vectors are read from their
files as a search needs them, the BM25 matrix is memory-mapped (a search touches the columns of its
words), passage ids are rebuilt from an entry id and a number, and the entry records live only as the
table's columns.
"""

from __future__ import annotations

import functools
import itertools
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import bm25s
import numpy as np

from kb.replica.bm25 import CompactBM25, KeywordMatch, token_ids, tokenize
from kb.replica.corpus import Block, Corpus, VectorMatch, compare_entries, compare_passages
from kb.replica.files import (
    MANIFEST,
    READ_ERRORS,
    DamagedFile,
    FolderId,
    KeywordIndexDamaged,
    Manifest,
    damage_of,
    file_list,
    folder_id,
    locked,
    open_checked,
    report_damage,
    untrusted_if_damaged,
)
from kb.replica.records import EntryTable, chain_records, read_records, record_lines
from kb.replica.spool import STALE_SPOOL_SECONDS, Additions


class Replica:
    """BM25 over passages, persisted in `folder`, rebuilt whole whenever the passages change; with the
    passages it keeps their vectors, for exact search among a few entries (`nearest`), and the entry
    records (`table`).

    `damage` says what was found wrong with the folder's files (None: nothing). A damaged folder counts
    as absent: no hashes, no generation mark, no passages, until a rebuild writes a new one.
    """

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self.hashes: dict[str, str] = {}
        self.generation: str | None = None  # the vector index's mark when this was last known to match it
        self.damage: str | None = None
        self._files: dict[str, dict[str, int]] = {}  # the manifest's file list, kept when `mark` rewrites it
        self._folder_id: FolderId | None = None  # the folder these belong to, as checked or written
        self._corpus = Corpus.empty()
        self._table: EntryTable | None = None
        self._retriever: bm25s.BM25 | None = None
        self._loaded = False
        self._lock = threading.RLock()
        self._masks: dict[int, tuple[frozenset[str], np.ndarray]] = {}  # by allowed set, until re-indexed
        self._open_manifest()

    # ----------------------------------------------------------------- persistence

    def _open_manifest(self) -> None:
        """Read the manifest and check every file it lists against it: one pass of CRC-32 over the folder
        (a few GB/s), no parsing, so an unchanged sync still never loads the corpus. Anything wrong and
        the folder counts as absent: `is_current` and `mirrors` are false, and it is rebuilt."""
        manifest, self.damage, self._folder_id = open_checked(self.folder)
        if manifest is None:
            self.hashes, self.generation, self._files = {}, None, {}
        else:
            self.hashes, self.generation, self._files = manifest.hashes, manifest.generation, manifest.files
        if self.damage:
            report_damage(self.folder, self._folder_id, self.damage)

    def _distrust(self, damage: str) -> None:
        """A file of the folder turned out damaged after it was opened: from now on it counts as absent."""
        self.hashes, self.generation, self.damage = {}, None, damage
        self._corpus, self._retriever, self._table, self._masks = Corpus.empty(), None, None, {}
        report_damage(self.folder, self._folder_id, damage)

    @locked
    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for _ in range(3):
            if folder_id(self.folder) != self._folder_id:
                self._open_manifest()  # another process swapped in a new folder since: check and read that
            if not self.hashes:
                return
            try:
                corpus = Corpus.open(self.folder)
            except READ_ERRORS as exc:
                self._distrust(damage_of("the passage files", exc))
                return
            try:
                # Memory-mapped: a query reads only the columns of its words.
                retriever = bm25s.BM25.load(str(self.folder / "bm25"), mmap=True) if len(corpus) else None
            except READ_ERRORS as exc:
                self._distrust(damage_of("bm25", exc))
                return
            if folder_id(self.folder) == self._folder_id:  # every file above came from the checked folder
                self._corpus, self._retriever = corpus, retriever
                self._table, self._masks = None, {}
                return
        self.hashes, self.generation = {}, None  # swapped again and again: the next check reads it afresh

    def _write(
        self,
        blocks: Iterable[Block],
        record_lines: Iterable[str],
        kept: np.ndarray | None = None,
    ) -> None:
        """Write a complete new folder from these passages and entry records, index it, then swap it in,
        so a crash never leaves half an index; then read it back as the current corpus.

        `kept`: the current folder's rows that the blocks begin with, whose token ids can be reused.
        """
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.folder.parent, prefix=".lexical-"))
        reusable = kept is not None and self._corpus.is_in(self.folder) and (self.folder / "tokens.npy").exists()
        try:
            if Corpus.write(tmp, blocks):
                tokenized, tokenizer = token_ids(
                    Corpus.open(tmp), previous=self.folder if reusable else None, kept=kept
                )
                np.save(tmp / "tokens.npy", tokenized.ids.flat)
                np.save(tmp / "token-starts.npy", tokenized.ids.starts)
                tokenizer.save_vocab(str(tmp))
                retriever = CompactBM25()
                retriever.index(tokenized, show_progress=False)
                retriever.save(str(tmp / "bm25"))
                del retriever, tokenized, tokenizer
            with (tmp / "entries.jsonl").open("w", encoding="utf-8") as out:
                out.writelines(record_lines)
            self._files, self._folder_id, self.damage = file_list(tmp), folder_id(tmp), None
            self._write_manifest(tmp)
            old = self.folder.with_name(self.folder.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            if self.folder.exists():
                os.replace(self.folder, old)
            os.replace(tmp, self.folder)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._loaded = False
        self._load()

    def _write_manifest(self, folder: Path) -> None:
        """Save the manifest in `folder`, atomically; not if `folder` is no longer the folder this object
        checked or wrote (another process has swapped in its own, which this file list does not describe)."""
        try:
            directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return
        try:
            found = os.fstat(directory)
            if (found.st_dev, found.st_ino) != self._folder_id:
                return
            tmp = f"{MANIFEST}.tmp"
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=directory), "w") as out:
                out.write(Manifest(self.hashes, self.generation, self._files).to_json())
            os.replace(tmp, MANIFEST, src_dir_fd=directory, dst_dir_fd=directory)
        finally:
            os.close(directory)

    @locked
    def mark(self, generation: str | None) -> None:
        """Record that this mirror matches the vector index at this generation mark (None: unknown).
        The file list stays as written: the manifest is the one file it does not cover."""
        if generation != self.generation and self._folder_id is not None and self.damage is None:
            self.generation = generation
            self._write_manifest(self.folder)

    def mirrors(self, generation: str | None) -> bool:
        """True when this folder was in step with the vector index at this mark: trust its records."""
        return bool(generation) and self.generation == generation

    @untrusted_if_damaged("entries.jsonl", lambda: EntryTable({}))
    @locked
    def table(self) -> EntryTable:
        """The entry records as columns, read line by line on first use after each change."""
        self._load()
        if self._table is None:
            self._table = EntryTable(read_records(self.folder / "entries.jsonl") if self.hashes else {})
        return self._table

    def is_current(self, hashes: dict[str, str]) -> bool:
        """True when built from exactly these entry versions (the vector index's ledger)."""
        return self.hashes == hashes

    @property
    def passage_count(self) -> int:
        self._load()
        return len(self._corpus)

    def text_at(self, row: int) -> str:
        """The text of row `row` (< passage_count); for tests and tools, which want a damaged text to raise."""
        return self._corpus.text(row)

    # ----------------------------------------------------------------- writes

    def additions(self) -> Additions:
        """A new spool for passages and records to add (a context manager that deletes it after use).

        It lives beside the index folder, on the same disk. Spools and half-written folders that a
        killed process left there are swept once nothing has touched them for a day.
        """
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        stale = time.time() - STALE_SPOOL_SECONDS
        for old in [*self.folder.parent.glob(".additions-*"), *self.folder.parent.glob(".lexical-*")]:
            try:
                if max(f.stat().st_mtime for f in [old, *old.rglob("*")]) < stale:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                pass  # another process is just removing it
        return Additions(Path(tempfile.mkdtemp(dir=self.folder.parent, prefix=".additions-")))

    @locked
    def update(self, remove: set[str], added: Additions, hashes: dict[str, str], generation: str | None = None) -> None:
        """Drop the passages of `remove` entries, add the passages and entry records of `added`,
        re-index, save, and remember the vector index's mark they match.

        Raises KeywordIndexDamaged if the folder turns out damaged: what is kept is copied from it into a
        new folder with fresh checksums, so it is checked again first rather than trusted since it was opened.
        """
        had_passages = bool(self.hashes)
        self._load()
        if had_passages and self.damage is None and folder_id(self.folder) == self._folder_id:
            _, damage, _ = open_checked(self.folder)
            if damage:
                self._distrust(damage)
        if had_passages and self.damage:
            raise KeywordIndexDamaged(
                f"the keyword index is damaged ({self.damage}); run `python -m kb sync` to rebuild it"
            )
        replaced = set(remove) | added.entry_ids
        records_path = self.folder / "entries.jsonl"
        kept_records = record_lines(records_path) if self.hashes and records_path.exists() else iter(())
        old = self._corpus
        self.hashes, self.generation = dict(hashes), generation
        replaced_codes = [old.codes[e] for e in replaced if e in old.codes]
        kept_rows = np.flatnonzero(~np.isin(old.row_codes, np.asarray(replaced_codes, dtype=np.int32)))
        self._write(
            itertools.chain(old.blocks(replaced), added.blocks()),
            chain_records(kept_records, set(remove) | added.record_ids, added.record_lines()),
            kept_rows,
        )

    @locked
    def rebuild(self, added: Additions, hashes: dict[str, str], generation: str | None = None) -> None:
        """Start again from these passages and entry records, e.g. the vector index's."""
        self._loaded = True
        self._corpus, self._retriever, self._table = Corpus.empty(), None, None
        self.hashes, self.generation = dict(hashes), generation
        self._write(added.blocks(), (line for _, line in added.record_lines()))

    # ----------------------------------------------------------------- reads

    @locked
    def weights(self, allowed_entries: set[str] | None = None, phrases: list[str] | None = None) -> np.ndarray | None:
        """A 0/1 weight per passage: its entry is allowed and it contains every phrase. None: all pass.

        Computed once per search and shared by every keyword query of that search (query words, synonyms).
        """
        self._load()
        weights = None
        if allowed_entries is not None:
            weights = self._mask(allowed_entries)
        if phrases:
            has_all = self.phrase_mask(phrases)
            weights = has_all if weights is None else weights * has_all
        return weights

    def _mask(self, allowed_entries: set[str] | frozenset[str]) -> np.ndarray:
        """1 for passages of allowed entries. A frozen set (the knowledge base keeps one per reader and
        filters until the index changes) keeps its mask too: at 100k entries it costs tens of milliseconds."""
        cached = self._masks.get(id(allowed_entries))
        if cached is not None and cached[0] is allowed_entries:
            return cached[1]
        corpus = self._corpus
        codes = [corpus.codes[e] for e in allowed_entries if e in corpus.codes]
        mask = np.isin(corpus.row_codes, np.asarray(codes, dtype=np.int32)).astype(np.float32)
        mask.flags.writeable = False  # shared by every search that reuses it
        if isinstance(allowed_entries, frozenset):
            if len(self._masks) >= 64:
                self._masks.pop(next(iter(self._masks)))
            self._masks[id(allowed_entries)] = (allowed_entries, mask)
        return mask

    @untrusted_if_damaged("bm25", list)
    @locked
    def search(self, query: str, k: int, weights: np.ndarray | None = None) -> list[KeywordMatch]:
        """Top k passages by BM25 among those whose weight (from `weights`) is 1."""
        self._load()
        corpus = self._corpus
        if self._retriever is None or not len(corpus) or (weights is not None and not weights.any()):
            return []
        tokens = tokenize([query])[0] if query.strip() else []
        rows, scores = self._top(tokens, min(k, len(corpus)), weights)
        return [
            KeywordMatch(corpus.passage_id(i), corpus.entry_id(i), float(s))
            for i, s in zip(rows.tolist(), scores.tolist(), strict=True)
        ]

    def _top(self, tokens: list[str], k: int, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The k passages with the highest BM25 score for these query tokens (a repeated token counts
        again), best first, scoring above 0 and weighted 1: rows and scores.

        Sums the tokens' columns of bm25s's precomputed score matrix as bm25s does, but with one
        `bincount` and a selection among the passages that matched, not a sort of every passage:
        three times faster at 400,000 passages, which counts when a synonym-rich query runs ten.
        """
        vocab, matrix = self._retriever.vocab_dict, self._retriever.scores
        columns = [vocab[t] for t in tokens if t in vocab]
        if not columns or k < 1:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        indptr = matrix["indptr"]
        rows = np.concatenate([matrix["indices"][indptr[c] : indptr[c + 1]] for c in columns]).astype(np.int64)
        scores = np.concatenate([matrix["data"][indptr[c] : indptr[c + 1]] for c in columns]).astype(np.float64)
        if len(rows) and (rows.min() < 0 or rows.max() >= int(matrix["num_docs"])):
            raise DamagedFile("bm25: names passages the index does not have")  # before bincount sizes by them
        if len(columns) > 1:
            summed = np.bincount(rows, weights=scores, minlength=int(matrix["num_docs"]))
            rows = np.flatnonzero(summed)
            scores = summed[rows]
        keep = scores > 0
        if weights is not None:
            keep &= weights[rows] > 0
        rows, scores = rows[keep], scores[keep]
        if len(rows) > k:
            best = np.argpartition(-scores, k - 1)[:k]
            rows, scores = rows[best], scores[best]
        order = np.lexsort((rows, -scores))  # ties in passage order: the same results every time
        return rows[order], scores[order]

    @untrusted_if_damaged("keyword search", lambda: ([], False))
    @locked
    def scaled_search(
        self,
        queries: list[tuple[str, float]],
        k: int,
        allowed_entries: set[str] | None = None,
        phrases: list[str] | None = None,
    ) -> tuple[list[KeywordMatch], bool]:
        """Several weighted queries, each scored 0..1 by its own `max_score`; a passage keeps its best.

        Returns the matches and whether they are complete (no query was cut at k, so a passage
        missing here matched none of the words). All in one step, so an update cannot slip between.
        """
        weights = self.weights(allowed_entries, phrases)
        best: dict[str, KeywordMatch] = {}
        complete = True
        for text, weight in queries:
            scale = self.max_score(text)
            if not scale:
                continue
            matches = self.search(text, k, weights)
            complete &= len(matches) < k
            for m in matches:
                score = weight * min(1.0, m.score / scale)
                if m.passage_id not in best or score > best[m.passage_id].score:
                    best[m.passage_id] = KeywordMatch(m.passage_id, m.entry_id, score)
        return list(best.values()), complete

    @untrusted_if_damaged("bm25", float)
    @locked
    def max_score(self, query: str) -> float:
        """What a passage holding every query word once, at average length, would score (Lucene IDF sum).

        Dividing by it puts BM25 on a 0..1 scale that means "how much of the query matched", which a
        per-query min-max would erase: a passage that matched one stray word must not look perfect.
        """
        self._load()
        tokens = tokenize([query])[0] if query.strip() else []
        if self._retriever is None or not tokens:
            return 0.0
        vocab = self._retriever.vocab_dict
        indptr = self._retriever.scores["indptr"]
        n = float(self._retriever.scores["num_docs"])
        total = 0.0
        for token in set(tokens):
            t = vocab.get(token)
            df = float(indptr[t + 1] - indptr[t]) if t is not None else 0.0
            total += float(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))
        return total

    def phrase_mask(self, phrases: list[str]) -> np.ndarray:
        """1 for passages containing every phrase (whole words, any case and spacing), else 0.

        Only passages holding every word of the phrases are read: the intersection of the words'
        posting lists, so a rare phrase costs little even over hundreds of thousands of passages.
        """
        from kb.search import contains_all

        corpus = self._corpus
        mask = np.zeros(len(corpus), dtype=np.float32)
        for row in self._holding_every_word(" ".join(phrases)):
            if contains_all(corpus.text(row), phrases):
                mask[row] = 1.0
        return mask

    def _holding_every_word(self, text: str) -> np.ndarray | range:
        """Passages whose keyword tokens include every token of `text` (all passages if it has none)."""
        tokens = set(tokenize([text])[0]) if text.strip() else set()
        if self._retriever is None or not tokens:
            return range(len(self._corpus))
        vocab, scores = self._retriever.vocab_dict, self._retriever.scores
        postings = []
        for token in tokens:
            column = vocab.get(token)
            if column is None:
                return np.zeros(0, dtype=np.int64)
            postings.append(np.asarray(scores["indices"][scores["indptr"][column] : scores["indptr"][column + 1]]))
        postings.sort(key=len)
        rows = postings[0]
        for other in postings[1:]:
            rows = np.intersect1d(rows, other, assume_unique=True)
        return rows

    @property
    def has_vectors(self) -> bool:
        """True when this folder keeps its passages' vectors (every row came with one)."""
        if not self._loaded:
            self._load()
        return self._corpus.dimension is not None

    @untrusted_if_damaged("vectors.bin", lambda: None)
    def nearest(self, queries: np.ndarray, entry_ids: Iterable[str], k: int) -> list[list[VectorMatch]] | None:
        """The k passages most similar to each query among the passages of these entries, by exact
        search over the kept vectors; None when this folder has no vectors of the queries' size (or they
        turn out damaged: the vector index answers instead).

        No lock, like `text_of`: the corpus never changes in place. What a narrow filter costs here is
        reading its passages' vectors (1.5 KB each at 384 dimensions) and one matrix product.
        """
        if not self._loaded:
            self._load()
        corpus = self._corpus
        if corpus.dimension is None or np.shape(queries)[-1] != corpus.dimension:
            return None
        codes = np.fromiter((corpus.codes[e] for e in entry_ids if e in corpus.codes), dtype=np.int64)
        found = corpus.nearest(queries, codes, k)
        return [
            [
                VectorMatch(corpus.passage_id(row), corpus.entry_id(row), similarity)
                for row, similarity in zip(rows.tolist(), similarities.tolist(), strict=True)
            ]
            for rows, similarities in found
        ]

    @untrusted_if_damaged("the passage files", lambda: None)
    def entry_passages(self, entry_id: str) -> tuple[list[str], list[str], np.ndarray] | None:
        """One entry's passage ids, texts and vectors, in passage order; None when not all are here."""
        if not self._loaded:
            self._load()
        block = self._corpus.passages_of(entry_id)
        return None if block is None or block[2] is None else block  # type: ignore[return-value]

    def vector_check(self) -> tuple[Callable[[Iterable[tuple[str, np.ndarray]]], str], ...] | None:
        """Two checks of what a vector index holds against this folder's copy of the vectors, one for the
        passages and one for the entries (each takes (id, vector) pairs and returns "" or what differs);
        None when this folder keeps no vectors."""
        if not self._loaded:
            self._load()
        corpus = self._corpus
        if corpus.dimension is None:
            return None
        return functools.partial(compare_passages, corpus), functools.partial(compare_entries, corpus)

    @untrusted_if_damaged("texts.bin", lambda: None)
    def text_of(self, passage_id: str) -> str | None:
        """A passage's text, or None if this index does not hold it. No lock: the corpus never changes
        in place, so a vector search filling in its matches never waits for a keyword search."""
        if not self._loaded:
            self._load()
        corpus = self._corpus
        row = corpus.row_of(passage_id)
        return None if row is None else corpus.text(row)
