"""The replica's passages: their texts and vectors, one block of rows per entry, read from their files as a
search needs them; exact search among a few entries' vectors; and checks of a vector index against them."""

from __future__ import annotations

import itertools
import json
import os
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kb.arrays import distinct
from kb.passages import PassageId
from kb.replica.files import DamagedFile, loaded


@dataclass(frozen=True)
class VectorMatch:
    passage_id: str
    entry_id: str
    section: str
    similarity: float  # cosine, as Chroma's `1 - distance` gives it


@dataclass(frozen=True)
class Block:
    """One entry's passages as a corpus folder stores them: their numbers, UTF-8 texts, sections, and
    float32 vectors as one run of bytes (None when they are not known)."""

    entry_id: str
    numbers: list[int]
    texts: list[bytes]
    sections: list[str]
    vectors: bytes | None
    origin: tuple[Any, int, int] | None = None  # (a segment's words, first row, end row) it is copied from


@dataclass(frozen=True)
class EntryPassages:
    """One entry's passages in passage order: ids, sections, texts and vectors (None without vectors)."""

    ids: list[str]
    sections: list[str]
    texts: list[str]
    vectors: np.ndarray | None


def decoded(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DamagedFile("texts.bin: a passage is not UTF-8") from None


def split_passage_id(passage_id: str) -> tuple[str, int]:
    """("entry-id", 3) from "entry-id#3"."""
    parsed = PassageId.parse(passage_id)
    if parsed is None:
        raise ValueError(f"'{passage_id}' is not a passage id")
    return parsed.entry_id, parsed.number


class Corpus:
    """The passages of a keyword index folder, in row order, grouped in one block per entry.

    Texts are read from one file on demand, with plain reads that leave no mapped pages behind in the
    process's resident memory (a long-running app would otherwise come to hold every text it ever
    showed); a passage's id is its entry's id and its number, and its section a code into the corpus's
    few section names, so 400,000 passages cost a few megabytes of arrays rather than a gigabyte of
    Python strings. The passages' vectors, when every row came with one, are in a file of float32 rows
    read the same way.
    Immutable: an update writes a new folder and opens a new Corpus, so readers need no lock.
    """

    def __init__(
        self,
        entries: list[str],
        counts: np.ndarray,
        numbers: np.ndarray,
        offsets: np.ndarray,
        sections: tuple[list[str], np.ndarray],
        file=None,
        vectors=None,
        dimension: int | None = None,
    ):
        self.entries = entries  # entry ids, one block of rows each
        self.codes = {entry_id: code for code, entry_id in enumerate(entries)}
        self.starts = np.concatenate([[0], np.cumsum(counts, dtype=np.int64)])
        self.row_codes = np.repeat(np.arange(len(entries), dtype=np.int32), counts)  # each row's block
        self.numbers = numbers  # each row's passage number within its entry
        self.offsets = offsets  # byte offsets of each row's text, and the end
        names, self.section_codes = sections  # each row's section, as a code into the names
        self.section_names = np.asarray(names, dtype=object)
        self._chosen_sections: dict[frozenset[str], np.ndarray] = {}  # by names: whether each code is one
        # The texts' file, kept open: every text is read through it, and it stays this corpus's file
        # even after another process swaps a new folder in. Never closed by hand: searches hold no lock
        # and may still be reading an old corpus; the files close when the last reference goes.
        self._file = file
        self._vectors = vectors  # the vectors' file, open like the texts', or None
        self.dimension = dimension if vectors is not None else None

    @classmethod
    def open(cls, folder: Path) -> Corpus:
        """The corpus in `folder`; DamagedFile, naming the file, where its files do not fit together."""
        blocks = loaded("blocks.json", lambda: json.loads((folder / "blocks.json").read_text(encoding="utf-8")))
        # A few MB each: slicing a memory map would cost more per call.
        numbers = loaded("numbers.npy", lambda: np.load(folder / "numbers.npy"))
        offsets = loaded("offsets.npy", lambda: np.load(folder / "offsets.npy"))
        counts = loaded("blocks.json", lambda: np.asarray(blocks["counts"], dtype=np.int64))
        if len(counts) != len(blocks["entries"]) or int(counts.sum()) != len(numbers):
            raise DamagedFile("blocks.json: its passage counts disagree with numbers.npy")
        if len(offsets) != len(numbers) + 1 or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
            raise DamagedFile("offsets.npy: not one ascending offset per passage")
        names = blocks.get("sections")
        codes = loaded("sections.npy", lambda: np.load(folder / "sections.npy"))
        if (
            not isinstance(names, list)
            or not all(isinstance(name, str) for name in names)
            or codes.ndim != 1
            or codes.dtype.kind not in "iu"
            or len(codes) != len(numbers)
            or (len(codes) and not 0 <= codes.min() <= codes.max() < len(names))
        ):
            raise DamagedFile("sections.npy: not one section of blocks.json's per passage")
        dimension = blocks.get("dimension")
        vectors = (
            loaded("vectors.bin", lambda: (folder / "vectors.bin").open("rb")) if dimension and len(numbers) else None
        )
        if vectors is not None and os.fstat(vectors.fileno()).st_size != len(numbers) * dimension * 4:
            vectors.close()
            raise DamagedFile("vectors.bin: not one vector per passage")
        file = loaded("texts.bin", lambda: (folder / "texts.bin").open("rb"))
        if os.fstat(file.fileno()).st_size != int(offsets[-1]):
            file.close()
            raise DamagedFile("texts.bin: not the size offsets.npy gives")
        return cls(blocks["entries"], counts, numbers, offsets, (names, codes), file, vectors, dimension)

    @staticmethod
    def write(folder: Path, blocks: Iterable[Block]) -> int:
        """Write blocks as a corpus folder, one at a time; return the number of passages. The vectors
        are kept only if every passage has one, all of one size."""
        entries, counts, numbers, offsets = [], [], array("i"), array("q", [0])
        section_codes: dict[str, int] = {}
        sections = array("i")
        width: int | None = None  # bytes per vector, while every passage so far has had one of that size
        complete = True
        with (folder / "texts.bin").open("wb") as out, (folder / "vectors.bin").open("wb") as vectors_out:
            for block in blocks:
                size = len(block.numbers)
                if len(block.texts) != size or len(block.sections) != size:
                    raise ValueError(f"{block.entry_id}: not one text and one section for each of its {size} passages")
                entries.append(block.entry_id)
                counts.append(size)
                numbers.extend(block.numbers)
                sections.extend(section_codes.setdefault(name, len(section_codes)) for name in block.sections)
                offsets.extend(
                    itertools.islice(itertools.accumulate(map(len, block.texts), initial=offsets[-1]), 1, None)
                )
                out.write(b"".join(block.texts))
                if complete and size:
                    vectors = block.vectors
                    if vectors is None or len(vectors) % size or width not in (None, len(vectors) // size):
                        complete = False
                    else:
                        width = len(vectors) // size
                        vectors_out.write(vectors)
        dimension = width // 4 if complete and width else None
        if dimension is None:
            (folder / "vectors.bin").unlink()
        (folder / "blocks.json").write_text(
            json.dumps({"entries": entries, "counts": counts, "dimension": dimension, "sections": list(section_codes)}),
            encoding="utf-8",
        )
        np.save(folder / "numbers.npy", np.asarray(numbers, dtype=np.int32))
        np.save(folder / "sections.npy", np.asarray(sections, dtype=np.int32))
        np.save(folder / "offsets.npy", np.asarray(offsets, dtype=np.int64))
        return len(numbers)

    def _reader(self) -> Callable[[int, int], list[bytes]]:
        """A function giving the texts of rows start..end-1 with one read of the file."""
        file, offsets = self._file, self.offsets

        def read(start: int, end: int) -> list[bytes]:
            first = int(offsets[start])
            span = read_exactly(file, int(offsets[end]) - first, first)
            ends = (offsets[start : end + 1] - first).tolist()
            return [span[a:b] for a, b in itertools.pairwise(ends)]

        return read

    def __len__(self) -> int:
        return len(self.numbers)

    def raw(self, row: int) -> bytes:
        start = int(self.offsets[row])
        return read_exactly(self._file, int(self.offsets[row + 1]) - start, start)

    def text(self, row: int) -> str:
        return decoded(self.raw(row))

    def passage_id(self, row: int) -> str:
        return PassageId.of(self.entries[self.row_codes[row]], int(self.numbers[row]))

    def section(self, row: int) -> str:
        return self.section_names[self.section_codes[row]]

    def sections_at(self, rows: np.ndarray | slice) -> np.ndarray:
        return self.section_names[self.section_codes[rows]]

    def in_sections(self, rows: np.ndarray, names: frozenset[str]) -> np.ndarray:
        """Whether each of these rows belongs to one of the named sections."""
        chosen = self._chosen_sections.get(names)
        if chosen is None:  # once per set of names: a corpus may hold thousands of section names
            chosen = np.fromiter(
                (name in names for name in self.section_names), dtype=bool, count=len(self.section_names)
            )
            self._chosen_sections[names] = chosen
        return chosen[self.section_codes[rows]]

    def row_of(self, passage_id: str) -> int | None:
        parsed = PassageId.parse(passage_id)
        code = self.codes.get(parsed.entry_id) if parsed else None
        if parsed is None or code is None:
            return None
        start, end, wanted = int(self.starts[code]), int(self.starts[code + 1]), parsed.number
        if start + wanted < end and self.numbers[start + wanted] == wanted:
            return start + wanted  # the usual case: an entry's passages are numbered from 0 in order
        found = np.flatnonzero(self.numbers[start:end] == wanted)
        return start + int(found[0]) if len(found) else None

    def blocks(
        self, skip: set[str] | frozenset[str], words: Any = None, only: frozenset[str] | None = None
    ) -> Iterator[Block]:
        """This corpus's blocks as `write` takes them, without the entries in `skip` (and only those in
        `only`, when given); each names `words` (its segment's keyword files) as its origin, so their word
        ids are copied rather than read again."""
        read = self._reader()
        chosen = (
            enumerate(self.entries) if only is None else sorted((self.codes[e], e) for e in only if e in self.codes)
        )
        for code, entry_id in chosen:
            if entry_id not in skip:
                start, end = int(self.starts[code]), int(self.starts[code + 1])
                origin = (words, start, end) if words is not None else None
                numbers = self.numbers[start:end].tolist()
                texts, sections = read(start, end), self.sections_at(slice(start, end)).tolist()
                yield Block(entry_id, numbers, texts, sections, self._vector_span(start, end), origin)

    @property
    def _dim(self) -> int:
        """The vectors' dimension, asked only of a corpus that holds vectors."""
        if self.dimension is None:
            raise ValueError("this corpus has no vectors")
        return self.dimension

    def matrix(self) -> np.ndarray:
        """Every passage's vector, normalised, as one array in memory (for exact search over all of them)."""
        data = read_exactly(self._vectors, len(self) * self._dim * 4, 0) if len(self) else b""
        matrix = np.frombuffer(data, dtype=np.float32).reshape(len(self), self._dim).copy()
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        matrix.flags.writeable = False
        return matrix

    def _vector_span(self, start: int, end: int) -> bytes | None:
        """The vectors of rows start..end-1 as one run of bytes (None without vectors)."""
        if self._vectors is None:
            return None
        width = self._dim * 4
        return read_exactly(self._vectors, (end - start) * width, start * width)

    def vectors_at(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of these rows, in that order: one read per run of neighbouring rows."""
        rows = np.asarray(rows, dtype=np.int64)
        width = self._dim * 4
        order = distinct(rows)
        breaks = np.flatnonzero(np.diff(order) != 1) + 1
        found = np.empty((len(order), self._dim), dtype=np.float32)
        for run in np.split(np.arange(len(order)), breaks) if len(order) else ():
            first, count = int(order[run[0]]), len(run)
            data = read_exactly(self._vectors, count * width, first * width)
            found[run[0] : run[0] + count] = np.frombuffer(data, dtype=np.float32).reshape(count, self._dim)
        return found[np.searchsorted(order, rows)]

    def rows_of(self, passage_ids: list[str]) -> np.ndarray:
        """`row_of` for many passage ids at once (-1 where one is not here)."""
        if not self.entries:
            return np.full(len(passage_ids), -1, dtype=np.int64)
        codes, numbers = [], []
        for passage_id in passage_ids:
            parsed = PassageId.parse(passage_id)
            codes.append(self.codes.get(parsed.entry_id, -1) if parsed else -1)
            numbers.append(parsed.number if parsed else -1)
        code, wanted = np.asarray(codes, dtype=np.int64), np.asarray(numbers, dtype=np.int64)
        known = (code >= 0) & (wanted >= 0)
        rows = np.where(known, self.starts[np.maximum(code, 0)] + np.maximum(wanted, 0), -1)
        inside = known & (rows < self.starts[np.maximum(code, 0) + 1])
        rows = np.where(inside, rows, -1)
        usual = inside.copy()
        usual[inside] = self.numbers[rows[inside]] == wanted[inside]  # numbered from 0 in order, as usual
        for i in np.flatnonzero(known & ~usual):  # anything else: look it up one by one
            found = self.row_of(passage_ids[i])
            rows[i] = -1 if found is None else found
        return rows

    def passages_of(self, entry_id: str) -> EntryPassages | None:
        """One entry's passages, or None if it is not here."""
        code = self.codes.get(entry_id)
        if code is None:
            return None
        start, end = int(self.starts[code]), int(self.starts[code + 1])
        ids = [PassageId.of(entry_id, n) for n in self.numbers[start:end].tolist()]
        texts = [decoded(data) for data in self._reader()(start, end)]
        span = self._vector_span(start, end)
        vectors = None if span is None else np.frombuffer(span, dtype=np.float32).reshape(end - start, self._dim)
        return EntryPassages(ids, self.sections_at(slice(start, end)).tolist(), texts, vectors)

    def nearest(self, queries: np.ndarray, codes: np.ndarray, k: int) -> list[tuple[np.ndarray, np.ndarray]]:
        """Exact cosine search among the passages of these entry blocks: for each query, the rows of
        its k most similar passages, most similar first (equal similarities in row order; which of
        several tied at the k-th place is kept is arbitrary), and their similarities.

        Reads just those blocks' vectors, one read per run of neighbouring blocks, into memory that is
        freed afterwards: no mapped pages stay behind in the process's resident memory. Raises
        DamagedFile (a ValueError) if the vector file is shorter than its passages.
        """
        if self._vectors is None:
            raise ValueError("this corpus has no vectors")
        codes = distinct(np.asarray(codes, dtype=np.int64))
        if not len(codes) or k < 1:
            return [(np.zeros(0, np.int64), np.zeros(0)) for _ in range(len(queries))]
        first, last = self.starts[codes], self.starts[codes + 1]
        breaks = np.flatnonzero(first[1:] != last[:-1]) + 1  # where a run of neighbouring blocks ends
        run_first, run_last = first[np.r_[0, breaks]], last[np.r_[breaks - 1, len(codes) - 1]]
        lengths = run_last - run_first
        rows = np.arange(int(lengths.sum()), dtype=np.int64) + np.repeat(
            run_first - (np.cumsum(lengths) - lengths), lengths
        )
        if not len(rows):  # entries without passages
            return [(rows, np.zeros(0)) for _ in range(len(queries))]
        width = self._dim * 4
        matrix = np.empty((len(rows), self._dim), dtype=np.float32)
        buffer, position = matrix.data.cast("B"), 0
        for a, b in zip(run_first.tolist(), run_last.tolist(), strict=True):
            size = (b - a) * width
            if os.preadv(self._vectors.fileno(), [buffer[position : position + size]], a * width) != size:
                raise DamagedFile("vectors.bin: shorter than its passages")
            position += size
        queries = np.asarray(queries, dtype=np.float32)
        queries = queries / np.maximum(np.linalg.norm(queries, axis=1, keepdims=True), 1e-12)
        norms = np.maximum(np.sqrt(np.einsum("ij,ij->i", matrix, matrix)), 1e-12)
        similarities = (queries @ matrix.T) / norms
        results = []
        for scores in similarities:
            best = np.argpartition(-scores, k - 1)[:k] if len(scores) > k else np.arange(len(scores))
            order = best[np.lexsort((best, -scores[best]))]
            results.append((rows[order], scores[order].astype(np.float64)))
        return results


def read_exactly(file, size: int, offset: int) -> bytes:
    """`size` bytes of an open file from `offset`; DamagedFile when the file is shorter."""
    data = os.pread(file.fileno(), size, offset) if size else b""
    if len(data) != size:
        raise DamagedFile(f"{Path(file.name).name}: shorter than its passages")
    return data
