"""What a search costs beyond embedding the query, side by side in one run (never a timed test).

    python -m bench overhead                  # NASA's 2,100 lessons from ../shared/data

On one collection, synced once into a work folder and reused by the next run, each query is answered by:
- the floor: embedding the query, and nothing else;
- a plain baseline: exact search over every passage vector in one NumPy matrix, bm25s over the passage
  texts, the two fused and cut to one hit per entry in a few lines, a filter as a precomputed mask;
- Lighthouse: `KnowledgeBase.search`, hybrid, as the app calls it;
- a plain Chroma query with the same `where` clause (dense only), and LanceDB when it is installed.
Each at three filters: none, a signed-in reader's access rules, and those with a facet filter; and
again with the query vectors given (the embedding taken out), which shows the overhead alone. Every
figure is printed with its ratio to the floor and to the plain baseline of the same filter. At each
filter the contenders, the floor among them, take turns on every query, in an order drawn anew each
time, so a busy moment of the machine falls on all of them alike.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from bench.register import DEFAULT_QUERIES, import_register
from kb.config import Settings
from kb.embedder import Embedder
from kb.passages import PassageId
from kb.search import parse_query

CANDIDATES = 100  # passages each side returns before fusion, as Lighthouse takes
READER_ORGANISATION = "Marshall"


@dataclass
class Variant:
    """One filter, as Lighthouse takes it and as the baseline's mask of passages."""

    name: str
    filters: Any
    viewer: Any
    where: dict[str, Any] | None
    mask: np.ndarray | None  # passages the filter allows (None: all)


class GivenVectors:
    """An embedder that answers from vectors computed beforehand: the searches' cost without the model."""

    def __init__(self, model: Embedder, texts: list[str]):
        self.name, self.max_tokens = model.name, model.max_tokens
        self.count_tokens = model.count_tokens
        self._known = dict(zip(texts, model.embed(texts), strict=True))

    def embed(self, texts: list[str]) -> np.ndarray:
        return np.stack([self._known[t] for t in texts])


class PlainBaseline:
    """Exact dense search and bm25s, fused by min-max scaled scores, one hit per entry."""

    def __init__(self, entry_ids: list[str], texts: list[str], vectors: np.ndarray):
        import bm25s

        self.entry_ids = np.asarray(entry_ids)
        self.vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.bm25 = bm25s.BM25()
        self.bm25.index(bm25s.tokenize(texts, stopwords="en", show_progress=False), show_progress=False)
        self._tokenize = bm25s.tokenize

    def search(self, vector: np.ndarray, query: str, mask: np.ndarray | None, limit: int = 10) -> list[str]:
        dense = self.vectors @ vector
        tokens = self._tokenize(query, stopwords="en", return_ids=False, show_progress=False)[0]
        keyword = self.bm25.get_scores(tokens) if tokens else np.zeros(len(dense), np.float32)
        if mask is not None:
            dense, keyword = np.where(mask, dense, -np.inf), np.where(mask, keyword, 0.0)
        fused: dict[int, float] = {}
        for scores, weight in ((dense, 0.5), (keyword, 0.5)):
            top = np.argpartition(-scores, CANDIDATES)[:CANDIDATES]
            top = top[np.isfinite(scores[top]) & (scores[top] > 0)]
            if len(top):
                low, high = scores[top].min(), scores[top].max()
                for row, score in zip(top, (scores[top] - low) / ((high - low) or 1.0), strict=True):
                    fused[int(row)] = fused.get(int(row), 0.0) + weight * float(score)
        best: dict[str, float] = {}
        for row, score in sorted(fused.items(), key=lambda kv: -kv[1]):
            best.setdefault(str(self.entry_ids[row]), score)
        return list(best)[:limit]


def _position(order: dict[str, int], passage_id: str) -> tuple[int, int]:
    parsed = PassageId.parse(passage_id)
    if parsed is None:
        raise ValueError(f"'{passage_id}' is not a passage id")
    return order[parsed.entry_id], parsed.number


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 2), "p95_ms": round(float(np.percentile(ms, 95)), 2)}


