"""Checks of the embedded Chroma store, made in plain Python before Chroma's own code touches it.

A damaged Chroma file can make Chroma's Rust core panic, or crash the whole process in its HNSW code,
where no `except` can help; and Chroma rewrites parts of its files each time it opens them, so no
checksum recorded by Lighthouse could seal them. So the files are read here, with sqlite3 and NumPy,
which report damage as errors rather than crashes:

- the database: SQLite's integrity check of the tables Chroma reads when it opens (the whole database
  with `deep`), and every text cell of them decoded as UTF-8 (JSON cells parsed);
- each vector segment's HNSW files: the header agrees with itself and with the files' sizes, every
  link points at an element that exists, every label is in the label map, every vector is finite;
- `stored_vectors` reads back what the store holds (HNSW elements, then the log Chroma has not yet
  folded into the graph) so the caller can compare it with its own copy of the vectors.

Nothing here imports chromadb. The formats are those of the pinned chromadb (its hnswlib files:
header.bin, data_level0.bin, length.bin, link_lists.bin, index_metadata.pickle).
"""

from __future__ import annotations

import io
import json
import pickle
import sqlite3
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from kb.arrays import distinct
from kb.checked_files import store_damaged
from kb.chroma_sharing import own_read

DATABASE = "chroma.sqlite3"
HNSW_FILES = ("header.bin", "data_level0.bin", "length.bin", "link_lists.bin")
LABEL_MAP = "index_metadata.pickle"
# Tables Chroma reads whenever it opens a store, and their text columns that hold JSON.
CONTROL_TABLES = {
    "tenants": (),
    "databases": (),
    "collections": ("config_json_str", "schema_str"),
    "collection_metadata": (),
    "segments": (),
    "segment_metadata": (),
    "max_seq_id": (),
    "embeddings_queue_config": ("config_json_str",),
}
QUEUE_ADD, QUEUE_UPDATE, QUEUE_UPSERT, QUEUE_DELETE = 0, 1, 2, 3  # Chroma's log operations
_HEADER = struct.Struct("<iQQQQQQiIQQQdQ")  # hnswlib's header as Chroma writes it: 100 bytes
_DELETED = 0x01  # hnswlib marks a deleted element in the third byte of its level-0 link header
_CHUNK = 20_000  # elements checked at a time, so a 400,000-element graph needs no copy of itself


class StoreDamaged(Exception):
    """The embedded store failed a check; the message says which file and what is wrong."""


@dataclass(frozen=True)
class VectorSegment:
    """Where one collection's vectors live: its HNSW folder and its log topic in the database."""

    collection: str
    folder: Path
    topic: str
    flushed_up_to: int  # the log's sequence number the HNSW files hold everything up to (0: none)


OPEN, SYNC, DEEP = "open", "sync", "deep"  # how thoroughly: before an open, in each sync, after a failure
TRUSTED = "trusted"  # not at all: the files are as a sync left them after checking them (kb.checked_files)


def check_store(folder: Path, *, level: str = OPEN) -> None:
    """Raise StoreDamaged unless the embedded store in `folder` (beside chroma.sqlite3) reads back whole.

    Every level checks the tables Chroma reads when it opens (with their indexes, every text cell decoded)
    and each HNSW file. SYNC adds SQLite's quick check of every page; DEEP, run when Chroma has failed
    during a sync, SQLite's full integrity check (indexes against tables) and every text cell of every
    table. The caller handles a missing database itself (a missing index is not a damaged one).
    TRUSTED reads nothing: the caller has found the files as a sync left them after checking them.
    """
    if level == TRUSTED:
        return
    with own_read():
        db = connect_read_only(folder / DATABASE)
        try:
            _check_database(db, level)
            segments = vector_segments(folder, db)
        finally:
            db.close()
    for segment in segments:
        check_hnsw(segment)


