"""The embedding backends side by side in one run: encode throughput and retrieval quality.

For each backend (torch, onnx, onnx-int8) of the same model: passages per second on the same passages
with the same batch size, and nDCG@10 on a BEIR dataset through the product's own index and search
(`bench.evaluation`), each as a ratio or a difference to torch. The rule for a new default: at least
MIN_SPEEDUP times torch's throughput and less than MAX_NDCG_LOSS lower nDCG@10 (dense mode, where the
embedder is all there is).

Throughput rounds are interleaved (torch, onnx, int8, torch, ...) and the best round counts, so a
neighbour's load on a shared machine falls on every backend alike rather than on whichever ran last.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bench.evaluation import Dataset, doc_entry, evaluate, open_corpus_index
from kb.config import BACKENDS, DEFAULT_MODEL
from kb.embedder import SentenceTransformerEmbedder
from kb.passages import split_entry

MIN_SPEEDUP = 1.5
MAX_NDCG_LOSS = 0.005
RULE_MODE = "dense"


def subset(dataset: Dataset, queries: int | None = None, corpus_limit: int | None = None) -> Dataset:
    """The first `queries` queries and a corpus of their judged documents plus the first others up to
    `corpus_limit`, for a quick run; None keeps everything."""
    chosen = dict(list(dataset.queries.items())[:queries]) if queries else dict(dataset.queries)
    qrels = {q: dataset.qrels[q] for q in chosen if q in dataset.qrels}
    if not corpus_limit:
        return Dataset(dataset.corpus, chosen, qrels)
    keep = {d for judged in qrels.values() for d in judged if d in dataset.corpus}
    for doc_id in dataset.corpus:
        if len(keep) >= corpus_limit:
            break
        keep.add(doc_id)
    return Dataset({d: t for d, t in dataset.corpus.items() if d in keep}, chosen, qrels)


def sample_passages(dataset: Dataset, count_tokens, max_tokens: int, limit: int) -> list[str]:
    """The passages the product would index for the first corpus documents (same text, same cuts)."""
    out: list[str] = []
    for doc_id, (title, text) in dataset.corpus.items():
        out += [p.text for p in split_entry(doc_entry(doc_id, title, text), count_tokens, max_tokens)]
        if len(out) >= limit:
            break
    return out[:limit]


def run_embedder_bench(
    dataset: Dataset,
    index_dir: Path,
    *,
    backends: Iterable[str] = BACKENDS,
    model: str = DEFAULT_MODEL,
    passages: int = 256,
    rounds: int = 3,
    batch_size: int = 64,
    modes: Iterable[str] = ("dense", "hybrid"),
    cache_dir: Path | None = None,
    make: Callable[[str], Any] | None = None,
    log: Callable[[str], None] = lambda message: None,
) -> dict[str, Any]:
    """Figures for each backend, their ratios to torch and the verdict; see the module docstring."""
    backends = list(dict.fromkeys(["torch", *backends]))  # torch is the reference, always measured
    modes = list(modes)
    make = make or (lambda b: SentenceTransformerEmbedder(model, backend=b, batch_size=batch_size, cache_dir=cache_dir))
    embedders: dict[str, Any] = {}
    figures: dict[str, dict[str, Any]] = {}
    for backend in backends:
        started = time.perf_counter()
        embedder = make(backend)
        embedder.embed(["warm-up"])  # loads the model, exporting it first where the cache has no copy yet
        embedders[backend] = embedder
        figures[backend] = {"name": embedder.name, "load_s": round(time.perf_counter() - started, 2)}
        log(f"{backend}: loaded in {figures[backend]['load_s']} s")

    reference = embedders["torch"]
    texts = sample_passages(dataset, reference.count_tokens, reference.max_tokens, passages)
    for embedder in embedders.values():
        embedder.embed(texts[:batch_size])  # warm-up on real lengths: thread pools, allocator, caches
    seconds: dict[str, list[float]] = {b: [] for b in backends}
    for n in range(rounds):
        for backend, embedder in embedders.items():
            started = time.perf_counter()
            embedder.embed(texts)
            seconds[backend].append(time.perf_counter() - started)
        log(f"throughput round {n + 1}/{rounds}: " + ", ".join(f"{b} {s[-1]:.1f} s" for b, s in seconds.items()))
    for backend in backends:
        best, median = min(seconds[backend]), sorted(seconds[backend])[len(seconds[backend]) // 2]
        figures[backend]["passages_per_s"] = round(len(texts) / best, 1)
        figures[backend]["passages_per_s_median"] = round(len(texts) / median, 1)

    for backend, embedder in embedders.items():
        log(f"{backend}: indexing {len(dataset.corpus)} documents and running {len(dataset.queries)} queries")
        started = time.perf_counter()
        kb = open_corpus_index(dataset, Path(index_dir) / backend, embedder)
        figures[backend]["index_s"] = round(time.perf_counter() - started, 1)
        results = evaluate(kb, dataset, modes)
        figures[backend]["ndcg@10"] = {mode: results[mode]["ndcg@10"] for mode in modes}
        figures[backend]["recall@100"] = {mode: results[mode]["recall@100"] for mode in modes}
        figures[backend]["query_p50_ms"] = {mode: results[mode]["p50_ms"] for mode in modes}

    base = figures["torch"]
    rule_mode = RULE_MODE if RULE_MODE in modes else modes[0]
    for backend, row in figures.items():
        row["speedup"] = round(row["passages_per_s"] / base["passages_per_s"], 2)
        row["ndcg_delta"] = {m: round(row["ndcg@10"][m] - base["ndcg@10"][m], 4) for m in modes}
        row["eligible"] = backend != "torch" and (
            row["speedup"] >= MIN_SPEEDUP and -row["ndcg_delta"][rule_mode] < MAX_NDCG_LOSS
        )
    return {
        "model": model,
        "machine": f"{os.cpu_count()} CPUs, {platform.machine()}, {platform.processor() or platform.system()}",
        "batch_size": batch_size,
        "passages": len(texts),
        "rounds": rounds,
        "corpus": len(dataset.corpus),
        "queries": len(dataset.queries),
        "modes": modes,
        "rule": {"min_speedup": MIN_SPEEDUP, "max_ndcg_loss": MAX_NDCG_LOSS, "mode": rule_mode},
        "backends": figures,
        "verdict": verdict(figures, rule_mode),
    }


def verdict(figures: dict[str, dict[str, Any]], mode: str = RULE_MODE) -> str:
    """One line: which backend should be the default, and why."""
    eligible = [b for b, row in figures.items() if row["eligible"]]
    if eligible:
        best = max(eligible, key=lambda b: figures[b]["speedup"])
        row = figures[best]
        return (
            f"make {best} the default: {row['speedup']}x torch's throughput, "
            f"nDCG@10 ({mode}) {row['ndcg_delta'][mode]:+.4f}"
        )
    reasons = []
    for backend, row in figures.items():
        if backend == "torch":
            continue
        why = []
        if row["speedup"] < MIN_SPEEDUP:
            why.append(f"{row['speedup']}x torch's throughput, needs {MIN_SPEEDUP}x")
        if -row["ndcg_delta"][mode] >= MAX_NDCG_LOSS:
            why.append(f"nDCG@10 {row['ndcg_delta'][mode]:+.4f}, may lose less than {MAX_NDCG_LOSS}")
        reasons.append(f"{backend} {' and '.join(why)}")
    return "keep torch the default: " + "; ".join(reasons)


def format_report(figures: dict[str, Any]) -> str:
    modes = figures["modes"]
    lines = [
        f"model {figures['model']}, {figures['machine']}, batch {figures['batch_size']}",
        f"throughput: {figures['passages']} passages, best of {figures['rounds']} interleaved rounds; "
        f"quality: {figures['queries']} queries over {figures['corpus']} documents",
        "",
        f"{'backend':<10} {'passages/s':>10} {'vs torch':>8} {'load s':>7} {'index s':>8} "
        + " ".join(f"{'nDCG ' + m:>12} {'delta':>7}" for m in modes),
    ]
    for backend, row in figures["backends"].items():
        lines.append(
            f"{backend:<10} {row['passages_per_s']:>10.1f} {row['speedup']:>7.2f}x {row['load_s']:>7.1f} "
            f"{row['index_s']:>8.1f} "
            + " ".join(f"{row['ndcg@10'][m]:>12.4f} {row['ndcg_delta'][m]:>+7.4f}" for m in modes)
        )
    rule = figures["rule"]
    lines += [
        "",
        f"rule: a default needs >= {rule['min_speedup']}x torch's throughput and loses < {rule['max_ndcg_loss']} "
        f"nDCG@10 ({rule['mode']})",
        f"verdict: {figures['verdict']}",
    ]
    return "\n".join(lines)