def _timed_in_turn(calls: dict[str, Callable[[str], Any]], queries: tuple[str, ...], repeats: int) -> dict[str, Any]:
    """Each call's p50 and p95 over the queries, the calls taking turns on every query: a slow moment of a
    busy machine then falls on all of them alike, and their ratios hold. The order of the turns is drawn
    anew for every query (seeded), since a call's time depends on what ran just before it (the model's
    threads asleep or awake, the caches warm or not): in a fixed order the floor itself came out slower
    than the baseline, which embeds the same query and then searches."""
    turns = random.Random(0)
    for call in calls.values():
        call(queries[0])  # warm up what the first call loads
    times: dict[str, list[float]] = {name: [] for name in calls}
    for _ in range(repeats):
        for query in queries:
            for name in turns.sample(list(calls), len(calls)):
                started = time.perf_counter()
                calls[name](query)
                times[name].append(time.perf_counter() - started)
    return {name: _percentiles(seconds) for name, seconds in times.items()}


def prepare(register: Path, mapping: Path, work: Path, model: Embedder, log) -> Settings:
    """The register's entries in `work`, synced with the model; a second run reuses them."""
    from kb.knowledge import KnowledgeBase

    settings = Settings(entries_dir=work / "entries", index_dir=work / "index", chroma_url=None, model=model.name)
    if not any(settings.entries_dir.glob("*.md")):
        log(f"importing {register.name} into {settings.entries_dir} ...")
        import_register(register, mapping, settings.entries_dir)
    log("syncing (minutes the first time, seconds after) ...")
    report = KnowledgeBase(settings, embedder=model).sync()
    log(f"  {report.summary()}")
    return settings


def _variants(kb, theme_or_year: dict[str, Any]) -> list[Variant]:
    from kb.filters import Filters, Scope
    from kb.identity import User

    reader = User(name="Bench reader", organisation=READER_ORGANISATION, roles=("contributor",), local=False)
    table = kb.mirror.table()
    counts = np.nan_to_num(table.column("passages")).astype(int)
    variants = []
    for name, filters, viewer in (
        ("none", None, None),
        ("access", None, reader),
        ("access+facet", Filters.of(**theme_or_year), reader),
    ):
        where = Scope(filters or Filters(), viewer).where()
        mask = None if where is None else np.repeat(table.select(where), counts)
        variants.append(Variant(name, filters, viewer, where, mask))
    return variants


def run_overhead_bench(
    register: Path,
    mapping: Path,
    *,
    work_dir: Path,
    model: Embedder,
    facet: dict[str, Any] | None = None,
    queries: tuple[str, ...] = DEFAULT_QUERIES,
    repeats: int = 5,
    log=lambda message: None,
) -> dict[str, Any]:
    """Every figure of the module docstring, under clear keys."""
    from kb.knowledge import KnowledgeBase

    settings = prepare(register, mapping, work_dir, model, log)
    kb = KnowledgeBase(settings, embedder=model)
    # What Lighthouse embeds is the query without its quotes.
    given = KnowledgeBase(settings, embedder=GivenVectors(model, [parse_query(q).text for q in queries]))
    log("reading every passage and vector back ...")
    passages, vectors = kb.index.passages()
    kb.mirror.refresh()
    table = kb.mirror.table()
    if table is None:
        raise RuntimeError("the index has no entry table to compare with")
    # The baseline's rows in the entry table's order, so one mask serves both.
    order = {e: i for i, e in enumerate(table.ids.tolist())}
    rows = sorted(range(len(passages)), key=lambda i: _position(order, passages[i].passage_id))
    baseline = PlainBaseline([passages[i].entry_id for i in rows], [passages[i].text for i in rows], vectors[rows])
    query_vectors = dict(zip(queries, model.embed(list(queries)), strict=True))
    variants = _variants(kb, facet or {"year_from": 2005})
    lance = _lance(work_dir, baseline, [passages[i].text for i in rows], variants, log)
    log(f"{len(table.ids)} entries, {len(passages)} passages; timing {len(queries)} queries x {repeats} ...")

    figures: dict[str, Any] = {
        "entries": len(table.ids),
        "passages": len(passages),
        "model": model.name,
        "allowed_passages": {v.name: int(len(passages) if v.mask is None else v.mask.sum()) for v in variants},
    }
    for v in variants:
        figures[v.name] = _time_variant(v, kb, given, baseline, lance, model, query_vectors, queries, repeats)
    figures["floor"] = figures[variants[0].name]["floor"]  # the floor of the run without a filter
    return figures


