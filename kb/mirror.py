"""The local mirror of the vector index: the keyword index folder (passage texts, their vectors, BM25
and the entry records), kept in step with Chroma, and the snapshot everything derived from it hangs off.

The freshness protocol, in one place:
- Chroma's entries collection carries a generation mark, changed by every write (kb.vector_index).
- The mirror's folder records the mark it matches (`Replica.mirrors`). While the marks agree, the
  ledger, access and facet clauses, records and texts are read here, in milliseconds, instead of from
  Chroma, which takes seconds at 100,000 entries.
- `refresh` reads Chroma's mark before every read (one small request, under a millisecond) and brings
  the mirror up to date when another process changed the index: another replica, or `python -m kb
  sync` beside the app. So a search never answers from a state older than the moment it began, and
  no record is read again from Chroma to make sure.
- Every change to what the mirror holds makes a new `Snapshot`; the browse rows and the clause
  caches live on it and are dropped with it, so nobody has to remember to invalidate them.
- Once per process and generation, the vectors Chroma holds are compared with the mirror's copy, unless
  the checked-files record vouches for them (kb.checked_files).
"""

from __future__ import annotations

import functools
import json
import logging
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kb.checked_files import store_damaged
from kb.chroma_checks import embedded_vectors
from kb.errors import Problem
from kb.parts import Parts
from kb.passages import PassageId
from kb.replica import (
    Additions,
    EntryTable,
    KeywordIndexDamaged,
    Replica,
    UnsupportedClause,
    same_but,
)
from kb.vector_index import IndexedEntry

log = logging.getLogger(__name__)
# A replica this far behind the index (entries changed elsewhere) is rebuilt whole rather than caught up.
CATCH_UP_ENTRIES = 2_000
NARROW_PASSAGES = 50_000  # up to this many allowed passages, search exactly among them ...
NARROW_FRACTION = 0.5  # ... unless they are most of the index: then the wider unfiltered query is faster
CACHED_CLAUSES = 64  # per snapshot: (reader, filters) clauses whose entries are kept
CACHED_VIEWS = 256  # per snapshot: what browsing derives for one reader and filters (facet counts, ...)


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
        return [PassageId.of(e, i) for e, n in zip(self.entry_ids, self.counts, strict=True) for i in range(n)]


@dataclass
class Snapshot:
    """What is derived from one state of the mirror: dropped as a whole when the mirror changes."""

    version: int
    rows: list[IndexedEntry] | None = None  # every indexed entry, for browsing and counts
    allowed: dict[str, frozenset[str]] = field(default_factory=dict)  # entries a clause allows
    narrow: dict[str, NarrowChoice | None] = field(default_factory=dict)  # a clause's few entries
    views: dict[tuple[str, str], Any] = field(default_factory=dict)  # what browsing derived from the rows


