"""The keyword index: BM25 (bm25s, English stemming and stop words) over the same passages as the vectors.

It lives in a folder beside the vector index and records which entry versions it was built from, so
a missing or stale keyword index is noticed and rebuilt from the vector index's passages. It also keeps
a local mirror of the index's entry records (the ledger of content hashes and the facet fields, as an
`EntryTable`) together with the index's generation mark at the time: while the marks agree, the ledger,
facet counts and access filters are read here in milliseconds instead of from Chroma in seconds.
With the passages it keeps a copy of their vectors, so a search confined to a few entries is answered
exactly here, reading just their rows, instead of by a filtered walk of Chroma's graph.

Its manifest lists every file of the folder with its size and CRC-32, checked whenever the folder is
opened: a folder with a damaged, missing or truncated file is treated as absent (and so rebuilt from
the vector index), never half trusted. A file damaged after that check makes the read that finds it
mark the folder untrusted instead of raising out of a search.

Memory stays small at hundreds of thousands of passages: passage texts and vectors are read from their
files as a search needs them, the BM25 matrix is memory-mapped (a search touches the columns of its
words), passage ids are rebuilt from an entry id and a number, and the entry records live only as the
table's columns.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import os
import shutil
import tempfile
import threading
import time
import zlib
from array import array
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

from kb.errors import KBError
from kb.table import EntryTable

log = logging.getLogger(__name__)
_STEMMER = Stemmer.Stemmer("english")
STALE_SPOOL_SECONDS = 24 * 3600  # an unfinished spool or folder this old belongs to no running sync
BUILD_CHUNK = 20_000  # passages scored at a time while the BM25 matrix is built
# 5: the manifest lists every file's size and checksum; 4: the passages' vectors kept too.
FORMAT_VERSION = 5  # a folder of an older format is rebuilt once
MANIFEST = "manifest.json"
CHECK_CHUNK = 4 << 20  # bytes read at a time while a file's checksum is taken
# What reading a damaged file can raise (a UnicodeDecodeError or a JSON error is a ValueError).
READ_ERRORS = (OSError, ValueError, KeyError, IndexError, TypeError, EOFError)


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lowercased, stemmed words without English stop words: the same for passages and queries."""
    return bm25s.tokenize(texts, stopwords="en", stemmer=_STEMMER, return_ids=False, show_progress=False)


@dataclass(frozen=True)
class KeywordMatch:
    passage_id: str
    entry_id: str
    score: float


@dataclass(frozen=True)
class VectorMatch:
    passage_id: str
    entry_id: str
    similarity: float  # cosine, as Chroma's `1 - distance` gives it


@dataclass(frozen=True)
class Block:
    """One entry's passages as a corpus folder stores them: their numbers, UTF-8 texts, and float32
    vectors as one run of bytes (None when they are not known)."""

    entry_id: str
    numbers: list[int]
    texts: list[bytes]
    vectors: bytes | None


class DamagedFile(ValueError):
    """A file of the folder is not as it was written; the message starts with its name."""


class KeywordIndexDamaged(KBError):
    """The folder an update would copy from is damaged: only a rebuild from the vector index can help."""


def _loaded(name: str, load: Callable):
    """`load()`, a parse of the file `name`, with what goes wrong named after the file."""
    try:
        return load()
    except READ_ERRORS as exc:
        raise DamagedFile(f"{name}: {_reason(exc)}") from exc


def _reason(exc: BaseException) -> str:
    return str(exc)[:160] or exc.__class__.__name__


