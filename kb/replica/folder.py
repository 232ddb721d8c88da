"""The local replica beside the vector index: one folder holding the passages' texts and vectors, the
keyword index over them and the entry records, with the vector index's generation mark it matches.

It records which entry versions it was built from, so a missing or stale replica is noticed and rebuilt
from the vector index's passages. While its mark is the index's, the ledger, facet counts and access
filters are read here in milliseconds instead of from Chroma in seconds, and searches are answered from
its rows (kb.replica.reads): by keywords, and exactly over the copy of the vectors.

The folder holds a base segment and, after saves, a small delta segment (kb.replica.segment), as
Lucene does: a save writes only the delta (what it changes, plus the delta's other entries) and lists
the base's entries it replaces as dead; the base's files are linked into the new folder, not copied.
A delta grown past MERGE_PASSAGES, and every sync, merges them into one base, copying word ids, never
reading a text again.

Memory stays small at hundreds of thousands of passages: passage texts and vectors are read from their
files as a search needs them, the keyword files are memory-mapped (a search touches its words' parts),
passage ids are rebuilt from an entry id and a number, and the entry records live only as the table's
columns.
"""

from __future__ import annotations

import itertools
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from pathlib import Path

import numpy as np

from kb.replica.files import (
    HASHES,
    MANIFEST,
    READ_ERRORS,
    FolderId,
    KeywordIndexDamaged,
    Manifest,
    base_hashes,
    damage_of,
    file_list,
    folder_id,
    locked,
    open_checked,
    report_damage,
    untrusted_if_damaged,
)
from kb.replica.reads import ReplicaReads
from kb.replica.records import EntryTable
from kb.replica.rows import Rows
from kb.replica.segment import Segment, link, segment_key
from kb.replica.spool import Additions

BASE, DELTA = "base", "delta"
MERGE_PASSAGES = 5_000  # a delta past this many passages is merged into the base by the save that grows it


class _BaseMoved(Exception):
    """The base segment's path names other files than the segment this object opened."""