def connect_read_only(database: Path, *, shared: bool = False) -> sqlite3.Connection:
    """A read-only connection; `shared` lets other threads use it (the caller serialises them)."""
    if not database.is_file():
        raise StoreDamaged(f"{DATABASE} is missing")
    db = None
    try:
        db = sqlite3.connect(  # as a URI, so that any path works, '#' too
            f"{database.resolve().as_uri()}?mode=ro", uri=True, timeout=30, check_same_thread=not shared
        )
        db.text_factory = bytes  # decoded here, so bad UTF-8 is found rather than replaced
        db.execute("SELECT count(*) FROM sqlite_schema").fetchone()
    except sqlite3.Error as exc:
        if db is not None:
            db.close()  # now, within the caller's turn (kb.chroma_sharing), not whenever it is collected
        raise StoreDamaged(f"{DATABASE} is not a readable database ({exc})") from None
    return db


def _check_database(db: sqlite3.Connection, level: str) -> None:
    try:
        if level == SYNC:
            _integrity(db, "PRAGMA quick_check")
        if level == DEEP:
            _integrity(db, "PRAGMA integrity_check")
            tables = {name: CONTROL_TABLES.get(name, ()) for name in _tables(db)}
        else:
            tables = CONTROL_TABLES
        for table, json_columns in tables.items():
            if level != DEEP:  # SQLite checks one table and its indexes: a few pages' worth of reading
                _integrity(db, f'PRAGMA integrity_check("{table}")')
            _check_cells(db, table, json_columns)
    except sqlite3.Error as exc:
        raise StoreDamaged(f"{DATABASE} cannot be read ({exc})") from None


def _tables(db: sqlite3.Connection) -> list[str]:
    """Every ordinary table (a full-text index's own tables included, its virtual table not)."""
    rows = db.execute(
        "SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%' "
        "AND sql NOT LIKE 'CREATE VIRTUAL TABLE%'"
    )
    return [name.decode("utf-8", "replace") for (name,) in rows]


def _integrity(db: sqlite3.Connection, pragma: str) -> None:
    found = [row[0].decode("utf-8", "replace") for row in db.execute(pragma)]
    if found != ["ok"]:
        raise StoreDamaged(f"{DATABASE} fails SQLite's integrity check ({found[0][:120]})")


def _check_cells(db: sqlite3.Connection, table: str, json_columns: tuple[str, ...], batch: int = 20_000) -> None:
    """Every text cell of the table is UTF-8, and those of `json_columns` are JSON. Cells are decoded many
    at a time (one join and one decode in C), and one by one only to name a bad one."""
    try:
        columns = [row[1].decode("utf-8") for row in db.execute(f'PRAGMA table_info("{table}")')]
    except (sqlite3.Error, UnicodeDecodeError):
        raise StoreDamaged(f"{DATABASE} has no readable table {table}") from None
    for column in columns:
        cursor = db.execute(f'SELECT "{column}" FROM "{table}" WHERE typeof("{column}") = \'text\'')
        while values := [value for (value,) in cursor.fetchmany(batch)]:
            try:
                b"\n".join(values).decode("utf-8")
                if column in json_columns:
                    for value in values:
                        json.loads(value) if value else None
            except (UnicodeDecodeError, ValueError):
                raise StoreDamaged(f"{DATABASE}: a value in {table}.{column} is garbled") from None


# --------------------------------------------------------------------------- HNSW


def vector_segments(folder: Path, db: sqlite3.Connection | None = None) -> list[VectorSegment]:
    """Each collection's vector segment: its HNSW folder and its log topic."""
    if db is None:
        with own_read():
            own = connect_read_only(folder / DATABASE)
            try:
                return vector_segments(folder, own)
            finally:
                own.close()
    try:
        rows = db.execute(
            "SELECT c.name, c.id, s.id, coalesce(m.seq_id, 0) FROM collections c "
            "JOIN segments s ON s.collection = c.id AND s.scope = 'VECTOR' "
            "LEFT JOIN max_seq_id m ON m.segment_id = s.id"
        ).fetchall()
    except sqlite3.Error as exc:
        raise StoreDamaged(f"{DATABASE}: the collections cannot be read ({exc})") from None
    segments = []
    for name, collection_id, segment_id, flushed in rows:
        try:
            name, collection_id, segment_id = (v.decode("utf-8") for v in (name, collection_id, segment_id))
        except UnicodeDecodeError:
            raise StoreDamaged(f"{DATABASE}: a collection's name or id is garbled") from None
        topic = f"persistent://default/default/{collection_id}"
        segments.append(VectorSegment(name, folder / segment_id, topic, int(flushed or 0)))
    return segments


@dataclass(frozen=True)
class Header:
    """The fields of an hnswlib header.bin that say how the other files are laid out."""

    max_elements: int
    count: int
    element_size: int  # bytes per element in data_level0.bin
    label_offset: int
    vector_offset: int
    max_level: int
    entry_point: int
    max_links: int  # per element on the upper levels
    max_links0: int  # per element on level 0

    @property
    def dimension(self) -> int:
        return (self.label_offset - self.vector_offset) // 4


def _header(folder: Path) -> Header:
    raw = _read(folder, "header.bin")
    if len(raw) != _HEADER.size:
        raise StoreDamaged(f"{folder.name}/header.bin has {len(raw)} bytes, not {_HEADER.size}")
    (version, offset0, max_elements, count, size, label_at, data_at, level, entry, max_m, max_m0, m, _, _) = (
        _HEADER.unpack(raw)
    )
    header = Header(max_elements, count, size, label_at, data_at, level, entry, max_m, max_m0)
    sane = (
        version == 1
        and offset0 == 0
        and count <= max_elements
        and 0 < max_m == m <= 4096
        and max_m0 == 2 * max_m
        and data_at == 4 + 4 * max_m0
        and label_at > data_at
        and (label_at - data_at) % 4 == 0
        and size == label_at + 8
        and (count == 0 or (0 <= entry < count and 0 <= level < 64))
    )
    if not sane:
        raise StoreDamaged(f"{folder.name}/header.bin is garbled")
    return header


def _read(folder: Path, name: str) -> bytes:
    try:
        return (folder / name).read_bytes()
    except OSError as exc:
        raise StoreDamaged(f"{folder.name}/{name} cannot be read ({exc.strerror or exc})") from None


def check_hnsw(segment: VectorSegment) -> None:
    """The HNSW files of one vector segment agree with each other; raise StoreDamaged where they do not."""
    folder = segment.folder
    present = [name for name in HNSW_FILES if (folder / name).exists()]
    if not present:
        if segment.flushed_up_to > 0:  # Chroma wrote a graph here and the log no longer holds those vectors
            raise StoreDamaged(f"the vector files of {segment.collection} are missing")
        return  # nothing folded into a graph yet: the vectors are all in the log
    if len(present) < len(HNSW_FILES):
        missing = sorted(set(HNSW_FILES) - set(present))
        raise StoreDamaged(f"{folder.name}/{missing[0]} is missing")
    header = _header(folder)
    if header.count == 0:
        return
    if not (folder / LABEL_MAP).is_file():
        raise StoreDamaged(f"{folder.name}/{LABEL_MAP} is missing")
    norms = np.fromfile(folder / "length.bin", dtype="<f4", count=header.count)
    if len(norms) < header.count or not np.all(np.isfinite(norms)):
        raise StoreDamaged(f"{folder.name}/length.bin is truncated or garbled")
    labels = _check_level0(folder, header)
    _check_upper_levels(folder, header)
    _check_label_map(folder, labels)


def _level0_blocks(folder: Path, header: Header) -> Iterator[tuple[int, np.ndarray]]:
    """data_level0.bin's elements, _CHUNK at a time, as (first element, one row of bytes per element).
    Read, not mapped: the pages of a mapped 700 MB graph would stay resident until the process ends."""
    path = folder / "data_level0.bin"
    size = path.stat().st_size
    if size < header.count * header.element_size or size % header.element_size:
        raise StoreDamaged(f"{folder.name}/data_level0.bin is truncated")
    with path.open("rb") as file:
        for start in range(0, header.count, _CHUNK):
            count = min(_CHUNK, header.count - start)
            data = np.fromfile(file, dtype=np.uint8, count=count * header.element_size)
            if len(data) < count * header.element_size:
                raise StoreDamaged(f"{folder.name}/data_level0.bin is truncated")
            yield start, data.reshape(count, header.element_size)


def _check_level0(folder: Path, header: Header) -> np.ndarray:
    """Links in range and vectors finite, a chunk of elements at a time; returns the live elements' labels
    (-1 for deleted ones)."""
    name = folder.name
    labels = np.empty(header.count, dtype=np.int64)
    for start, block in _level0_blocks(folder, header):
        counts = block[:, 0:2].copy().view("<u2")[:, 0]
        deleted = (block[:, 2] & _DELETED).astype(bool)
        links = block[:, 4 : header.vector_offset].copy().view("<u4")
        used = np.arange(header.max_links0)[None, :] < counts[:, None]
        vectors = block[:, header.vector_offset : header.label_offset].copy().view("<f4")
        if (counts > header.max_links0).any() or (links[used] >= header.count).any():
            raise StoreDamaged(f"{name}/data_level0.bin is garbled (a link points nowhere)")
        if not np.isfinite(vectors).all():
            raise StoreDamaged(f"{name}/data_level0.bin is garbled (a vector is not a number)")
        found = block[:, header.label_offset : header.label_offset + 8].copy().view("<i8")[:, 0]
        labels[start : start + len(block)] = np.where(deleted, -1, found)
    return labels


def _check_upper_levels(folder: Path, header: Header) -> None:
    """link_lists.bin: per element, its size in bytes, then that many bytes of links for levels above 0."""
    data = _read(folder, "link_lists.bin")
    per_level = 4 + 4 * header.max_links
    position = 0
    for _ in range(header.count):
        if position + 4 > len(data):
            raise StoreDamaged(f"{folder.name}/link_lists.bin is truncated")
        (size,) = struct.unpack_from("<I", data, position)
        position += 4
        if size % per_level or size // per_level > header.max_level or position + size > len(data):
            raise StoreDamaged(f"{folder.name}/link_lists.bin is garbled")
        if size:
            levels = np.frombuffer(data, dtype="<u4", count=size // 4, offset=position).reshape(-1, per_level // 4)
            counts = levels[:, 0] & 0xFFFF
            used = np.arange(header.max_links)[None, :] < counts[:, None]
            if (counts > header.max_links).any() or (levels[:, 1:][used] >= header.count).any():
                raise StoreDamaged(f"{folder.name}/link_lists.bin is garbled (a link points nowhere)")
        position += size
    if position != len(data):
        raise StoreDamaged(f"{folder.name}/link_lists.bin has bytes its elements do not account for")


class _PlainUnpickler(pickle.Unpickler):
    """Builtin containers and scalars only: a label map is never a reason to run code."""

    def find_class(self, module: str, name: str):  # noqa: ANN201
        raise pickle.UnpicklingError(f"{module}.{name} is not allowed in a label map")


def _label_map(folder: Path) -> dict[str, int]:
    try:
        data = _PlainUnpickler(io.BytesIO(_read(folder, LABEL_MAP))).load()
        mapping = data["id_to_label"]
        if not isinstance(mapping, dict) or not all(
            isinstance(k, str) and isinstance(v, int) for k, v in mapping.items()
        ):
            raise ValueError("id_to_label is not a map of ids to labels")
    except (pickle.UnpicklingError, EOFError, ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
        raise StoreDamaged(f"{folder.name}/{LABEL_MAP} is garbled ({exc.__class__.__name__})") from None
    return mapping


def _check_label_map(folder: Path, labels: np.ndarray) -> None:
    live = labels[labels >= 0]
    mapped = np.fromiter(_label_map(folder).values(), dtype=np.int64)
    if len(distinct(live)) != len(live) or not np.array_equal(np.sort(live), np.sort(mapped)):
        raise StoreDamaged(f"{folder.name}: the graph's labels and {LABEL_MAP} disagree")


# --------------------------------------------------------------------------- what the store holds


def stored_vectors(folder: Path, collection: str) -> Iterator[tuple[str, np.ndarray]]:
    """(record id, vector) for every record the collection holds now, as its queries see it: the HNSW
    elements, then the log entries written since the graph was last saved (the later one wins). Vectors
    are returned as stored; compare directions, not lengths. Call after `check_store`.

    Streamed a chunk of elements at a time: at 400,000 passages the vectors alone are 600 MB, which
    a check of the whole store must not hold at once. The log is read first (it is small: Chroma folds
    it into the graph every thousand or so writes), so that the elements it replaces are left out."""
    with own_read():  # not across the yields below: the caller's work between them is its own
        db = connect_read_only(folder / DATABASE)
        try:
            segment = next((s for s in vector_segments(folder, db) if s.collection == collection), None)
            logged = _logged(db, segment) if segment else {}
        finally:
            db.close()  # before the graph is streamed: it is read from its own files
    if segment is None:
        return
    if (segment.folder / "header.bin").exists():
        header = _header(segment.folder)
        if header.count:
            # Labels to records as two sorted arrays, not a dict: 400,000 entries of Python objects
            # would cost more than the vectors being checked.
            mapping = _label_map(segment.folder)
            records = list(mapping)
            mapped = np.fromiter(mapping.values(), dtype=np.int64, count=len(records))
            del mapping
            order = np.argsort(mapped, kind="stable")
            mapped = mapped[order]
            seen = np.zeros(len(records), dtype=bool)
            for _, block in _level0_blocks(segment.folder, header):
                live = ~(block[:, 2] & _DELETED).astype(bool)
                labels = block[:, header.label_offset : header.label_offset + 8].copy().view("<i8")[:, 0]
                vectors = block[:, header.vector_offset : header.label_offset].copy().view("<f4")
                at = np.minimum(np.searchsorted(mapped, labels), max(len(mapped) - 1, 0))
                known = live & (mapped[at] == labels) if len(mapped) else np.zeros(len(labels), dtype=bool)
                for row, index in zip(np.flatnonzero(known).tolist(), order[at[known]].tolist(), strict=True):
                    record = records[index]
                    if not seen[index] and record not in logged:
                        seen[index] = True
                        yield record, vectors[row]
    for record, vector in logged.items():
        if vector is not None:
            yield record, vector


def _logged(db: sqlite3.Connection, segment: VectorSegment) -> dict[str, np.ndarray | None]:
    """The log's records written since the graph was saved, the latest of each; None: deleted since."""
    logged: dict[str, np.ndarray | None] = {}
    try:
        rows = db.execute(
            "SELECT operation, id, vector FROM embeddings_queue WHERE topic = ? AND seq_id > ? ORDER BY seq_id",
            (segment.topic, segment.flushed_up_to),
        )
        for operation, record_id, blob in rows:
            record = record_id.decode("utf-8", "replace")
            if operation == QUEUE_DELETE:
                logged[record] = None
            elif blob is not None:  # a change of metadata alone keeps the vector
                logged[record] = np.frombuffer(blob, dtype="<f4")
    except sqlite3.Error as exc:
        raise StoreDamaged(f"{DATABASE}: the log cannot be read ({exc})") from None
    return logged


# --------------------------------------------------------------------------- the embedded store of an index folder


def embedded_path(index_dir: Path | str) -> Path:
    return Path(index_dir) / "chroma"


def has_embedded(index_dir: Path | str) -> bool:
    """True when an embedded store was ever made here (even if its database is gone now)."""
    path = embedded_path(index_dir)
    return path.is_dir() and any(path.iterdir())


def check_embedded(index_dir: Path | str, *, level: str = OPEN) -> None:
    """IndexDamaged unless the embedded store reads back whole at this level of thoroughness (see
    kb.chroma_checks); nothing to check where there is no store."""
    path = embedded_path(index_dir)
    if (path / DATABASE).is_file():
        try:
            check_store(path, level=level)
        except StoreDamaged as exc:
            raise store_damaged(index_dir, f"the index is damaged ({exc})", where=path) from None


def embedded_vectors(index_dir: Path | str, collection: str) -> Iterator[tuple[str, np.ndarray]]:
    """What the embedded store holds for one collection, read from its files: (record id, vector)."""
    try:
        yield from stored_vectors(embedded_path(index_dir), collection)
    except (StoreDamaged, OSError, ValueError) as exc:
        raise store_damaged(index_dir, f"the index's vectors cannot be read back ({exc})") from None