def _decoded(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise DamagedFile("texts.bin: a passage is not UTF-8") from None


def split_passage_id(passage_id: str) -> tuple[str, int]:
    """("entry-id", 3) from "entry-id#3": how the index names an entry's passages."""
    entry_id, _, number = passage_id.rpartition("#")
    return entry_id, int(number)


class Corpus:
    """The passages of a keyword index folder, in row order, grouped in one block per entry.

    Texts are read from one file on demand, with plain reads that leave no mapped pages behind in the
    process's resident memory (a long-running app would otherwise come to hold every text it ever
    showed); a passage's id is its entry's id and its number, so 400,000 passages cost a few megabytes
    of arrays rather than a gigabyte of Python strings. The passages' vectors, when every row came with
    one, are in a file of float32 rows read the same way.
    Immutable: an update writes a new folder and opens a new Corpus, so readers need no lock.
    """

    def __init__(
        self,
        entries: list[str],
        counts: np.ndarray,
        numbers: np.ndarray,
        offsets: np.ndarray,
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
        # The texts' file, kept open: every text is read through it, and it stays this corpus's file
        # even after another process swaps a new folder in. Never closed by hand: searches hold no lock
        # and may still be reading an old corpus; the files close when the last reference goes.
        self._file = file
        self._vectors = vectors  # the vectors' file, open like the texts', or None
        self.dimension = dimension if vectors is not None else None

    @classmethod
    def empty(cls) -> Corpus:
        return cls([], np.zeros(0, np.int64), np.zeros(0, np.int32), np.zeros(1, np.int64))

    @classmethod
    def open(cls, folder: Path) -> Corpus:
        """The corpus in `folder`; DamagedFile, naming the file, where its files do not fit together."""
        blocks = _loaded("blocks.json", lambda: json.loads((folder / "blocks.json").read_text(encoding="utf-8")))
        # A few MB each: slicing a memory map would cost more per call.
        numbers = _loaded("numbers.npy", lambda: np.load(folder / "numbers.npy"))
        offsets = _loaded("offsets.npy", lambda: np.load(folder / "offsets.npy"))
        counts = _loaded("blocks.json", lambda: np.asarray(blocks["counts"], dtype=np.int64))
        if len(counts) != len(blocks["entries"]) or int(counts.sum()) != len(numbers):
            raise DamagedFile("blocks.json: its passage counts disagree with numbers.npy")
        if len(offsets) != len(numbers) + 1 or offsets[0] != 0 or np.any(np.diff(offsets) < 0):
            raise DamagedFile("offsets.npy: not one ascending offset per passage")
        dimension = blocks.get("dimension")
        vectors = (
            _loaded("vectors.bin", lambda: (folder / "vectors.bin").open("rb")) if dimension and len(numbers) else None
        )
        if vectors is not None and os.fstat(vectors.fileno()).st_size != len(numbers) * dimension * 4:
            vectors.close()
            raise DamagedFile("vectors.bin: not one vector per passage")
        file = _loaded("texts.bin", lambda: (folder / "texts.bin").open("rb"))
        if os.fstat(file.fileno()).st_size != int(offsets[-1]):
            file.close()
            raise DamagedFile("texts.bin: not the size offsets.npy gives")
        return cls(blocks["entries"], counts, numbers, offsets, file, vectors, dimension)

    def is_in(self, folder: Path) -> bool:
        """True when `folder` still holds this corpus's files (no other process has swapped in another)."""
        if self._file is None:
            return False
        try:
            return os.fstat(self._file.fileno()).st_ino == (folder / "texts.bin").stat().st_ino
        except OSError:
            return False

    @staticmethod
    def write(folder: Path, blocks: Iterable[Block]) -> int:
        """Write blocks as a corpus folder, one at a time; return the number of passages. The vectors
        are kept only if every passage has one, all of one size."""
        entries, counts, numbers, offsets = [], [], array("i"), array("q", [0])
        width: int | None = None  # bytes per vector, while every passage so far has had one of that size
        complete = True
        with (folder / "texts.bin").open("wb") as out, (folder / "vectors.bin").open("wb") as vectors_out:
            for block in blocks:
                size = len(block.numbers)
                entries.append(block.entry_id)
                counts.append(size)
                numbers.extend(block.numbers)
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
            json.dumps({"entries": entries, "counts": counts, "dimension": dimension}), encoding="utf-8"
        )
        np.save(folder / "numbers.npy", np.asarray(numbers, dtype=np.int32))
        np.save(folder / "offsets.npy", np.asarray(offsets, dtype=np.int64))
        return len(numbers)

    def texts(self, chunk: int, start: int = 0) -> Iterator[list[str]]:
        """Every passage's text in row order from row `start`, `chunk` at a time."""
        read = self._reader()
        for first in range(start, len(self), chunk):
            yield [_decoded(data) for data in read(first, min(first + chunk, len(self)))]

    def _reader(self) -> Callable[[int, int], list[bytes]]:
        """A function giving the texts of rows start..end-1 with one read of the file."""
        file, offsets = self._file, self.offsets

        def read(start: int, end: int) -> list[bytes]:
            first = int(offsets[start])
            span = _read_exactly(file, int(offsets[end]) - first, first)
            ends = (offsets[start : end + 1] - first).tolist()
            return [span[a:b] for a, b in itertools.pairwise(ends)]

        return read

    def __len__(self) -> int:
        return len(self.numbers)

    def raw(self, row: int) -> bytes:
        start = int(self.offsets[row])
        return _read_exactly(self._file, int(self.offsets[row + 1]) - start, start)

    def text(self, row: int) -> str:
        return _decoded(self.raw(row))

    def entry_id(self, row: int) -> str:
        return self.entries[self.row_codes[row]]

    def passage_id(self, row: int) -> str:
        return f"{self.entries[self.row_codes[row]]}#{self.numbers[row]}"

    def row_of(self, passage_id: str) -> int | None:
        entry_id, _, number = passage_id.rpartition("#")
        code = self.codes.get(entry_id)
        if code is None or not number.isdigit():
            return None
        start, end, wanted = int(self.starts[code]), int(self.starts[code + 1]), int(number)
        if start + wanted < end and self.numbers[start + wanted] == wanted:
            return start + wanted  # the usual case: an entry's passages are numbered from 0 in order
        found = np.flatnonzero(self.numbers[start:end] == wanted)
        return start + int(found[0]) if len(found) else None

    def blocks(self, skip: set[str]) -> Iterator[Block]:
        """This corpus's blocks as `write` takes them, without the entries in `skip`."""
        read = self._reader()
        for code, entry_id in enumerate(self.entries):
            if entry_id not in skip:
                start, end = int(self.starts[code]), int(self.starts[code + 1])
                yield Block(entry_id, self.numbers[start:end].tolist(), read(start, end), self._vector_span(start, end))

    def _vector_span(self, start: int, end: int) -> bytes | None:
        """The vectors of rows start..end-1 as one run of bytes (None without vectors)."""
        if self._vectors is None:
            return None
        width = self.dimension * 4
        return _read_exactly(self._vectors, (end - start) * width, start * width)

    def vectors_at(self, rows: np.ndarray) -> np.ndarray:
        """The vectors of these rows, in that order: one read per run of neighbouring rows."""
        rows = np.asarray(rows, dtype=np.int64)
        width = self.dimension * 4
        order = np.unique(rows)
        breaks = np.flatnonzero(np.diff(order) != 1) + 1
        found = np.empty((len(order), self.dimension), dtype=np.float32)
        for run in np.split(np.arange(len(order)), breaks) if len(order) else ():
            first, count = int(order[run[0]]), len(run)
            data = _read_exactly(self._vectors, count * width, first * width)
            found[run[0] : run[0] + count] = np.frombuffer(data, dtype=np.float32).reshape(count, self.dimension)
        return found[np.searchsorted(order, rows)]

    def rows_of(self, passage_ids: list[str]) -> np.ndarray:
        """`row_of` for many passage ids at once (-1 where one is not here)."""
        codes, numbers = [], []
        for passage_id in passage_ids:
            entry_id, _, number = passage_id.rpartition("#")
            codes.append(self.codes.get(entry_id, -1))
            numbers.append(int(number) if number.isdigit() else -1)
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

    def passages_of(self, entry_id: str) -> tuple[list[str], list[str], np.ndarray | None] | None:
        """One entry's passage ids, texts and vectors (None without vectors), or None if it is not here."""
        code = self.codes.get(entry_id)
        if code is None:
            return None
        start, end = int(self.starts[code]), int(self.starts[code + 1])
        ids = [f"{entry_id}#{n}" for n in self.numbers[start:end].tolist()]
        texts = [_decoded(data) for data in self._reader()(start, end)]
        span = self._vector_span(start, end)
        vectors = None if span is None else np.frombuffer(span, dtype=np.float32).reshape(end - start, self.dimension)
        return ids, texts, vectors

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
        codes = np.unique(np.asarray(codes, dtype=np.int64))
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
        width = self.dimension * 4
        matrix = np.empty((len(rows), self.dimension), dtype=np.float32)
        buffer, position = memoryview(matrix).cast("B"), 0
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


def _read_exactly(file, size: int, offset: int) -> bytes:
    """`size` bytes of an open file from `offset`; DamagedFile when the file is shorter."""
    data = os.pread(file.fileno(), size, offset) if size else b""
    if len(data) != size:
        raise DamagedFile(f"{Path(file.name).name}: shorter than its passages")
    return data


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
        self._latest_line: dict[str, int] = {}  # entry id -> the line of its latest record
        self._lines = 0

    def __enter__(self) -> Additions:
        return self

    def __exit__(self, *exc) -> None:
        self._spool.close()
        self._vector_spool.close()
        self._records.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def add_passages(self, rows: Iterable[tuple[str, str, str]], vectors: np.ndarray | None = None) -> None:
        """(passage_id, entry_id, text) rows, and optionally their vectors, one row of `vectors` each.
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
        for passage_id, entry_id, text in rows:
            data = text.encode("utf-8")
            self._spool.write(data)
            self._entry_of.append(self._codes.setdefault(entry_id, len(self._codes)))
            self._numbers.append(split_passage_id(passage_id)[1])
            self._offsets.append(self._offsets[-1] + len(data))

    def add_records(self, records: Iterable[tuple[str, dict]] | dict[str, dict]) -> None:
        """Entry records (facet metadata by entry id) for the entry mirror."""
        for entry_id, metadata in records.items() if isinstance(records, dict) else records:
            self._latest_line[entry_id] = self._lines
            self._records.write(_record_line(entry_id, metadata))
            self._lines += 1

    @property
    def entry_ids(self) -> set[str]:
        """The entries that have passages here."""
        return set(self._codes)

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
        entries, offsets, slots, width = list(self._codes), self._offsets, self._vector_slot, self._vector_width
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
                yield Block(entries[int(codes[group[0]])], numbers[group].tolist(), texts, span)

    def record_lines(self) -> Iterator[tuple[str, str]]:
        """(entry id, line) of the latest record of each entry, lines as entries.jsonl holds them."""
        self._records.flush()
        for number, (entry_id, line) in enumerate(_record_lines(self.folder / "records.jsonl")):
            if self._latest_line[entry_id] == number:
                yield entry_id, line


def _locked(method):
    """One search or update at a time: the app's sessions share one index object across threads."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self._lock:
            return method(self, *args, **kwargs)

    return wrapper


@dataclass(frozen=True)
class TokenIds:
    """Every passage's token ids as one flat array and where each passage starts: four bytes a token
    rather than a Python list per passage (a 400,000-passage corpus holds 25 million tokens)."""

    flat: np.ndarray  # int32
    starts: np.ndarray  # int64, one more than there are passages

    def __len__(self) -> int:
        return len(self.starts) - 1


def _tokenized(
    corpus: Corpus, chunk: int = 10_000, *, previous: Path | None = None, kept: np.ndarray | None = None
) -> tuple[bm25s.tokenization.Tokenized, bm25s.tokenization.Tokenizer]:
    """Every passage as token ids for the BM25 build: the same words and stems as `tokenize`.

    With `previous` (the folder being replaced) and `kept` (its rows that lead the new corpus, in
    order), those passages' token ids are copied from it and only the rest are tokenized, so a save
    that changes one entry tokenizes its few passages, not 400,000. Texts are read back from the
    written corpus a chunk at a time, never all held at once.
    """
    tokenizer = bm25s.tokenization.Tokenizer(stemmer=_STEMMER, stopwords="en")
    flat, starts = array("i"), array("q", [0])  # grown in place: no second copy to concatenate
    first = 0
    if previous is not None and kept is not None and len(kept):
        tokenizer.load_vocab(str(previous))  # the same ids for the same stems; new stems get new ones
        old_flat = np.load(previous / "tokens.npy", mmap_mode="r")
        old_starts = np.load(previous / "token-starts.npy")
        for run in np.split(kept, np.flatnonzero(np.diff(kept) != 1) + 1):  # runs of consecutive rows
            base = len(flat) - int(old_starts[run[0]])
            flat.frombytes(np.ascontiguousarray(old_flat[old_starts[run[0]] : old_starts[run[-1] + 1]]).tobytes())
            starts.extend((old_starts[run[0] + 1 : run[-1] + 2] + base).tolist())
        first = len(kept)
    for texts in corpus.texts(chunk, start=first):
        for ids in tokenizer.tokenize(texts, update_vocab=True, return_as="ids", show_progress=False):
            flat.extend(ids)
            starts.append(len(flat))
    token_ids = TokenIds(np.frombuffer(flat, dtype=np.int32) if flat else np.zeros(0, np.int32), np.asarray(starts))
    return bm25s.tokenization.Tokenized(ids=token_ids, vocab=tokenizer.get_vocab_dict()), tokenizer


class CompactBM25(bm25s.BM25):
    """bm25s's BM25 with Lucene scoring (its default), its index built from `TokenIds` through bm25s's
    extension point `build_index_from_ids`: the same scores in the same sparse matrix, built a chunk
    of passages at a time straight into the final arrays. bm25s's own build holds a Python list per
    passage, three arrays the size of the matrix and SciPy's copy of them: at 400,000 passages, most
    of a full sync's memory peak."""

    def build_index_from_ids(
        self, unique_token_ids, corpus_token_ids: TokenIds, show_progress=False, leave_progress=False
    ):
        if self.method != "lucene" or self.idf_method != "lucene":
            raise ValueError("CompactBM25 scores as Lucene does; use bm25s.BM25 for other variants")
        self.nonoccurrence_array = None  # only BM25L and BM25+ have one
        n_docs, n_vocab = len(corpus_token_ids), len(unique_token_ids)
        lengths = np.diff(corpus_token_ids.starts)
        avg_doc_len = lengths.mean() if n_docs else 0.0
        chunks = [(start, min(start + BUILD_CHUNK, n_docs)) for start in range(0, n_docs, BUILD_CHUNK)]
        # Pass 1: in how many passages each token occurs, and so its idf.
        doc_freqs = np.zeros(n_vocab, dtype=np.int64)
        for start, end in chunks:
            _, tokens, _ = self._counts(corpus_token_ids, start, end, n_vocab)
            doc_freqs += np.bincount(tokens, minlength=n_vocab)
        idf = np.zeros(n_vocab, dtype=self.dtype)
        seen = doc_freqs > 0
        idf[seen] = np.log(1 + (n_docs - doc_freqs[seen] + 0.5) / (doc_freqs[seen] + 0.5))
        # Pass 2: each (passage, token) score straight to its place in the token's column.
        indptr = np.concatenate([[0], np.cumsum(doc_freqs)])
        data = np.empty(int(indptr[-1]), dtype=self.dtype)
        indices = np.empty(int(indptr[-1]), dtype=self.int_dtype)
        cursor = indptr[:-1].copy()
        for start, end in chunks:
            docs, tokens, counts = self._counts(corpus_token_ids, start, end, n_vocab)
            tf = counts.astype(self.dtype)
            tfc = tf / (self.k1 * ((1 - self.b) + self.b * lengths[docs] / avg_doc_len) + tf)
            order = np.argsort(tokens, kind="stable")  # by token, passages ascending within each
            docs, tokens, scores = docs[order], tokens[order], (idf[tokens] * tfc)[order]
            rank = np.arange(len(tokens)) - np.searchsorted(tokens, tokens, side="left")  # within its token
            data[cursor[tokens] + rank], indices[cursor[tokens] + rank] = scores, docs
            cursor += np.bincount(tokens, minlength=n_vocab)
        indptr = indptr.astype(self.int_dtype) if indptr[-1] < 2**31 else indptr
        return {"data": data, "indices": indices, "indptr": indptr, "num_docs": n_docs}

    @staticmethod
    def _counts(corpus: TokenIds, start: int, end: int, n_vocab: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(passage, token, term frequency) for each distinct token of passages start..end."""
        lo, hi = int(corpus.starts[start]), int(corpus.starts[end])
        doc_of = np.repeat(np.arange(start, end, dtype=np.int64), np.diff(corpus.starts[start : end + 1]))
        pairs, counts = np.unique(doc_of * n_vocab + corpus.flat[lo:hi], return_counts=True)
        return (pairs // n_vocab).astype(np.int32), (pairs % n_vocab).astype(np.int32), counts


def _record_line(entry_id: str, metadata: dict) -> str:
    """One entry record as a line of an entries.jsonl file, as `_read_records` reads it back."""
    return json.dumps({"id": entry_id, "metadata": metadata}, ensure_ascii=False) + "\n"


def _read_records(path: Path) -> Iterator[tuple[str, dict]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            row = json.loads(line)
            yield row["id"], row["metadata"]


_RECORD_ID_AT = len('{"id": ')  # where `_record_line` puts the id's JSON string
_DECODER = json.JSONDecoder()


def _record_lines(path: Path) -> Iterator[tuple[str, str]]:
    """(entry id, line) for each line of an entries.jsonl file, decoding only the id: copying 100,000
    kept records on a save costs a second when each is parsed and written again."""
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.startswith('{"id": '):
                yield _DECODER.raw_decode(line, _RECORD_ID_AT)[0], line
            else:  # not as `_record_line` writes it: read it whole
                yield json.loads(line)["id"], line


FolderId = tuple[int, int]  # a directory's device and inode: which folder a path names at the moment


@dataclass(frozen=True)
class Manifest:
    """What a folder's manifest.json records: the entry versions it was built from, the vector index's
    mark it last matched, and every other file of the folder with its size and CRC-32 as written."""

    hashes: dict[str, str]
    generation: str | None
    files: dict[str, dict[str, int]]  # path relative to the folder -> {"size": bytes, "crc32": checksum}

    def to_json(self) -> str:
        return json.dumps(
            {"format": FORMAT_VERSION, "hashes": self.hashes, "generation": self.generation, "files": self.files}
        )

    @classmethod
    def from_json(cls, meta: dict) -> Manifest:
        """Raises ValueError, KeyError or TypeError for a manifest without a well-formed file list."""
        hashes, files = meta["hashes"], meta["files"]
        if not isinstance(hashes, dict) or not isinstance(files, dict):
            raise TypeError("hashes and files must be objects")
        for name, recorded in files.items():
            parts = Path(name).parts
            if not parts or Path(name).is_absolute() or ".." in parts:
                raise ValueError(f"'{name}' is not a path inside the folder")
            if not all(isinstance(recorded.get(k), int) for k in ("size", "crc32")):
                raise ValueError(f"'{name}' has no size and checksum")
        return cls(dict(hashes), meta.get("generation") or None, files)


def _folder_id(folder: Path) -> FolderId | None:
    try:
        found = os.stat(folder)
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _crc32(file) -> int:
    """The CRC-32 of an open file's bytes, read a chunk at a time (never a whole large file at once)."""
    crc, buffer = 0, bytearray(CHECK_CHUNK)
    view = memoryview(buffer)
    while size := file.readinto(buffer):
        crc = zlib.crc32(view[:size], crc)
    return crc


def _file_list(folder: Path) -> dict[str, dict[str, int]]:
    """Every file of a folder but its manifest, by path relative to the folder: its size and CRC-32."""
    files = {}
    for path in sorted(folder.rglob("*")):
        name = path.relative_to(folder).as_posix()
        if name != MANIFEST and path.is_file():
            with path.open("rb", buffering=0) as file:
                files[name] = {"size": os.fstat(file.fileno()).st_size, "crc32": _crc32(file)}
    return files


def _open_checked(folder: Path) -> tuple[Manifest | None, str | None, FolderId | None]:
    """The folder's manifest if every file it lists is there as it was written, else what is wrong;
    and which folder was read. No manifest and no complaint: no folder, or one of another format.

    Files are opened relative to the folder's own handle, so all of them come from one folder even if
    another process swaps in a new one meanwhile; a fault seen while that happened is checked again on
    the new folder rather than reported (the old one is deleted after the swap).
    """
    manifest, damage, read = None, None, None
    for _ in range(3):
        try:
            directory = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        except FileNotFoundError:
            return None, None, None
        except OSError as exc:
            return None, f"{folder.name}: {exc.strerror}", None
        try:
            found = os.fstat(directory)
            read = (found.st_dev, found.st_ino)
            manifest, damage = _check(directory)
        finally:
            os.close(directory)
        if damage is None or _folder_id(folder) == read:
            break
    return manifest, damage, read


def _check(directory: int) -> tuple[Manifest | None, str | None]:
    """Read the manifest of the folder open as `directory` and check the files it lists: sizes first
    (a stat each), then checksums."""
    try:
        with open(os.open(MANIFEST, os.O_RDONLY, dir_fd=directory), "rb") as file:
            meta = json.loads(file.read())
    except FileNotFoundError:
        return None, f"{MANIFEST}: missing"
    except READ_ERRORS:
        return None, f"{MANIFEST}: not readable as JSON"
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_VERSION:
        return None, None  # written by another version: rebuilt, not damaged
    try:
        manifest = Manifest.from_json(meta)
    except (KeyError, TypeError, ValueError, AttributeError):
        return None, f"{MANIFEST}: no valid file list"
    for name, recorded in manifest.files.items():
        try:
            size = os.stat(name, dir_fd=directory).st_size
        except FileNotFoundError:
            return None, f"{name}: missing"
        except OSError as exc:
            return None, f"{name}: {exc.strerror}"
        if size != recorded["size"]:
            return None, f"{name}: {size:,} bytes, {recorded['size']:,} when written"
    for name, recorded in manifest.files.items():
        try:
            with open(os.open(name, os.O_RDONLY, dir_fd=directory), "rb", buffering=0) as file:
                crc = _crc32(file)
        except OSError as exc:
            return None, f"{name}: {exc.strerror}"
        if crc != recorded["crc32"]:
            return None, f"{name}: checksum mismatch"
    return manifest, None


_reported: set[tuple[str, FolderId | None, str]] = set()  # damage already logged by this process


def _report(folder: Path, folder_id: FolderId | None, damage: str) -> None:
    """Log a damaged folder once per process: a sync opens the folder up to three times."""
    if (str(folder), folder_id, damage) not in _reported:
        _reported.add((str(folder), folder_id, damage))
        log.warning(
            "the keyword index at %s is damaged (%s): treated as absent until rebuilt from the vector index",
            folder,
            damage,
        )


def _damage(what: str, exc: BaseException) -> str:
    """What is wrong, for `damage` and the log: a DamagedFile names its file, else `what` was being read."""
    return str(exc) if isinstance(exc, DamagedFile) else f"{what}: {_reason(exc)}"


def _untrusted_if_damaged(what: str, absent: Callable[[], object]):
    """For a read of the folder's files. The folder was checked when opened, but a file can be damaged
    since: the read that finds it marks the folder untrusted (as if absent, so the knowledge base
    rebuilds it) and gives what an absent index gives, `absent()`, instead of raising out of a search."""

    def decorate(method):
        @functools.wraps(method)
        def wrapper(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except READ_ERRORS as exc:
                self._distrust(_damage(what, exc))
                return absent()

        return wrapper

    return decorate


class LexicalIndex:
    """BM25 over passages, persisted in `folder`, rebuilt whole whenever the passages change; with the
    passages it keeps their vectors, for exact search among a few entries (`nearest`), and the entry
    records (`table`).

    `damage` says what was found wrong with the folder's files (None: nothing). A damaged folder counts
    as absent: no hashes, no generation mark, no passages, until a rebuild writes a new one.
    """

    def __init__(self, folder: Path | str):
        self.folder = Path(folder)
        self.hashes: dict[str, str] = {}
        self.generation: str | None = None  # the vector index's mark when this was last known to match it
        self.damage: str | None = None
        self._files: dict[str, dict[str, int]] = {}  # the manifest's file list, kept when `mark` rewrites it
        self._folder_id: FolderId | None = None  # the folder these belong to, as checked or written
        self._corpus = Corpus.empty()
        self._table: EntryTable | None = None
        self._retriever: bm25s.BM25 | None = None
        self._loaded = False
        self._lock = threading.RLock()
        self._masks: dict[int, tuple[frozenset[str], np.ndarray]] = {}  # by allowed set, until re-indexed
        self._open_manifest()

    # ----------------------------------------------------------------- persistence

    def _open_manifest(self) -> None:
        """Read the manifest and check every file it lists against it: one pass of CRC-32 over the folder
        (a few GB/s), no parsing, so an unchanged sync still never loads the corpus. Anything wrong and
        the folder counts as absent: `is_current` and `mirrors` are false, and it is rebuilt."""
        manifest, self.damage, self._folder_id = _open_checked(self.folder)
        if manifest is None:
            self.hashes, self.generation, self._files = {}, None, {}
        else:
            self.hashes, self.generation, self._files = manifest.hashes, manifest.generation, manifest.files
        if self.damage:
            _report(self.folder, self._folder_id, self.damage)

    def _distrust(self, damage: str) -> None:
        """A file of the folder turned out damaged after it was opened: from now on it counts as absent."""
        self.hashes, self.generation, self.damage = {}, None, damage
        self._corpus, self._retriever, self._table, self._masks = Corpus.empty(), None, None, {}
        _report(self.folder, self._folder_id, damage)

    @_locked
    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for _ in range(3):
            if _folder_id(self.folder) != self._folder_id:
                self._open_manifest()  # another process swapped in a new folder since: check and read that
            if not self.hashes:
                return
            try:
                corpus = Corpus.open(self.folder)
            except READ_ERRORS as exc:
                self._distrust(_damage("the passage files", exc))
                return
            try:
                # Memory-mapped: a query reads only the columns of its words.
                retriever = bm25s.BM25.load(str(self.folder / "bm25"), mmap=True) if len(corpus) else None
            except READ_ERRORS as exc:
                self._distrust(_damage("bm25", exc))
                return
            if _folder_id(self.folder) == self._folder_id:  # every file above came from the checked folder
                self._corpus, self._retriever = corpus, retriever
                self._table, self._masks = None, {}
                return
        self.hashes, self.generation = {}, None  # swapped again and again: the next check reads it afresh

    def _write(
        self,
        blocks: Iterable[Block],
        record_lines: Iterable[str],
        kept: np.ndarray | None = None,
    ) -> None:
        """Write a complete new folder from these passages and entry records, index it, then swap it in,
        so a crash never leaves half an index; then read it back as the current corpus.

        `kept`: the current folder's rows that the blocks begin with, whose token ids can be reused.
        """
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(dir=self.folder.parent, prefix=".lexical-"))
        reusable = kept is not None and self._corpus.is_in(self.folder) and (self.folder / "tokens.npy").exists()
        try:
            if Corpus.write(tmp, blocks):
                tokenized, tokenizer = _tokenized(
                    Corpus.open(tmp), previous=self.folder if reusable else None, kept=kept
                )
                np.save(tmp / "tokens.npy", tokenized.ids.flat)
                np.save(tmp / "token-starts.npy", tokenized.ids.starts)
                tokenizer.save_vocab(str(tmp))
                retriever = CompactBM25()
                retriever.index(tokenized, show_progress=False)
                retriever.save(str(tmp / "bm25"))
                del retriever, tokenized, tokenizer
            with (tmp / "entries.jsonl").open("w", encoding="utf-8") as out:
                out.writelines(record_lines)
            self._files, self._folder_id, self.damage = _file_list(tmp), _folder_id(tmp), None
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
            tmp = f"{MANIFEST}.tmp"
            with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=directory), "w") as out:
                out.write(Manifest(self.hashes, self.generation, self._files).to_json())
            os.replace(tmp, MANIFEST, src_dir_fd=directory, dst_dir_fd=directory)
        finally:
            os.close(directory)

    @_locked
    def mark(self, generation: str | None) -> None:
        """Record that this mirror matches the vector index at this generation mark (None: unknown).
        The file list stays as written: the manifest is the one file it does not cover."""
        if generation != self.generation and self._folder_id is not None and self.damage is None:
            self.generation = generation
            self._write_manifest(self.folder)

    def mirrors(self, generation: str | None) -> bool:
        """True when this folder was in step with the vector index at this mark: trust its records."""
        return bool(generation) and self.generation == generation

    @_untrusted_if_damaged("entries.jsonl", lambda: EntryTable({}))
    @_locked
    def table(self) -> EntryTable:
        """The entry records as columns, read line by line on first use after each change."""
        self._load()
        if self._table is None:
            self._table = EntryTable(_read_records(self.folder / "entries.jsonl") if self.hashes else {})
        return self._table

    def is_current(self, hashes: dict[str, str]) -> bool:
        """True when built from exactly these entry versions (the vector index's ledger)."""
        return self.hashes == hashes

    @property
    def passage_count(self) -> int:
        self._load()
        return len(self._corpus)

    def text_at(self, row: int) -> str:
        """The text of row `row` (< passage_count); for tests and tools, which want a damaged text to raise."""
        return self._corpus.text(row)

    # ----------------------------------------------------------------- writes

    def additions(self) -> Additions:
        """A new spool for passages and records to add (a context manager that deletes it after use).

        It lives beside the index folder, on the same disk. Spools and half-written folders that a
        killed process left there are swept once nothing has touched them for a day.
        """
        self.folder.parent.mkdir(parents=True, exist_ok=True)
        stale = time.time() - STALE_SPOOL_SECONDS
        for old in [*self.folder.parent.glob(".additions-*"), *self.folder.parent.glob(".lexical-*")]:
            try:
                if max(f.stat().st_mtime for f in [old, *old.rglob("*")]) < stale:
                    shutil.rmtree(old, ignore_errors=True)
            except OSError:
                pass  # another process is just removing it
        return Additions(Path(tempfile.mkdtemp(dir=self.folder.parent, prefix=".additions-")))

    @_locked
    def update(self, remove: set[str], added: Additions, hashes: dict[str, str], generation: str | None = None) -> None:
        """Drop the passages of `remove` entries, add the passages and entry records of `added`,
        re-index, save, and remember the vector index's mark they match.

        Raises KeywordIndexDamaged if the folder turns out damaged: what is kept is copied from it into a
        new folder with fresh checksums, so it is checked again first rather than trusted since it was opened.
        """
        had_passages = bool(self.hashes)
        self._load()
        if had_passages and self.damage is None and _folder_id(self.folder) == self._folder_id:
            _, damage, _ = _open_checked(self.folder)
            if damage:
                self._distrust(damage)
        if had_passages and self.damage:
            raise KeywordIndexDamaged(
                f"the keyword index is damaged ({self.damage}); run `python -m kb sync` to rebuild it"
            )
        replaced = set(remove) | added.entry_ids
        records_path = self.folder / "entries.jsonl"
        kept_records = _record_lines(records_path) if self.hashes and records_path.exists() else iter(())
        old = self._corpus
        self.hashes, self.generation = dict(hashes), generation
        replaced_codes = [old.codes[e] for e in replaced if e in old.codes]
        kept_rows = np.flatnonzero(~np.isin(old.row_codes, np.asarray(replaced_codes, dtype=np.int32)))
        self._write(
            itertools.chain(old.blocks(replaced), added.blocks()),
            _chain_records(kept_records, set(remove) | added.record_ids, added.record_lines()),
            kept_rows,
        )

    @_locked
    def rebuild(self, added: Additions, hashes: dict[str, str], generation: str | None = None) -> None:
        """Start again from these passages and entry records, e.g. the vector index's."""
        self._loaded = True
        self._corpus, self._retriever, self._table = Corpus.empty(), None, None
        self.hashes, self.generation = dict(hashes), generation
        self._write(added.blocks(), (line for _, line in added.record_lines()))

    # ----------------------------------------------------------------- reads

    @_locked
    def weights(self, allowed_entries: set[str] | None = None, phrases: list[str] | None = None) -> np.ndarray | None:
        """A 0/1 weight per passage: its entry is allowed and it contains every phrase. None: all pass.

        Computed once per search and shared by every keyword query of that search (query words, synonyms).
        """
        self._load()
        weights = None
        if allowed_entries is not None:
            weights = self._mask(allowed_entries)
        if phrases:
            has_all = self.phrase_mask(phrases)
            weights = has_all if weights is None else weights * has_all
        return weights

    def _mask(self, allowed_entries: set[str] | frozenset[str]) -> np.ndarray:
        """1 for passages of allowed entries. A frozen set (the knowledge base keeps one per reader and
        filters until the index changes) keeps its mask too: at 100k entries it costs tens of milliseconds."""
        cached = self._masks.get(id(allowed_entries))
        if cached is not None and cached[0] is allowed_entries:
            return cached[1]
        corpus = self._corpus
        codes = [corpus.codes[e] for e in allowed_entries if e in corpus.codes]
        mask = np.isin(corpus.row_codes, np.asarray(codes, dtype=np.int32)).astype(np.float32)
        mask.flags.writeable = False  # shared by every search that reuses it
        if isinstance(allowed_entries, frozenset):
            if len(self._masks) >= 64:
                self._masks.pop(next(iter(self._masks)))
            self._masks[id(allowed_entries)] = (allowed_entries, mask)
        return mask

    @_untrusted_if_damaged("bm25", list)
    @_locked
    def search(self, query: str, k: int, weights: np.ndarray | None = None) -> list[KeywordMatch]:
        """Top k passages by BM25 among those whose weight (from `weights`) is 1."""
        self._load()
        corpus = self._corpus
        if self._retriever is None or not len(corpus) or (weights is not None and not weights.any()):
            return []
        tokens = tokenize([query])[0] if query.strip() else []
        rows, scores = self._top(tokens, min(k, len(corpus)), weights)
        return [
            KeywordMatch(corpus.passage_id(i), corpus.entry_id(i), float(s))
            for i, s in zip(rows.tolist(), scores.tolist(), strict=True)
        ]

    def _top(self, tokens: list[str], k: int, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """The k passages with the highest BM25 score for these query tokens (a repeated token counts
        again), best first, scoring above 0 and weighted 1: rows and scores.

        Sums the tokens' columns of bm25s's precomputed score matrix as bm25s does, but with one
        `bincount` and a selection among the passages that matched, not a sort of every passage:
        three times faster at 400,000 passages, which counts when a synonym-rich query runs ten.
        """
        vocab, matrix = self._retriever.vocab_dict, self._retriever.scores
        columns = [vocab[t] for t in tokens if t in vocab]
        if not columns or k < 1:
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        indptr = matrix["indptr"]
        rows = np.concatenate([matrix["indices"][indptr[c] : indptr[c + 1]] for c in columns]).astype(np.int64)
        scores = np.concatenate([matrix["data"][indptr[c] : indptr[c + 1]] for c in columns]).astype(np.float64)
        if len(rows) and (rows.min() < 0 or rows.max() >= int(matrix["num_docs"])):
            raise DamagedFile("bm25: names passages the index does not have")  # before bincount sizes by them
        if len(columns) > 1:
            summed = np.bincount(rows, weights=scores, minlength=int(matrix["num_docs"]))
            rows = np.flatnonzero(summed)
            scores = summed[rows]
        keep = scores > 0
        if weights is not None:
            keep &= weights[rows] > 0
        rows, scores = rows[keep], scores[keep]
        if len(rows) > k:
            best = np.argpartition(-scores, k - 1)[:k]
            rows, scores = rows[best], scores[best]
        order = np.lexsort((rows, -scores))  # ties in passage order: the same results every time
        return rows[order], scores[order]

    @_untrusted_if_damaged("keyword search", lambda: ([], False))
    @_locked
    def scaled_search(
        self,
        queries: list[tuple[str, float]],
        k: int,
        allowed_entries: set[str] | None = None,
        phrases: list[str] | None = None,
    ) -> tuple[list[KeywordMatch], bool]:
        """Several weighted queries, each scored 0..1 by its own `max_score`; a passage keeps its best.

        Returns the matches and whether they are complete (no query was cut at k, so a passage
        missing here matched none of the words). All in one step, so an update cannot slip between.
        """
        weights = self.weights(allowed_entries, phrases)
        best: dict[str, KeywordMatch] = {}
        complete = True
        for text, weight in queries:
            scale = self.max_score(text)
            if not scale:
                continue
            matches = self.search(text, k, weights)
            complete &= len(matches) < k
            for m in matches:
                score = weight * min(1.0, m.score / scale)
                if m.passage_id not in best or score > best[m.passage_id].score:
                    best[m.passage_id] = KeywordMatch(m.passage_id, m.entry_id, score)
        return list(best.values()), complete

    @_untrusted_if_damaged("bm25", float)
    @_locked
    def max_score(self, query: str) -> float:
        """What a passage holding every query word once, at average length, would score (Lucene IDF sum).

        Dividing by it puts BM25 on a 0..1 scale that means "how much of the query matched", which a
        per-query min-max would erase: a passage that matched one stray word must not look perfect.
        """
        self._load()
        tokens = tokenize([query])[0] if query.strip() else []
        if self._retriever is None or not tokens:
            return 0.0
        vocab = self._retriever.vocab_dict
        indptr = self._retriever.scores["indptr"]
        n = float(self._retriever.scores["num_docs"])
        total = 0.0
        for token in set(tokens):
            t = vocab.get(token)
            df = float(indptr[t + 1] - indptr[t]) if t is not None else 0.0
            total += float(np.log(1.0 + (n - df + 0.5) / (df + 0.5)))
        return total

    def phrase_mask(self, phrases: list[str]) -> np.ndarray:
        """1 for passages containing every phrase (whole words, any case and spacing), else 0.

        Only passages holding every word of the phrases are read: the intersection of the words'
        posting lists, so a rare phrase costs little even over hundreds of thousands of passages.
        """
        from kb.search import contains_all

        corpus = self._corpus
        mask = np.zeros(len(corpus), dtype=np.float32)
        for row in self._holding_every_word(" ".join(phrases)):
            if contains_all(corpus.text(row), phrases):
                mask[row] = 1.0
        return mask

    def _holding_every_word(self, text: str) -> np.ndarray | range:
        """Passages whose keyword tokens include every token of `text` (all passages if it has none)."""
        tokens = set(tokenize([text])[0]) if text.strip() else set()
        if self._retriever is None or not tokens:
            return range(len(self._corpus))
        vocab, scores = self._retriever.vocab_dict, self._retriever.scores
        postings = []
        for token in tokens:
            column = vocab.get(token)
            if column is None:
                return np.zeros(0, dtype=np.int64)
            postings.append(np.asarray(scores["indices"][scores["indptr"][column] : scores["indptr"][column + 1]]))
        postings.sort(key=len)
        rows = postings[0]
        for other in postings[1:]:
            rows = np.intersect1d(rows, other, assume_unique=True)
        return rows

    @property
    def has_vectors(self) -> bool:
        """True when this folder keeps its passages' vectors (every row came with one)."""
        if not self._loaded:
            self._load()
        return self._corpus.dimension is not None

    @_untrusted_if_damaged("vectors.bin", lambda: None)
    def nearest(self, queries: np.ndarray, entry_ids: Iterable[str], k: int) -> list[list[VectorMatch]] | None:
        """The k passages most similar to each query among the passages of these entries, by exact
        search over the kept vectors; None when this folder has no vectors of the queries' size (or they
        turn out damaged: the vector index answers instead).

        No lock, like `text_of`: the corpus never changes in place. What a narrow filter costs here is
        reading its passages' vectors (1.5 KB each at 384 dimensions) and one matrix product.
        """
        if not self._loaded:
            self._load()
        corpus = self._corpus
        if corpus.dimension is None or np.shape(queries)[-1] != corpus.dimension:
            return None
        codes = np.fromiter((corpus.codes[e] for e in entry_ids if e in corpus.codes), dtype=np.int64)
        found = corpus.nearest(queries, codes, k)
        return [
            [
                VectorMatch(corpus.passage_id(row), corpus.entry_id(row), similarity)
                for row, similarity in zip(rows.tolist(), similarities.tolist(), strict=True)
            ]
            for rows, similarities in found
        ]

    @_untrusted_if_damaged("the passage files", lambda: None)
    def entry_passages(self, entry_id: str) -> tuple[list[str], list[str], np.ndarray] | None:
        """One entry's passage ids, texts and vectors, in passage order; None when not all are here."""
        if not self._loaded:
            self._load()
        block = self._corpus.passages_of(entry_id)
        return None if block is None or block[2] is None else block  # type: ignore[return-value]

    def vector_check(self) -> tuple[Callable[[Iterable[tuple[str, np.ndarray]]], str], ...] | None:
        """Two checks of what a vector index holds against this folder's copy of the vectors, one for the
        passages and one for the entries (each takes (id, vector) pairs and returns "" or what differs);
        None when this folder keeps no vectors."""
        if not self._loaded:
            self._load()
        corpus = self._corpus
        if corpus.dimension is None:
            return None
        return functools.partial(_compare_passages, corpus), functools.partial(_compare_entries, corpus)

    @_untrusted_if_damaged("texts.bin", lambda: None)
    def text_of(self, passage_id: str) -> str | None:
        """A passage's text, or None if this index does not hold it. No lock: the corpus never changes
        in place, so a vector search filling in its matches never waits for a keyword search."""
        if not self._loaded:
            self._load()
        corpus = self._corpus
        row = corpus.row_of(passage_id)
        return None if row is None else corpus.text(row)


def _directions_agree(stored: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Per row: do these vectors point the same way? (Chroma keeps cosine vectors normalised.)"""
    stored = stored / np.maximum(np.linalg.norm(stored, axis=1, keepdims=True), 1e-12)
    expected = expected / np.maximum(np.linalg.norm(expected, axis=1, keepdims=True), 1e-12)
    return np.einsum("ij,ij->i", stored, expected) >= 1.0 - 1e-4


def _compare_passages(corpus: Corpus, stored: Iterable[tuple[str, np.ndarray]], batch: int = 4096) -> str:
    """ "" when `stored` holds exactly the corpus's passages with the same vectors, else what differs."""
    seen = np.zeros(len(corpus), dtype=bool)
    ids: list[str] = []
    vectors: list[np.ndarray] = []

    def compare() -> str:
        rows_array = corpus.rows_of(ids)
        if (rows_array < 0).any():
            return f"passage '{ids[int(np.flatnonzero(rows_array < 0)[0])]}' is not in the copy"
        if any(len(v) != corpus.dimension for v in vectors):
            return "a stored vector has the wrong size"
        if seen[rows_array].any() or len(np.unique(rows_array)) != len(rows_array):
            return "a passage is stored twice"
        seen[rows_array] = True
        agree = _directions_agree(np.vstack(vectors), corpus.vectors_at(rows_array))
        return "" if agree.all() else f"passage '{ids[int(np.flatnonzero(~agree)[0])]}' has another vector"

    for passage_id, vector in stored:
        ids.append(passage_id)
        vectors.append(vector)
        if len(ids) == batch:
            if problem := compare():
                return problem
            ids, vectors = [], []
    if ids and (problem := compare()):
        return problem
    missing = int((~seen).sum())
    return f"{missing} passages are missing" if missing else ""


def _compare_entries(corpus: Corpus, stored: Iterable[tuple[str, np.ndarray]], batch: int = 2048) -> str:
    """ "" when `stored` holds one vector per entry of the corpus, the mean of its passages' vectors."""
    seen = np.zeros(len(corpus.entries), dtype=bool)
    ids: list[str] = []
    vectors: list[np.ndarray] = []

    def compare() -> str:
        codes = [corpus.codes.get(i) for i in ids]
        unknown = next((i for i, c in zip(ids, codes, strict=True) if c is None), None)
        if unknown is not None:
            return f"entry '{unknown}' is not in the copy"
        if any(len(v) != corpus.dimension for v in vectors):
            return "a stored entry vector has the wrong size"
        codes_array = np.asarray(codes, dtype=np.int64)
        if seen[codes_array].any() or len(np.unique(codes_array)) != len(codes_array):
            return "an entry is stored twice"
        seen[codes_array] = True
        starts, ends = corpus.starts[codes_array], corpus.starts[codes_array + 1]
        has = ends > starts  # an entry without passages has no vector of its own to compare
        if not has.any():
            return ""
        rows = np.concatenate([np.arange(a, b) for a, b in zip(starts[has], ends[has], strict=True)])
        sums = np.add.reduceat(corpus.vectors_at(rows), np.cumsum(np.r_[0, (ends - starts)[has][:-1]]), axis=0)
        agree = _directions_agree(np.vstack(vectors)[has], sums)
        return (
            "" if agree.all() else f"entry '{np.asarray(ids)[has][int(np.flatnonzero(~agree)[0])]}' has another vector"
        )

    for entry_id, vector in stored:
        ids.append(entry_id)
        vectors.append(vector)
        if len(ids) == batch:
            if problem := compare():
                return problem
            ids, vectors = [], []
    if ids and (problem := compare()):
        return problem
    missing = int((~seen).sum())
    return f"{missing} entries are missing" if missing else ""


def _chain_records(kept: Iterable[tuple[str, str]], skip: set[str], added: Iterable[tuple[str, str]]) -> Iterator[str]:
    """The lines of the kept entry records except those in `skip`, then the added ones."""
    for entry_id, line in kept:
        if entry_id not in skip:
            yield line
    for _, line in added:
        yield line
