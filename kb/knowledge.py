"""The knowledge base: entry files, vocabulary, embedder, vector and keyword indexes behind one API.

kb = KnowledgeBase()            # settings from KB_* environment variables
kb.sync()                       # embed new and changed entries, drop deleted ones
kb.search("data sharing agreement took too long", filters=Filters.of(outcome="failed"))
kb.similar("benefits-and-housing-data-sharing-pilot")
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kb.access import Shown, can_see, entry_meta, present, version_for, visible_where
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
from kb.errors import Conflict, EntryError, KBError, NotFound, Problem, SavedNotIndexed
from kb.filters import Filters, Scope
from kb.identity import User
from kb.index import (
    DATABASE,
    IndexDamaged,
    IndexedEntry,
    PassageMatch,
    VectorIndex,
    check_embedded,
    embedded_path,
    embedded_vectors,
    has_embedded,
    make_client,
    remove_embedded,
)
from kb.index_health import DEEP, OPEN, SYNC
from kb.lexical import Additions, KeywordIndexDamaged, LexicalIndex, tokenize
from kb.passages import split_entry
from kb.search import (
    DEFAULT_FUSION,
    MODES,
    Fusion,
    Hit,
    SimilarHit,
    best_per_entry,
    contains_all,
    fuse,
    parse_query,
)
from kb.table import UnsupportedClause
from kb.vocabulary import Vocabulary

Progress = Callable[[int, int], None]
log = logging.getLogger(__name__)
SYNC_CHUNK = 256  # entries embedded and written together: bounded memory, few large Chroma writes
CANDIDATES = 100  # passages each retriever returns before fusion
OVERFETCH = 3  # nearest passages asked for without a filter, per passage needed with it
DEEPER_FETCH = 10  # ... and how many times that again when too few of them were allowed
NARROW_PASSAGES = 50_000  # up to this many allowed passages, search exactly among them ...
NARROW_FRACTION = 0.5  # ... unless they are most of the index: then the wider unfiltered query is faster
ALLOWED_CACHE_SIZE = 64
_SIDE_POOL = ThreadPoolExecutor(
    max_workers=4, thread_name_prefix="lighthouse-dense"
)  # (reader, filters) clauses whose allowed entries are kept until the index changes
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


@dataclass(frozen=True)
class PastVersion:
    """An earlier version of an entry as one viewer may read it: when it was replaced, the entry (None
    for the operator's view of a version that no longer parses) and its text."""

    replaced: str
    entry: Entry | None
    text: str


@dataclass(frozen=True)
class Pending:
    """An entry a sync will embed: the parsed entry, or the file to parse again when its chunk comes."""

    id: str
    digest: str
    entry: Entry | None = None
    path: Path | None = None


@dataclass
class NarrowChoice:
    """The entries a filter picks, and how many passages each has, when they are few enough to search
    exactly; the passage ids are spelled out only when Chroma is asked for them."""

    entry_ids: list[str]
    counts: list[int]

    @property
    def passages(self) -> int:
        return sum(self.counts)

    @functools.cached_property
    def passage_ids(self) -> list[str]:
        return [f"{e}#{i}" for e, n in zip(self.entry_ids, self.counts, strict=True) for i in range(n)]


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
        self._lexical: LexicalIndex | None = None
        self._vocabulary: Vocabulary | None = None
        self._lexical_checked = False
        # Counts every change to what the local mirror holds (this process's writes, and other
        # processes' changes once seen): whatever is derived from the mirror is fresh while it holds.
        self.mirror_version = 0
        self._lexical_checked_at = 0.0
        self._seen_generation: str | None = None
        self._verified_generation: str | None = None  # the store's vectors were compared at this mark
        self._allowed: dict[str, tuple[str | None, frozenset[str]]] = {}
        self._narrow: dict[str, tuple[str | None, NarrowChoice | None]] = {}

    # ----------------------------------------------------------------- parts

    @property
    def index(self) -> VectorIndex:
        """The vector index, connected on first use (so `check` needs no Chroma at all). Reading never
        makes a store: where there is none, IndexMissing says a sync builds it."""
        if self._index is None:
            self._index = self._connect(create=False)
        return self._index

    def _writable_index(self) -> VectorIndex:
        """The vector index for a writer (sync, save): an embedded store is made if there is none yet."""
        if self._index is None:
            self._index = self._connect(create=True)
        return self._index

    def _connect(self, *, create: bool, level: str = OPEN) -> VectorIndex:
        client = self._client or make_client(
            self.settings.index_dir, self.settings.chroma_url, create=create, level=level
        )
        # The embedder's name, not the setting's: an int8 model records its own name. Building the
        # embedder loads nothing; the model loads on the first text it embeds.
        return VectorIndex(client, self.settings.collection, self.embedder.name, remote=not self._owns_store)

    @property
    def _owns_store(self) -> bool:
        """True for the embedded store under the index folder: ours to check, delete and rebuild (a
        server's store, or one handed in, is not)."""
        return not self.settings.chroma_url and self._client is None

    @property
    def lexical(self) -> LexicalIndex:
        """The local keyword index and mirror, opened (and its files checked) on first use, so that
        `show`, `check` and `export`, which need no index, do not pay for it."""
        if self._lexical is None:
            self._lexical = LexicalIndex(Path(self.settings.index_dir) / "lexical" / self.settings.collection)
        return self._lexical

    @lexical.setter
    def lexical(self, value: LexicalIndex) -> None:
        self._lexical = value

    @property
    def embedder(self) -> Embedder:
        if self._embedder is None:
            self._embedder = make_embedder(self.settings.model, self.settings.model_backend)
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
        result = self.load()  # refuses a missing folder or a plain file: there would be nothing to check
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
        return self.show(entry_id, viewer=viewer).entry

    def show(self, entry_id: str, *, viewer: User | None = None) -> Shown:
        """One entry as this viewer may see it, with the names of the fields withheld from them.

        A missing entry and one the viewer may not see raise the same NotFound, with the same words.
        """
        entry = self.stored(entry_id, viewer)
        links = [*entry.related, *(entry.lighthouse.reused_by if entry.lighthouse else ())]
        return present(entry, viewer, self.visible_to(viewer, links))

    def stored(self, entry_id: str, viewer: User | None = None) -> Entry:
        """The whole stored entry, nothing withheld, if this viewer may see it (NotFound.entry otherwise):
        for rules that need every field (editing, history). Readers are shown `show` or `get`.

        A file that cannot be read is the operator's to fix: a reader gets the NotFound of a missing
        entry, since the problem would quote fields of an entry they may not be allowed to see."""
        try:
            entry = self.store.get(entry_id)
        except EntryError:
            if viewer is None:
                raise
            log.warning("entry %s cannot be read; a reader was told it does not exist", entry_id, exc_info=True)
            raise NotFound.entry(entry_id) from None
        if not can_see(viewer, entry_meta(entry)):
            raise NotFound.entry(entry_id)  # the same answer as for a missing entry
        self._normalise(entry, entry_id)
        return entry

    def _visible_record(self, entry_id: str, viewer: User | None) -> dict[str, Any] | None:
        """The index's record of an entry this viewer may see (None: not indexed yet), or the same
        NotFound as `get`. The file decides who may see it (the index may be a moment behind an edit);
        only a collection held in the index alone (`sync_entries`) is judged by its record."""
        path = self.store.path_for(entry_id)  # a blank or malformed id is refused before anything is looked up
        own = self.index.metadata_of([entry_id]).get(entry_id)
        if path.exists() or path.is_symlink() or own is None:
            self.stored(entry_id, viewer)
        elif not can_see(viewer, own):
            raise NotFound.entry(entry_id)
        return own

    def visible_to(self, viewer: User | None, entry_ids: list[str]) -> Callable[[str], bool]:
        """Which of these entries the viewer may see, read from their files (the source of truth)."""
        if viewer is None:
            return lambda _: True
        visible = set()
        for other in dict.fromkeys(entry_ids):
            try:
                if can_see(viewer, entry_meta(self.store.get(other))):
                    visible.add(other)
            except (KBError, OSError):
                continue  # missing, malformed or unreadable: not shown
        return visible.__contains__

    def readable(self, viewer: User | None = None) -> tuple[list[Shown], list[Problem]]:
        """Every valid entry this viewer may see, as they may see it (by id), and the folder's problems:
        what an export under the viewer's rules holds."""
        result = self.load()
        visible = {i for i, e in result.entries.items() if can_see(viewer, entry_meta(e))}
        shown = [present(result.entries[i], viewer, visible.__contains__) for i in sorted(visible)]
        return shown, result.problems

    def history(self, entry_id: str, *, viewer: User | None = None) -> list[PastVersion]:
        """Earlier versions of an entry, newest first, as this viewer may read them: a version is shown
        only to a viewer who could see that version, its anonymous fields and hidden links withheld."""
        current = self.stored(entry_id, viewer)
        versions = []
        for version in self.store.history(entry_id):
            try:
                old, _ = parse_entry(version.text, f"{entry_id} ({version.replaced})")
            except EntryError:
                if viewer is None:  # the operator sees even a version that no longer parses, as it was
                    versions.append(PastVersion(version.replaced, None, version.text))
                continue
            seen = version_for(viewer, old, current)
            if seen is None:
                continue
            if viewer is None:
                versions.append(PastVersion(version.replaced, seen, version.text))
                continue
            links = [*seen.related, *(seen.lighthouse.reused_by if seen.lighthouse else ())]
            shown = present(seen, viewer, self.visible_to(viewer, links)).entry
            versions.append(PastVersion(version.replaced, shown, render_entry(shown)))
        return versions

    def save(self, entry: Entry, *, new: bool = False, expected_version: str | None = None) -> Entry:
        """Validate, write atomically and index one entry. With new=True a fresh id is chosen if taken.

        Raises SavedNotIndexed when the file was written but indexing failed (the next sync indexes it).
        """
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
        try:
            self.index_entries([entry.id])
        except Exception as exc:  # the file is written and is the record: this save must not look failed
            log.warning("indexing %s after saving it failed", entry.id, exc_info=True)
            raise SavedNotIndexed(entry.id, str(exc) or exc.__class__.__name__) from exc
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
            repairs = self._repair_store()
            try:
                report = self._sync_files(rebuild or bool(repairs), progress)
            except IndexDamaged as exc:  # Chroma failed mid-sync: damage, or a full disk, a lock, a bug?
                if not self._owns_store or not self._store_fails_checks():
                    raise KBError(f"the sync stopped ({exc.reason}); run it again", where=exc.where) from None
                repairs.append(self._discard_store(exc.reason))
                report = self._sync_files(True, progress)
            report.problems = repairs + report.problems
            return report

    def _repair_store(self) -> list[Problem]:
        """Before a sync: an embedded store that is missing, fails its checks, or holds vectors other than
        the keyword index's copy is deleted, so the sync rebuilds it from the entry files."""
        if not self._owns_store:
            self._writable_index().check()  # a server's failure is reported, never "repaired" by deleting
            return []
        index_dir = self.settings.index_dir
        if not (embedded_path(index_dir) / DATABASE).is_file():
            if has_embedded(index_dir) or self.lexical.hashes:  # there was an index here, and it is gone
                return [self._discard_store("the index was missing")]
            return []
        try:
            if self._index is None:  # opened with the sync's own, more thorough check
                self._index = self._connect(create=True, level=SYNC)
            else:
                check_embedded(index_dir, level=SYNC)
            self.index.check()
            generation = self.index.generation()
            if self.lexical.mirrors(generation):
                self._verify_vectors(generation)
        except IndexDamaged as exc:
            return [self._discard_store(exc.reason)]
        return []

    def _store_fails_checks(self) -> bool:
        """True when the embedded store fails the deep checks: only then is it deleted and rebuilt, never
        because a write failed for another reason (the disk full, the database locked)."""
        self._index = None
        try:
            check_embedded(self.settings.index_dir, level=DEEP)
            self._writable_index().check()
        except IndexDamaged:
            return True
        return False

    def _discard_store(self, reason: str) -> Problem:
        remove_embedded(self.settings.index_dir)
        self._index, self._verified_generation = None, None
        return Problem("index", f"{reason}: rebuilt from the entry files", severity="warning")

    def _verify_vectors(self, generation: str | None) -> None:
        """IndexDamaged unless the embedded store holds exactly the keyword index's copy of the vectors
        (same passages, same directions) and the entry vectors made from them. Checked once per process
        and generation: a flipped byte in a stored vector would otherwise give wrong answers quietly."""
        if not self._owns_store or generation is None or generation == self._verified_generation:
            return
        expected = self.lexical.vector_check()
        if expected is None:  # no copy of the vectors to compare with
            return
        for collection, check in zip(self.index.collection_names, expected, strict=True):
            try:
                problem = check(embedded_vectors(self.settings.index_dir, collection))
            except (OSError, ValueError):  # the copy itself turned out damaged: it is rebuilt, not trusted
                log.warning("the keyword index's copy of the vectors cannot be read back", exc_info=True)
                return
            if problem:
                raise IndexDamaged(f"the index's {collection} disagree with the keyword index's copy ({problem})")
        self._verified_generation = generation

    def _sync_files(self, rebuild: bool, progress: Progress | None) -> SyncReport:
        started = time.perf_counter()
        files, skipped = self.store.scan()  # refuses a missing folder: syncing it would empty the index
        self.store.sweep()
        report, ledger, generation = self._start_sync(rebuild)
        report.problems += skipped
        todo: list[Pending] = []
        on_disk: set[str] = set()
        for path in files:
            try:
                text = self.store.read_text(path)
                digest = ledger_hash(text)
                if ledger.get(path.stem) == digest:  # unchanged: no parse, no embedding
                    on_disk.add(path.stem)
                    continue
                entry, _, _ = self.store.load_file(path)
            except EntryError as exc:
                report.problems += exc.problems
                continue
            except OSError as exc:
                report.problems.append(Problem(path.name, f"cannot be read ({exc.strerror})"))
                continue
            report.problems += self._normalise(entry, path.name)
            on_disk.add(entry.id)
            todo.append(Pending(entry.id, digest, path=path))  # parsed again when its turn comes: flat memory
        return self._finish_sync(report, ledger, generation, todo, on_disk, progress, started)

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
        report, ledger, generation = self._start_sync(rebuild)
        todo = []
        for entry in entries:
            digest = ledger_hash(render_entry(entry))
            if ledger.get(entry.id) != digest:
                todo.append(Pending(entry.id, digest, entry=entry))
        return self._finish_sync(report, ledger, generation, todo, {e.id for e in entries}, progress, started)

    def _start_sync(self, rebuild: bool) -> tuple[SyncReport, dict[str, str], str | None]:
        report = SyncReport(rebuilt=rebuild)
        self._writable_index()
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
        return report, *self._indexed()

    def _indexed(self) -> tuple[dict[str, str], str | None]:
        """The vector index's ledger (content hash by entry) and the generation mark it belongs to.

        Read from the local mirror while its mark is the index's (milliseconds), else from the index
        itself (seconds at 100,000 entries). The mark is read first: a change that lands in between
        makes the mark look stale next time, which costs a re-read, never a wrong answer.
        """
        generation = self.index.generation()
        if not self.lexical.mirrors(generation):
            on_disk = LexicalIndex(self.lexical.folder)  # another process on this machine may have updated it
            if on_disk.mirrors(generation):
                self.lexical, self.mirror_version = on_disk, self.mirror_version + 1
        if self.lexical.mirrors(generation):
            return dict(self.lexical.hashes), generation
        return {e.entry_id: e.content_hash for page in self.index.entry_pages() for e in page}, generation

    def _written_mark(self) -> str | None:
        """The index's mark after this process's writes; None when another writer has written since."""
        now = self.index.generation()
        return now if now and now == self.index.written_generation else None

    def _finish_sync(
        self,
        report: SyncReport,
        ledger: dict[str, str],
        generation: str | None,
        todo: list[Pending],
        on_disk: set[str],
        progress: Progress | None,
        started: float,
    ) -> SyncReport:
        for item in todo:
            (report.updated if item.id in ledger else report.added).append(item.id)
        report.unchanged = len(on_disk) - len(todo)
        report.removed = sorted(set(ledger) - on_disk)
        self.index.delete_entries(report.removed)
        with self.lexical.additions() as added:
            self._embed_and_store(todo, progress, report, added)
            if report.changed:  # what the index now holds: the old ledger, less the removed, plus the written
                removed = set(report.removed)
                ledger = {k: v for k, v in ledger.items() if k not in removed} | {t.id: t.digest for t in todo}
                generation = self._written_mark()
            repaired = self._sync_lexical(ledger, {t.id for t in todo} | set(report.removed), added, generation)
        report.problems += [repaired] if repaired else []
        report.seconds = time.perf_counter() - started
        return report

    def index_entries(self, entry_ids: list[str]) -> None:
        """Index just these entries (after a save), keeping the keyword index in step."""
        with self._writing():
            self._index_entries(entry_ids)

    def _index_entries(self, entry_ids: list[str]) -> None:
        self._writable_index()
        todo = []
        for entry_id in entry_ids:
            path = self.store.path_for(entry_id)
            entry, _, _ = self.store.load_file(path)
            self._normalise(entry, path.name)
            todo.append(Pending(entry.id, ledger_hash(self.store.read_text(path)), entry=entry))
        ledger, _ = self._indexed()
        with self.lexical.additions() as added:
            self._embed_and_store(todo, None, SyncReport(), added)
            ledger |= {t.id: t.digest for t in todo}
            self._sync_lexical(ledger, set(entry_ids), added, self._written_mark())

    def _embed_and_store(
        self, todo: list[Pending], progress: Progress | None, report: SyncReport, added: Additions
    ) -> None:
        """Embed and write these entries in chunks, handing their passages and records to `added`."""
        if not todo:
            return
        embedder = self.embedder
        total, done = len(todo), 0
        for start in range(0, total, SYNC_CHUNK):
            chunk = [(self._materialise(item), item.digest) for item in todo[start : start + SYNC_CHUNK]]
            split = [split_entry(entry, embedder.count_tokens, embedder.max_tokens) for entry, _ in chunk]
            vectors = embedder.embed([p.text for passages in split for p in passages])
            records, offset = [], 0
            for (entry, digest), passages in zip(chunk, split, strict=True):
                part = vectors[offset : offset + len(passages)]
                offset += len(passages)
                records.append(
                    (entry.id, digest, facet_metadata(entry), [(p.id, p.section, p.text) for p in passages], part)
                )
                added.add_passages(((p.id, entry.id, p.text) for p in passages), part)
            added.add_records(self.index.put_entries(records))
            report.passages += len(vectors)
            done += len(chunk)
            if progress:
                progress(done, total)

    def _materialise(self, item: Pending) -> Entry:
        if item.entry is not None:
            return item.entry
        try:
            entry, _, _ = self.store.load_file(item.path)
        except EntryError as exc:
            raise KBError(f"{item.path.name} changed while the index was being synced ({exc}); sync again") from None
        self._normalise(entry, item.path.name)
        return entry

    def _sync_lexical(
        self,
        ledger: dict[str, str],
        touched: set[str],
        added: Additions | None,
        generation: str | None,
    ) -> Problem | None:
        """Apply this sync's changes to the keyword index and entry mirror, or rebuild them from the
        vector index if stale; then record the generation mark they match (None: not known). Returns
        what was repaired, if the keyword index was found damaged."""
        self._lexical_checked, self._lexical_checked_at = True, time.monotonic()
        self._seen_generation = self.index.generation()
        if self.lexical.is_current(ledger):
            self.lexical.mark(generation)
            return None
        on_disk = LexicalIndex(self.lexical.folder)  # another process on this machine may have updated it
        self.mirror_version += 1  # whatever happens below, the mirror changes
        if not touched and on_disk.is_current(ledger):
            self.lexical = on_disk
            self.lexical.mark(generation)
            return None
        before = {k: v for k, v in self.lexical.hashes.items() if k not in touched}
        expected = {k: v for k, v in ledger.items() if k not in touched}
        if added is not None and before == expected and added.entry_ids | set(before) == set(ledger):
            try:
                self.lexical.update(touched, added, ledger, generation)
                return None
            except KeywordIndexDamaged:
                pass  # found damaged while copying from it: rebuilt whole from the vector index below
        damage = self.lexical.damage or on_disk.damage
        if damage:
            log.warning("the keyword index was damaged (%s): rebuilding it from the vector index", damage)
        with self.lexical.additions() as everything:  # streamed from the vector index a page at a time
            for page, vectors in self.index.passage_pages(vectors=True):
                everything.add_passages(((p.passage_id, p.entry_id, p.text) for p in page), vectors)
            for page in self.index.entry_pages():
                everything.add_records((e.entry_id, e.metadata) for e in page)
            self.lexical.rebuild(everything, ledger, generation)
        if damage:
            return Problem(
                "index", f"the keyword index was damaged ({damage}): rebuilt from the vector index", severity="warning"
            )
        return None

    def refresh(self) -> None:
        """Take in changes another process made to the index (checked at most every few seconds), so that
        `mirror_version` says whether anything derived from the mirror is still fresh."""
        self._ensure_lexical()

    def _ensure_lexical(self) -> None:
        """Keep the keyword index in step with the vector index when another process changed it.

        A new replica, or an app while someone ran `python -m kb sync`: the vector index carries a
        generation mark, read at most every LEXICAL_CHECK_SECONDS, and a new mark means "compare the
        ledgers and rebuild the keyword index if they differ".
        """
        now = time.monotonic()
        fresh = self._lexical_checked and self.lexical.damage is None  # damage found by a read: act at once
        if fresh and now - self._lexical_checked_at < LEXICAL_CHECK_SECONDS:
            return
        self._lexical_checked_at = now
        generation = self.index.generation()
        if fresh and generation == self._seen_generation:
            return
        ledger, generation = self._indexed()
        self._sync_lexical(ledger, set(), None, generation)
        if self.lexical.mirrors(generation):
            self._verify_vectors(generation)

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
        self._ensure_lexical()  # before either side starts: it may swap in a newer keyword index

        def dense_side() -> dict[int, list[PassageMatch]]:
            vectors = self.embedder.embed([parsed[i].text for i in live])
            nearest = self._nearest(vectors, candidates, where, entries_where=where)
            return dict(zip(live, nearest, strict=True))

        # In hybrid mode the two sides run at once: the model and Chroma release the GIL, so on two
        # cores a search costs the slower side rather than both (at 400,000 passages, each is tens of ms).
        dense_matches: dict[int, list[PassageMatch]] = {}
        pending = _SIDE_POOL.submit(dense_side) if mode == "hybrid" else None
        if mode == "dense":
            dense_matches = dense_side()
        keyword_results: dict[int, tuple[list, bool]] = {}
        if mode in ("bm25", "hybrid"):
            allowed = self._allowed_entries(where) if where is not None else None
            for i in live:
                query = parsed[i]
                synonyms = self.vocabulary.expand(query.text) if expand else []
                # A synonym counts as a whole name matched on its own scale, weighted below the query's
                # own words, so "DSA" finds "MoU" without every passage saying "data" tying with "DSA".
                weighted = [(query.text, 1.0)] + [(name, SYNONYM_WEIGHT) for name in synonyms]
                keyword_results[i] = self.lexical.scaled_search(weighted, candidates, allowed, list(query.phrases))
        if pending is not None:
            dense_matches = pending.result()
        for i in live:
            query = parsed[i]
            entry_of: dict[str, str] = {}
            texts: dict[str, str] = {}
            dense: dict[str, float] = {}
            keyword: dict[str, float] = {}
            keyword_complete = True
            if mode in ("bm25", "hybrid"):
                matches, keyword_complete = keyword_results[i]
                keyword = {m.passage_id: m.score for m in matches}
                entry_of.update((m.passage_id, m.entry_id) for m in matches)
            if mode in ("dense", "hybrid"):
                matches = dense_matches[i]
                if query.phrases:
                    matches = [m for m in matches if contains_all(m.text, query.phrases)]
                dense = {m.passage_id: m.similarity for m in matches}
                entry_of.update((m.passage_id, m.entry_id) for m in matches)
                texts.update((m.passage_id, m.text) for m in matches)
            used = fusion
            if mode == "hybrid":
                used = fusion.for_query(len(tokenize([query.text])[0]))
                scores = fuse(dense, keyword, used, keyword_complete)
            else:
                scores = dense or keyword
            results[i] = self._hits(best_per_entry(scores, entry_of, used)[:limit], texts, viewer)
        return results

    def _nearest(
        self,
        vectors: np.ndarray,
        k: int,
        where: dict[str, Any] | None,
        *,
        entries_where: dict[str, Any] | None = None,
        keep: Callable[[PassageMatch], bool] | None = None,
    ) -> list[list[PassageMatch]]:
        """The k nearest passages to each vector among those `where` allows, as Chroma's filtered query
        gives them, but fast on a large collection.

        Chroma evaluates a `where` clause over the metadata of every passage before it searches: at
        400,000 passages that takes seconds. So the clause is split in two that together say what
        `where` says: `entries_where` picks entries (all of them when None), run on the entry table in
        memory, and `keep` picks passages. Then:
        - a narrow choice (few passages allowed): exact search among just those passages, over the
          keyword index's copy of their vectors, or by Chroma among their ids where there is no copy;
        - a broad one: OVERFETCH times k neighbours without the clause, keeping the allowed ones. When
          at least k survive they are exactly the k nearest allowed passages: any allowed passage
          further out ranks below all of them. When fewer survive, DEEPER_FETCH times as many.
        Where neither answers, Chroma's filtered query does. Nothing outside the clause is returned.
        """
        if where is None:
            return [kept for kept, _ in self._query(vectors, k, k)]
        allowed = self._allowed_entries(entries_where) if entries_where is not None else None
        wanted = k if keep is None else k * OVERFETCH
        narrow = self._narrow_choice(entries_where) if entries_where is not None else None
        if narrow is not None:
            found = self._exact_among(vectors, wanted, k, narrow.entry_ids, allowed, keep)
            if found is None:
                found = self._query(vectors, wanted, k, ids=narrow.passage_ids, allowed=allowed, keep=keep)
            exhausted = narrow.passages
        else:
            wanted = k * OVERFETCH
            found = self._query(vectors, wanted, k, allowed=allowed, keep=keep)
            exhausted = None
        results: list[list[PassageMatch] | None] = []
        for kept, returned in found:
            complete = returned < wanted or (exhausted is not None and returned >= exhausted)
            results.append(kept if len(kept) >= k or complete else None)
        missing = [i for i, r in enumerate(results) if r is None]
        if missing and narrow is not None:
            # `keep` turned down most of the nearest: rank every passage of the chosen entries instead.
            retry = self._exact_among(vectors[missing], narrow.passages, k, narrow.entry_ids, allowed, keep)
            for i, (kept, _) in zip(missing, retry or [], strict=False):
                results[i] = kept
            missing = [i for i, r in enumerate(results) if r is None]
        if missing and narrow is None:
            # Too few allowed among the nearest (a passage deep in a cluster the clause excludes): a
            # deeper walk without the clause costs tens of milliseconds, Chroma's filtered query a second.
            deeper = wanted * DEEPER_FETCH
            retry = self._query(vectors[missing], deeper, k, allowed=allowed, keep=keep)
            for i, (kept, returned) in zip(missing, retry, strict=True):
                results[i] = kept if len(kept) >= k or returned < deeper else None
            missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            for i, matches in zip(missing, self.index.query(vectors[missing], k, where), strict=True):
                results[i] = matches
        return results  # type: ignore[return-value]

    def _query(
        self,
        vectors: np.ndarray,
        fetch: int,
        take: int,
        *,
        ids: list[str] | None = None,
        allowed: frozenset[str] | None = None,
        keep: Callable[[PassageMatch], bool] | None = None,
    ) -> list[tuple[list[PassageMatch], int]]:
        """Chroma's `fetch` nearest passages to each vector (among `ids`) without a clause: the first
        `take` of them whose entry is `allowed` and that `keep` accepts, and how many Chroma returned.

        While the local mirror is current, Chroma returns ids and distances only, and just the passages
        kept are filled in with their text and section from the mirror: filling 300 neighbours cost
        more than finding them.
        """
        table = self._mirror()
        if table is not None:
            light = self.index.query(vectors, fetch, None, ids, light=True)
            filled = [self._fill(matches, table, take, allowed, keep) for matches in light]
            if all(f is not None for f in filled):
                return [(f, len(matches)) for f, matches in zip(filled, light, strict=True)]  # type: ignore[misc]
        return [
            (_accepted(matches, take, allowed, keep), len(matches))
            for matches in self.index.query(vectors, fetch, None, ids)
        ]

    def _exact_among(
        self,
        vectors: np.ndarray,
        fetch: int,
        take: int,
        entry_ids: list[str],
        allowed: frozenset[str] | None,
        keep: Callable[[PassageMatch], bool] | None,
    ) -> list[tuple[list[PassageMatch], int]] | None:
        """`_query` among these entries' passages, answered by exact search over the keyword index's
        copy of the vectors while it mirrors the index; None where it cannot answer.

        Chroma answers a long id list with a filtered walk of its graph, which at 400,000 passages
        costs tens of milliseconds more than reading 12,000 vectors and one matrix product.
        """
        table = self._mirror()
        local = self.lexical.nearest(vectors, entry_ids, fetch) if table is not None else None
        if local is None:
            return None
        found = []
        for matches in local:
            light = [PassageMatch(m.passage_id, m.entry_id, "", "", m.similarity) for m in matches]
            filled = self._fill(light, table, take, allowed, keep)
            if filled is None:
                return None
            found.append((filled, len(matches)))
        return found

    def _fill(
        self,
        matches: list[PassageMatch],
        table,
        take: int,
        allowed: frozenset[str] | None,
        keep: Callable[[PassageMatch], bool] | None,
    ) -> list[PassageMatch] | None:
        """The first `take` accepted matches, text and section filled from the mirror (None: not mirrored)."""
        titles, kept = table.column("title"), []
        for m in matches:
            if len(kept) == take:
                break
            if allowed is not None and m.entry_id not in allowed:
                continue
            text = self.lexical.text_of(m.passage_id)
            position = table.position.get(m.entry_id)
            if text is None or position is None:
                return None
            filled = PassageMatch(
                m.passage_id, m.entry_id, _section_of(text, {"title": titles[position]}), text, m.similarity
            )
            if keep is None or keep(filled):
                kept.append(filled)
        return kept

    def _mirror(self):
        """The entry table, while the local mirror matches the index (after `_ensure_lexical`)."""
        return self.lexical.table() if self.lexical.mirrors(self._seen_generation) else None

    def _narrow_choice(self, entries_where: dict[str, Any]) -> NarrowChoice | None:
        """The entries a clause picks, when their passages are few enough to search exactly.

        Kept per clause until the index changes, like `_allowed_entries`: running an access clause
        over 100,000 entries takes tens of milliseconds.
        """
        key = json.dumps(entries_where, sort_keys=True)
        cached = self._narrow.get(key)
        if cached is not None and cached[0] == self._seen_generation:
            return cached[1]
        choice = self._narrow_entries(entries_where)
        if len(self._narrow) >= ALLOWED_CACHE_SIZE:
            self._narrow.pop(next(iter(self._narrow)), None)
        self._narrow[key] = (self._seen_generation, choice)
        return choice

    def _narrow_entries(self, entries_where: dict[str, Any]) -> NarrowChoice | None:
        table = self._mirror()
        if table is None:
            return None
        try:
            chosen = table.select(entries_where)
        except UnsupportedClause:
            return None
        every = table.column("passages")
        counts = every[chosen]
        allowed = float(np.nansum(counts))
        # Chroma resolves each listed id before it searches: for a filter that allows most passages,
        # OVERFETCH neighbours without it are cheaper (10,000 entries: 80 ms against 42 ms).
        if allowed > NARROW_PASSAGES or allowed > NARROW_FRACTION * float(np.nansum(every)):
            return None
        return NarrowChoice(table.ids[chosen].tolist(), np.nan_to_num(counts).astype(int).tolist())

    def _allowed_entries(self, where: dict[str, Any]) -> frozenset[str]:
        """The entries a `where` clause allows, for the keyword index's mask and the vector side.

        Run on the entry table in memory while it mirrors the index, else by Chroma; kept per clause
        until the index changes, so the next searches of the same reader and filters reuse it and its
        mask. `_ensure_lexical` has just read the index's generation mark.
        """
        key = json.dumps(where, sort_keys=True)
        cached = self._allowed.get(key)
        if cached is not None and cached[0] == self._seen_generation:
            return cached[1]
        table = self._mirror()
        try:
            allowed = table.ids_where(where) if table is not None else None
        except UnsupportedClause:
            allowed = None
        if allowed is None:
            allowed = frozenset(self.index.entry_ids(where))
        if len(self._allowed) >= ALLOWED_CACHE_SIZE:
            self._allowed.pop(next(iter(self._allowed)), None)
        self._allowed[key] = (self._seen_generation, allowed)
        return allowed

    def indexed_entries(self, where: dict[str, Any] | None = None) -> list[IndexedEntry]:
        """The index's entry records (optionally those a clause picks): from the mirror when current."""
        self._ensure_lexical()
        table = self._mirror()
        if table is not None:
            try:
                chosen = table.ids[table.select(where)].tolist()
            except UnsupportedClause:
                chosen = None
            if chosen is not None:
                hashes = self.lexical.hashes
                return [IndexedEntry(e, hashes.get(e, ""), table.record(table.position[e])) for e in chosen]
        return self.index.entries(where)

    def _hits(self, ranked: list[tuple[str, str, float]], texts: dict[str, str], viewer: User | None) -> list[Hit]:
        if not ranked:
            return []
        ids = [e for e, _, _ in ranked]
        meta = self._records_of(ids)
        live = self.index.metadata_of(ids) if viewer is not None else {}
        hits = []
        for entry_id, passage_id, score in ranked:
            record = meta.get(entry_id, {})
            # Changed by another process in the last seconds: the live record decides too.
            if not can_see(viewer, record) or not can_see(viewer, live.get(entry_id, record)):
                continue
            text = texts.get(passage_id) or self.lexical.text_of(passage_id) or ""
            hits.append(_hit(Hit, entry_id, score, text, record))
        return hits

    def _records_of(self, entry_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Entry records by id: from the local mirror (checked against its checksums) while it is current,
        from the index for any it does not hold."""
        table = self._mirror()
        found = {e: table.record(table.position[e]) for e in entry_ids if e in table.position} if table else {}
        missing = [e for e in entry_ids if e not in found]
        return found | (self.index.metadata_of(missing) if missing else {})

    def similar(
        self, entry_id: str, *, limit: int = 5, filters: Filters | None = None, viewer: User | None = None
    ) -> list[SimilarHit]:
        """The entries nearest to this one by their passages (never itself), with the linking passages."""
        own = self._visible_record(entry_id, viewer)
        self._ensure_lexical()  # keeps the mirror and the allowed-entry sets current
        passages, vectors = self._own_passages(entry_id) if own is not None else ([], np.zeros((0, 0)))
        if not passages:
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
        results = self._nearest(
            vectors,
            max(50, limit * 10),
            where,
            entries_where=_where(filters, viewer),
            keep=lambda m: m.entry_id != entry_id and m.section not in NOT_LINKING_SECTIONS,
        )
        best: dict[str, tuple[float, Any, Any]] = {}
        for source, matches in zip(passages, results, strict=True):
            for match in matches:
                if match.entry_id not in best or match.similarity > best[match.entry_id][0]:
                    best[match.entry_id] = (match.similarity, source, match)
        ranked = sorted(best.items(), key=lambda kv: (-kv[1][0], kv[0]))[:limit]
        meta = self._records_of([e for e, _ in ranked] + [entry_id])
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

    def _own_passages(self, entry_id: str) -> tuple[list[PassageMatch], np.ndarray]:
        """An entry's passages and vectors: from the local copy while it mirrors the index, else from
        the index, by id when the mirror knows how many there are. (At 100,000 entries each read by id
        from embedded Chroma left about 3 MB more resident in the process.)"""
        table = self._mirror()
        if table is None or entry_id not in table.position:
            return self.index.passages(entry_id)
        local = self.lexical.entry_passages(entry_id)
        if local is None:
            count = int(np.nan_to_num(table.column("passages")[table.position[entry_id]]))
            return self.index.passages(ids=[f"{entry_id}#{i}" for i in range(count)])
        ids, texts, vectors = local
        title = {"title": table.column("title")[table.position[entry_id]]}
        return [
            PassageMatch(p, entry_id, _section_of(t, title), t, 1.0) for p, t in zip(ids, texts, strict=True)
        ], vectors

    # ----------------------------------------------------------------- overview

    def _file_count(self) -> int | None:
        try:
            return len(self.store.files())
        except KBError:
            return None  # no entries folder here: the index is still worth counting

    def stats(self, *, viewer: User | None = None) -> dict[str, Any]:
        """Counts by facet over the indexed entries this viewer may see, and the index's size."""
        indexed = self.indexed_entries(visible_where(viewer))
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
            "files": self._file_count() if viewer is None else None,
            "model": self.index.model,
            "lighthouses": sum(1 for e in indexed if e.metadata.get("lighthouse")),
            "by": {k: dict(sorted(v.items(), key=lambda kv: (-kv[1], kv[0]))) for k, v in counts.items()},
        }


def _where(filters: Filters | None, viewer: User | None, extra: list[dict[str, Any]] | None = None):
    """The facet filters, what the viewer may see, and any extra clauses, as one clause."""
    return Scope(filters or Filters(), viewer).where(extra or [])


def _accepted(
    matches: list[PassageMatch],
    take: int,
    allowed: frozenset[str] | None,
    keep: Callable[[PassageMatch], bool] | None,
) -> list[PassageMatch]:
    accepted = (m for m in matches if (allowed is None or m.entry_id in allowed) and (keep is None or keep(m)))
    return list(itertools.islice(accepted, take))


def _body(passage_text: str) -> str:
    """What a reader sees of a passage: its text without the "title — section" line."""
    return passage_text.split("\n", 1)[1] if "\n" in passage_text else passage_text


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
