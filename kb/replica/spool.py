"""Passages and entry records on their way into the replica, spooled to disk as a sync embeds them."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from array import array
from collections.abc import Iterable, Iterator
from pathlib import Path

import numpy as np

from kb.replica.corpus import Block, split_passage_id
from kb.replica.records import record_line, record_lines

STALE_SPOOL_SECONDS = 24 * 3600  # an unfinished spool or folder this old belongs to no running sync


class Additions:
    """Passages and entry records on their way into the keyword index, spooled to a folder as they come.

    A sync of 100,000 entries hands over 400,000 passage texts; held as Python strings until the
    keyword index is written, they would cost more memory than the vector index. Here each text goes
    to a file as its entry is embedded, and only a few numbers per passage stay in memory.
    Rows may come in any order and in any number of calls; a passage or record given again replaces
    the earlier one. A passage's vector, when given, is spooled the same way.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self._spool = (folder / "texts.spool").open("wb")
        self._vector_spool = (folder / "vectors.spool").open("wb")
        self._vector_slot = array("q")  # per row: its place in the vector spool, -1 when it came without one
        self._vector_width: int | None = None
        self._vectors = 0
        self._records = (folder / "records.jsonl").open("w", encoding="utf-8")
        self._codes: dict[str, int] = {}  # entry id -> its code, in order of arrival
        self._entry_of, self._numbers, self._offsets = array("i"), array("i"), array("q", [0])  # per row
        self._sections: dict[str, int] = {}  # section name -> its code, in order of arrival
        self._section_of = array("i")  # per row
        self._latest_line: dict[str, int] = {}  # entry id -> the line of its latest record
        self._lines = 0

    @classmethod
    def beside(cls, folder: Path) -> Additions:
        """A new spool in `folder`'s parent, on the same disk (a context manager that deletes it after
        use). Spools and half-written folders a killed process left there are swept once nothing has
        touched them for a day."""
        folder.parent.mkdir(parents=True, exist_ok=True)
        stale = time.time() - STALE_SPOOL_SECONDS
        for old in [*folder.parent.glob(".additions-*"), *folder.parent.glob(".lexical-*")]:
            try:
                if max(f.stat().st_mtime for f in [old, *old.rglob("*")]) < stale:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                pass  # another process is just removing it
        return cls(Path(tempfile.mkdtemp(dir=folder.parent, prefix=".additions-")))

    def __enter__(self) -> Additions:
        return self

    def __exit__(self, *exc) -> None:
        self._spool.close()
        self._vector_spool.close()
        self._records.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def add_passages(self, rows: Iterable[tuple[str, str, str, str]], vectors: np.ndarray | None = None) -> None:
        """(passage_id, entry_id, section, text) rows, and optionally their vectors, one row of `vectors` each.
        Checked before anything is spooled, so a mismatch leaves the spool as it was."""
        rows = list(rows)
        if vectors is not None:
            vectors = np.ascontiguousarray(vectors, dtype=np.float32)
            if vectors.ndim != 2 or len(vectors) != len(rows):
                raise ValueError(f"{len(rows)} passages but vectors of shape {vectors.shape}")
            if self._vector_width not in (None, vectors.shape[1] * 4):
                raise ValueError(f"vectors of {vectors.shape[1]} and {self._vector_width // 4} values in one sync")
            self._vector_width = vectors.shape[1] * 4
            self._vector_spool.write(vectors.tobytes())
            self._vector_slot.extend(range(self._vectors, self._vectors + len(rows)))
            self._vectors += len(rows)
        else:
            self._vector_slot.extend([-1] * len(rows))
        for passage_id, entry_id, section, text in rows:
            data = text.encode("utf-8")
            self._spool.write(data)
            self._entry_of.append(self._codes.setdefault(entry_id, len(self._codes)))
            self._section_of.append(self._sections.setdefault(section, len(self._sections)))
            self._numbers.append(split_passage_id(passage_id)[1])
            self._offsets.append(self._offsets[-1] + len(data))

    def add_records(self, records: Iterable[tuple[str, dict]] | dict[str, dict]) -> None:
        """Entry records (facet metadata by entry id) for the entry mirror."""
        for entry_id, metadata in records.items() if isinstance(records, dict) else records:
            self._latest_line[entry_id] = self._lines
            self._records.write(record_line(entry_id, metadata))
            self._lines += 1

    @property
    def entry_ids(self) -> set[str]:
        """The entries that have passages here."""
        return set(self._codes)

    @property
    def passage_count(self) -> int:
        """How many passage rows were given (one given again counts again)."""
        return len(self._numbers)

    @property
    def record_ids(self) -> set[str]:
        return set(self._latest_line)

    def blocks(self) -> Iterator[Block]:
        """The passages as `Corpus.write` takes them: one block per entry, its passages in number order."""
        if not self._numbers:
            return
        self._spool.flush()
        self._vector_spool.flush()
        codes = np.frombuffer(self._entry_of, dtype=np.int32)
        numbers = np.frombuffer(self._numbers, dtype=np.int32)
        rows = np.lexsort((np.arange(len(codes)), numbers, codes))  # by entry, number, then arrival
        same_as_next = (codes[rows][:-1] == codes[rows][1:]) & (numbers[rows][:-1] == numbers[rows][1:])
        rows = rows[np.append(~same_as_next, True)]  # a passage given again: its last text
        entries, offsets, slots, width = list(self._codes), self._offsets, self._vector_slot, self._vector_width or 0
        section_names, section_of = list(self._sections), self._section_of
        with (self.folder / "texts.spool").open("rb") as file, (self.folder / "vectors.spool").open("rb") as vectors:
            for group in np.split(rows, np.flatnonzero(np.diff(codes[rows])) + 1):
                texts = [os.pread(file.fileno(), offsets[r + 1] - offsets[r], offsets[r]) for r in group.tolist()]
                spooled = [slots[r] for r in group.tolist()]
                if min(spooled) < 0:
                    span = None  # some came without a vector
                elif spooled == list(range(spooled[0], spooled[0] + len(spooled))):  # the usual case
                    span = os.pread(vectors.fileno(), len(spooled) * width, spooled[0] * width)
                else:
                    span = b"".join(os.pread(vectors.fileno(), width, slot * width) for slot in spooled)
                sections = [section_names[section_of[r]] for r in group.tolist()]
                yield Block(entries[int(codes[group[0]])], numbers[group].tolist(), texts, sections, span)

    def record_lines(self) -> Iterator[tuple[str, str]]:
        """(entry id, line) of the latest record of each entry, lines as entries.jsonl holds them."""
        self._records.flush()
        with (self.folder / "records.jsonl").open(encoding="utf-8") as lines:
            for number, (entry_id, line) in enumerate(record_lines(lines)):
                if self._latest_line[entry_id] == number:
                    yield entry_id, line
