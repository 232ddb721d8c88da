"""The scale benchmark: 1k, 10k and 100k entries recombined from NASA's lessons, figures side by side.

    python -m bench register --sizes 1000,10000,100000 [--server] [--json]

How the collections are made (deterministic, so two runs measure the same thing):
- Entry k takes its title and most of its summary from lesson a, the end of its summary from lesson c,
  and up to three sections (the first 150 words of each) from lesson b; a, b and c are drawn with a
  fixed seed. Organisations, visibility (80% public, 12% internal, 8% one organisation and a partner)
  and themes are assigned in turn, so access rules and facet filters have something to cut.
- Up to `real_up_to` entries, every passage is embedded by the model, as in production. Above it,
  a passage's vector is derived from the real vectors of the lesson passages it was cut from: their
  word-weighted mean plus a little noise seeded by the passage text, normalised. Queries are always
  embedded by the real model. So a 100k run takes minutes, not the hours of encoding 400k passages on
  two cores, and every search still meets real query vectors against real-shaped passage vectors.

Each size runs in fresh processes, so peak memory is per size: one process syncs (as `python -m kb
sync` would), another serves searches (as an app replica would). Exact brute-force search over the
same vectors, in NumPy, gives the recall@10 of Chroma's HNSW index and a latency to compare with.
With `server`, the same figures come from a Chroma server (`chroma run` on 127.0.0.1) in the same run.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from bench.browser import CHROMIUM, CHROMIUM_ARGS, RESULTS_LINE, free_port, stop
from bench.register import DEFAULT_QUERIES, _folder_size, _percentiles, import_register
from kb.config import Settings
from kb.embedder import Embedder
from kb.entries import Entry
from kb.errors import EntryError, KBError

DEFAULT_SIZES = (1_000, 10_000, 100_000)
REAL_UP_TO = 1_000  # sizes up to this are embedded by the model for real
SEED = 20261125
NOISE = 0.08  # length of the noise added to a derived vector (before normalising): cosine ~0.997
SUMMARY_WORDS, TAIL_WORDS, SECTION_WORDS, MAX_SECTIONS = 100, 40, 150, 3
ORGANISATIONS = tuple(
    f"{name} Directorate" for name in ("Aeronautics", "Science", "Exploration", "Space Operations", "Technology")
) + ("Goddard", "Johnson", "Kennedy", "Marshall", "Langley", "Glenn", "Ames")
VIEWER_ORGANISATION = "Marshall"
SAMPLE_ENTRIES = Path(__file__).resolve().parent.parent / "entries"  # its vocabulary.yaml gives the themes
FILTER_THEME_INDEX = 0  # the facet filter uses the vocabulary's first theme
# Quoted phrases timed at every size, common words included ("of the" is in most passages).
PHRASES = ("lessons learned", "flight software", "of the", "the test", "in the design of the", "was not")
SAVES = 20  # entries saved one at a time, after the searches


# ------------------------------------------------------------------------------------ the collection


@dataclass(frozen=True)
class Recipe:
    """Which lessons entry k is cut from: a gives title and summary, c the summary's tail, b the sections."""

    a: int
    b: int
    c: int
    round: int


