"""The knowledge base: entry files, vocabulary, embedder, vector index and local mirror behind one API.

    kb = KnowledgeBase()            # settings from KB_* environment variables
    kb.sync()                       # embed new and changed entries, drop deleted ones
    kb.search("data sharing agreement took too long", filters=Filters.of(outcome="failed"))
    kb.similar("benefits-and-housing-data-sharing-pilot")
    kb.get("benefits-and-housing-data-sharing-pilot", viewer=user)

A facade: the parts are built on first use (kb.parts), writing the index is kb.indexer's, reading it
kb.retriever's, and keeping the local mirror in step kb.mirror's. The access rules are kb.access's;
this module applies them to the entry files, which are the source of truth. Flows that use it are
modules of their own (kb.editing, kb.review, kb.evidence for evidence notes, ...).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kb.access import Shown, can_see, entry_meta, present, sees, version_for, visible_where
from kb.config import Settings
from kb.embedder import Embedder
from kb.entries import ENTRY_SUFFIX, MAX_FILE_BYTES, Entry
from kb.entry_files import parse_entry, render_entry
from kb.errors import Conflict, EntryError, KBError, NotFound, Problem, SavedNotIndexed
from kb.filters import FACETS, Filters
from kb.identity import User
from kb.indexer import Indexer, Progress, SyncReport
from kb.mirror import Mirror
from kb.notes import NOTES_DIR, NoteStore
from kb.parts import Parts
from kb.replica import Replica
from kb.retriever import Retriever
from kb.search import DEFAULT_FUSION, Fusion, Hit, SimilarHit
from kb.store import EntryStore, LoadResult
from kb.vector_index import IndexedEntry, VectorIndex
from kb.vocabulary import Vocabulary, vocabulary_signature

__all__ = ["KnowledgeBase", "PastVersion", "SyncReport"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PastVersion:
    """An earlier version of an entry as one viewer may read it: when it was replaced, the entry (None
    for the operator's view of a version that no longer parses) and its text."""

    replaced: str
    entry: Entry | None
    text: str


class KnowledgeBase:
    """Entries on disk, their passages in Chroma and the local mirror, and the operations users need."""

    def __init__(self, settings: Settings | None = None, *, embedder: Embedder | None = None, client=None):
        self.parts = Parts(settings or Settings(), embedder=embedder, client=client)
        self.mirror = Mirror(self.parts)
        self.indexer = Indexer(self.parts, self.mirror)
        self.retriever = Retriever(self.parts, self.mirror)

    # ----------------------------------------------------------------- parts

    @property
    def settings(self) -> Settings:
        return self.parts.settings

    @property
    def store(self) -> EntryStore:
        return self.parts.store

    @property
    def index(self) -> VectorIndex:
        return self.parts.index

    @property
    def embedder(self) -> Embedder:
        return self.parts.embedder

    @property
    def note_store(self) -> NoteStore:
        return self.parts.notes

    @property
    def vocabulary(self) -> Vocabulary:
        return self.parts.vocabulary

    @property
    def replica(self) -> Replica:
        return self.mirror.replica

    # ----------------------------------------------------------------- entries

    def load(self) -> LoadResult:
        """Every valid entry, with themes resolved against the vocabulary, and every problem."""
        result = self.store.load()
        problems = list(self.parts.vocabulary.problems) + result.problems
        for entry in result.entries.values():
            problems += self.parts.normalise(entry, f"{entry.id}{ENTRY_SUFFIX}")
        return LoadResult(result.entries, problems, result.hashes)

    def check(self) -> list[Problem]:
        """Every problem in the entry files and the vocabulary, errors and warnings alike."""
        from kb.wanted import load_wanted

        result = self.load()  # refuses a missing folder or a plain file: there would be nothing to check
        problems = list(result.problems) + load_wanted(self.settings.entries_dir).problems
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
        note_files, note_problems = self.note_store.all()
        problems += note_problems
        for entry_id in sorted(set(note_files) - known):
            problems.append(
                Problem(
                    f"{NOTES_DIR}/{entry_id}",
                    f"holds notes on '{entry_id}', which is not an entry; move them to the right entry's folder",
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
        self.parts.normalise(entry, entry_id)
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

    def readable(
        self, viewer: User | None = None, entry_ids: Iterable[str] | None = None
    ) -> tuple[list[Shown], list[Problem]]:
        """Every valid entry this viewer may see, as they may see it (by id), and the folder's problems:
        what an export under the viewer's rules holds. With `entry_ids`, only those, in their order (one
        that is missing or hidden is left out alike)."""
        result = self.load()
        sees_entry = sees(viewer)
        visible = {i for i, e in result.entries.items() if sees_entry(entry_meta(e))}
        chosen = sorted(visible) if entry_ids is None else [i for i in dict.fromkeys(entry_ids) if i in visible]
        shown = [present(result.entries[i], viewer, visible.__contains__) for i in chosen]
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
        self.parts.normalise(entry, entry.id or "new entry")
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

    # ----------------------------------------------------------------- the index

    def sync(self, *, rebuild: bool = False, verify: bool = False, progress: Progress | None = None) -> SyncReport:
        """Bring the index in step with the entry files (kb.indexer); repairs a missing or damaged index.
        `verify` reads every file of the index, even those unchanged since the last sync checked them."""
        return self.indexer.sync(rebuild=rebuild, verify=verify, progress=progress)

    def sync_entries(
        self, entries: list[Entry], *, rebuild: bool = False, progress: Progress | None = None
    ) -> SyncReport:
        """Index a collection held in memory instead of files (evaluation corpora, benchmarks)."""
        return self.indexer.sync_entries(entries, rebuild=rebuild, progress=progress)

    def index_entries(self, entry_ids: list[str], *, vocabulary: tuple[str, str] | None = None) -> None:
        """Index just these entries (after a save), keeping the mirror in step; `vocabulary` after a change
        of the vocabulary (kb.indexer.Indexer.index_entries)."""
        self.indexer.index_entries(entry_ids, vocabulary=vocabulary)

    def refresh(self) -> None:
        """Take in changes another process made to the index (see kb.mirror)."""
        self.mirror.refresh()

    def indexed_entries(self, where: dict[str, Any] | None = None) -> list[IndexedEntry]:
        """The index's entry records (optionally those a clause picks): from the mirror when current."""
        return self.mirror.indexed_entries(where)

    def indexed_rows(self) -> list[IndexedEntry]:
        """Every indexed entry's record, kept on the mirror's snapshot until the index changes: for
        browsing, counts and charts, which read them all (once per index generation)."""
        return self.mirror.rows()

    def view(self, kind: str, key: str, compute: Callable[[], Any]) -> Any:
        """A value derived from the indexed rows (facet counts, a count), kept on the mirror's snapshot
        until the index changes (kb.mirror): read-only to its callers. Kept per vocabulary too (the file's
        signature is part of the key): a view that resolves themes or data sources follows a curator's
        change of the vocabulary at once, as `vocabulary` does, with no sync and nothing to drop by hand."""
        return self.mirror.view(kind, (key, vocabulary_signature(self.settings.entries_dir)), compute)

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
        """Entries best matching the query, each with its best passage, within the filters and what the
        viewer may see (kb.retriever)."""
        return self.retriever.search(
            query, limit=limit, filters=filters, mode=mode, fusion=fusion, expand=expand, viewer=viewer
        )

    def did_you_mean(self, query: str) -> str | None:
        """The query with its misspelt words replaced by the collection's own words and the vocabulary's
        (kb.spelling); None when every word is known."""
        return self.retriever.did_you_mean(query)

    def search_many(self, queries: list[str], **options: Any) -> list[list[Hit]]:
        """`search` for several queries at once (the parts of a plan)."""
        return self.retriever.search_many(queries, **options)

    def similar(
        self, entry_id: str, *, limit: int = 5, filters: Filters | None = None, viewer: User | None = None
    ) -> list[SimilarHit]:
        """The entries nearest to this one by their passages (never itself), with the linking passages;
        the same NotFound as `get` for an entry the viewer may not see."""
        self.store.path_for(entry_id)  # a blank or malformed id is refused before anything is looked up
        self.mirror.refresh()  # before Chroma opens: a reader's first look at a checked index reads it no more
        own = self._visible_record(entry_id, viewer)
        return self.retriever.similar(entry_id, own, limit=limit, filters=filters, viewer=viewer)

    # ----------------------------------------------------------------- overview

    def _file_count(self) -> int | None:
        try:
            return len(self.store.files())
        except KBError:
            return None  # no entries folder here: the index is still worth counting

    def stats(self, *, viewer: User | None = None) -> dict[str, Any]:
        """Counts by facet over the indexed entries this viewer may see, and the index's size."""
        indexed = self.indexed_entries(visible_where(viewer))
        # Every facet's field (the lighthouse flag is the total below), and a lighthouse's stage.
        fields = [f.field for f in FACETS if f.kind != "flag"] + ["lighthouse_stage"]
        counts: dict[str, dict[str, int]] = {field: {} for field in fields}
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
            "model": self.parts.index_model(),
            "lighthouses": sum(1 for e in indexed if e.metadata.get("lighthouse")),
            "by": {k: dict(sorted(v.items(), key=lambda kv: (-kv[1], kv[0]))) for k, v in counts.items()},
        }
