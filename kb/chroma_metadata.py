"""A collection's own metadata (the model, the generation mark) read from the embedded store's database
file, for a process that has not loaded Chroma; and, for one that has, whether that file changed:

    watch = MetadataWatch(embedded_path(index_dir), "lighthouse-entries")
    watch.read()     # {"model": ..., "generation": ...}; None: no such collection
    changes = FileChanges(embedded_path(index_dir) / DATABASE)
    changes.unless_changed(ask_chroma)   # asks Chroma again only once the file may have changed

A command such as `stats` or `show` asks before every search, and then never imports chromadb; the app,
which has loaded Chroma, asks Chroma only after a commit to the file.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from kb.chroma_checks import DATABASE, StoreDamaged, connect_read_only


class ChromaInProcess(Exception):
    """Chroma is loaded in this process: its database file is read through Chroma only."""


# Chroma's Rust core carries its own copy of SQLite, and two copies in one process undo each other's
# POSIX locks on the same file (kb.chroma_sharing). A kept connection would be open across Chroma's calls,
# so the watch keeps one only while chromadb is not loaded, and closes it before chromadb loads.
_chroma_loading = False
T = TypeVar("T")
_watches: weakref.WeakSet[MetadataWatch] = weakref.WeakSet()


def _chroma_loaded() -> bool:
    """Whether Chroma is (or is about to be) loaded in this process, by kb.chroma_client or anything else."""
    return _chroma_loading or "chromadb" in sys.modules


def before_chroma_loads() -> None:
    """Called once, just before this process imports chromadb (kb.chroma_client): the watches close their
    connections, and read nothing from then on."""
    global _chroma_loading
    _chroma_loading = True
    for watch in list(_watches):
        watch.close()


class MetadataWatch:
    """A collection's own metadata (its text values: the model, the generation mark) from the embedded
    store's database file, for a process that asks before every search and has not loaded Chroma (a
    command such as `stats`, which then never imports chromadb). One connection is kept, and the
    metadata read again only when SQLite's `data_version` says another connection committed since, or
    the file was replaced; asking costs a `stat` and one pragma rather than opening the file (about
    0.7 ms). Safe across threads.

    `read` returns None when there is no such collection, raises StoreDamaged when the file cannot be
    read and ChromaInProcess once this process has loaded Chroma."""

    def __init__(self, folder: Path, collection: str):
        self._database = folder / DATABASE
        self._collection = collection
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._file: tuple[int, int] | None = None  # device and inode of the open file
        self._version: int | None = None
        self._metadata: dict[str, str] | None = None
        _watches.add(self)

    def read(self) -> dict[str, str] | None:
        with self._lock:
            if _chroma_loaded():
                raise ChromaInProcess()
            try:
                stat = os.stat(self._database)
            except OSError:
                self._close()
                raise StoreDamaged(f"{DATABASE} is missing") from None
            # While the connection holds the file, its inode cannot be reused: another inode at the path
            # is another store (deleted and made again). Every commit to this one moves `data_version`.
            file = (stat.st_dev, stat.st_ino)
            if self._db is None or file != self._file:
                self._close()
                self._db, self._file = connect_read_only(self._database, shared=True), file
            try:
                version = self._db.execute("PRAGMA data_version").fetchone()[0]
                if version != self._version:
                    self._metadata, self._version = _metadata(self._db, self._collection), version
            except sqlite3.Error as exc:
                self._version = None  # read afresh next time
                raise StoreDamaged(f"{DATABASE} cannot be read ({exc})") from None
            return self._metadata

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._db is not None:
            self._db.close()
        self._db, self._file, self._version, self._metadata = None, None, None, None


def _metadata(db: sqlite3.Connection, collection: str) -> dict[str, str] | None:
    query = (
        "SELECT m.key, m.str_value FROM collections c LEFT JOIN collection_metadata m ON m.collection_id = c.id "
        "WHERE c.name = ?"
    )
    try:
        rows = db.execute(query, (collection,)).fetchall()
    except sqlite3.Error as exc:
        raise StoreDamaged(f"{DATABASE} cannot be read ({exc})") from None
    if not rows:
        return None
    return {key.decode(): value.decode() for key, value in rows if key is not None and value is not None}


# A file written less than this long before it was looked at may be written again within the same tick of its
# time stamps, unseen (git's "racy" files): longer than any local file system's granularity (FAT's 2 s).
RACY_NS = 3_000_000_000


class FileChanges:
    """Whether the embedded store's database file may have changed, for a process that has loaded Chroma
    and so asks Chroma for the generation mark (about 0.5 ms; a search asks every time).

    Chroma keeps the file in rollback-journal mode, where every commit writes to it: while the file, its
    size and its modification time are the ones seen when Chroma was last asked, nothing was committed
    since, and the answer stands. Only `stat` is used: opening and closing the file would drop the locks
    Chroma's own SQLite holds on it (kb.chroma_sharing). A file written in the last RACY_NS, a write-ahead
    log beside it (a commit there leaves the file alone) or no file at all: Chroma is asked every time.
    Safe across threads."""

    def __init__(self, database: Path):
        self._database = database
        self._log = database.with_name(database.name + "-wal")
        self._lock = threading.Lock()
        self._seen: tuple[int, int, int, int] | None = None  # the file as it was when Chroma last answered
        self._answer: Any = None

    def unless_changed(self, ask: Callable[[], T]) -> T:
        """`ask()`'s answer as last given, unless the file may have changed since; then `ask()` again."""
        seen = self._look()
        with self._lock:
            if seen is not None and seen == self._seen:
                return self._answer
        answer = ask()  # the file was looked at before asking: a commit meanwhile shows as a change next time
        with self._lock:
            self._seen, self._answer = seen, answer
        return answer

    def _look(self) -> tuple[int, int, int, int] | None:
        """The file (device, inode, size, modification time); None where that cannot tell a change."""
        try:
            stat = os.stat(self._database)
        except OSError:
            return None
        if time.time_ns() - stat.st_mtime_ns < RACY_NS or os.path.exists(self._log):
            return None
        return stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns
