"""The knowledge base: entry files, vocabulary, embedder, vector and keyword indexes behind one API.

kb = KnowledgeBase()            # settings from KB_* environment variables
kb.sync()                       # embed new and changed entries, drop deleted ones
kb.search("data sharing agreement took too long", filters=Filters.of(outcome="failed"))
kb.similar("benefits-and-housing-data-sharing-pilot")
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.access import can_see, entry_meta, redact, visible_where
from kb.config import Settings
from kb.embedder import Embedder, make_embedder
from kb.entries import (
    ENTRY_SUFFIX,
    MAX_FILE_BYTES,
    Entry,
    EntryStore,
    LoadResult,
    content_hash,
    file_lock,
    parse_entry,
    render_entry,
)
from kb.errors import Conflict, EntryError, KBError, NotFound, Problem
from kb.identity import User
from kb.index import IndexDamaged, VectorIndex, make_client, remove_embedded
from kb.lexical import LexicalIndex, tokenize
from kb.passages import split_entry
from kb.search import DEFAULT_FUSION, MODES, Filters, Fusion, Hit, SimilarHit, best_per_entry, fuse, parse_query
from kb.vocabulary import Vocabulary

Progress = Callable[[int, int], None]
SYNC_CHUNK = 64  # entries embedded and written together: bounded memory, steady progress
CANDIDATES = 100  # passages each retriever returns before fusion
LEXICAL_CHECK_SECONDS = 5.0  # how stale another process's changes may look in keyword search
NOT_LINKING_SECTIONS = ("Evidence and links",)  # never the reason two entries are called similar
SYNONYM_WEIGHT = 0.7  # a passage naming a synonym of the query's theme: a good match, not a literal one


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    passages: int = 0
    problems: list[Problem] = field(default_factory=list)
    rebuilt: bool = False
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def summary(self) -> str:
        text = (
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
            f"{self.unchanged} unchanged ({self.passages} passages embedded) in {self.seconds:.1f}s"
        )
        return ("index rebuilt: " if self.rebuilt else "") + text


# Part of every ledger hash: raising it (when the stored fields or passages change shape) makes the
# next sync re-index every entry, so an upgraded index never mixes old and new metadata.
INDEX_FORMAT = "4"


def ledger_hash(text: str) -> str:
    """The hash that says "this entry is indexed as it is now": its file text and the index format."""
    return content_hash(f"lighthouse-index-{INDEX_FORMAT}\n{text}")


def facet_metadata(entry: Entry) -> dict[str, Any]:
    """The fields search filters and displays, stored with every passage and entry vector."""
    return {
        "title": entry.title,
        "organisation": entry.organisation,
        "kind": entry.kind,
        "outcome": entry.outcome,
        "status": entry.status,
        "visibility": entry.visibility,
        "evidence": entry.evidence,
        "year": entry.year,
        "themes": entry.themes,
        "partners": entry.partners,
        "lighthouse": entry.is_lighthouse,
        "lighthouse_stage": entry.lighthouse.stage if entry.lighthouse else "",
        "anonymous": entry.anonymous,
        "author": entry.author,  # drafts are visible to their author
        "written": max(entry.updated, entry.created),  # for "newest entries" without opening files
    }


class KnowledgeBase:
    """Entries on disk, their passages in Chroma and BM25, and the operations users need."""

    def __init__(self, settings: Settings | None = None, *, embedder: Embedder | None = None, client=None):
        self.settings = settings or Settings()
        self.store = EntryStore(self.settings.entries_dir)
        self._embedder = embedder
        self._client = client
        self._index: VectorIndex | None = None
        self.lexical = LexicalIndex(Path(self.settings.index_dir) / "lexical" / self.settings.collection)
        self._vocabulary: Vocabulary | None = None
        self._lexical_checked = False
        self._lexical_checked_at = 0.0
        self._seen_generation: str | None = None

    # ----------------------------------------------------------------- parts

    @property
    def index(self) -> VectorIndex:
        """The vector index, connected on first use (so `check` needs no Chroma at all)."""
        if self._index is None:
            client = self._client or make_client(self.settings.index_dir, self.settings.chroma_url)
            model = self._embedder.name if self._embedder is not None else self.settings.model
            self._index = VectorIndex(client, self.settings.collection, model)
        return self._index

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = make_embedder(self.settings.model)
        return self._embedder

    @property
    def vocabulary(self) -> Vocabulary:
        if self._vocabulary is None:
            self._vocabulary = Vocabulary.load(self.settings.entries_dir)
        return self._vocabulary

    # ----------------------------------------------------------------- entries

    def _normalise(self, entry: Entry, source: str) -> list[Problem]:
        entry.themes, problems = self.vocabulary.normalise(entry.themes, source)
        return problems

    def load(self) -> LoadResult:
        """Every valid entry, with themes resolved against the vocabulary, and every problem."""
        result = self.store.load()
        problems = list(self.vocabulary.problems) + result.problems
        for entry in result.entries.values():
            problems += self._normalise(entry, f"{entry.id}{ENTRY_SUFFIX}")
        return LoadResult(result.entries, problems, result.hashes)

    def check(self) -> list[Problem]:
        """Every problem in the entry files and the vocabulary, errors and warnings alike."""
        result = self.load()
        problems = list(result.problems)
        known = set(result.entries)
        for entry in result.entries.values():
            for name, ids in (
                ("related", entry.related),
                ("lighthouse.reused_by", entry.lighthouse.reused_by if entry.lighthouse else []),
            ):
                for other in ids:
                    if other not in known:
                        problems.append(
                            Problem(
                                f"{entry.id}{ENTRY_SUFFIX}",
                                f"'{other}' is not an entry id; fix the id or remove it",
                                field=name,
                                severity="warning",
                            )
                        )
        return problems

    def get(self, entry_id: str, *, viewer: User | None = None) -> Entry:
        """One entry as this viewer may see it (NotFound if they may not); None: the operator."""
        entry = self.store.get(entry_id)
        if not can_see(viewer, entry_meta(entry)):
            raise NotFound(f"no entry with id '{entry_id}'")  # the same answer as for a missing entry
        self._normalise(entry, entry_id)
        return redact(entry, viewer)

    def save(self, entry: Entry, *, new: bool = False, expected_version: str | None = None) -> Entry:
        """Validate, write atomically and index one entry. With new=True a fresh id is chosen if taken."""
        self._normalise(entry, entry.id or "new entry")
        if new:
            if not entry.id or self.store.version(entry.id) is not None:
                entry.id = self.store.unique_id(entry.title)
            for _ in range(20):  # another writer may take the id between choosing and creating
                try:
                    self.store.write(entry, create=True)
                    break
                except Conflict:
                    entry.id = self.store.unique_id(entry.title)
            else:
                raise Conflict(f"could not find a free id for '{entry.title}'; try again")
        else:
            self.store.write(entry, expected_version=expected_version)
        self.index_entries([entry.id])
        return entry

    def add_file(self, path: Path | str) -> Entry:
        """Validate a Markdown entry file and copy it in under a safe, unused id; index it."""
        path = Path(path)
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                raise KBError(f"{path.name} is {path.stat().st_size:,} bytes; an entry file may be {MAX_FILE_BYTES:,}")
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise KBError(f"cannot read {path}: {exc}") from None
        entry, _ = parse_entry(text, path.name, require_id=False)
        return self.save(entry, new=True)

    # ----------------------------------------------------------------- indexing

    def _writing(self):
        """One index writer at a time on this machine: concurrent `add`s and syncs queue, never interleave."""
        return file_lock(Path(self.settings.index_dir) / ".write.lock")

    def sync(self, *, rebuild: bool = False, progress: Progress | None = None) -> SyncReport:
        """Bring the index in step with the entry files: only new and changed entries are embedded.

        A damaged embedded index is detected, deleted and rebuilt from the files, and the report says so.
        """
        with self._writing():
            recovered = self._recover_if_damaged()
            report = self._sync_files(rebuild or bool(recovered), progress)
            report.problems = recovered + report.problems
            return report

    def _recover_if_damaged(self) -> list[Problem]:
        try:
            self.index.check()
            return []
        except IndexDamaged as exc:
            if self.settings.chroma_url or self._client is not None:
                raise  # a server's (or an injected) store is not ours to delete
            remove_embedded(self.settings.index_dir)
            self._index = None
            return [Problem("index", f"{exc}: rebuilt from the entry files", severity="warning")]

    def _sync_files(self, rebuild: bool, progress: Progress | None) -> SyncReport:
        started = time.perf_counter()
        report, ledger = self._start_sync(rebuild)
        todo: list[tuple[Entry, str]] = []
        present: set[str] = set()
        for path in self.store.files():
            try:
                text = self.store.read_text(path)
                digest = ledger_hash(text)
                if ledger.get(path.stem) == digest:  # unchanged: no parse, no embedding
                    present.add(path.stem)
                    continue
                entry, _, _ = self.store.load_file(path)
            except EntryError as exc:
                report.problems += exc.problems
                continue
            except OSError as exc:
                report.problems.append(Problem(path.name, f"cannot be read ({exc.strerror})"))
                continue
            report.problems += self._normalise(entry, path.name)
            present.add(entry.id)
            todo.append((entry, digest))
        return self._finish_sync(report, ledger, todo, present, progress, started)

    def sync_entries(
        self, entries: list[Entry], *, rebuild: bool = False, progress: Progress | None = None
    ) -> SyncReport:
        """Index a collection held in memory instead of files (evaluation corpora, benchmarks).

        Uses exactly the passage, embedding and indexing code of `sync`; entries not given are removed.
        """
        with self._writing():
            return self._sync_memory(entries, rebuild, progress)

    def _sync_memory(self, entries: list[Entry], rebuild: bool, progress: Progress | None) -> SyncReport:
        started = time.perf_counter()
        report, ledger = self._start_sync(rebuild)
        todo = []
        for entry in entries:
            digest = ledger_hash(render_entry(entry))
            if ledger.get(entry.id) != digest:
                todo.append((entry, digest))
        return self._finish_sync(report, ledger, todo, {e.id for e in entries}, progress, started)

    def _start_sync(self, rebuild: bool) -> tuple[SyncReport, dict[str, str]]:
        report = SyncReport(rebuilt=rebuild)
        built_with = self.index.built_with()
        if built_with is not None and built_with != self.index.model:
            report.rebuilt = rebuild = True  # never mix vectors from two models
            report.problems.append(
                Problem(
                    "index",
                    f"built with '{built_with}', now '{self.index.model}': rebuilding from the entry files",
                    severity="warning",
                )
            )
        if rebuild:
            self.index.reset()
        report.problems += self.vocabulary.problems
        return report, {e.entry_id: e.content_hash for e in self.index.entries()}

    def _finish_sync(
        self,
        report: SyncReport,
        ledger: dict[str, str],
        todo: list[tuple[Entry, str]],
        present: set[str],
        progress: Progress | None,
        started: float,
    ) -> SyncReport:
        for entry, _ in todo:
            (report.updated if entry.id in ledger else report.added).append(entry.id)
        report.unchanged = len(present) - len(todo)
        report.removed = sorted(set(ledger) - present)
        self.index.delete_entries(report.removed)
        added_rows = self._embed_and_store(todo, progress, report)
        new_ledger = {e.entry_id: e.content_hash for e in self.index.entries()} if report.changed else ledger
        self._sync_lexical(new_ledger, {e.id for e, _ in todo} | set(report.removed), added_rows)
        report.seconds = time.perf_counter() - started
        return report

    def index_entries(self, entry_ids: list[str]) -> None:
        """Index just these entries (after a save), keeping the keyword index in step."""
        with self._writing():
            self._index_entries(entry_ids)

    def _index_entries(self, entry_ids: list[str]) -> None:
        todo = []
        for entry_id in entry_ids:
            path = self.store.path_for(entry_id)
            entry, _, _ = self.store.load_file(path)
            self._normalise(entry, path.name)
            todo.append((entry, ledger_hash(self.store.read_text(path))))
        rows = self._embed_and_store(todo, None, SyncReport())
        ledger = {e.entry_id: e.content_hash for e in self.index.entries()}
        self._sync_lexical(ledger, set(entry_ids), rows)

    def _embed_and_store(
        self, todo: list[tuple[Entry, str]], progress: Progress | None, report: SyncReport
    ) -> list[tuple[str, str, str]]:
        rows: list[tuple[str, str, str]] = []
        if not todo:
            return rows
        embedder = self.embedder
        total, done = len(todo), 0
        for start in range(0, total, SYNC_CHUNK):
            chunk = todo[start : start + SYNC_CHUNK]
            split = [split_entry(entry, embedder.count_tokens, embedder.max_tokens) for entry, _ in chunk]
            vectors = embedder.embed([p.text for passages in split for p in passages])
            records, offset = [], 0
            for (entry, digest), passages in zip(chunk, split, strict=True):
                part = vectors[offset : offset + len(passages)]
                offset += len(passages)
                records.append(
                    (entry.id, digest, facet_metadata(entry), [(p.id, p.section, p.text) for p in passages], part)
                )
                rows += [(p.id, entry.id, p.text) for p in passages]
            self.index.put_entries(records)
            report.passages += len(vectors)
            done += len(chunk)
            if progress:
                progress(done, total)
        return rows

    def _sync_lexical(self, ledger: dict[str, str], touched: set[str], rows: list[tuple[str, str, str]]) -> None:
        """Apply this sync's changes to the keyword index, or rebuild it from the vector index if stale."""
        self._lexical_checked, self._lexical_checked_at = True, time.monotonic()
        self._seen_generation = self.index.generation()
        if self.lexical.is_current(ledger):
            return
        on_disk = LexicalIndex(self.lexical.folder)  # another process on this machine may have updated it
        if not touched and on_disk.is_current(ledger):
            self.lexical = on_disk
            return
        before = {k: v for k, v in self.lexical.hashes.items() if k not in touched}
        expected = {k: v for k, v in ledger.items() if k not in touched}
        if before == expected and set(r[1] for r in rows) | set(before) == set(ledger):
            self.lexical.update(touched, rows, ledger)
        else:
            passages, _ = self.index.passages()
            self.lexical.rebuild([(p.passage_id, p.entry_id, p.text) for p in passages], ledger)

    def _ensure_lexical(self) -> None:
        """Keep the keyword index in step with the vector index when another process changed it.

        A new replica, or an app while someone ran `python -m kb sync`: the vector index carries a
        generation mark, read at most every LEXICAL_CHECK_SECONDS, and a new mark means "compare the
        ledgers and rebuild the keyword index if they differ".
        """
        now = time.monotonic()
        if self._lexical_checked and now - self._lexical_checked_at < LEXICAL_CHECK_SECONDS:
            return
        self._lexical_checked_at = now
        generation = self.index.generation()
        if self._lexical_checked and generation == self._seen_generation:
            return
        ledger = {e.entry_id: e.content_hash for e in self.index.entries()}
        self._sync_lexical(ledger, set(), [])

    # ----------------------------------------------------------------- search

    def search(
        self,
        query: str,
        *,
        limit: int = 10,
        filters: Filters | None = None,
        mode: str = "hybrid",
        fusion: Fusion = DEFAULT_FUSION,
        expand: bool = True,
        viewer: User | None = None,
    ) -> list[Hit]:
        """Entries best matching the query, each with its best passage, within the filters.

        With expand, a query naming a theme or a synonym also matches the theme's other names
        (keyword side only: the vector side already knows that "MoU" and "agreement" are close).
        """
        return self.search_many(
            [query], limit=limit, filters=filters, mode=mode, fusion=fusion, expand=expand, viewer=viewer
        )[0]

    def search_many(
        self,
        queries: list[str],
        *,
        limit: int = 10,
        filters: Filters | None = None,
        mode: str = "hybrid",
        fusion: Fusion = DEFAULT_FUSION,
        expand: bool = True,
        viewer: User | None = None,
    ) -> list[list[Hit]]:
        """`search` for several queries at once (the parts of a plan): one embedding batch, one
        filter lookup and one vector query for all of them."""
        if mode not in MODES:
            raise KBError(f"unknown search mode '{mode}'; use one of: {', '.join(MODES)}")
        parsed = [parse_query(q) for q in queries]
        live = [i for i, p in enumerate(parsed) if p.text]
        results: list[list[Hit]] = [[] for _ in queries]
        if not live:
            return results
        where = _where(filters, viewer)
        candidates = max(CANDIDATES, limit * 3)
        dense_matches: dict[int, list] = {}
        if mode in ("dense", "hybrid"):
            vectors = self.embedder.embed([parsed[i].text for i in live])
            dense_matches = dict(zip(live, self.index.query(vectors, candidates, where), strict=True))
        allowed = None
        if mode in ("bm25", "hybrid"):
            self._ensure_lexical()
            allowed = self.index.entry_ids(where) if where is not None else None
        for i in live:
            query = parsed[i]
            entry_of: dict[str, str] = {}
            texts: dict[str, str] = {}
            dense: dict[str, float] = {}
            keyword: dict[str, float] = {}
            keyword_complete = True
            if mode in ("bm25", "hybrid"):
                synonyms = self.vocabulary.expand(query.text) if expand else []
                # A synonym counts as a whole name matched on its own scale, weighted below the query's
                # own words, so "DSA" finds "MoU" without every passage saying "data" tying with "DSA".
                weighted = [(query.text, 1.0)] + [(name, SYNONYM_WEIGHT) for name in synonyms]
                matches, keyword_complete = self.lexical.scaled_search(
                    weighted, candidates, allowed, list(query.phrases)
                )
                keyword = {m.passage_id: m.score for m in matches}
                entry_of.update((m.passage_id, m.entry_id) for m in matches)
            if mode in ("dense", "hybrid"):
                matches = dense_matches[i]
                if query.phrases:
                    matches = [m for m in matches if _contains_all(m.text, query.phrases)]
                dense = {m.passage_id: m.similarity for m in matches}
                entry_of.update((m.passage_id, m.entry_id) for m in matches)
                texts.update((m.passage_id, m.text) for m in matches)
            used = fusion
            if mode == "hybrid":
                used = fusion.for_query(len(tokenize([query.text])[0]))
                scores = fuse(dense, keyword, used, keyword_complete)
            else:
                scores = dense or keyword
            results[i] = self._hits(best_per_entry(scores, entry_of, used)[:limit], texts)
        return results

    def _hits(self, ranked: list[tuple[str, str, float]], texts: dict[str, str]) -> list[Hit]:
        if not ranked:
            return []
        meta = self.index.metadata_of([e for e, _, _ in ranked])
        hits = []
        for entry_id, passage_id, score in ranked:
            text = texts.get(passage_id) or self.lexical.text_of(passage_id) or ""
            hits.append(_hit(Hit, entry_id, score, text, meta.get(entry_id, {})))
        return hits

    def similar(
        self, entry_id: str, *, limit: int = 5, filters: Filters | None = None, viewer: User | None = None
    ) -> list[SimilarHit]:
        """The entries nearest to this one by their passages (never itself), with the linking passages."""
        own = self.index.metadata_of([entry_id]).get(entry_id)
        if own is not None and not can_see(viewer, own):
            raise NotFound(f"no entry with id '{entry_id}'")
        passages, vectors = self.index.passages(entry_id)
        if not passages:
            self.store.get(entry_id)  # raises NotFound for an unknown id
            raise KBError(f"'{entry_id}' is not indexed yet; run `python -m kb sync`")
        # "Evidence and links" says where the evidence is, not what the work was: two entries that
        # both say "ask the contact above" are not similar projects.
        keep = [i for i, p in enumerate(passages) if p.section not in NOT_LINKING_SECTIONS] or list(
            range(len(passages))
        )
        passages, vectors = [passages[i] for i in keep], vectors[keep]
        where = _where(
            filters, viewer, [{"entry_id": {"$ne": entry_id}}, {"section": {"$nin": list(NOT_LINKING_SECTIONS)}}]
        )
        results = self.index.query(vectors, max(50, limit * 10), where)
        best: dict[str, tuple[float, Any, Any]] = {}
        for source, matches in zip(passages, results, strict=True):
            for match in matches:
                if match.entry_id not in best or match.similarity > best[match.entry_id][0]:
                    best[match.entry_id] = (match.similarity, source, match)
        ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))[:limit]
        meta = self.index.metadata_of([e for e, _ in ranked] + [entry_id])
        own_themes = set(meta.get(entry_id, {}).get("themes") or ())
        hits = []
        for other_id, (score, source, match) in ranked:
            m = meta.get(other_id, {})
            hits.append(
                _hit(
                    SimilarHit,
                    other_id,
                    score,
                    match.text,
                    m,
                    source_passage=_body(source.text),
                    source_section=source.section,
                    shared_themes=tuple(t for t in (m.get("themes") or ()) if t in own_themes),
                )
            )
        return hits

    # ----------------------------------------------------------------- overview

    def stats(self, *, viewer: User | None = None) -> dict[str, Any]:
        """Counts by facet over the indexed entries this viewer may see, and the index's size."""
        indexed = self.index.entries(visible_where(viewer))
        counts: dict[str, dict[str, int]] = {
            k: {} for k in ("organisation", "kind", "outcome", "status", "themes", "year", "lighthouse_stage")
        }
        for e in indexed:
            for key, bucket in counts.items():
                value = e.metadata.get(key)
                for v in value if isinstance(value, list) else [value]:
                    if v not in (None, ""):
                        bucket[str(v)] = bucket.get(str(v), 0) + 1
        return {  # counted over what the viewer may see: totals would tell of hidden entries
            "entries": len(indexed),
            "passages": sum(int(e.metadata.get("passages") or 0) for e in indexed),
            "files": len(self.store.files()) if viewer is None else None,
            "model": self.index.model,
            "lighthouses": sum(1 for e in indexed if e.metadata.get("lighthouse")),
            "by": {k: dict(sorted(v.items(), key=lambda kv: (-kv[1], kv[0]))) for k, v in counts.items()},
        }