def recipes(lessons: int, size: int, seed: int = SEED) -> list[Recipe]:
    rng = np.random.default_rng(seed)
    order = rng.permutation(lessons)
    others = rng.integers(0, lessons, size=(size, 2))
    return [Recipe(int(order[k % lessons]), int(others[k, 0]), int(others[k, 1]), k // lessons) for k in range(size)]


def _words(text: str, n: int) -> str:
    return " ".join(text.split()[:n])


def recombine(lessons: list[Entry], recipe: Recipe, k: int, themes: list[str]) -> Entry:
    a, b, c = lessons[recipe.a], lessons[recipe.b], lessons[recipe.c]
    summary = f"{_words(a.summary, SUMMARY_WORDS)} {_words(c.summary, TAIL_WORDS)}".strip()
    sections = {name: _words(body, SECTION_WORDS) for name, body in list(b.sections.items())[:MAX_SECTIONS]}
    organisation = ORGANISATIONS[k % len(ORGANISATIONS)]
    slot = (k * 7919) % 100
    visibility = "public" if slot < 80 else "internal" if slot < 92 else "organisation"
    return replace(
        a,
        id=a.id if recipe.round == 0 else f"{a.id}-r{recipe.round}",
        title=a.title if recipe.round == 0 else f"{a.title[:190]} ({recipe.round + 1})",
        summary=summary,
        sections=sections,
        organisation=organisation,
        partners=[ORGANISATIONS[(k + 3) % len(ORGANISATIONS)]] if visibility == "organisation" else [],
        visibility=visibility,
        status="published",
        themes=[themes[k % len(themes)], themes[(k * 31 + 5) % len(themes)]] if themes else [],
        related=[],
    )


def build_collection(lessons: list[Entry], size: int, themes: list[str]) -> list[tuple[Entry, Recipe]]:
    return [(recombine(lessons, r, k, themes), r) for k, r in enumerate(recipes(len(lessons), size))]


# ------------------------------------------------------------------------------------ vectors


class LessonVectors:
    """The real model's vectors of every NASA lesson passage, by lesson and section; cached on disk."""

    def __init__(self, lessons: list[Entry], embedder: Embedder, cache: Path, log=lambda m: None):
        from kb.passages import split_entry

        split = [split_entry(e, embedder.count_tokens, embedder.max_tokens) for e in lessons]
        texts = [p.text for passages in split for p in passages]
        digest = hashlib.sha256("\n\x00".join([embedder.name, *texts]).encode()).hexdigest()[:16]
        path = cache / f"lesson-vectors-{digest}.npy"
        if path.exists():
            self.vectors = np.load(path)
        else:
            log(f"embedding the {len(texts)} lesson passages once (cached in {path}) ...")
            self.vectors = embedder.embed(texts)
            cache.mkdir(parents=True, exist_ok=True)
            np.save(path, self.vectors)
        self.first_of: list[dict[str, int]] = []  # lesson -> section -> row of its first passage
        row = 0
        for passages in split:
            first: dict[str, int] = {}
            for p in passages:
                first.setdefault(p.section, row)
                row += 1
            self.first_of.append(first)

    def summary_row(self, lesson: int) -> int:
        rows = self.first_of[lesson]
        return rows.get("Summary", min(rows.values()))

    def section_row(self, lesson: int, section: str) -> int:
        return self.first_of[lesson].get(section, self.summary_row(lesson))


class DerivedEmbedder:
    """The real model for texts it was not told about (queries); derived vectors for the collection's passages.

    A derived vector is a weighted mean of real lesson-passage vectors plus noise seeded by the text, so
    the same passage always gets the same vector and no two passages share one. What each passage is
    derived from is learnt once per collection and saved as a few arrays (`save`, `load`), so the
    process that syncs holds 24 bytes per passage rather than the collection it was cut from.
    """

    def __init__(
        self, model: Embedder, lesson_vectors: LessonVectors, mixes: dict[int, tuple[int, int, float]] | None = None
    ):
        self.model = model
        self.name = model.name
        self.max_tokens = model.max_tokens
        self.lesson_vectors = lesson_vectors
        self._mix = dict(mixes or {})  # passage key -> (first row, second row, weight of the first)
        self._table: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray] | None = None  # sorted, once loaded
        self._tokens: dict[str, int] = {}

    def count_tokens(self, words: list[str]) -> list[int]:
        missing = [w for w in dict.fromkeys(words) if w not in self._tokens]
        if missing:
            self._tokens.update(zip(missing, self.model.count_tokens(missing), strict=True))
        return [self._tokens[w] for w in words]

    @staticmethod
    def _key(text: str) -> int:
        return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")

    def learn(self, entry: Entry, recipe: Recipe) -> int:
        """Note how each passage of this entry is derived; returns the number of passages."""
        from kb.passages import split_entry

        lv = self.lesson_vectors
        summary_a, summary_c = lv.summary_row(recipe.a), lv.summary_row(recipe.c)
        passages = split_entry(entry, self.count_tokens, self.max_tokens)
        for p in passages:
            if p.section == "Summary":
                self._mix[self._key(p.text)] = (summary_a, summary_c, 0.7)
            else:  # the section's words come from b, its "title — section" line from a
                self._mix[self._key(p.text)] = (lv.section_row(recipe.b, p.section), summary_a, 0.85)
        return len(passages)

    def save(self, path: Path) -> None:
        keys = np.fromiter(self._mix, dtype=np.uint64, count=len(self._mix))
        mixes = list(self._mix.values())
        order = np.argsort(keys)
        np.savez(
            path,
            keys=keys[order],
            first=np.asarray([m[0] for m in mixes], dtype=np.int32)[order],
            second=np.asarray([m[1] for m in mixes], dtype=np.int32)[order],
            weight=np.asarray([m[2] for m in mixes], dtype=np.float64)[order],
        )

    @classmethod
    def load(cls, model: Embedder, lesson_vectors: LessonVectors, path: Path) -> DerivedEmbedder:
        derived = cls(model, lesson_vectors)
        with np.load(path) as saved:
            derived._table = (saved["keys"], saved["first"], saved["second"], saved["weight"])
        return derived

    def _mix_of(self, key: int) -> tuple[int, int, float] | None:
        if self._table is not None:
            keys, first, second, weight = self._table
            at = int(np.searchsorted(keys, np.uint64(key)))
            if at < len(keys) and int(keys[at]) == key:
                return int(first[at]), int(second[at]), float(weight[at])
        return self._mix.get(key)

    def embed(self, texts: list[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.lesson_vectors.vectors.shape[1]), dtype=np.float32)
        unknown = []
        for i, text in enumerate(texts):
            key = self._key(text)
            mix = self._mix_of(key)
            if mix is None:
                unknown.append(i)
                continue
            first, second, weight = mix
            vectors = self.lesson_vectors.vectors
            noise = np.random.default_rng(key).standard_normal(out.shape[1])
            v = weight * vectors[first] + (1 - weight) * vectors[second] + NOISE * noise / np.sqrt(out.shape[1])
            out[i] = v / np.linalg.norm(v)
        if unknown:
            out[unknown] = self.model.embed([texts[i] for i in unknown])
        return out


# ------------------------------------------------------------------------------------ measuring


def _peak_rss_mb() -> float:
    """This process's peak resident memory (VmHWM), in MB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return round(int(line.split()[1]) / 1024, 1)
    import resource

    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _pid_peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def _timed(fn, *args, **kwargs) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, time.perf_counter() - started


@dataclass
class SizePaths:
    root: Path

    @property
    def entries(self) -> Path:
        return self.root / "entries"

    def index(self, backend: str) -> Path:
        return self.root / f"index-{backend}"

    @property
    def derived(self) -> Path:
        return self.root / "derived-vectors.npz"


def _settings(paths: SizePaths, backend: str, model: str, chroma_url: str | None) -> Settings:
    return Settings(
        entries_dir=paths.entries,
        index_dir=paths.index(backend),
        chroma_url=chroma_url,
        model=model,
        collection=f"bench-{paths.root.name}",
    )


def _lessons_and_vectors(register: Path, mapping: Path, work: Path, model: Embedder, log):
    from kb.store import EntryStore
    from kb.vocabulary import Vocabulary

    lesson_dir = work / "nasa-entries"
    if not (lesson_dir / ".complete").exists():
        shutil.rmtree(lesson_dir, ignore_errors=True)
        log(f"importing {register.name} ...")
        import_register(register, mapping, lesson_dir)
        (lesson_dir / ".complete").write_text("")
    store = EntryStore(lesson_dir)
    lessons = [store.load_file(p)[0] for p in store.files()]
    lessons = [e for e in lessons if e.status != "draft" and e.sections]
    themes = sorted(t.id for t in Vocabulary.load(SAMPLE_ENTRIES).themes)
    return lessons, LessonVectors(lessons, model, work / "cache", log), themes


def prepare_collection(args: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process, before the sync is measured: write the size's entry files and, above
    `real_up_to`, the table its passages' vectors are derived from. So the sync process starts as
    `python -m kb sync` would, without the collection in memory."""
    from kb.embedder import make_embedder
    from kb.entry_files import render_entry

    work, size = Path(args["work"]), int(args["size"])
    paths = SizePaths(work / f"size-{size}")
    model = make_embedder(args["model"])
    lessons, lesson_vectors, themes = _lessons_and_vectors(
        Path(args["register"]), Path(args["mapping"]), work, model, _stderr_log
    )
    collection = build_collection(lessons, size, themes)
    marker = paths.root / ".entries-complete"
    if not (marker.exists() and marker.read_text() == str(len(collection))):
        _stderr_log(f"[{size}] writing {size} entry files ...")
        shutil.rmtree(paths.entries, ignore_errors=True)
        paths.entries.mkdir(parents=True)
        shutil.copy(SAMPLE_ENTRIES / "vocabulary.yaml", paths.entries / "vocabulary.yaml")
        for entry, _ in collection:
            (paths.entries / f"{entry.id}.md").write_text(render_entry(entry), encoding="utf-8")
        marker.write_text(str(len(collection)))
    if size > int(args["real_up_to"]):
        derived = DerivedEmbedder(model, lesson_vectors)
        for entry, recipe in collection:
            derived.learn(entry, recipe)
        derived.save(paths.derived)
    return {}


def _bare_encode_rate(model: Embedder, settings: Settings) -> float:
    """Passages per second of the model alone, on the passages the sync will embed."""
    from kb.passages import split_entry
    from kb.store import EntryStore

    store, texts = EntryStore(settings.entries_dir), []
    for path in store.files():
        try:
            entry = store.load_file(path)[0]
        except EntryError:
            continue  # the sync reports it and leaves it out too
        texts += [p.text for p in split_entry(entry, model.count_tokens, model.max_tokens)]
    model.embed(["warm up the model"])
    _, seconds = _timed(model.embed, texts)
    return round(len(texts) / seconds, 1)


def sync_figures(args: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: sync the size's entry files into an empty index, then re-sync it unchanged."""
    from kb.embedder import make_embedder
    from kb.knowledge import KnowledgeBase

    work, size, backend = Path(args["work"]), int(args["size"]), args["backend"]
    paths = SizePaths(work / f"size-{size}")
    model = make_embedder(args["model"])
    log = _stderr_log
    settings = _settings(paths, backend, model.name, args.get("chroma_url"))
    real = size <= int(args["real_up_to"])
    figures: dict[str, Any] = {"vectors": "real" if real else "derived"}
    if real:
        embedder: Embedder = model
        log(f"[{size} {backend}] bare model: encoding every passage ...")
        figures["bare_encode_passages_per_s"] = _bare_encode_rate(model, settings)
    else:
        _, lesson_vectors, _ = _lessons_and_vectors(Path(args["register"]), Path(args["mapping"]), work, model, log)
        embedder = DerivedEmbedder.load(model, lesson_vectors, paths.derived)
    shutil.rmtree(settings.index_dir, ignore_errors=True)
    log(f"[{size} {backend}] sync ...")
    report = KnowledgeBase(settings, embedder=embedder).sync(rebuild=True)
    if report.problems:
        log(f"  {len(report.problems)} problems, first: {report.problems[0]}")
    figures.update(
        entries=len(report.added),
        passages=report.passages,
        sync_s=round(report.seconds, 1),
        sync_passages_per_s=round(report.passages / report.seconds, 1),
    )
    if real:
        figures["sync_to_encode_ratio"] = round(
            figures["sync_passages_per_s"] / figures["bare_encode_passages_per_s"], 3
        )
    # Again in this process, as a long-running app would (Chroma's client, once opened, is kept), and
    # then as a new `python -m kb sync` command, which opens everything from disk.
    again, resync = _timed(KnowledgeBase(settings, embedder=embedder).sync)
    if again.changed:
        raise KBError(f"the unchanged collection changed on re-sync: {again.summary()}")
    command = [sys.executable, "-m", "kb", "--entries", str(paths.entries), "--index", str(settings.index_dir)]
    command += ["--model", model.name, "sync"]
    env = {**os.environ, "KB_COLLECTION": settings.collection}
    if args.get("chroma_url"):
        env["KB_CHROMA_URL"] = args["chroma_url"]
    started = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, env=env)
    figures["resync_unchanged_s"] = round(resync, 3)
    figures["resync_unchanged_cli_s"] = round(time.perf_counter() - started, 3)
    figures["peak_rss_sync_mb"] = _peak_rss_mb()
    return figures


def search_figures(args: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process, as an app replica: open the index, search, find similar projects, then
    compare the index with exact search over the same vectors."""
    from kb.access import visible_where
    from kb.embedder import make_embedder
    from kb.filters import Filters
    from kb.identity import User
    from kb.knowledge import KnowledgeBase
    from kb.search import MODES

    work, size, backend = Path(args["work"]), int(args["size"]), args["backend"]
    paths = SizePaths(work / f"size-{size}")
    model = make_embedder(args["model"])
    settings = _settings(paths, backend, model.name, args.get("chroma_url"))
    kb = KnowledgeBase(settings, embedder=model)
    queries = tuple(args.get("queries") or DEFAULT_QUERIES)
    repeats = int(args.get("repeats", 3))
    themes = sorted(t.id for t in kb.vocabulary.themes)
    viewer = User(name="Bench reader", organisation=VIEWER_ORGANISATION, roles=("contributor",), local=False)
    variants = {
        "none": (None, None),
        "viewer": (None, viewer),  # what every app search adds: the access rules of a signed-in member
        "facets": (Filters.of(theme=themes[FILTER_THEME_INDEX] if themes else None, year_from=2000), viewer),
    }
    _stderr_log(f"[{size} {backend}] search latency ...")
    latency: dict[str, dict[str, dict[str, float]]] = {}
    first_query_ms: dict[str, float] = {}
    for mode in MODES:
        latency[mode] = {}
        for variant, (filters, who) in variants.items():
            _, first = _timed(kb.search, queries[0], mode=mode, filters=filters, viewer=who)
            first_query_ms[f"{mode}/{variant}"] = round(first * 1000, 1)
            times = [
                _timed(kb.search, q, limit=10, mode=mode, filters=filters, viewer=who)[1]
                for _ in range(repeats)
                for q in queries
            ]
            latency[mode][variant] = _percentiles(times)
    ids = sorted(e.entry_id for e in kb.indexed_entries(visible_where(viewer)))  # both variants may open these
    sample = ids[:: max(1, len(ids) // 40)][:40]
    similar = {
        variant: _percentiles([_timed(kb.similar, i, limit=5, viewer=who)[1] for i in sample])
        for variant, (_, who) in (("none", variants["none"]), ("viewer", variants["viewer"]))
    }
    phrase = _percentiles(
        [_timed(kb.search, f'"{p}"', limit=10, mode="bm25", viewer=viewer)[1] for _ in range(repeats) for p in PHRASES]
    )
    peak = _peak_rss_mb()  # before the exact baseline loads every vector
    figures: dict[str, Any] = {
        "search": latency,
        "first_search_ms": first_query_ms,
        "similar": similar,
        "phrase": phrase,
        "peak_rss_search_mb": peak,
    }
    figures.update(_exact_comparison(kb, model, queries))
    figures["save"] = _save_times(kb, sample[:SAVES])
    return figures


def _save_times(kb, entry_ids: list[str]) -> dict[str, float]:
    """Saving one entry at a time, as the form does: the file written, its passages embedded, Chroma and
    the replica updated; last, because it changes the collection."""
    times = []
    for n, entry_id in enumerate(entry_ids):
        entry = kb.get(entry_id)
        entry.summary = f"{entry.summary} Reviewed again ({n})."
        times.append(_timed(kb.save, entry)[1])
    return _percentiles(times)


def _exact_comparison(kb, model: Embedder, queries: tuple[str, ...], k: int = 10) -> dict[str, Any]:
    """Recall@k of the index's nearest passages against exact search over the very same vectors."""
    _stderr_log("  exact baseline: reading every passage vector back from the index ...")
    passages, vectors = kb.index.passages()
    ids = np.array([p.passage_id for p in passages])
    query_vectors = model.embed(list(queries))
    recalls, index_times, exact_times = [], [], []
    for q in query_vectors:
        got, took = _timed(kb.index.query, q[None, :], k)
        index_times.append(took)
        started = time.perf_counter()
        scores = vectors @ q
        top = np.argpartition(-scores, k)[:k]
        exact = ids[top[np.argsort(-scores[top])]]
        exact_times.append(time.perf_counter() - started)
        recalls.append(len({m.passage_id for m in got[0]} & set(exact)) / k)
    return {
        "recall_at_10": round(float(np.mean(recalls)), 4),
        "recall_at_10_min": round(float(np.min(recalls)), 2),
        "index_knn_ms": _percentiles(index_times),
        "exact_numpy_ms": _percentiles(exact_times),
    }


def browser_figures(args: dict[str, Any]) -> dict[str, Any]:
    """The app on this size's index, in headless Chromium: from pressing Search to the results on screen."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        return {"browser_skipped": "Playwright is not installed (pip install -r requirements-dev.txt)"}
    if not CHROMIUM.is_file():
        return {"browser_skipped": f"{CHROMIUM} is absent (apt-get install chromium)"}
    work, size = Path(args["work"]), int(args["size"])
    paths = SizePaths(work / f"size-{size}")
    settings = _settings(paths, "embedded", args["model"], None)
    port = free_port()
    env = {
        **os.environ,
        "KB_ENTRIES_DIR": str(settings.entries_dir),
        "KB_INDEX_DIR": str(settings.index_dir),
        "KB_COLLECTION": settings.collection,
        "KB_MODEL": settings.model,
    }
    env.pop("KB_CHROMA_URL", None)
    root = Path(__file__).resolve().parent.parent
    streamlit = Path(sys.executable).with_name("streamlit")
    command = [str(streamlit), "run", str(root / "app.py"), "--server.port", str(port), "--server.headless", "true"]
    app = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    times, first_load = [], 0.0
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            started = time.perf_counter()
            for _ in range(240):  # the server starts, then its first run syncs and loads the model
                try:
                    page.goto(url, timeout=5000)
                    break
                except Exception:
                    time.sleep(0.5)
            page.get_by_text("Newest entries").wait_for(timeout=300_000)
            first_load = time.perf_counter() - started
            for query in tuple(args.get("queries") or DEFAULT_QUERIES)[: int(args.get("browser_queries", 10))]:
                page.goto(url)
                page.get_by_text("Newest entries").wait_for(timeout=60_000)
                page.get_by_placeholder("Ask a question").fill(query)
                started = time.perf_counter()
                page.get_by_role("button", name="Search", exact=True).click()
                page.get_by_text(RESULTS_LINE).first.wait_for(timeout=60_000)
                times.append(time.perf_counter() - started)
            browser.close()
    finally:
        stop(app)
    seconds = np.asarray(times)
    return {
        "browser_render_s": {
            "p50": round(float(np.percentile(seconds, 50)), 2),
            "p95": round(float(np.percentile(seconds, 95)), 2),
            "max": round(float(seconds.max()), 2),
        },
        "browser_first_load_s": round(first_load, 1),
    }


def _stderr_log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------ the run


class ChromaServer:
    """`chroma run` on 127.0.0.1 with its own data folder, for one size."""

    def __init__(self, path: Path):
        self.path, self.port = path, free_port()
        self.process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> ChromaServer:
        import urllib.request

        shutil.rmtree(self.path, ignore_errors=True)
        chroma = Path(sys.executable).with_name("chroma")
        self.process = subprocess.Popen(
            [str(chroma), "run", "--path", str(self.path), "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1)
                return self
            except OSError:
                time.sleep(0.3)
        self.__exit__()
        raise KBError("the Chroma server for the benchmark did not start within 60 s")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def peak_rss_mb(self) -> float:
        return _pid_peak_rss_mb(self.process.pid) if self.process else 0.0

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()


def _child(step: str, args: dict[str, Any]) -> dict[str, Any]:
    """Run one step in a fresh Python process, so its peak memory is its own."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.scale", step, json.dumps(args)],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "ANONYMIZED_TELEMETRY": "False"},
    )
    if done.returncode != 0:
        raise KBError(f"the benchmark step '{step}' for {args['size']} entries ({args['backend']}) failed (see above)")
    return json.loads(done.stdout.strip().splitlines()[-1])


