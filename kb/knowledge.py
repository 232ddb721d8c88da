"""The knowledge base: entry files, vocabulary, embedder, vector index and local mirror behind one API.

    kb = KnowledgeBase()            # settings from KB_* environment variables
    kb.sync()                       # embed new and changed entries, drop deleted ones
    kb.search("data sharing agreement took too long", filters=Filters.of(outcome="failed"))
    kb.similar("benefits-and-housing-data-sharing-pilot")
    kb.get("benefits-and-housing-data-sharing-pilot", viewer=user)

A facade: the parts are built on first use (kb.parts), writing the index is kb.indexer's, reading it
kb.retriever's, and keeping the local mirror in step kb.mirror's. The access rules are kb.access's;
this module applies them to the entry files, which are the source of truth.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kb.access import (
    Shown,
    can_add_note,
    can_change_note,
    can_see,
    entry_meta,
    note_for,
    note_version_for,
    present,
    version_for,
    visible_where,
)
from kb.config import Settings
from kb.embedder import Embedder
from kb.entries import ENTRY_SUFFIX, MAX_FILE_BYTES, Entry, parse_entry, render_entry
from kb.errors import Conflict, EntryError, Forbidden, KBError, NotFound, Problem, SavedNotIndexed
from kb.filters import FACETS, Filters
from kb.identity import User
from kb.indexer import Indexer, Progress, SyncReport
from kb.mirror import Mirror
from kb.notes import NOTES_DIR, Note, NoteStore, Recurrence, make_note, now_utc, parse_note, recurrence, validate_fields
from kb.parts import Parts
from kb.replica import Replica
from kb.retriever import Retriever
from kb.search import DEFAULT_FUSION, Fusion, Hit, SimilarHit
from kb.store import EntryStore, LoadResult
from kb.vector_index import IndexedEntry, VectorIndex
from kb.vocabulary import Vocabulary

__all__ = ["KnowledgeBase", "NoteNotIndexed", "PastNote", "PastVersion", "SyncReport"]
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PastVersion:
    """An earlier version of an entry as one viewer may read it: when it was replaced, the entry (None
    for the operator's view of a version that no longer parses) and its text."""

    replaced: str
    entry: Entry | None
    text: str


@dataclass(frozen=True)
class PastNote:
    """An earlier version of an evidence note as one viewer may read it: when it was replaced or withdrawn,
    and the note (anonymous fields withheld from readers)."""

    replaced: str
    note: Note


class NoteNotIndexed(SavedNotIndexed):
    """The note's file was written but indexing its entry failed: the note is kept, search finds it after
    the next sync."""

    def __init__(self, entry_id: str, reason: str):
        super().__init__(entry_id, reason)
        self.args = (
            f"your note is saved, but not searchable yet ({reason}); there is no need to add it again: "
            "search finds it after the next `python -m kb sync`",
        )


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
        visible = {i for i, e in result.entries.items() if can_see(viewer, entry_meta(e))}
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

    # ----------------------------------------------------------------- evidence notes

    def notes(self, entry_id: str, *, viewer: User | None = None) -> list[Note]:
        """An entry's evidence notes, oldest first, as this viewer may see them; the entry's NotFound when
        they may not see the entry (its notes do not exist for them either)."""
        self.stored(entry_id, viewer)
        return [note_for(viewer, n) for n in self.note_store.notes(entry_id)[0]]

    def recurrence(self, entry_id: str, *, viewer: User | None = None) -> Recurrence:
        """ "Seen in 4 organisations since 2019": the entry's organisation and its notes', as this viewer
        may know them (an anonymous note's organisation is not counted for readers, kb.access)."""
        entry = self.stored(entry_id, viewer)
        return recurrence(entry.organisation, entry.year, self.notes(entry_id, viewer=viewer))

    def may_add_note(self, entry_id: str, viewer: User | None) -> bool:
        """Whether this viewer may add a note to this entry (False, too, for one they may not see)."""
        try:
            return can_add_note(viewer, self.stored(entry_id, viewer))
        except KBError:
            return False

    def may_change_note(self, entry_id: str, note_id: str, viewer: User | None) -> bool:
        """Whether this viewer may edit or withdraw this note (False for one they may not see)."""
        try:
            self._note(self.stored(entry_id, viewer), note_id, viewer)
        except KBError:
            return False
        return True

    def add_note(
        self,
        entry_id: str,
        *,
        text: str,
        year: int | str,
        organisation: str | None = None,
        link: str = "",
        anonymous: bool = False,
        viewer: User | None = None,
    ) -> Note:
        """Add an evidence note to an entry the viewer may see (any organisation's): what happened, the
        year, their organisation (the signed-in user's by default), an optional link, anonymous or not.
        The entry's own file is never touched; its passages are indexed again with the note (about one
        entry's save). NoteNotIndexed when the note was written but indexing failed."""
        entry = self.stored(entry_id, viewer)
        if not can_add_note(viewer, entry):
            raise Forbidden("sign in as a contributor to add your evidence to an entry")
        if organisation is None:
            organisation = viewer.organisation if viewer is not None else ""
        note = make_note(
            entry_id,
            text=text,
            organisation=organisation,
            year=year,
            link=link,
            anonymous=anonymous,
            author=viewer.name if viewer is not None else "",
        )
        for _ in range(5):  # two notes written in the same day may draw the same id
            try:
                self.note_store.write(note, create=True)
                break
            except Conflict:
                note = make_note(
                    entry_id, text=note.text, organisation=note.organisation, year=note.year, link=note.link,
                    anonymous=note.anonymous, author=note.author,
                )  # fmt: skip
        else:
            raise Conflict("could not find a free id for the note; try again")
        self._index_notes(entry_id)
        return note_for(viewer, note)

    def edit_note(
        self,
        entry_id: str,
        note_id: str,
        *,
        text: str | None = None,
        year: int | str | None = None,
        link: str | None = None,
        anonymous: bool | None = None,
        viewer: User | None = None,
    ) -> Note:
        """Change a note (its author, curators and admins); the version it replaces is kept in its history."""
        entry = self.stored(entry_id, viewer)
        note = self._note(entry, note_id, viewer)
        text, organisation, number, link, problems = validate_fields(
            text=note.text if text is None else text,
            organisation=note.organisation,
            year=note.year if year is None else year,
            link=note.link if link is None else link,
        )
        if problems:
            raise EntryError(problems)
        changed = Note(
            entry_id,
            note.id,
            text,
            organisation,
            number,
            link,
            note.anonymous if anonymous is None else bool(anonymous),
            note.author,
            note.created,
            now_utc().isoformat(timespec="seconds"),
        )
        self.note_store.write(changed)
        self._index_notes(entry_id)
        return note_for(viewer, changed)

    def withdraw_note(self, entry_id: str, note_id: str, *, viewer: User | None = None) -> None:
        """Withdraw a note (its author, curators and admins): it is no longer shown nor searched; its last
        version is kept in its history."""
        entry = self.stored(entry_id, viewer)
        self._note(entry, note_id, viewer)
        self.note_store.remove(entry_id, note_id)
        self._index_notes(entry_id)

    def note_history(self, entry_id: str, note_id: str, *, viewer: User | None = None) -> list[PastNote]:
        """A note's earlier versions, newest first, as this viewer may read them (kb.access)."""
        self.stored(entry_id, viewer)
        try:
            current = self.note_store.get(entry_id, note_id)
        except NotFound:
            current = None
        except EntryError:
            if viewer is not None:
                raise NotFound(f"no note with id '{note_id}'") from None
            raise
        parsed = []
        for version in self.note_store.history(entry_id, note_id):
            try:
                parsed.append((version.replaced, parse_note(version.text, note_id, entry_id=entry_id, note_id=note_id)))
            except EntryError:
                continue
        if current is None and not parsed:
            raise NotFound(f"no note with id '{note_id}'")
        anonymous_ever = any(n.anonymous for _, n in parsed) or bool(current and current.anonymous)
        shown = []
        for replaced, old in parsed:
            seen = note_version_for(viewer, old, current, anonymous_ever=anonymous_ever)
            if seen is not None:
                shown.append(PastNote(replaced, seen))
        if current is None and not shown:
            raise NotFound(f"no note with id '{note_id}'")  # a withdrawn note that is not theirs: none at all
        return shown

    def notes_since(self, when: dt.datetime, viewer: User | None = None) -> list[Note]:
        """Every note added or changed since `when` (aware, or taken as UTC) on an entry this viewer may see,
        as they may see it, oldest first: for digests and feeds."""
        when = when if when.tzinfo else when.replace(tzinfo=dt.UTC)
        found, _ = self.note_store.all()
        shown = []
        for entry_id, notes in found.items():
            recent = [n for n in notes if _changed_at(n) >= when]
            if not recent:
                continue
            try:
                self.stored(entry_id, viewer)
            except KBError:
                continue  # missing, unreadable or hidden from this viewer: its notes do not exist for them
            shown += [note_for(viewer, n) for n in recent]
        return sorted(shown, key=lambda n: (_changed_at(n), n.entry_id, n.id))

    def _note(self, entry: Entry, note_id: str, viewer: User | None) -> Note:
        """A note this viewer may change; the same NotFound for a missing note and one they may not see."""
        try:
            note = self.note_store.get(entry.id, note_id)
        except EntryError:
            if viewer is not None:
                raise NotFound(f"no note with id '{note_id}'") from None
            raise
        if not can_change_note(viewer, note, entry):
            raise Forbidden("only the note's author or a curator may change or withdraw it")
        return note

    def _index_notes(self, entry_id: str) -> None:
        try:
            self.index_entries([entry_id])
        except Exception as exc:  # the note's file is written and is the record
            log.warning("indexing %s after its notes changed failed", entry_id, exc_info=True)
            raise NoteNotIndexed(entry_id, str(exc) or exc.__class__.__name__) from exc

    # ----------------------------------------------------------------- the index

    def sync(self, *, rebuild: bool = False, progress: Progress | None = None) -> SyncReport:
        """Bring the index in step with the entry files (kb.indexer); repairs a missing or damaged index."""
        return self.indexer.sync(rebuild=rebuild, progress=progress)

    def sync_entries(
        self, entries: list[Entry], *, rebuild: bool = False, progress: Progress | None = None
    ) -> SyncReport:
        """Index a collection held in memory instead of files (evaluation corpora, benchmarks)."""
        return self.indexer.sync_entries(entries, rebuild=rebuild, progress=progress)

    def index_entries(self, entry_ids: list[str]) -> None:
        """Index just these entries (after a save), keeping the mirror in step."""
        self.indexer.index_entries(entry_ids)

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
        until the index changes (kb.mirror): read-only to its callers."""
        return self.mirror.view(kind, key, compute)

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


def _changed_at(note: Note) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(note.updated or note.created)
    except ValueError:
        return note.when
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