def _where(filters: Filters | None, viewer: User | None, extra: list[dict[str, Any]] | None = None):
    """The facet filters, what the viewer may see, and any extra clauses, as one Chroma clause."""
    visible = visible_where(viewer)
    return (filters or Filters()).where([*(extra or []), *([visible] if visible else [])])


def _body(passage_text: str) -> str:
    """What a reader sees of a passage: its text without the "title — section" line."""
    return passage_text.split("\n", 1)[1] if "\n" in passage_text else passage_text


def _contains_all(text: str, phrases: tuple[str, ...]) -> bool:
    flat = " ".join(text.lower().split())
    return all(" ".join(p.lower().split()) in flat for p in phrases)


def _hit(cls, entry_id: str, score: float, text: str, meta: dict[str, Any], **extra: Any):
    return cls(
        id=entry_id,
        title=str(meta.get("title", entry_id)),
        score=round(float(score), 6),
        passage=_body(text),
        section=_section_of(text, meta),
        organisation=str(meta.get("organisation", "")),
        kind=str(meta.get("kind", "")),
        outcome=str(meta.get("outcome", "")),
        year=meta.get("year"),
        themes=tuple(meta.get("themes") or ()),
        lighthouse_stage=str(meta.get("lighthouse_stage", "")),
        status=str(meta.get("status", "")),
        evidence=str(meta.get("evidence", "")),
        **extra,
    )


def _section_of(text: str, meta: dict[str, Any]) -> str:
    first = text.split("\n", 1)[0]
    title = str(meta.get("title", ""))
    if first.startswith(f"{title} — "):
        return first[len(title) + 3 :]
    return "Summary"