def _time_variant(v, kb, given, baseline, lance, model, query_vectors, queries, repeats) -> dict[str, Any]:
    """Every contender's times at one filter, the query embedded in each search or given, the floor
    among them (each ratio is to the floor timed in the same turns)."""
    search = dict(filters=v.filters, viewer=v.viewer, limit=10, mode="hybrid")
    calls: dict[str, Callable[[str], Any]] = {
        "floor": lambda q: model.embed([q]),
        "lighthouse": lambda q: kb.search(q, **search),
        "baseline": lambda q: baseline.search(model.embed([q])[0], q, v.mask),
        "chroma_dense": lambda q: kb.index.query(model.embed([q]), 10, v.where),
        "lighthouse_given": lambda q: given.search(q, **search),
        "baseline_given": lambda q: baseline.search(query_vectors[q], q, v.mask),
    }
    if lance is not None:
        chosen = v.name if v.mask is not None else None
        calls["lancedb"] = lambda q: lance.search(model.embed([q])[0], q, chosen)
    return _timed_in_turn(calls, queries, repeats)


class LanceBaseline:
    """LanceDB over the same passages and vectors: its hybrid query (vector and full text, fused by its
    reciprocal-rank reranker), a filter as a boolean column it pre-filters on."""

    def __init__(self, folder: Path, entry_ids: list[str], texts: list[str], vectors: np.ndarray, masks: dict):
        import lancedb
        import pyarrow as pa

        columns = {
            "entry_id": pa.array(entry_ids),
            "text": pa.array(texts),
            "vector": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel(), pa.float32()), vectors.shape[1]),
        }
        columns |= {_column(name): pa.array(mask) for name, mask in masks.items()}
        self.table = lancedb.connect(str(folder)).create_table("passages", pa.table(columns), mode="overwrite")
        self.table.create_fts_index("text", replace=True, with_position=True)

    def search(self, vector: np.ndarray, query: str, variant: str | None, limit: int = 10) -> list[str]:
        found = self.table.search(query_type="hybrid").vector(vector).text(query)
        if variant is not None:
            found = found.where(f"{_column(variant)} = true", prefilter=True)
        best: dict[str, None] = {}
        for row in found.limit(CANDIDATES).select(["entry_id"]).to_list():
            best.setdefault(row["entry_id"])
        return list(best)[:limit]


def _column(variant: str) -> str:
    return "allow_" + variant.replace("+", "_")


def _lance(work: Path, baseline: PlainBaseline, texts: list[str], variants: list[Variant], log):
    os.environ.setdefault("LANCEDB_LOG", "error")  # a deprecation warning per query otherwise
    try:
        import lancedb  # noqa: F401
    except ImportError:
        log("LanceDB is not installed: its figures are left out (pip install -r requirements-bench.txt)")
        return None
    log("building the LanceDB table ...")
    masks = {v.name: v.mask for v in variants if v.mask is not None}
    return LanceBaseline(work / "lancedb", baseline.entry_ids.tolist(), texts, baseline.vectors, masks)


def ratios(figures: dict[str, Any]) -> list[tuple[str, str, float, float, float | None, float | None]]:
    """(filter, what, p50 ms, p95 ms, p50 / floor, p50 / baseline of the same filter) for every figure."""
    lines = []
    for variant in ("none", "access", "access+facet"):
        measured = figures[variant]
        floor = measured["floor"]["p50_ms"]
        for what, f in measured.items():
            base_key = "baseline_given" if what.endswith("_given") else "baseline"
            to_floor = None if what.endswith("_given") else round(f["p50_ms"] / floor, 2)
            lines.append(
                (
                    variant,
                    what,
                    f["p50_ms"],
                    f["p95_ms"],
                    to_floor,
                    round(f["p50_ms"] / measured[base_key]["p50_ms"], 2),
                )
            )
    return lines


def format_report(figures: dict[str, Any]) -> str:
    floor = figures["floor"]
    out = [
        f"{figures['entries']} entries, {figures['passages']} passages, model {figures['model']}",
        f"floor (embedding the query), without a filter: p50 {floor['p50_ms']:.1f} ms, p95 {floor['p95_ms']:.1f} ms",
        "(at each filter every contender takes its turn on each query, in a new order each time, the floor among them)",
        "",
        f"{'filter':<14}{'search':<20}{'p50 ms':>8}{'p95 ms':>8}{'/ floor':>9}{'/ plain':>9}",
    ]
    for variant, what, p50, p95, to_floor, to_plain in ratios(figures):
        floor_cell = f"{to_floor:.2f}x" if to_floor is not None else "–"
        out.append(f"{variant:<14}{what:<20}{p50:>8.1f}{p95:>8.1f}{floor_cell:>9}{to_plain:>8.2f}x")
    out += ["", "allowed passages: " + ", ".join(f"{k} {v:,}" for k, v in figures["allowed_passages"].items())]
    return "\n".join(out)
