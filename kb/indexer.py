"""Writing the index: bring it in step with the entry files (sync), index entries just saved, and repair
a store that is missing or damaged. One writer at a time on this machine (a file lock).

    indexer.sync()                    # embed new and changed entries, drop deleted ones, repair damage
    indexer.index_entries(["an-id"])  # after a save
    indexer.sync_entries(entries)     # a collection held in memory (evaluation corpora, benchmarks)

Sync compares content hashes, so only new and changed entries are parsed and embedded; a different
model means a rebuild, never mixed vectors. Every write moves the index's generation mark and is applied
to the local mirror in the same step (kb.mirror).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kb.chroma_checks import DATABASE, DEEP, SYNC, TRUSTED, check_embedded, embedded_path, has_embedded
from kb.chroma_client import remove_embedded
from kb.entries import Entry, content_hash
from kb.entry_files import render_entry
from kb.errors import EntryError, IndexDamaged, KBError, Problem
from kb.identity import author_key
from kb.mirror import Mirror
from kb.notes import NOTE_SECTION, passage_text
from kb.parts import Parts
from kb.passages import Passage, split_entry
from kb.replica import Additions
from kb.vocabulary_read import VocabularyRead

Progress = Callable[[int, int], None]
SYNC_CHUNK = 256  # entries embedded and written together: bounded memory, few large Chroma writes
# Part of every ledger hash: raising it (when the stored fields or passages change shape) makes the
# next sync re-index every entry, so an upgraded index never mixes old and new metadata.
INDEX_FORMAT = "7"


@dataclass
class SyncReport:
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    passages: int = 0  # written to the index
    embedded: int = 0  # of them, embedded by the model (the others kept the vectors they had)
    problems: list[Problem] = field(default_factory=list)
    rebuilt: bool = False
    seconds: float = 0.0

    @property
    def changed(self) -> bool:
        return bool(self.added or self.updated or self.removed)

    def summary(self) -> str:
        text = (
            f"{len(self.added)} added, {len(self.updated)} updated, {len(self.removed)} removed, "
            f"{self.unchanged} unchanged ({self.passages} passages indexed, {self.embedded} embedded) "
            f"in {self.seconds:.1f}s"
        )
        return ("index rebuilt: " if self.rebuilt else "") + text


@dataclass(frozen=True)
class Pending:
    """An entry a sync will embed: the parsed entry, or the file to parse again when its chunk comes."""

    id: str
    digest: str
    entry: Entry | None = None
    path: Path | None = None
    notes: tuple[str, ...] | None = None  # its evidence notes' passage texts; None: read them when embedding


def ledger_hash(text: str, notes: str = "") -> str:
    """The hash that says "this entry is indexed as it is now": its file text, its evidence notes (their
    `NoteStore.signature`, empty without notes: such an entry's hash is as before) and the index format."""
    return content_hash(f"lighthouse-index-{INDEX_FORMAT}\n{text}" + (f"\n{NOTE_SECTION}\n{notes}" if notes else ""))


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
        "quality": entry.lowest_quality,  # the worst grade of any graded data source; "" if none is graded
        "year": entry.year,
        "themes": entry.themes,
        "tags": entry.tags,
        "team": "" if entry.anonymous else entry.team,  # an anonymous entry names no team, not even in counts
        "partners": entry.partners,
        "lighthouse": entry.is_lighthouse,
        "lighthouse_stage": entry.lighthouse.stage if entry.lighthouse else "",
        "anonymous": entry.anonymous,
        "author": entry.author,
        "author_key": author_key(entry.author),  # drafts are visible to their author, under any display name
        "written": max(entry.updated, entry.created),  # for "newest entries" without opening files
    }


class Indexer:
    """Writes the vector index and keeps the mirror in step; see the module docstring."""

    def __init__(self, parts: Parts, mirror: Mirror):
        self.parts = parts
        self.mirror = mirror

    # ----------------------------------------------------------------- sync

    def sync(self, *, rebuild: bool = False, verify: bool = False, progress: Progress | None = None) -> SyncReport:
        """Bring the index in step with the entry files: only new and changed entries are embedded.

        A missing or damaged embedded index is detected, deleted and rebuilt from the files, and the
        report says so. Files unchanged since a sync checked them are not read again unless `verify`
        (kb.checked_files).
        """
        with self.parts.writing():
            if verify:
                self.parts.checked_files.forget()
                self.mirror.forget_verification()  # compared again even where this process compared this mark
            store_is_new = (
                self.parts.owns_store and not (embedded_path(self.parts.settings.index_dir) / DATABASE).is_file()
            )
            repairs = self._repair_store()
            self.parts.checked_files.forget()  # until this sync has written: a crash half way leaves no record
            try:
                report = self._sync_files(rebuild or bool(repairs), progress)
            except IndexDamaged as exc:  # Chroma failed mid-sync: damage, or a full disk, a lock, a bug?
                if not self.parts.owns_store or not self._store_fails_checks():
                    raise KBError(f"the sync stopped ({exc.reason}); run it again", where=exc.where) from None
                repairs.append(self._discard_store(exc.reason))
                report = self._sync_files(True, progress)
            if store_is_new:  # a store this sync made holds only what it wrote
                self.mirror.wrote(True)
            self._record_checked()
            report.problems = repairs + report.problems
            return report

    @property
    def _vocabulary_read(self) -> VocabularyRead:
        return VocabularyRead(self.parts.settings.index_dir)

    def _record_checked(self) -> None:
        """After a sync, while no one else writes: the store as it now is, checked by this sync (or by an
        earlier one, its files unchanged since) and written only by it, needs no reading by the next."""
        if not self.parts.owns_store:
            return
        generation = self.parts.index.generation() if self.mirror.verified else None
        if generation and self.mirror.replica.mirrors(generation):
            self.parts.checked_files.record(generation)

    def sync_entries(
        self, entries: list[Entry], *, rebuild: bool = False, progress: Progress | None = None
    ) -> SyncReport:
        """Index a collection held in memory instead of files (evaluation corpora, benchmarks).

        Uses exactly the passage, embedding and indexing code of `sync`; entries not given are removed.
        """
        with self.parts.writing():
            self.parts.checked_files.forget()
            started = time.perf_counter()
            report, ledger, generation = self._start_sync(rebuild)
            todo = []
            for entry in entries:
                digest = ledger_hash(render_entry(entry))
                if ledger.get(entry.id) != digest:
                    todo.append(Pending(entry.id, digest, entry=entry, notes=()))
            on_disk = {e.id for e in entries}
            return self._finish_sync(report, ledger, generation, todo, on_disk, progress, started)

    def index_entries(self, entry_ids: list[str], *, vocabulary: tuple[str, str] | None = None) -> None:
        """Index just these entries (after a save), keeping the mirror in step. With `vocabulary`, the
        vocabulary's readings before and after a change made through Lighthouse, and these the entries
        it reads differently: an index that was in step with the old reading is then in step with the new
        one, and the next sync need not read every entry's themes again (`_themes_read_differently`). With
        no entries to index, that is recorded only if no one is writing: a curator's change never waits
        for a sync, which reads the themes again itself."""
        if not entry_ids:
            with self.parts.writing_if_free() as free:
                if free:
                    self._vocabulary_read.after_indexing(self.parts.vocabulary.reading, vocabulary)
            return
        with self.parts.writing():
            self._index_now(entry_ids)
            self._vocabulary_read.after_indexing(self.parts.vocabulary.reading, vocabulary)

    def _index_now(self, entry_ids: list[str]) -> None:
        self.parts.checked_files.forget()  # the files change now: the next sync reads them whole
        index = self.parts.writable_index()
        todo = []
        for entry_id in entry_ids:
            path = self.parts.store.path_for(entry_id)
            entry, _, _ = self.parts.store.load_file(path)
            self.parts.normalise(entry, path.name)
            digest = ledger_hash(self.parts.store.read_text(path), self.parts.notes.signature(entry.id))
            todo.append(Pending(entry.id, digest, entry=entry))
        ledger, generation = self.mirror.ledger()
        verified = self.mirror.verified
        with self.mirror.replica.additions() as added:
            reuse = self.mirror.replica.mirrors(generation)
            self._embed_and_store(todo, None, SyncReport(), added, reuse=reuse)
            ledger |= {t.id: t.digest for t in todo}
            mark = self._written_mark(index)
            self.mirror.apply(ledger, set(entry_ids), added, mark)
        self.mirror.wrote(verified and mark is not None)  # no other writer slipped in between

    # ----------------------------------------------------------------- repair

    def _repair_store(self) -> list[Problem]:
        """Before a sync: an embedded store that is missing, fails its checks, or holds vectors other than
        the mirror's copy is deleted, so the sync rebuilds it from the entry files."""
        parts = self.parts
        if not parts.owns_store:
            parts.writable_index().check()  # a server's failure is reported, never "repaired" by deleting
            return []
        index_dir = parts.settings.index_dir
        if not (embedded_path(index_dir) / DATABASE).is_file():
            if has_embedded(index_dir) or self.mirror.replica.hashes:  # there was an index here, and it is gone
                return [self._discard_store("the index was missing")]
            return []
        try:
            # Looked at before anything opens the store in this sync (opening it changes its database file),
            # and only trusted while the store's own mark, read from its file, is the recorded one.
            recorded = parts.recorded_generation()
            if recorded is not None:
                self.mirror.open_replica()
            if parts._index is None:  # opened with the sync's own, more thorough check
                parts.writable_index(level=TRUSTED if recorded is not None else SYNC)
            elif recorded is None:
                check_embedded(index_dir, level=SYNC)
            generation = parts.index.generation()
            if recorded is not None and generation != recorded:  # Chroma says otherwise: read them all
                check_embedded(index_dir, level=SYNC)
                recorded = None
            compared = False
            if self.mirror.replica.mirrors(generation):
                if recorded is not None:
                    self.mirror.trust(generation)
                    compared = True
                else:
                    compared = self.mirror.verify_vectors(generation)
            # Where every stored vector was compared with the copy (now, or by the sync that left the files
            # as they are), Chroma need not load its graphs as well: at 100,000 entries, seconds and a
            # gigabyte that an unchanged sync never uses.
            parts.index.check(load=not compared)
        except IndexDamaged as exc:
            return [self._discard_store(exc.reason)]
        return []

    def _store_fails_checks(self) -> bool:
        """True when the embedded store fails the deep checks: only then is it deleted and rebuilt, never
        because a write failed for another reason (the disk full, the database locked)."""
        self.parts.forget_index()
        try:
            check_embedded(self.parts.settings.index_dir, level=DEEP)
            self.parts.writable_index().check()
        except IndexDamaged:
            return True
        return False

    def _discard_store(self, reason: str) -> Problem:
        self.parts.checked_files.forget()
        remove_embedded(self.parts.settings.index_dir)
        self.parts.forget_index()
        self.mirror.forget_verification()
        return Problem("index", f"{reason}: rebuilt from the entry files", severity="warning")

    # ----------------------------------------------------------------- the steps of a sync

    def _sync_files(self, rebuild: bool, progress: Progress | None) -> SyncReport:
        started = time.perf_counter()
        store = self.parts.store
        files, skipped = store.scan()  # refuses a missing folder: syncing it would empty the index
        store.sweep()
        report, ledger, generation = self._start_sync(rebuild)
        report.problems += skipped
        reading = self.parts.vocabulary.reading
        reread = bool(reading) and not report.rebuilt and reading != self._vocabulary_read.reading()
        todo: list[Pending] = []
        unchanged: list[Path] = []
        on_disk: set[str] = set()
        with_notes = set(self.parts.notes.entry_ids())  # listed once: 100,000 entries, a few with notes
        for path in files:
            try:
                text = store.read_text(path)
                digest = ledger_hash(text, self.parts.notes.signature(path.stem) if path.stem in with_notes else "")
                if ledger.get(path.stem) == digest:  # unchanged: no parse, no embedding
                    on_disk.add(path.stem)
                    unchanged += [path] if reread else []
                    continue
                entry, _, _ = store.load_file(path)
            except EntryError as exc:
                report.problems += exc.problems
                continue
            except OSError as exc:
                report.problems.append(Problem(path.name, f"cannot be read ({exc.strerror})"))
                continue
            report.problems += self.parts.normalise(entry, path.name)
            on_disk.add(entry.id)
            todo.append(Pending(entry.id, digest, path=path))  # parsed again when its turn comes: flat memory
        todo += self._themes_read_differently(unchanged, ledger)
        report = self._finish_sync(report, ledger, generation, todo, on_disk, progress, started)
        if reading:  # every entry's themes are now as this reading gives them
            self._vocabulary_read.record(reading)
        elif todo:  # indexed as written, with the vocabulary unreadable: the mended file reads them again
            self._vocabulary_read.forget()
        return report

    # ----------------------------------------------------------------- themes as the vocabulary reads them

    def _themes_read_differently(self, paths: list[Path], ledger: dict[str, str]) -> list[Pending]:
        """The unchanged entries (these files) whose themes the vocabulary now reads differently from how the
        index holds them: the vocabulary file was changed since the last sync by other means than Lighthouse's
        own (which index such entries at once), by hand or by a copy. Only after such a change are the
        files parsed; the entries' passages are the same, so they are indexed again without embedding."""
        if not paths:
            return []
        indexed = self.mirror.records_of([path.stem for path in paths])
        again = []
        for path in paths:
            try:
                entry, _, _ = self.parts.store.load_file(path)
            except (EntryError, OSError):
                continue  # indexed as it was; the sync's check of the file reports it
            self.parts.normalise(entry, path.name)
            if list(indexed.get(entry.id, {}).get("themes") or ()) != entry.themes:
                again.append(Pending(entry.id, ledger[entry.id], path=path))
        return again

    def _start_sync(self, rebuild: bool) -> tuple[SyncReport, dict[str, str], str | None]:
        report = SyncReport(rebuilt=rebuild)
        index = self.parts.writable_index()
        built_with = index.built_with()
        if built_with is not None and built_with != index.model:
            report.rebuilt = rebuild = True  # never mix vectors from two models
            report.problems.append(
                Problem(
                    "index",
                    f"built with '{built_with}', now '{index.model}': rebuilding from the entry files",
                    severity="warning",
                )
            )
        if rebuild:
            index.reset()
            self.mirror.forget_verification()
        report.problems += self.parts.vocabulary.problems
        return report, *self.mirror.ledger()

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
        index = self.parts.index
        for item in todo:
            (report.updated if item.id in ledger else report.added).append(item.id)
        report.unchanged = len(on_disk) - len(todo)
        report.removed = sorted(set(ledger) - on_disk)
        verified = self.mirror.verified or report.rebuilt  # a store written afresh holds only our vectors
        index.delete_entries(report.removed)
        with self.mirror.replica.additions() as added:
            reuse = not report.rebuilt and self.mirror.replica.mirrors(generation)
            self._embed_and_store(todo, progress, report, added, reuse=reuse)
            if report.changed:  # what the index now holds: the old ledger, less the removed, plus the written
                removed = set(report.removed)
                ledger = {k: v for k, v in ledger.items() if k not in removed} | {t.id: t.digest for t in todo}
                generation = self._written_mark(index)
            touched = {t.id for t in todo} | set(report.removed)
            repaired = self.mirror.apply(ledger, touched, added, generation, merge=True)
        if report.changed:
            self.mirror.wrote(verified and generation is not None)  # no other writer slipped in between
        report.problems += [repaired] if repaired else []
        report.seconds = time.perf_counter() - started
        return report

    @staticmethod
    def _written_mark(index) -> str | None:
        """The index's mark after this process's writes; None when another writer has written since."""
        now = index.generation()
        return now if now and now == index.written_generation else None

    def _embed_and_store(
        self, todo: list[Pending], progress: Progress | None, report: SyncReport, added: Additions, *, reuse: bool
    ) -> None:
        """Embed and write these entries in chunks, handing their passages and records to `added`. With
        `reuse`, passages unchanged since their entry was last indexed keep their vectors."""
        if not todo:
            return
        embedder, index = self.parts.embedder, self.parts.index
        total, done = len(todo), 0
        for start in range(0, total, SYNC_CHUNK):
            items = todo[start : start + SYNC_CHUNK]
            chunk = [(self._materialise(item), item.digest) for item in items]
            split = [
                split_entry(
                    entry,
                    embedder.count_tokens,
                    embedder.max_tokens,
                    [(NOTE_SECTION, text) for text in self._notes_of(item, entry.id)],
                )
                for item, (entry, _) in zip(items, chunk, strict=True)
            ]
            vectors, embedded = self._vectors([entry.id for entry, _ in chunk], split, reuse)
            report.embedded += embedded
            records, offset = [], 0
            for (entry, digest), passages in zip(chunk, split, strict=True):
                part = vectors[offset : offset + len(passages)]
                offset += len(passages)
                records.append(
                    (entry.id, digest, facet_metadata(entry), [(p.id, p.section, p.text) for p in passages], part)
                )
                added.add_passages(((p.id, entry.id, p.section, p.text) for p in passages), part)
            added.add_records(index.put_entries(records))
            report.passages += len(vectors)
            done += len(chunk)
            if progress:
                progress(done, total)

    def _vectors(self, entry_ids: list[str], split: list[list[Passage]], reuse: bool) -> tuple[np.ndarray, int]:
        """Every passage's vector, in order, and how many texts the model embedded. With `reuse` (the
        replica is at the store's mark, so its copy holds the store's vectors, made by this model), a
        passage whose text the entry already had keeps its vector: a save that changed one section embeds
        that section, not the whole entry. A passage's text starts with its entry's title, so a new title
        embeds every passage again."""
        texts = [p.text for passages in split for p in passages]
        if not texts:
            return self.parts.embedder.embed([]), 0  # the model's own empty shape
        known: dict[str, np.ndarray] = {}
        if reuse:
            for entry_id in entry_ids:
                held = self.mirror.replica.entry_passages(entry_id)
                if held is not None:
                    known.update(zip(held.texts, held.vectors, strict=True))
        missing = list(dict.fromkeys(t for t in texts if t not in known))
        if missing:
            known.update(zip(missing, self.parts.embedder.embed(missing), strict=True))
        return np.vstack([known[t] for t in texts]), len(missing)

    def _notes_of(self, item: Pending, entry_id: str) -> tuple[str, ...]:
        """The passage texts of an entry's evidence notes (a bad note file is left out; `check` names it)."""
        if item.notes is not None:
            return item.notes
        return tuple(passage_text(note) for note in self.parts.notes.notes(entry_id)[0])

    def _materialise(self, item: Pending) -> Entry:
        if item.entry is not None:
            return item.entry
        assert item.path is not None  # an item holds its entry or the path to read it from
        try:
            entry, _, _ = self.parts.store.load_file(item.path)
        except EntryError as exc:
            raise KBError(f"{item.path.name} changed while the index was being synced ({exc}); sync again") from None
        self.parts.normalise(entry, item.path.name)
        return entry
