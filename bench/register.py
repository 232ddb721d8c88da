"""Performance figures on a real register, printed side by side in one run (never a timed test).

- sync throughput (passages per second, from entry files to both indexes) as a ratio to the bare
  model's encode throughput on exactly the same passages;
- re-sync of the unchanged collection, in process and as the `python -m kb sync` command;
- search latency p50 and p95 per mode, including the query embedding, and similar-projects latency;
- peak resident memory and index size on disk.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from kb.config import Settings
from kb.embedder import Embedder, make_embedder
from kb.passages import split_entry
from kb.search import MODES

DEFAULT_QUERIES = (
    "parachute deployment failure during descent",
    "software requirements changed late in the project",
    "contamination of flight hardware during integration and test",
    "connector mis-mated during assembly",
    "cost overrun caused by immature technology",
    "lessons on working with international partners",
    "battery thermal runaway",
    "communication between contractor and government team",
    "test like you fly",
    "schedule pressure led to skipped reviews",
    "FMEA",
    "single point failure",
    "loss of telemetry after launch",
    "training of ground operators for anomalies",
    "configuration management of spare parts",
    '"pyrotechnic"',
    "radiation effects on electronics in orbit",
    "requirements traceability and verification",
    "human error in procedures",
    "independent review found the problem",
)


def _percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.asarray(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 1), "p95_ms": round(float(np.percentile(ms, 95)), 1)}


def _folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux reports KiB


def import_register(register: Path, mapping: Path, entries_dir: Path) -> int:
    from kb.importer import import_table, load_mapping
    from kb.store import EntryStore

    report = import_table(EntryStore(entries_dir), register, load_mapping(mapping))
    return len(report.created) + len(report.updated) + len(report.unchanged)


def run_bench(
    register: Path,
    mapping: Path,
    *,
    work_dir: Path | None = None,
    embedder: Embedder | None = None,
    queries: tuple[str, ...] = DEFAULT_QUERIES,
    repeats: int = 3,
    log=lambda message: None,
) -> dict[str, Any]:
    """Import the register into a scratch folder, then measure. Returns figures under clear keys."""
    from kb.knowledge import KnowledgeBase

    work = Path(work_dir or tempfile.mkdtemp(prefix="lighthouse-bench-"))
    entries_dir, index_dir = work / "entries", work / "index"
    embedder = embedder or make_embedder()
    settings = Settings(entries_dir=entries_dir, index_dir=index_dir, chroma_url=None, model=embedder.name)

    log(f"importing {register.name} ...")
    entries = import_register(register, mapping, entries_dir)
    kb = KnowledgeBase(settings, embedder=embedder)
    loaded = kb.load().entries
    embedder.embed(["warm up the model"])

    log("bare model: encoding every passage ...")
    passages = [p.text for e in loaded.values() for p in split_entry(e, embedder.count_tokens, embedder.max_tokens)]
    started = time.perf_counter()
    embedder.embed(passages)
    bare_seconds = time.perf_counter() - started
    log(f"  bare model: {len(passages) / bare_seconds:.1f} passages/s")

    log(f"sync: {len(loaded)} entries, {len(passages)} passages ...")
    report = kb.sync(rebuild=True)
    sync_seconds = report.seconds
    log(f"  sync: {report.passages / sync_seconds:.1f} passages/s")

    log("re-sync of the unchanged collection ...")
    started = time.perf_counter()
    again = KnowledgeBase(settings, embedder=embedder).sync()
    resync_seconds = time.perf_counter() - started
    assert not again.changed, "the unchanged collection re-embedded something"
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "kb",
            "--entries",
            str(entries_dir),
            "--index",
            str(index_dir),
            "--model",
            embedder.name,
            "sync",
        ],
        check=True,
        capture_output=True,
    )
    resync_cli_seconds = time.perf_counter() - started

    log("search latency ...")
    latency: dict[str, dict[str, float]] = {}
    for mode in MODES:
        kb.search(queries[0], mode=mode)  # first call loads what each retriever needs
        times = []
        for _ in range(repeats):
            for query in queries:
                started = time.perf_counter()
                kb.search(query, limit=10, mode=mode)
                times.append(time.perf_counter() - started)
        latency[mode] = _percentiles(times)
    times = []
    for entry_id in sorted(loaded)[:: max(1, len(loaded) // 50)]:
        started = time.perf_counter()
        kb.similar(entry_id, limit=5)
        times.append(time.perf_counter() - started)
    latency["similar"] = _percentiles(times)

    bare_rate = len(passages) / bare_seconds
    sync_rate = report.passages / sync_seconds
    return {
        "register": register.name,
        "entries": entries,
        "passages": len(passages),
        "model": embedder.name,
        "bare_encode_passages_per_s": round(bare_rate, 1),
        "sync_passages_per_s": round(sync_rate, 1),
        "sync_to_encode_ratio": round(sync_rate / bare_rate, 3),
        "sync_seconds": round(sync_seconds, 1),
        "resync_unchanged_s": round(resync_seconds, 3),
        "resync_unchanged_cli_s": round(resync_cli_seconds, 3),
        "search": latency,
        "peak_rss_mb": _peak_rss_mb(),
        "index_mb": round(_folder_size(index_dir) / 2**20, 1),
        "entries_mb": round(_folder_size(entries_dir) / 2**20, 1),
    }


def format_report(figures: dict[str, Any]) -> str:
    lines = [
        f"{figures['entries']} entries from {figures['register']}, {figures['passages']} passages, "
        f"model {figures['model']}",
        f"sync throughput      {figures['sync_passages_per_s']:>8.1f} passages/s ({figures['sync_seconds']} s in all)",
        f"bare model encode    {figures['bare_encode_passages_per_s']:>8.1f} passages/s",
        f"ratio sync / encode  {figures['sync_to_encode_ratio']:>8.3f}   (target >= 0.85)",
        f"re-sync, unchanged   {figures['resync_unchanged_s']:>8.3f} s in process, "
        f"{figures['resync_unchanged_cli_s']:.3f} s as a command (target < 2 s)",
        "search latency, query embedding included (target p95 < 50 ms):",
    ]
    for name, figs in figures["search"].items():
        lines.append(f"  {name:<8} p50 {figs['p50_ms']:>7.1f} ms   p95 {figs['p95_ms']:>7.1f} ms")
    lines.append(
        f"peak memory {figures['peak_rss_mb']} MB; index {figures['index_mb']} MB on disk "
        f"(entry files {figures['entries_mb']} MB)"
    )
    return "\n".join(lines)
