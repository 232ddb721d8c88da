"""One segment of the replica: a folder written once and never changed, holding some entries' passages
(texts and vectors), their words for the keyword index, and the entries' records."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterable, Iterator, Mapping
from functools import cached_property
from pathlib import Path

import numpy as np

from kb.replica.corpus import Block, Corpus, decoded
from kb.replica.files import HASHES, loaded
from kb.replica.keywords import SegmentWords, WordsWriter
from kb.replica.records import EntryTable, lines_of, read_records, record_lines

RECORDS = "entries.jsonl"

SegmentKey = tuple[int, int, int, int]  # (device, inode, size, mtime) of its records file: which files it is


class Segment:
    """A segment folder, opened: its corpus and keyword files checked to fit together; the entry table
    and the in-memory vectors are read on first use and kept (the segment never changes)."""

    def __init__(self, folder: Path, corpus: Corpus, words: SegmentWords, records, key: SegmentKey | None):
        self.folder = folder
        self.corpus = corpus
        self.words = words
        self._records = records  # the records file, kept open like the corpus's files
        self.key = key

    @classmethod
    def open(cls, folder: Path) -> Segment:
        """DamagedFile (a ValueError), naming the file, where the files do not fit together."""
        corpus = Corpus.open(folder)
        words = SegmentWords.open(folder, len(corpus))
        records = loaded(RECORDS, lambda: (folder / RECORDS).open("rb"))
        return cls(folder, corpus, words, records, segment_key(folder))

    @staticmethod
    def write(folder: Path, blocks: Iterable[Block], lines: Iterable[str], hashes: Mapping[str, str | None]) -> int:
        """Write a segment from passages (a block copied from another segment brings its word ids along,
        so no text is read twice), entry record lines and content hashes; return the number of passages."""
        folder.mkdir(parents=True)
        (folder / HASHES).write_text(json.dumps(hashes), encoding="utf-8")
        writer = WordsWriter()

        def worded(blocks: Iterable[Block]) -> Iterator[Block]:
            for block in blocks:
                if block.origin is not None:
                    writer.copy(*block.origin)
                else:
                    for text in block.texts:
                        writer.add_text(decoded(text))
                yield block

        count = Corpus.write(folder, worded(blocks))
        writer.write(folder)
        with (folder / RECORDS).open("w", encoding="utf-8") as out:
            out.writelines(lines)
        return count

    def blocks(self, skip: Iterable[str] = (), only: Iterable[str] | None = None) -> Iterator[Block]:
        """The segment's blocks without the entries in `skip` (only those in `only`, when given), each
        naming its rows here as its origin."""
        return self.corpus.blocks(frozenset(skip), self.words, None if only is None else frozenset(only))

    def record_lines(self, skip: Iterable[str] = (), only: Iterable[str] | None = None) -> Iterator[str]:
        """The segment's entry record lines, as written, filtered like `blocks`."""
        skip, only = frozenset(skip), None if only is None else frozenset(only)
        if only is not None and not only:  # a save's usual case: no need to read 100,000 lines for none
            return
        for entry_id, line in record_lines(lines_of(self._records)):
            if entry_id not in skip and (only is None or entry_id in only):
                yield line

    @cached_property
    def table(self) -> EntryTable:
        return loaded(RECORDS, lambda: EntryTable(read_records(lines_of(self._records))))

    @cached_property
    def matrix(self) -> np.ndarray:
        """Every passage's vector, normalised, in memory: read once, for exact search over all of them."""
        return self.corpus.matrix()

    @property
    def vector_bytes(self) -> int:
        return 0 if self.corpus.dimension is None else len(self.corpus) * self.corpus.dimension * 4


def segment_key(folder: Path) -> SegmentKey | None:
    try:
        found = os.stat(folder / RECORDS)
    except OSError:
        return None
    return found.st_dev, found.st_ino, found.st_size, found.st_mtime_ns


def link(source: Path, target: Path) -> None:
    """`target` as a folder of hard links to `source`'s files: a segment never changes, so its files
    can belong to several folders at once; copied where the disk cannot link."""
    target.mkdir()
    for path in source.iterdir():
        try:
            os.link(path, target / path.name)
        except OSError:
            shutil.copy2(path, target / path.name)
