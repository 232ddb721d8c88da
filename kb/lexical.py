"""The keyword index: BM25 (bm25s, English stemming and stop words) over the same passages as the vectors.

It lives in a folder beside the vector index and records which entry versions it was built from, so
a missing or stale keyword index is noticed and rebuilt from the vector index's passages. It also keeps
a local mirror of the index's entry records (the ledger of content hashes and the facet fields, as an
`EntryTable`) together with the index's generation mark at the time: while the marks agree, the ledger,
facet counts and access filters are read here in milliseconds instead of from Chroma in seconds.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

from kb.table import EntryTable

_STEMMER = Stemmer.Stemmer("english")
FORMAT_VERSION = 2  # 2: the entry records and the generation mark


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lowercased, stemmed words without English stop words: the same for passages and queries."""
    return bm25s.tokenize(texts, stopwords="en", stemmer=_STEMMER, return_ids=False, show_progress=False)


@dataclass(frozen=True)
class KeywordMatch:
    passage_id: str
    entry_id: str
    score: float


def _locked(method):
    """One search or update at a time: the app's sessions share one index object across threads."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


class LexicalIndex:
    """BM25 over passages, persisted in `folder`, rebuilt whole whenever the passages change."""

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self.passage_ids: list[str] = []
        self.entry_ids: list[str] = []
        self.texts: list[str] = []
        self.hashes: dict[str, str] = {}
        self.generation: str | None = None  # the vector index's mark when this was last known to match it
        self.entry_meta: dict[str, dict] = {}
        self._table: EntryTable | None = None
        self._retriever: bm25s.BM25 | None = None
        self._codes: dict[str, int] = {}
        self._entry_codes = np.zeros(0, dtype=np.int32)
        self._loaded = False
        self._lock = threading.RLock()
        self._position: dict[str, int] = {}
        self._masks: dict[int, tuple[frozenset[str], np.ndarray]] = {}  # by allowed set, until re-indexed
        try:  # only the small manifest now: an unchanged sync never reads the corpus
            meta = json.loads((self.folder / "manifest.json").read_text(encoding="utf-8"))
            if meta.get("format") == FORMAT_VERSION:
                self.hashes = dict(meta["hashes"])
                self.generation = meta.get("generation") or None
        except (OSError, ValueError, KeyError, TypeError):
            pass  # absent or damaged: `is_current` says it must be rebuilt

    # ----------------------------------------------------------------- persistence

    @_locked
    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        if not self.hashes:
            return
        try:
            # Line by line: the corpus is 400 MB at 100,000 entries, and a whole-file read then split
            # held it three times over at the moment of loading.
            passage_ids, entry_ids, texts = [], [], []
            with (self.folder / "corpus.jsonl").open(encoding="utf-8") as lines:
                for line in lines:
                    row = json.loads(line)
                    passage_ids.append(row["id"])
                    entry_ids.append(row["entry_id"])
                    texts.append(row["text"])
            retriever = bm25s.BM25.load(str(self.folder / "bm25")) if texts else None
            with (self.folder / "entries.jsonl").open(encoding="utf-8") as lines:
                entry_meta = {r["id"]: r["metadata"] for r in map(json.loads, lines)}
        except (OSError, ValueError, KeyError):
            self.hashes, self.generation = {}, None  # damaged: the next check rebuilds it from the vector index
            return
        self.passage_ids, self.entry_ids, self.texts, self.entry_meta = passage_ids, entry_ids, texts, entry_meta
        self._retriever = retriever
        self._masks = {}
        self._encode_entries()

    def _save(self) -> None:
        """Write a complete new folder, then swap it in, so a crash never leaves half an index."""
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.folder.parent, prefix=".lexical-"))
        try:
            with (tmp / "corpus.jsonl").open("w", encoding="utf-8") as out:
                for pid, eid, text in zip(self.passage_ids, self.entry_ids, self.texts, strict=True):
                    out.write(json.dumps({"id": pid, "entry_id": eid, "text": text}, ensure_ascii=False) + "\n")
            with (tmp / "entries.jsonl").open("w", encoding="utf-8") as out:
                for entry_id, metadata in self.entry_meta.items():
                    out.write(json.dumps({"id": entry_id, "metadata": metadata}, ensure_ascii=False) + "\n")
            if self._retriever is not None:
                self._retriever.save(str(tmp / "bm25"))
            self._write_manifest(tmp)
            old = self.folder.with_name(self.folder.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            if self.folder.exists():
                os.replace(self.folder, old)
            os.replace(tmp, self.folder)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _write_manifest(self, folder: Path) -> None:
        manifest = {"format": FORMAT_VERSION, "hashes": self.hashes, "generation": self.generation}
        tmp = folder / "manifest.json.tmp"
        tmp.write_text(json.dumps(manifest))
        os.replace(tmp, folder / "manifest.json")

    @_locked
    def mark(self, generation: str | None) -> None:
        """Record that this mirror matches the vector index at this generation mark (None: unknown)."""
        if generation != self.generation and self.folder.is_dir():
            self.generation = generation
            self._write_manifest(self.folder)

    def mirrors(self, generation: str | None) -> bool:
        """True when this folder was in step with the vector index at this mark: trust its records."""
        return bool(generation) and self.generation == generation

    @_locked
    def table(self) -> EntryTable:
        """The entry records as columns, built on first use after each change."""
        self._load()
        if self._table is None:
            self._table = EntryTable(self.entry_meta)
        return self._table

    def is_current(self, hashes: dict[str, str]) -> bool:
        """True when built from exactly these entry versions (the vector index's ledger)."""
        return self.hashes == hashes

    # ----------------------------------------------------------------- writes

    @_locked
    def update(
        self,
        remove: set[str],
        add: list[tuple[str, str, str]],
        hashes: dict[str, str],
        metadata: dict[str, dict] | None = None,
        generation: str | None = None,
    ) -> None:
        """Drop the passages of `remove` entries, add (passage_id, entry_id, text) rows and the added
        entries' records, re-index, save, and remember the vector index's mark they match."""
        self._load()
        keep = [i for i, eid in enumerate(self.entry_ids) if eid not in remove]
        self.passage_ids = [self.passage_ids[i] for i in keep] + [p for p, _, _ in add]
        self.entry_ids = [self.entry_ids[i] for i in keep] + [e for _, e, _ in add]
        self.texts = [self.texts[i] for i in keep] + [t for _, _, t in add]
        self.entry_meta = {k: v for k, v in self.entry_meta.items() if k not in remove} | dict(metadata or {})
        self.hashes = dict(hashes)
        self.generation = generation
        self._table = None
        self._reindex()
        self._save()

    @_locked
    def rebuild(
        self,
        rows: list[tuple[str, str, str]],
        hashes: dict[str, str],
        metadata: dict[str, dict] | None = None,
        generation: str | None = None,
    ) -> None:
        """Start again from (passage_id, entry_id, text) rows and entry records, e.g. the vector index's."""
        self._loaded = True
        self.passage_ids, self.entry_ids, self.texts, self.entry_meta = [], [], [], {}
        self.update(set(), rows, hashes, metadata, generation)

    def _encode_entries(self) -> None:
        """Integer codes for entry ids, so a filter mask is an integer `isin`, not a string scan."""
        self._codes = {}
        self._entry_codes = np.fromiter(
            (self._codes.setdefault(e, len(self._codes)) for e in self.entry_ids),
            dtype=np.int32,
            count=len(self.entry_ids),
        )

    def _reindex(self) -> None:
        self._position = {}
        self._masks = {}
        self._encode_entries()
        if not self.texts:
            self._retriever = None
            return
        retriever = bm25s.BM25()
        retriever.index(
            bm25s.tokenize(self.texts, stopwords="en", stemmer=_STEMMER, show_progress=False), show_progress=False
        )
        self._retriever = retriever

    # ----------------------------------------------------------------- reads

    @_locked
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
        codes = [self._codes[e] for e in allowed_entries if e in self._codes]
        mask = np.isin(self._entry_codes, np.asarray(codes, dtype=np.int32)).astype(np.float32)
        mask.flags.writeable = False  # shared by every search that reuses it
        if isinstance(allowed_entries, frozenset):
            if len(self._masks) >= 64:
                self._masks.pop(next(iter(self._masks)))
            self._masks[id(allowed_entries)] = (allowed_entries, mask)
        return mask

    @_locked
    def search(self, query: str, k: int, weights: np.ndarray | None = None) -> list[KeywordMatch]:
        """Top k passages by BM25 among those whose weight (from `weights`) is 1."""
        self._load()
        if self._retriever is None or not self.passage_ids:
            return []
        if weights is not None and not weights.any():
            return []
        tokens = tokenize([query])
        if not tokens or not tokens[0]:
            return []
        k = min(k, len(self.passage_ids))
        docs, scores = self._retriever.retrieve(tokens, k=k, show_progress=False, weight_mask=weights, n_threads=1)
        return [
            KeywordMatch(self.passage_ids[i], self.entry_ids[i], float(s))
            for i, s in zip(docs[0], scores[0], strict=True)
            if s > 0
        ]

    @_locked
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

    @_locked
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

        mask = np.zeros(len(self.texts), dtype=np.float32)
        for row in self._holding_every_word(" ".join(phrases)):
            if contains_all(self.texts[row], phrases):
                mask[row] = 1.0
        return mask

    def _holding_every_word(self, text: str) -> np.ndarray | range:
        """Passages whose keyword tokens include every token of `text` (all passages if it has none)."""
        tokens = set(tokenize([text])[0]) if text.strip() else set()
        if self._retriever is None or not tokens:
            return range(len(self.texts))
        vocab, scores = self._retriever.vocab_dict, self._retriever.scores
        postings = []
        for token in tokens:
            column = vocab.get(token)
            if column is None:
                return np.zeros(0, dtype=np.int64)
            postings.append(scores["indices"][scores["indptr"][column] : scores["indptr"][column + 1]])
        postings.sort(key=len)
        rows = postings[0]
        for other in postings[1:]:
            rows = np.intersect1d(rows, other, assume_unique=True)
        return rows

    @_locked
    def text_of(self, passage_id: str) -> str | None:
        self._load()
        if len(self._position) != len(self.passage_ids):
            self._position = {pid: i for i, pid in enumerate(self.passage_ids)}
        position = self._position.get(passage_id)
        return None if position is None else self.texts[position]
