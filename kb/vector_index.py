"""The vector index on Chroma, through a client from kb.chroma_client.

Two collections per knowledge base:
- `<name>-passages`: one record per passage (vector, text, the entry's facet fields);
- `<name>-entries`: one record per entry (mean passage vector, facet fields, content hash), which
  is the sync ledger, the entry-level filter and the source of the collection map.

An entry's record is written after its passages, so a crash mid-sync leaves it absent or stale and
the next sync redoes it. Column-wise Chroma results become small dataclasses here and nowhere else,
and a failure inside Chroma becomes this index's KBError (kb.chroma_client's `guarded`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kb.checked_files import store_damaged
from kb.chroma_client import describe_failure, guarded, is_chroma_failure, load_chromadb
from kb.chroma_sharing import chroma_call
from kb.errors import IndexDamaged, IndexMismatch, KBError
from kb.passages import PassageId

Where = dict[str, Any]
# Shown with a hit but never filtered on per passage: kept on the entry record only. Chroma keeps a row
# per metadata field per passage, so at 400,000 passages each field left out saves 400,000 rows.
ENTRY_ONLY_FIELDS = frozenset({"title", "lighthouse_stage", "anonymous", "written"})
# How widely a query walks Chroma's HNSW graph. At 200, recall@10 against exact search at 400,000
# passages varied between two builds of the same collection (0.99, then 0.92 with two queries finding
# only 2 and 3 of their 10); at 400 the second build gave 0.995, for about a millisecond more on an
# unfiltered query and about a quarter more on a filtered walk, which narrow filters avoid where the
# keyword index keeps a copy of the vectors (docs/performance.md).
EF_SEARCH = 400


@dataclass(frozen=True)
class PassageMatch:
    passage_id: str
    entry_id: str
    section: str
    text: str
    similarity: float


@dataclass(frozen=True)
class IndexedEntry:
    entry_id: str
    content_hash: str
    metadata: dict[str, Any]


def _batches(n: int, size: int) -> Iterator[slice]:
    for start in range(0, n, size):
        yield slice(start, min(n, start + size))


def collection_names(name: str) -> tuple[str, str]:
    """(passages, entries): the two collections an index of this name keeps in Chroma."""
    return f"{name}-passages", f"{name}-entries"


class VectorIndex:
    """Passage and entry vectors for one knowledge base, built by one model. Every method that reaches
    Chroma is `guarded`, but `check`, which reports damage its own way; each takes its turn
    (kb.chroma_sharing)."""

    def __init__(self, client, name: str, model: str, *, remote: bool = False, index_dir: Path | None = None):
        self.client = client
        self.name = name
        self.model = model
        self.remote = remote  # a Chroma server's store, not ours to check or delete
        self.index_dir = index_dir  # the folder of an embedded store that is ours, else None
        self._collections: tuple[Any, ...] | None = None  # (passages, entries) once opened
        self.written_generation: str | None = None  # the mark this process set last

    # ----------------------------------------------------------------- collections

    @property
    def _names(self) -> tuple[str, str]:
        return collection_names(self.name)

    @property
    def collection_names(self) -> tuple[str, str]:
        """(passages, entries): the two collections' names."""
        return self._names

    def _existing(self) -> set[str]:
        return {c if isinstance(c, str) else c.name for c in self.client.list_collections()}

    def _open(self, dimension: int | None = None):
        """(passages, entries) collections; None while there is no index and nothing to write.

        Opening never needs the model loaded: the stored model name is checked here, the vector size
        on the first write. So an unchanged re-sync costs no model load at all.
        """
        if self._collections is None:
            if dimension is None and not set(self._names) <= self._existing():
                return None
            cols = []
            for name in self._names:
                col = self.client.get_or_create_collection(
                    name,
                    embedding_function=None,
                    metadata={"model": self.model, "dimension": dimension or 0},
                    configuration={"hnsw": {"space": "cosine", "ef_search": EF_SEARCH, "ef_construction": 200}},
                )
                hnsw = (getattr(col, "configuration", None) or {}).get("hnsw") or {}
                if hnsw.get("ef_search") not in (None, EF_SEARCH):  # made before it was raised: takes effect
                    col.modify(configuration={"hnsw": {"ef_search": EF_SEARCH}})  # when Chroma next loads it
                found = (col.metadata or {}).get("model")
                if found != self.model:
                    raise IndexMismatch(
                        f"the index was built with model '{found}', not '{self.model}'; "
                        "run `python -m kb sync --rebuild`"
                    )
                cols.append(col)
            self._collections = tuple(cols)
        if dimension is not None:
            stored = int((self._collections[0].metadata or {}).get("dimension") or dimension)
            if stored != dimension:
                raise IndexMismatch(
                    f"the index holds {stored}-dimension vectors, not {dimension}; run `python -m kb sync --rebuild`"
                )
        return self._collections

    @guarded
    def built_with(self) -> str | None:
        """The model the existing index was built with, or None where there is no index yet."""
        if self._names[1] not in self._existing():
            return None
        return (self.client.get_collection(self._names[1], embedding_function=None).metadata or {}).get("model")

    @guarded
    def reset(self) -> None:
        """Drop both collections; the next write creates them afresh for this model."""
        existing = self._existing()
        for name in self._names:
            if name in existing:
                self.client.delete_collection(name)
        self._collections = None

    # ----------------------------------------------------------------- writes

    @guarded
    def put_entries(
        self, records: list[tuple[str, str, dict[str, Any], list[tuple[str, str, str]], np.ndarray]]
    ) -> dict[str, dict[str, Any]]:
        """Replace the passages of these entries and record their hashes, in that order; returns each
        entry's stored facet metadata.

        Each record is (entry_id, content_hash, facet metadata, [(passage_id, section, text)], vectors).
        """
        if not records:
            return {}
        passages_col, entries_col = self._open(dimension=int(records[0][4].shape[1]))
        ids = [r[0] for r in records]
        self._delete_passages(passages_col, {entry_id: len(passages) for entry_id, _, _, passages, _ in records})
        p_ids, p_vecs, p_docs, p_meta = [], [], [], []
        e_vecs, e_meta = [], []
        for entry_id, digest, metadata, passages, vectors in records:
            if not passages:
                raise KBError(f"entry '{entry_id}' has no text to index; give it at least a title")
            clean = _clean(metadata)
            filterable = {k: v for k, v in clean.items() if k not in ENTRY_ONLY_FIELDS}
            for (pid, section, text), vec in zip(passages, vectors, strict=True):
                p_ids.append(pid)
                p_vecs.append(vec)
                p_docs.append(text)
                p_meta.append({**filterable, "entry_id": entry_id, "section": section})
            centroid = vectors.mean(axis=0)
            e_vecs.append(centroid / (np.linalg.norm(centroid) or 1.0))
            e_meta.append({**clean, "content_hash": digest, "passages": len(passages)})
        max_batch = self.client.get_max_batch_size()
        p_array = np.asarray(p_vecs, dtype=np.float32)
        for part in _batches(len(p_ids), max_batch):
            passages_col.add(ids=p_ids[part], embeddings=p_array[part], documents=p_docs[part], metadatas=p_meta[part])
        e_array = np.asarray(e_vecs, dtype=np.float32)
        for part in _batches(len(ids), max_batch):
            entries_col.upsert(ids=ids[part], embeddings=e_array[part], metadatas=e_meta[part])
        self._bump_generation()
        return {i: {k: v for k, v in m.items() if k != "content_hash"} for i, m in zip(ids, e_meta, strict=True)}

    def _delete_passages(self, passages_col, new_counts: dict[str, int]) -> None:
        """Delete these entries' stored passages, before their new ones (this many each) are added.

        An entry's passages are numbered from 0 without a gap (kb.passages) and written in that order,
        so what the store holds of an entry is always entry#0 to entry#k-1. When entry#n (n its new
        count) is not stored, deleting entry#0 to entry#n-1 by id deletes them all, without the scan of
        every passage's metadata that a clause costs (40 ms at 400,000 passages, in every save). An
        entry that had more passages before is deleted by the clause."""
        max_batch = self.client.get_max_batch_size()
        probes = [PassageId.of(entry_id, n) for entry_id, n in new_counts.items()]
        longer: set[str] = set()
        for part in _batches(len(probes), max_batch):
            for found in passages_col.get(ids=probes[part], include=[])["ids"]:
                parsed = PassageId.parse(found)
                longer.update([parsed.entry_id] if parsed is not None else new_counts)  # unparsable: by clause
        by_id = [PassageId.of(e, i) for e, n in new_counts.items() if e not in longer for i in range(n)]
        for part in _batches(len(by_id), max_batch):
            passages_col.delete(ids=by_id[part])
        if longer:
            passages_col.delete(where={"entry_id": {"$in": sorted(longer)}})

    def _bump_generation(self) -> None:
        """Mark the index as changed, so other processes (app replicas) know to refresh what they derive."""
        assert self._collections is not None  # called after a write, which opened them
        entries_col = self._collections[1]
        self.written_generation = uuid.uuid4().hex
        entries_col.modify(metadata={**(entries_col.metadata or {}), "generation": self.written_generation})

    @guarded
    def generation(self) -> str | None:
        """The mark of the last change, read afresh from Chroma (one small request: every search asks)."""
        try:
            entries_col = self.client.get_collection(self._names[1], embedding_function=None)
        except load_chromadb().errors.NotFoundError:
            return None
        return str((entries_col.metadata or {}).get("generation", ""))

    @guarded
    def delete_entries(self, entry_ids: Iterable[str]) -> None:
        ids = list(entry_ids)
        opened = self._open()
        if not ids or opened is None:
            return
        passages_col, entries_col = opened
        for part in _batches(len(ids), 500):
            entries_col.delete(ids=ids[part])  # ledger first: a crash here means "re-check", never "done"
            passages_col.delete(where={"entry_id": {"$in": ids[part]}})
        self._bump_generation()

    # ----------------------------------------------------------------- reads

    @guarded
    def entries(self, where: Where | None = None, include_vectors: bool = False) -> list[IndexedEntry] | tuple:
        """Every indexed entry (optionally filtered), with their vectors when asked."""
        out, vectors = [], []
        for page, page_vectors in self._entry_pages(where, include_vectors):
            out += page
            if page_vectors is not None:
                vectors.append(page_vectors)
        if include_vectors:
            return out, (np.vstack(vectors) if vectors else np.zeros((0, 0), np.float32))
        return out

    @guarded
    def entry_pages(self, where: Where | None = None) -> Iterator[list[IndexedEntry]]:
        """Every indexed entry, a page at a time, so memory stays flat on big collections."""
        for page, _ in self._entry_pages(where, False):
            yield page

    def _entry_pages(self, where: Where | None, include_vectors: bool) -> Iterator[tuple[list[IndexedEntry], Any]]:
        opened = self._open()
        if opened is None:
            return
        include = ["metadatas", "embeddings"] if include_vectors else ["metadatas"]
        offset, page = 0, 5000
        while True:
            got = opened[1].get(where=where or None, include=include, limit=page, offset=offset)
            entries = []
            for entry_id, meta in zip(got["ids"], got["metadatas"], strict=True):
                meta = dict(meta or {})
                entries.append(IndexedEntry(entry_id, str(meta.pop("content_hash", "")), meta))
            vectors = np.asarray(got["embeddings"], dtype=np.float32) if include_vectors and entries else None
            if entries:
                yield entries, vectors
            if len(got["ids"]) < page:
                return
            offset += page

    @guarded
    def entry_ids(self, where: Where | None = None) -> set[str]:
        opened = self._open()
        if opened is None:
            return set()
        entries_col = opened[1]
        ids: set[str] = set()
        offset, page = 0, 20000
        while True:
            got = entries_col.get(where=where or None, include=[], limit=page, offset=offset)
            ids.update(got["ids"])
            if len(got["ids"]) < page:
                return ids
            offset += page

    @guarded
    def metadata_of(self, entry_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Facet metadata of these entries, by id (missing ids are left out)."""
        opened = self._open()
        if opened is None or not entry_ids:
            return {}
        got = opened[1].get(ids=list(dict.fromkeys(entry_ids)), include=["metadatas"])
        return {i: dict(m or {}) for i, m in zip(got["ids"], got["metadatas"], strict=True)}

    @guarded
    def passages(
        self, entry_id: str | None = None, ids: list[str] | None = None
    ) -> tuple[list[PassageMatch], np.ndarray]:
        """The passages (and their vectors) of one entry, of these passage ids, or of all, in index order.

        Ids are the fast way to one entry's passages in a big index: no metadata clause to evaluate.
        """
        opened = self._open()
        if opened is None:
            return [], np.zeros((0, 0), np.float32)
        passages_col = opened[0]
        where = {"entry_id": entry_id} if entry_id and ids is None else None
        matches, vectors, offset, page = [], [], 0, 5000
        while True:
            got = passages_col.get(
                ids=ids, where=where, include=["metadatas", "documents", "embeddings"], limit=page, offset=offset
            )
            for pid, meta, doc in zip(got["ids"], got["metadatas"], got["documents"], strict=True):
                matches.append(PassageMatch(pid, meta["entry_id"], meta.get("section", ""), doc or "", 1.0))
            if len(got["ids"]):
                vectors.append(np.asarray(got["embeddings"], dtype=np.float32))
            if len(got["ids"]) < page:
                break
            offset += page
        order = sorted(range(len(matches)), key=lambda i: _passage_order(matches[i].passage_id))
        stacked = np.vstack(vectors) if vectors else np.zeros((0, 0), np.float32)
        return [matches[i] for i in order], stacked[order] if len(order) else stacked

    @guarded
    def passage_pages(
        self, vectors: bool = False, where: Where | None = None
    ) -> Iterator[tuple[list[PassageMatch], np.ndarray | None]]:
        """Every passage's id, entry, section and text (those the clause allows, when given), and with
        `vectors` their vectors (else None), a page at a time, in index order."""
        opened = self._open()
        if opened is None:
            return
        include = ["metadatas", "documents", "embeddings"] if vectors else ["metadatas", "documents"]
        offset, page = 0, 5000
        while True:
            got = opened[0].get(where=where or None, include=include, limit=page, offset=offset)
            matches = [
                PassageMatch(pid, meta["entry_id"], meta.get("section", ""), doc or "", 1.0)
                for pid, meta, doc in zip(got["ids"], got["metadatas"], got["documents"], strict=True)
            ]
            yield matches, np.asarray(got["embeddings"], dtype=np.float32) if vectors and matches else None
            if len(got["ids"]) < page:
                return
            offset += page

    @guarded
    def query(
        self,
        vectors: np.ndarray,
        k: int,
        where: Where | None = None,
        ids: list[str] | None = None,
        *,
        light: bool = False,
    ) -> list[list[PassageMatch]]:
        """The k nearest passages to each query vector, among those the filter (and the id list) allow.

        `light` asks Chroma for ids and distances only, leaving section and text empty for the caller
        to fill from its own copy: fetching the metadata and text of 300 neighbours is nine tenths of
        a query's time (44 ms against 2.5 ms at 40,000 passages).
        """
        opened = self._open()
        if opened is None:
            return [[] for _ in range(len(vectors))]
        passages_col = opened[0]
        # No count() first: Chroma returns fewer than k when it holds fewer, and counting 400,000
        # passages took 43 ms, more than the search itself.
        if len(vectors) == 0 or (ids is not None and not ids):
            return [[] for _ in range(len(vectors))]
        got = passages_col.query(
            query_embeddings=np.asarray(vectors, dtype=np.float32),
            n_results=k if ids is None else min(k, len(ids)),
            where=where or None,
            ids=ids,
            include=["distances"] if light else ["metadatas", "documents", "distances"],
        )
        if light:
            return [
                [
                    PassageMatch(pid, PassageId.entry_of(pid), "", "", 1.0 - float(dist))
                    for pid, dist in zip(found, dists, strict=True)
                ]
                for found, dists in zip(got["ids"], got["distances"], strict=True)
            ]
        results = []
        for ids, metas, docs, dists in zip(
            got["ids"], got["metadatas"], got["documents"], got["distances"], strict=True
        ):
            results.append(
                [
                    PassageMatch(pid, meta["entry_id"], meta.get("section", ""), doc or "", 1.0 - float(dist))
                    for pid, meta, doc, dist in zip(ids, metas, docs, dists, strict=True)
                ]
            )
        return results

    def check(self, *, load: bool = True) -> None:
        """Open both collections and read a little of each: IndexDamaged if the store is broken. Without
        `load`, open them only (their records in Chroma's database), for a caller that reads the vectors
        from the files itself: Chroma's first read of a collection loads its whole graph into memory.

        An index built by another model is not damaged; `built_with` reports that case.
        """
        try:
            with chroma_call():
                opened = self._open()
                if opened is not None and load:
                    for col in opened:
                        col.count()
                        col.get(limit=1, include=["metadatas"])
        except IndexMismatch:
            return  # readable, just built by another model: sync rebuilds it on purpose
        except KBError:
            raise
        except BaseException as exc:
            if not is_chroma_failure(exc):
                raise
            raise self.damaged(f"the index cannot be read ({describe_failure(exc)})") from None

    def damaged(self, reason: str) -> IndexDamaged:
        """The error for a failure inside the embedded store (`store_damaged`, where the store is ours)."""
        return store_damaged(self.index_dir, reason) if self.index_dir is not None else IndexDamaged(reason)

    @guarded
    def count(self) -> tuple[int, int]:
        """(entries, passages) in the index."""
        opened = self._open()
        if opened is None:
            return 0, 0
        return opened[1].count(), opened[0].count()


def _passage_order(passage_id: str) -> tuple[str, int]:
    parsed = PassageId.parse(passage_id)
    return (parsed.entry_id, parsed.number) if parsed else (passage_id, 0)


def _clean(metadata: dict[str, Any]) -> dict[str, Any]:
    """Chroma metadata holds scalars and non-empty lists only."""
    out = {}
    for key, value in metadata.items():
        if value is None or value == [] or value == "":
            continue
        out[key] = list(value) if isinstance(value, (list, tuple)) else value
    return out