class Mirror:
    """The keyword index folder, in step with the vector index; see the module docstring."""

    def __init__(self, parts: Parts):
        self.parts = parts
        self._replica: Replica | None = None
        self.version = 0  # counts every change to what the mirror holds
        self._checked = False  # Chroma's mark has been read and the mirror brought in step with it
        self._seen_generation: str | None = None
        self._verified_generation: str | None = None  # the store's vectors were compared at this mark
        self._compare_later = False  # a write was under way when they were to be compared
        self._snapshot = Snapshot(version=0)
        self._lock = threading.RLock()  # the app's sessions share one mirror across threads

    @property
    def replica(self) -> Replica:
        """The folder, opened (and its files checked) on first use, so that `show`, `check` and
        `export`, which need no index, do not pay for it."""
        if self._replica is None:
            if self.parts.owns_store:  # files a checking sync left as they are need no reading again
                self.parts.checked_files.vouch_for(self.folder)
            self._replica = self._open_replica()
        return self._replica

    def open_replica(self) -> None:
        """Open the replica now rather than on first use: a sync does, while the checked-files record still
        vouches for its files, before opening the store changes one of the files the record lists."""
        _ = self.replica

    def _open_replica(self) -> Replica:
        # Damage found in the replica drops the checked-files record, as damage found in the store does
        # (kb.checked_files.store_damaged): no process takes the damaged files as checked any more, and
        # the folder is rebuilt.
        return Replica(self.folder, on_damage=self.parts.checked_files.forget)

    @property
    def folder(self) -> Path:
        return Path(self.parts.settings.index_dir) / "lexical" / self.parts.settings.collection

    def _replace(self, replica: Replica) -> None:
        self._replica = replica
        self._changed()

    def _changed(self) -> None:
        self.version += 1

    # ----------------------------------------------------------------- in step with the index

    def ledger(self) -> tuple[dict[str, str], str | None]:
        """The vector index's ledger (content hash by entry) and the generation mark it belongs to.

        Read from the mirror while its mark is the index's (milliseconds), else from the index itself
        (seconds at 100,000 entries). The mark is read first: a change that lands in between makes the
        mark look stale next time, which costs a re-read, never a wrong answer.
        """
        generation = self.parts.generation()
        if not self.replica.mirrors(generation):
            on_disk = self._open_replica()  # another process on this machine may have updated it
            if on_disk.mirrors(generation):
                self._replace(on_disk)
        if self.replica.mirrors(generation):
            return dict(self.replica.hashes), generation
        return {e.entry_id: e.content_hash for page in self.parts.index.entry_pages() for e in page}, generation

    def apply(
        self,
        ledger: dict[str, str],
        touched: set[str],
        added: Additions | None,
        generation: str | None,
        *,
        merge: bool = False,
    ) -> Problem | None:
        """Apply a write's changes to the mirror, or rebuild it from the vector index if stale; then record
        the generation mark it matches (None: not known). A save writes a small delta segment; with
        `merge` (a sync) the segments become one. Returns what was repaired, if the folder was found
        damaged."""
        with self._lock:
            self._checked, self._seen_generation = True, self.parts.generation()
            # Same content hashes are not the same passages when the store was rebuilt under another
            # model (other vectors, other passage lengths): what a write touched is always applied.
            if not touched and self.replica.is_current(ledger):
                self.replica.mark(generation)
                if merge and len(self.replica.segments) > 1:
                    self.replica.compact()
                    self._changed()
                return None
            self._changed()  # whatever happens below, the mirror changes
            if not touched:
                on_disk = self._open_replica()  # another process on this machine may have updated it
                if on_disk.is_current(ledger):
                    self._replica = on_disk
                    on_disk.mark(generation)
                    return None
            if not touched and added is None and self._caught_up(ledger, generation):
                return None
            # A write applies as a delta when the mirror and the ledger differ only in what it touched,
            # and it brings every touched entry the ledger holds.
            if (
                added is not None
                and same_but(self.replica.hashes, ledger, touched)
                and {e for e in touched if e in ledger} <= added.entry_ids
                and ledger.keys() >= added.entry_ids
            ):
                try:
                    self.replica.update(touched, added, ledger, generation, merge=merge)
                    return None
                except KeywordIndexDamaged:
                    pass  # found damaged while copying from it: rebuilt whole from the vector index below
            damage = self.replica.damage or self._open_replica().damage
            if damage:
                log.warning("the keyword index was damaged (%s): rebuilding it from the vector index", damage)
            index = self.parts.index
            with self.replica.additions() as everything:  # streamed from the vector index a page at a time
                for page, vectors in index.passage_pages(vectors=True):
                    everything.add_passages(((p.passage_id, p.entry_id, p.section, p.text) for p in page), vectors)
                for page in index.entry_pages():
                    everything.add_records((e.entry_id, e.metadata) for e in page)
                self.replica.rebuild(everything, ledger, generation)
            if damage:
                message = f"the keyword index was damaged ({damage}): rebuilt from the vector index"
                return Problem("index", message, severity="warning")
            return None

    def _caught_up(self, ledger: dict[str, str], generation: str | None) -> bool:
        """Bring a replica that is behind the index (another replica saved, or a sync ran elsewhere) up
        to it by fetching only the entries whose content hash changed, written as a delta, rather than
        every passage of the collection. False, and nothing changed, when the folder is damaged or empty,
        more than CATCH_UP_ENTRIES differ, or the index changed while they were read."""
        replica, index = self.replica, self.parts.index
        if replica.damage is not None or not replica.hashes:
            return False
        differ = {e for e, digest in ledger.items() if replica.hashes.get(e) != digest}
        differ |= replica.hashes.keys() - ledger.keys()
        if not differ or len(differ) > CATCH_UP_ENTRIES:
            return False
        changed = sorted(e for e in differ if e in ledger)
        with replica.additions() as fetched:
            for start in range(0, len(changed), 500):
                part = changed[start : start + 500]
                for page, vectors in index.passage_pages(vectors=True, where={"entry_id": {"$in": part}}):
                    fetched.add_passages(((p.passage_id, p.entry_id, p.section, p.text) for p in page), vectors)
                records = index.metadata_of(part)
                fetched.add_records(
                    (e, {k: v for k, v in m.items() if k != "content_hash"}) for e, m in records.items()
                )
                if any(records.get(e, {}).get("content_hash") != ledger[e] for e in part):
                    return False  # changed again since the ledger was read: read whole, at a stable mark
            if not set(changed) <= fetched.entry_ids or not set(changed) <= fetched.record_ids:
                return False
            try:
                replica.update(differ, fetched, ledger, generation)
            except KeywordIndexDamaged:
                return False
        return True

    def refresh(self) -> None:
        """Take in changes another process made to the index: Chroma's generation mark is read, and a new
        mark means "compare the ledgers and rebuild if they differ"."""
        generation = self.parts.generation()
        replica = self.replica
        if (
            self._checked
            and not self._compare_later
            and replica.damage is None
            and generation == self._seen_generation
            and replica.mirrors(generation)
        ):
            return  # the usual case, without waiting for the lock: the replica is at Chroma's mark
        with self._lock:
            self._checked = True
            ledger, generation = self.ledger()
            self.apply(ledger, set(), None, generation)
            # Compared only while nobody writes, and only at the mark the copy was taken at: a writer
            # changes the store's vectors before it changes the mark, and a copy taken in between is
            # mixed, not damaged (the new mark rebuilds it). Skipped now, it is compared on a later read.
            with self.parts.writing_if_free() as nobody_writes:
                self._compare_later = not nobody_writes
                if nobody_writes and self.replica.mirrors(generation) and self.parts.generation() == generation:
                    self._verify_or_trust(generation)

    def _verify_or_trust(self, generation: str | None) -> None:
        """`verify_vectors`, unless the store's files are exactly as a sync left them after comparing them
        at this mark (kb.checked_files): a reader that opens a checked index (`python -m kb search`, the
        API server) then trusts it as the next sync would, rather than reading every stored vector again
        (at 100,000 entries, ten seconds before its first answer). Asked while nobody writes; a writer
        deletes the record before it writes, and any other write (a reader rebuilding the replica, Chroma
        opening) moves a file's change time, so a write that stopped half way is never trusted. Damage that
        moves no time (a failing disk) is what `sync --verify` is for."""
        if (
            generation is not None
            and generation != self._verified_generation
            and self.parts.recorded_generation() == generation
        ):
            self.trust(generation)
        else:
            self.verify_vectors(generation)

    def verify_vectors(self, generation: str | None) -> bool:
        """IndexDamaged unless the embedded store holds exactly the mirror's copy of the vectors (same
        passages, same directions) and the entry vectors made from them. Once per process and generation,
        unless the checked-files record vouches for them (`_verify_or_trust`): a flipped byte in a stored
        vector would otherwise give wrong answers quietly. Call while holding the writer's lock
        (`Parts.writing`): a write under way is not damage. True when the vectors were compared (now or
        before, at this mark); False where there was nothing to compare with."""
        if not self.parts.owns_store or generation is None:
            return False
        if generation == self._verified_generation:
            return True
        expected = self.replica.vector_check()
        if expected is None:  # no copy of the vectors to compare with
            return False
        index_dir = self.parts.settings.index_dir
        for collection, check in zip(self.parts.collection_names, expected, strict=True):
            try:
                problem = check(embedded_vectors(index_dir, collection))
            except (OSError, ValueError):  # the copy itself turned out damaged: it is rebuilt, not trusted
                log.warning("the keyword index's copy of the vectors cannot be read back", exc_info=True)
                return False
            if problem:
                raise store_damaged(
                    index_dir, f"the index's {collection} disagree with the keyword index's copy ({problem})"
                )
        self._verified_generation = generation
        return True

    def trust(self, generation: str) -> None:
        """The store's files are as a sync left them after comparing them at this mark (kb.checked_files):
        they hold the copy's vectors, as a comparison would find again."""
        self._verified_generation = generation

    def wrote(self, verified_before: bool) -> None:
        """After this process wrote the index: its new mark is as trustworthy as the state it changed."""
        if verified_before:
            self._verified_generation = self._seen_generation

    @property
    def verified(self) -> bool:
        return self._verified_generation is not None and self._verified_generation == self._seen_generation

    def forget_verification(self) -> None:
        self._verified_generation = None

    # ----------------------------------------------------------------- reading

    @property
    def current(self) -> bool:
        """Whether the mirror matches the index (after `refresh`); asking costs nothing."""
        return self.replica.mirrors(self._seen_generation)

    def table(self) -> EntryTable | None:
        """The entry table, while the mirror matches the index (after `refresh`). Built on first use: at
        100,000 entries, seconds of reading their records."""
        return self.replica.table() if self.current else None

    def snapshot(self) -> Snapshot:
        """What is derived from the mirror as it is now; a new one after every change."""
        with self._lock:
            if self._snapshot.version != self.version:
                self._snapshot = Snapshot(self.version)
            return self._snapshot

    def rows(self) -> list[IndexedEntry]:
        """Every indexed entry (id and facet metadata), from the snapshot."""
        self.refresh()
        snapshot = self.snapshot()
        if snapshot.rows is None:
            snapshot.rows = self.indexed_entries()
        return snapshot.rows

    def view(self, kind: str, key: Hashable, compute: Callable[[], Any]) -> Any:
        """What browsing derives from the rows for one key (a reader and filters: facet counts, the
        in-scope count), computed once per snapshot and dropped with it. After `refresh`, like `rows`,
        so a change by another process is never answered from an older snapshot. The value is shared:
        treat it as read-only."""
        self.refresh()
        return _kept(self.snapshot().views, (kind, key), compute, CACHED_VIEWS)

    def records_of(self, entry_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Entry records by id: from the mirror (checked against its checksums) while it is current, from
        the index for any it does not hold."""
        table = self.table()
        found = {e: table.record(table.position[e]) for e in entry_ids if e in table.position} if table else {}
        missing = [e for e in entry_ids if e not in found]
        return found | (self.parts.index.metadata_of(missing) if missing else {})

    def indexed_entries(self, where: dict[str, Any] | None = None) -> list[IndexedEntry]:
        """The index's entry records (optionally those a clause picks): from the mirror when current."""
        self.refresh()
        table = self.table()
        if table is not None:
            try:
                chosen = table.ids[table.select(where)].tolist()
            except UnsupportedClause:
                chosen = None
            if chosen is not None:
                hashes = self.replica.hashes
                return [IndexedEntry(e, hashes.get(e, ""), table.record(table.position[e])) for e in chosen]
        return self.parts.index.entries(where)

    def allowed_entries(self, where: dict[str, Any]) -> frozenset[str]:
        """The entries a clause allows, for the keyword index's mask and the vector side: run on the entry
        table while it mirrors the index, else by Chroma; kept on the snapshot, so the next searches of
        the same reader and filters reuse it (and the keyword index its mask)."""
        return self._cached("allowed", where, lambda: self._allowed_now(where))

    def _allowed_now(self, where: dict[str, Any]) -> frozenset[str]:
        table = self.table()
        try:
            if table is not None:
                return table.ids_where(where)
        except UnsupportedClause:
            pass
        return frozenset(self.parts.index.entry_ids(where))

    def narrow_choice(self, entries_where: dict[str, Any]) -> NarrowChoice | None:
        """The entries a clause picks, when their passages are few enough to search exactly (None: too
        many, or no table to tell). Kept on the snapshot: at 100,000 entries a clause takes tens of ms."""
        return self._cached("narrow", entries_where, lambda: self._narrow_now(entries_where))

    def _narrow_now(self, entries_where: dict[str, Any]) -> NarrowChoice | None:
        table = self.table()
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
        # a wider query without it is cheaper (10,000 entries: 80 ms against 42 ms).
        if allowed > NARROW_PASSAGES or allowed > NARROW_FRACTION * float(np.nansum(every)):
            return None
        return NarrowChoice(table.ids[chosen].tolist(), np.nan_to_num(counts).astype(int).tolist())

    def _cached(self, kind: str, clause: dict[str, Any], compute: Callable[[], Any]) -> Any:
        return _kept(getattr(self.snapshot(), kind), json.dumps(clause, sort_keys=True), compute, CACHED_CLAUSES)


_KEPT_LOCK = threading.Lock()  # the caches are shared by the app's threads: evicting must not race an insert


def _kept(cache: dict, key: Any, compute: Callable[[], Any], most: int) -> Any:
    """cache[key], computed on first use (outside the lock: two threads may both compute it, and either
    answer is right); the oldest entry makes room once `most` are kept."""
    with _KEPT_LOCK:
        if key in cache:
            return cache[key]
    value = compute()
    with _KEPT_LOCK:
        while len(cache) >= most:
            cache.pop(next(iter(cache)))
        cache[key] = value
    return value