class Replica(ReplicaReads):
    """The passages, their keyword index and vectors and the entry records, persisted in `folder` as
    segments; see the module docstring. This class keeps the folder; the reads of its rows are
    inherited from ReplicaReads.

    `damage` says what was found wrong with the folder's files (None: nothing). A damaged folder counts
    as absent: no hashes, no generation mark, no passages, until a rebuild writes a new one. `on_damage`
    is called whenever damage is found, at opening or by a read.
    """

    def __init__(self, folder: Path | str, on_damage: Callable[[], None] | None = None):
        super().__init__()
        self.folder = Path(folder)
        self._on_damage = on_damage
        self.hashes: dict[str, str] = {}
        self.generation: str | None = None  # the vector index's mark when this was last known to match it
        self.damage: str | None = None
        self._files: dict[str, dict[str, int]] = {}  # the manifest's file list, kept when `mark` rewrites it
        self._segment_names: list[str] = []
        self._dead: frozenset[str] = frozenset()
        self._later: dict[str, str | None] = {}  # the content hashes the delta changes (see HASHES)
        self._folder_id: FolderId | None = None  # the folder these belong to, as checked or written
        self._rows = Rows([])
        self._table: EntryTable | None = None
        self._loaded = False
        self._lock = threading.RLock()
        self._open_manifest()

    # ----------------------------------------------------------------- persistence

    def _open_manifest(self) -> None:
        """Read the manifest and check every file it lists against it (one pass of CRC-32, no parsing; a
        large file this process has checked or written before is not read again while it is unchanged).
        Anything wrong and the folder counts as absent: `is_current` and `mirrors` are false, and it is
        rebuilt."""
        manifest, self.damage, self._folder_id = open_checked(self.folder)
        if manifest is None:
            self.hashes, self.generation, self._files, self._segment_names, self._dead = {}, None, {}, [], frozenset()
            self._later = {}
        else:
            self.generation, self._files = manifest.generation, manifest.files
            self._segment_names, self._dead = list(manifest.segments), frozenset(manifest.dead)
            self.hashes, self._later = manifest.hashes, manifest.later
        if self.damage:
            self._damaged(self.damage)

    def _current(self) -> Rows:
        """The rows as opened: without a lock once loaded, since segments never change in place."""
        if not self._loaded:
            self._load()
        return self._rows

    def _distrust(self, damage: str) -> None:
        """A file of the folder turned out damaged after it was opened: from now on it counts as absent."""
        self.hashes, self.generation, self.damage, self._later = {}, None, damage, {}
        self._rows, self._table, self._masks = Rows([]), None, {}
        self._damaged(damage)

    def _damaged(self, damage: str) -> None:
        report_damage(self.folder, self._folder_id, damage)
        if self._on_damage is not None:
            self._on_damage()

    @locked
    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        kept = {s.key: s for s in self._rows.segments if s.key is not None}  # unchanged files: reuse them
        for _ in range(3):
            if folder_id(self.folder) != self._folder_id:
                self._open_manifest()  # another process swapped in a new folder since: check and read that
            if not self.hashes:
                self._rows, self._table, self._masks = Rows([]), None, {}
                return
            try:
                segments = []
                for name in self._segment_names:
                    key = segment_key(self.folder / name)
                    found = kept.get(key) if key else None
                    segments.append(found if found is not None else Segment.open(self.folder / name))
            except READ_ERRORS as exc:
                self._distrust(damage_of("the segment files", exc))
                return
            if folder_id(self.folder) == self._folder_id:  # every file above came from the checked folder
                self._rows, self._table, self._masks = Rows(segments, self._dead), None, {}
                return
        self.hashes, self.generation = {}, None  # swapped again and again: the next check reads it afresh

    def _swap_in(self, build: Callable[[Path], list[str]], dead: Iterable[str]) -> None:
        """Build a complete new folder (`build` writes or links its segments and names them, oldest
        first), check-sum it, then swap it in, so a crash never leaves half an index; then open it."""
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.folder.parent, prefix=".lexical-"))
        try:
            self._segment_names, self._dead = build(tmp), frozenset(dead)
            self._files, self._folder_id, self.damage = file_list(tmp), folder_id(tmp), None
            self._write_manifest(tmp)
            old = self.folder.with_name(self.folder.name + ".old")
            shutil.rmtree(old, ignore_errors=True)
            if self.folder.exists():
                os.replace(self.folder, old)
            os.replace(tmp, self.folder)
            shutil.rmtree(old, ignore_errors=True)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        self._loaded = False
        self._load()

    def _write_manifest(self, folder: Path) -> None:
        """Save the manifest in `folder`, atomically; not if `folder` is no longer the folder this object
        checked or wrote (another process has swapped in its own, which this file list does not describe)."""
        try:
            directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return
        try:
            found = os.fstat(directory)
            if (found.st_dev, found.st_ino) != self._folder_id:
                return
            manifest = Manifest(self.generation, self._files, self._segment_names, sorted(self._dead))
            tmp = f"{MANIFEST}.tmp"
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=directory), "w") as out:
                out.write(manifest.to_json())
            os.replace(tmp, MANIFEST, src_dir_fd=directory, dst_dir_fd=directory)
        finally:
            os.close(directory)

    @locked
    def mark(self, generation: str | None) -> None:
        """Record that this mirror matches the vector index at this generation mark (None: unknown).
        The file list stays as written: the manifest is the one file it does not cover."""
        if generation != self.generation and self._folder_id is not None and self.damage is None:
            self.generation = generation
            self._write_manifest(self.folder)

    def mirrors(self, generation: str | None) -> bool:
        """True when this folder was in step with the vector index at this mark: trust its records."""
        return bool(generation) and self.generation == generation

    @untrusted_if_damaged("entries.jsonl", lambda: EntryTable({}))
    @locked
    def table(self) -> EntryTable:
        """The live entry records as columns: each segment's read on first use, then joined."""
        self._load()
        if self._table is None:
            segments, last = self._rows.segments, len(self._rows.segments) - 1
            parts = []
            for i, segment in enumerate(segments):
                table = segment.table
                alive = None if i == last or not self._dead else ~np.isin(table.ids, list(self._dead))
                parts.append((table, alive))
            self._table = EntryTable.joined(parts) if parts else EntryTable({})
        return self._table

    def is_current(self, hashes: dict[str, str]) -> bool:
        """True when built from exactly these entry versions (the vector index's ledger)."""
        return self.hashes == hashes

    @property
    def passage_count(self) -> int:
        """How many live passages the folder holds."""
        self._load()
        return self._rows.live_count

    @property
    def segments(self) -> list[str]:
        """The folder's segments, oldest first (one after a sync; a second after saves)."""
        return list(self._segment_names)

    def passages(self) -> Iterator[tuple[str, str, str]]:
        """(passage id, section, text) of every live passage, in row order."""
        self._load()
        return self._rows.passages()

    # ----------------------------------------------------------------- writes

    def additions(self) -> Additions:
        """A new spool for passages and records to add, beside the folder (see `Additions.beside`)."""
        return Additions.beside(self.folder)

    @locked
    def update(
        self,
        remove: set[str],
        added: Additions,
        hashes: dict[str, str],
        generation: str | None = None,
        *,
        merge: bool = False,
    ) -> None:
        """Drop the passages and records of `remove` entries, add the passages and entry records of
        `added`, and remember the vector index's mark they match. Writes a new delta segment (what
        changes, plus the old delta's other entries), or with `merge`, or once the delta is large, one
        new base.

        Raises KeywordIndexDamaged if the folder turns out damaged: what is kept goes into a new folder
        with fresh checksums, so it is checked again first (every byte before a merge; a large file this
        process checked before and has not changed since is not read again for a delta, whose base is
        only linked).
        """
        had_passages = bool(self.hashes)
        self._load()
        segments = self._rows.segments
        base = segments[0] if segments else None
        delta = segments[1] if len(segments) > 1 else None
        delta_size = (len(delta.corpus) if delta else 0) + added.passage_count
        # The base's files are linked by path: only while the folder is still the one this object opened.
        ours = base is not None and folder_id(self.folder) == self._folder_id
        merging = (
            base is None
            or not ours
            or merge
            or delta_size > MERGE_PASSAGES
            or segment_key(self.folder / BASE) != base.key
        )
        if had_passages and self.damage is None and folder_id(self.folder) == self._folder_id:
            # A merge copies every byte: then no checksum is taken on trust from an earlier check.
            _, damage, _ = open_checked(self.folder, remembered=not merging)
            if damage:
                self._distrust(damage)
        if had_passages and self.damage:
            raise KeywordIndexDamaged(
                f"the keyword index is damaged ({self.damage}); run `python -m kb sync` to rebuild it"
            )
        new_passages = set(remove) | added.entry_ids  # entries whose passages are replaced or dropped
        new_records = set(remove) | added.record_ids  # entries whose records are
        before = self.hashes, self.generation, self._later
        self.hashes, self.generation = dict(hashes), generation  # what the new manifest records
        try:
            if merging:
                self._swap_in(lambda tmp: self._merged(tmp, new_passages, new_records, added), ())
            else:
                assert base is not None  # without a base, a save merges
                try:
                    self._save_delta(base, delta, remove, new_passages, new_records, added, before[0])
                except _BaseMoved:  # another process swapped the folder meanwhile: write everything afresh
                    self._swap_in(lambda tmp: self._merged(tmp, new_passages, new_records, added), ())
        except BaseException:
            self.hashes, self.generation, self._later = before  # the folder on disk is still the one before
            raise

    def _save_delta(
        self,
        base: Segment,
        delta: Segment | None,
        remove: set[str],
        new_passages: set[str],
        new_records: set[str],
        added: Additions,
        previous: dict[str, str],
    ) -> None:
        """Link the base into a new folder and write a delta: the old delta's entries less the replaced,
        base entries whose record alone (or passages alone) changed, and `added`. `previous`: the
        content hashes the folder held before."""
        dead = self._dead

        def in_base(entry_id: str) -> bool:
            return entry_id in base.table.position or entry_id in base.corpus.codes

        moving = {e for e in (new_passages | new_records) - set(remove) - dead if in_base(e)}
        moving_passages, moving_records = moving - new_passages, moving - new_records
        changed: dict[str, str | None] = {}

        def build(tmp: Path) -> list[str]:
            link(base.folder, tmp / BASE)
            if segment_key(tmp / BASE) != base.key:  # the path led to another process's base
                raise _BaseMoved
            changed.update(self._changed_since_base(tmp / BASE, previous, new_passages | new_records))
            blocks = itertools.chain(
                delta.blocks(skip=new_passages) if delta else (),
                base.blocks(only=moving_passages),
                added.blocks(),
            )
            lines = itertools.chain(
                delta.record_lines(skip=new_records) if delta else (),
                base.record_lines(only=moving_records),
                (line for _, line in added.record_lines()),
            )
            Segment.write(tmp / DELTA, blocks, lines, changed)
            return [BASE, DELTA]

        self._swap_in(build, {e for e in dead | new_passages | new_records if in_base(e)})
        self._later = changed

    def _changed_since_base(self, base: Path, previous: dict[str, str], touched: set[str]) -> dict[str, str | None]:
        """The delta's content hashes: each entry whose hash is not the base's (the segment linked at
        `base`), None for one gone. Only the old delta's entries and the touched ones can differ when
        everything else is as before, which one comparison of whole dicts checks (in C: milliseconds
        where a loop over 100,000 entries takes tens); otherwise every entry is compared."""
        with (base / HASHES).open("rb") as file:
            in_base = base_hashes(file, f"{BASE}/{HASHES}")
        candidates = set(touched) | set(self._later)
        if not same_but(previous, self.hashes, candidates):
            candidates = set(self.hashes) | set(in_base)
        return {e: self.hashes.get(e) for e in candidates if self.hashes.get(e) != in_base.get(e)}

    def _merged(self, tmp: Path, new_passages: set[str], new_records: set[str], added: Additions) -> list[str]:
        """Write every live entry, less the replaced, plus `added`, as one base segment in `tmp`."""
        segments, dead, last = self._rows.segments, self._dead, len(self._rows.segments) - 1
        blocks = itertools.chain(
            *(s.blocks(skip=new_passages if i == last else new_passages | dead) for i, s in enumerate(segments)),
            added.blocks(),
        )
        lines = itertools.chain(
            *(s.record_lines(skip=new_records if i == last else new_records | dead) for i, s in enumerate(segments)),
            (line for _, line in added.record_lines()),
        )
        Segment.write(tmp / BASE, blocks, lines, self.hashes)
        self._later = {}
        return [BASE]

    @locked
    def compact(self) -> None:
        """Merge the segments into one base (a sync does it): nothing changes but the files."""
        self._load()
        if len(self._rows.segments) > 1 and self.damage is None:
            with self.additions() as nothing:
                self.update(set(), nothing, self.hashes, self.generation, merge=True)

    @locked
    def rebuild(self, added: Additions, hashes: dict[str, str], generation: str | None = None) -> None:
        """Start again from these passages and entry records, e.g. the vector index's."""
        self._loaded = True
        self._rows, self._table = Rows([]), None
        self.hashes, self.generation, self._later = dict(hashes), generation, {}

        def build(tmp: Path) -> list[str]:
            Segment.write(tmp / BASE, added.blocks(), (line for _, line in added.record_lines()), self.hashes)
            return [BASE]

        self._swap_in(build, ())


def same_but(first: Mapping[str, str], second: Mapping[str, str], keys: Iterable[str]) -> bool:
    """Whether two ledgers agree on every entry but `keys`: two copies and one comparison, all in C."""
    first, second = dict(first), dict(second)
    for key in keys:
        first.pop(key, None)
        second.pop(key, None)
    return first == second