def run_scale_bench(
    register: Path,
    mapping: Path,
    *,
    sizes: tuple[int, ...] = DEFAULT_SIZES,
    model: str,
    server: bool = False,
    work_dir: Path | None = None,
    real_up_to: int = REAL_UP_TO,
    repeats: int = 3,
    browser: bool = True,
    log=_stderr_log,
) -> list[dict[str, Any]]:
    """Figures per size and backend ("embedded", and "server" when asked), in one run."""
    from kb.embedder import make_embedder

    work = Path(work_dir or Path(tempfile.gettempdir()) / "lighthouse-scale")
    work.mkdir(parents=True, exist_ok=True)
    # The lesson vectors are computed (or found in the cache) once, before the timed steps.
    _lessons_and_vectors(register, mapping, work, make_embedder(model), log)
    backends = ("embedded", "server") if server else ("embedded",)
    results = []
    for size in sizes:
        for backend in backends:
            args = {
                "work": str(work),
                "size": size,
                "backend": backend,
                "model": model,
                "register": str(register),
                "mapping": str(mapping),
                "real_up_to": real_up_to,
                "repeats": repeats,
            }
            paths = SizePaths(work / f"size-{size}")
            figures: dict[str, Any] = {"size": size, "backend": backend}
            if backend == backends[0]:
                _child("prepare", args)
            if backend == "server":
                with ChromaServer(work / f"server-{size}") as chroma:
                    args["chroma_url"] = chroma.url
                    figures.update(_child("sync", args))
                    figures.update(_child("search", args))
                    figures["peak_rss_server_mb"] = chroma.peak_rss_mb()
                    figures["index_mb"] = round(
                        (_folder_size(chroma.path) + _folder_size(paths.index(backend))) / 2**20, 1
                    )
            else:
                figures.update(_child("sync", args))
                figures.update(_child("search", args))
                figures["index_mb"] = round(_folder_size(paths.index(backend)) / 2**20, 1)
                if browser:
                    log(f"[{size} {backend}] the app in Chromium ...")
                    figures.update(_child("browser", args))
            figures["entry_files_mb"] = round(_folder_size(paths.entries) / 2**20, 1)
            log(format_size(figures))
            results.append(figures)
    return results


# ------------------------------------------------------------------------------------ the report

TARGETS = (
    "targets: hybrid p95 < 100 ms at 100k (query embedding included); recall@10 >= 0.95; "
    "unchanged re-sync of 10k < 3 s; peak memory < 2.5 GB at 100k; saving one entry p95 < 0.3 s "
    "and a quoted phrase p95 < 20 ms at 100k"
)


def format_size(f: dict[str, Any]) -> str:
    lines = [
        f"== {f['size']:,} entries, {f['passages']:,} passages, {f['backend']} Chroma, {f['vectors']} vectors ==",
        f"sync            {f['sync_s']:>8.1f} s   {f['sync_passages_per_s']:>8.1f} passages/s",
    ]
    if "sync_to_encode_ratio" in f:
        lines.append(
            f"bare encode              {f['bare_encode_passages_per_s']:>8.1f} passages/s   "
            f"ratio sync/encode {f['sync_to_encode_ratio']:.3f}"
        )
    lines.append(
        f"re-sync, unchanged {f['resync_unchanged_s']:>6.2f} s in process, {f['resync_unchanged_cli_s']:.2f} s as a command"
    )
    lines.append("search, query embedding included     p50 / p95 ms")
    lines.append(f"  {'':<8} {'no filter':>16} {'access rules':>16} {'+ theme, year':>16}")
    for mode, variants in f["search"].items():
        cells = [f"{v['p50_ms']:>7.1f} / {v['p95_ms']:<6.1f}" for v in variants.values()]
        lines.append(f"  {mode:<8} " + " ".join(f"{c:>16}" for c in cells))
    sim = f["similar"]
    lines.append(
        f"  similar  {sim['none']['p50_ms']:>7.1f} / {sim['none']['p95_ms']:<6.1f}"
        f"   {sim['viewer']['p50_ms']:>7.1f} / {sim['viewer']['p95_ms']:<6.1f}"
    )
    lines.append(
        f"  quoted phrase (keywords) {f['phrase']['p50_ms']:>7.1f} / {f['phrase']['p95_ms']:<6.1f}"
        f"   saving one entry {f['save']['p50_ms']:>7.1f} / {f['save']['p95_ms']:<6.1f}"
    )
    lines.append(
        f"nearest 10 passages: index p95 {f['index_knn_ms']['p95_ms']:.1f} ms vs exact NumPy p95 "
        f"{f['exact_numpy_ms']['p95_ms']:.1f} ms; recall@10 {f['recall_at_10']:.4f} (worst query {f['recall_at_10_min']})"
    )
    memory = f"peak memory: sync {f['peak_rss_sync_mb']:,.0f} MB, search {f['peak_rss_search_mb']:,.0f} MB"
    if f.get("peak_rss_server_mb"):
        memory += f", Chroma server {f['peak_rss_server_mb']:,.0f} MB"
    lines.append(f"{memory}; index {f['index_mb']:,.1f} MB on disk, entry files {f['entry_files_mb']:,.1f} MB")
    if "browser_render_s" in f:
        render = f["browser_render_s"]
        lines.append(
            f"in the browser: Search pressed to results on screen p50 {render['p50']:.2f} s, p95 {render['p95']:.2f} s "
            f"(first page load, index opened: {f['browser_first_load_s']:.1f} s)"
        )
    elif "browser_skipped" in f:
        lines.append(f"in the browser: not measured, {f['browser_skipped']}")
    return "\n".join(lines)


def format_markdown(results: list[dict[str, Any]], machine: str) -> str:
    """The figures as Markdown tables, sizes side by side (docs/performance.md is made from this)."""
    columns = [f"{r['size']:,} {r['backend']}" for r in results]

    def row(label: str, cells: list[str]) -> str:
        return f"| {label} | " + " | ".join(cells) + " |"

    def ms(figures: dict[str, float]) -> str:
        return f"{figures['p50_ms']:.1f} / {figures['p95_ms']:.1f}"

    lines = [f"Machine: {machine}.", "", row("figure", columns), "|---|" + "---:|" * len(results)]
    lines.append(row("passages", [f"{r['passages']:,} ({r['vectors']} vectors)" for r in results]))
    lines.append(row("sync, passages/s", [f"{r['sync_passages_per_s']:,.1f} ({r['sync_s']:,.0f} s)" for r in results]))
    lines.append(
        row(
            "sync / bare encode",
            [f"{r['sync_to_encode_ratio']:.3f}" if "sync_to_encode_ratio" in r else "–" for r in results],
        )
    )
    lines.append(
        row(
            "re-sync unchanged: in process / command, s",
            [f"{r['resync_unchanged_s']:.2f} / {r['resync_unchanged_cli_s']:.2f}" for r in results],
        )
    )
    labels = {"none": "no filter", "viewer": "access rules", "facets": "access + theme + year"}
    for mode in results[0]["search"]:
        for variant, label in labels.items():
            lines.append(row(f"{mode}, {label}: p50 / p95 ms", [ms(r["search"][mode][variant]) for r in results]))
    for variant in ("none", "viewer"):
        lines.append(
            row(f"similar projects, {labels[variant]}: p50 / p95 ms", [ms(r["similar"][variant]) for r in results])
        )
    lines.append(row("quoted phrase, keywords: p50 / p95 ms", [ms(r["phrase"]) for r in results]))
    lines.append(row("saving one entry: p50 / p95 ms", [ms(r["save"]) for r in results]))
    lines.append(row("recall@10 of the index against exact search", [f"{r['recall_at_10']:.4f}" for r in results]))
    lines.append(
        row(
            "nearest 10: index / exact NumPy p95 ms",
            [f"{r['index_knn_ms']['p95_ms']:.1f} / {r['exact_numpy_ms']['p95_ms']:.1f}" for r in results],
        )
    )
    lines.append(row("peak memory, sync process MB", [f"{r['peak_rss_sync_mb']:,.0f}" for r in results]))
    lines.append(row("peak memory, search process MB", [f"{r['peak_rss_search_mb']:,.0f}" for r in results]))
    lines.append(
        row(
            "peak memory, Chroma server MB",
            [f"{r['peak_rss_server_mb']:,.0f}" if r.get("peak_rss_server_mb") else "–" for r in results],
        )
    )
    lines.append(
        row("index on disk MB (entry files)", [f"{r['index_mb']:,.0f} ({r['entry_files_mb']:,.0f})" for r in results])
    )
    lines.append(
        row(
            "browser: Search to results, p50 / p95 s",
            [
                f"{r['browser_render_s']['p50']:.2f} / {r['browser_render_s']['p95']:.2f}"
                if "browser_render_s" in r
                else "–"
                for r in results
            ],
        )
    )
    return "\n".join(lines)


def format_report(results: list[dict[str, Any]], machine: str) -> str:
    header = [f"machine: {machine}", TARGETS, ""]
    return "\n".join(header + [format_size(f) + "\n" for f in results])


def describe_machine() -> str:
    import platform

    cores = os.cpu_count() or 0
    memory = ""
    try:
        import psutil

        memory = f", {psutil.virtual_memory().total / 2**30:.0f} GiB memory"
    except ImportError:
        pass
    return f"{platform.processor() or platform.machine()}, {cores} cores{memory}, Python {platform.python_version()}"


if __name__ == "__main__":  # the per-size steps, run in fresh processes by run_scale_bench
    step, payload = sys.argv[1], json.loads(sys.argv[2])
    try:
        steps = {"prepare": prepare_collection, "sync": sync_figures, "search": search_figures}
        result = {**steps, "browser": browser_figures}[step](payload)
    except KBError as exc:
        _stderr_log(f"error: {exc}")
        sys.exit(1)
    print(json.dumps(result))
