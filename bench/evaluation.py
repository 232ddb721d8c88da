"""Retrieval evaluation on BEIR-format data: nDCG@10, Recall@100, MRR@10 and latency per mode.

The corpus is indexed by the product's own KnowledgeBase (same passages, same fusion, same
ranking); each document becomes an entry whose title is the document title and whose one section
is the text. The index is cached, so a second run only embeds the queries.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kb.config import Settings
from kb.embedder import Embedder
from kb.entries import MAX_TITLE, Entry, slugify
from kb.errors import KBError
from kb.search import DEFAULT_FUSION, MODES, Fusion

Qrels = dict[str, dict[str, int]]


@dataclass(frozen=True)
class Dataset:
    corpus: dict[str, tuple[str, str]]  # doc id -> (title, text)
    queries: dict[str, str]
    qrels: Qrels
    empty: tuple[str, ...] = ()  # documents with neither title nor text: nothing to index, left out


def _read_jsonl(path: Path) -> Iterable[dict]:
    try:
        with path.open(encoding="utf-8") as handle:
            for n, line in enumerate(handle, start=1):
                if line.strip():
                    try:
                        yield json.loads(line)
                    except json.JSONDecodeError as exc:
                        raise KBError(f"{path.name}, line {n}: not valid JSON ({exc.msg})") from None
    except OSError as exc:
        raise KBError(f"cannot read {path}: {exc.strerror}") from None


def load_beir(corpus: Path, queries: Path, qrels: Path) -> Dataset:
    """Read a BEIR corpus (_id, title, text), queries (_id, text) and qrels (query-id, corpus-id, score)."""
    docs, empty = {}, []
    for n, doc in enumerate(_read_jsonl(corpus), start=1):
        if not isinstance(doc, dict) or "_id" not in doc:
            raise KBError(f"{corpus.name}, document {n}: has no _id; every document needs one")
        title, text = str(doc.get("title") or "").strip(), str(doc.get("text") or "").strip()
        if title or text:
            docs[str(doc["_id"])] = (title, text)
        else:
            empty.append(str(doc["_id"]))
    judged: Qrels = {}
    try:
        with qrels.open(encoding="utf-8") as handle:
            rows = csv.reader(handle, delimiter="\t")
            header = next(rows, None)
            if header is None or len(header) < 3:
                raise KBError(f"{qrels.name}: expected a header 'query-id corpus-id score'")
            for n, row in enumerate(rows, start=2):
                if len(row) < 3:
                    raise KBError(f"{qrels.name}, line {n}: expected query-id, corpus-id and score")
                try:
                    judged.setdefault(row[0], {})[row[1]] = int(float(row[2]))
                except ValueError:
                    raise KBError(f"{qrels.name}, line {n}: score '{row[2]}' is not a number") from None
    except OSError as exc:
        raise KBError(f"cannot read {qrels}: {exc.strerror}") from None
    texts = {str(q["_id"]): str(q["text"]) for q in _read_jsonl(queries)}
    # Evaluate only the queries that have judgements (BEIR convention).
    return Dataset(docs, {q: t for q, t in texts.items() if q in judged}, judged, tuple(empty))


# ----------------------------------------------------------------------------- metrics


def ndcg_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(rel / math.log2(i + 2) for i, rel in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: list[str], relevant: dict[str, int], k: int = 100) -> float:
    wanted = {d for d, r in relevant.items() if r > 0}
    return len(wanted & set(ranked[:k])) / len(wanted) if wanted else 0.0


def mrr_at(ranked: list[str], relevant: dict[str, int], k: int = 10) -> float:
    for i, doc in enumerate(ranked[:k]):
        if relevant.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


# ----------------------------------------------------------------------------- running


def doc_entry(doc_id: str, title: str, text: str) -> Entry:
    """A corpus document as an entry: the title, its first sentence as summary, the text as a section."""
    first = text.split(". ")[0][:300]
    return Entry(
        id=entry_id(doc_id),
        title=(title or first)[:MAX_TITLE],
        summary=first,
        kind="project",
        outcome="succeeded",
        organisation="corpus",
        status="published",
        sections={"Text": text},
    )


def entry_id(doc_id: str) -> str:
    """A safe entry id for any corpus id, stable and reversible through a lookup table."""
    slug = slugify(doc_id, 60)
    return slug if slug == doc_id else f"{slug}-{hashlib.sha1(doc_id.encode()).hexdigest()[:8]}"


def open_corpus_index(
    dataset: Dataset, index_dir: Path, embedder: Embedder | None, progress: Callable[[int, int], None] | None = None
):
    """A KnowledgeBase over the corpus, built once and cached under index_dir."""
    from kb.knowledge import KnowledgeBase

    digest = hashlib.sha1("\n".join(sorted(dataset.corpus)).encode()).hexdigest()[:12]
    settings = Settings(
        entries_dir=index_dir / "no-entries", index_dir=index_dir, chroma_url=None, collection=f"eval-{digest}"
    )
    kb = KnowledgeBase(settings, embedder=embedder)
    entries = [doc_entry(doc_id, title, text) for doc_id, (title, text) in dataset.corpus.items()]
    kb.sync_entries(entries, progress=progress)
    return kb


def evaluate(
    kb, dataset: Dataset, modes: Iterable[str] = MODES, fusion: Fusion = DEFAULT_FUSION, limit: int = 100
) -> dict[str, dict[str, float]]:
    """Mean nDCG@10, Recall@100 and MRR@10, and query latency, for each mode."""
    back = {entry_id(d): d for d in dataset.corpus}
    results: dict[str, dict[str, float]] = {}
    for mode in modes:
        if mode not in MODES:
            raise KBError(f"unknown mode '{mode}'; use one of: {', '.join(MODES)} or all")
        ndcg, recall, mrr, latency = [], [], [], []
        for query_id, text in dataset.queries.items():
            started = time.perf_counter()
            hits = kb.search(text, limit=limit, mode=mode, fusion=fusion)
            latency.append(time.perf_counter() - started)
            ranked = [back.get(h.id, h.id) for h in hits]
            relevant = dataset.qrels.get(query_id, {})
            ndcg.append(ndcg_at(ranked, relevant, 10))
            recall.append(recall_at(ranked, relevant, 100))
            mrr.append(mrr_at(ranked, relevant, 10))
        ms = np.asarray(latency) * 1000
        results[mode] = {
            "ndcg@10": round(float(np.mean(ndcg)), 4),
            "recall@100": round(float(np.mean(recall)), 4),
            "mrr@10": round(float(np.mean(mrr)), 4),
            "queries": len(ndcg),
            "p50_ms": round(float(np.percentile(ms, 50)), 1),
            "p95_ms": round(float(np.percentile(ms, 95)), 1),
        }
    return results
