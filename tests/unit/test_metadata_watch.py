"""The generation mark every search reads: from the embedded store's file, through one kept connection,
while the process has not loaded Chroma; never stale after a commit by another connection, a store made
again, or a deleted file; and never touching the file once Chroma is loaded in the process.

The watch's own behaviour is tested on small databases of Chroma's shape written by plain sqlite3 (this
test process has Chroma loaded, and two copies of SQLite must not share a file here); a fresh process
reads a real store's mark."""

from __future__ import annotations

import importlib
import json
import os
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from kb import chroma_metadata
from kb.chroma_checks import DATABASE, StoreDamaged
from kb.chroma_metadata import ChromaInProcess, FileChanges, MetadataWatch, before_chroma_loads


@pytest.fixture(autouse=True)
def chroma_not_loaded(monkeypatch):
    """As in a process that has not imported chromadb (a command such as `stats`)."""
    monkeypatch.setattr("kb.chroma_metadata._chroma_loading", False)
    monkeypatch.setattr("kb.chroma_metadata._chroma_loaded", lambda: chroma_metadata._chroma_loading)


def a_store(folder: Path, mark: str, *, wal: bool = False) -> sqlite3.Connection:
    """A database with Chroma's two metadata tables, its entries collection marked `mark`; the writer."""
    folder.mkdir(parents=True, exist_ok=True)
    writer = sqlite3.connect(folder / DATABASE, check_same_thread=False)
    if wal:
        writer.execute("PRAGMA journal_mode=WAL")
    writer.executescript(
        "CREATE TABLE collections (id TEXT, name TEXT);"
        "CREATE TABLE collection_metadata (collection_id TEXT, key TEXT, str_value TEXT);"
        "INSERT INTO collections VALUES ('c1', 'entries');"
        f"INSERT INTO collection_metadata VALUES ('c1', 'generation', '{mark}');"
    )
    writer.commit()
    return writer


def mark(writer: sqlite3.Connection, value: str) -> None:
    writer.execute("UPDATE collection_metadata SET str_value = ? WHERE key = 'generation'", (value,))
    writer.commit()


@pytest.mark.parametrize("wal", [False, True], ids=["rollback journal, as Chroma", "write-ahead log"])
def test_every_commit_by_another_connection_is_seen(tmp_path, wal):
    writer = a_store(tmp_path, "one", wal=wal)
    watch = MetadataWatch(tmp_path, "entries")
    assert watch.read() == {"generation": "one"}
    for value in ("two", "three", "four"):  # commits closer together than the file's time stamps
        mark(writer, value)
        assert watch.read() == {"generation": value}
    assert MetadataWatch(tmp_path, "other").read() is None


def test_an_unchanged_store_is_not_opened_again(tmp_path, monkeypatch):
    writer = a_store(tmp_path, "one")
    watch = MetadataWatch(tmp_path, "entries")
    watch.read()
    opened = []
    real_connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: opened.append(a) or real_connect(*a, **k))
    assert [watch.read() for _ in range(5)] == [{"generation": "one"}] * 5
    mark(writer, "two")
    assert watch.read() == {"generation": "two"}
    assert opened == [], "a commit is seen through the kept connection"


def test_a_store_deleted_and_made_again_is_read_afresh(tmp_path):
    a_store(tmp_path, "old").close()
    watch = MetadataWatch(tmp_path, "entries")
    assert watch.read() == {"generation": "old"}
    (tmp_path / DATABASE).unlink()  # the watch still holds the old file: no read in between
    a_store(tmp_path, "new").close()
    assert watch.read() == {"generation": "new"}


def test_a_missing_or_garbled_file_is_damage_not_a_crash(tmp_path):
    a_store(tmp_path, "one").close()
    watch = MetadataWatch(tmp_path, "entries")
    watch.read()
    (tmp_path / DATABASE).unlink()
    with pytest.raises(StoreDamaged, match="missing"):
        watch.read()
    (tmp_path / DATABASE).write_bytes(b"this is not a database")
    with pytest.raises(StoreDamaged):
        watch.read()


def test_readers_on_many_threads_see_each_mark_whole_while_a_writer_commits(tmp_path):
    writer = a_store(tmp_path, "0")
    watch = MetadataWatch(tmp_path, "entries")
    seen: set[str] = set()
    errors: list[BaseException] = []
    done = threading.Event()

    def read_until_done() -> None:
        try:
            while not done.is_set():
                seen.add(watch.read()["generation"])
        except BaseException as exc:  # reported below, with the thread's own failure
            errors.append(exc)

    readers = [threading.Thread(target=read_until_done) for _ in range(6)]
    for reader in readers:
        reader.start()
    for n in range(1, 40):
        mark(writer, str(n))
    done.set()
    for reader in readers:
        reader.join()
    assert errors == []
    assert seen <= {str(n) for n in range(40)}
    assert watch.read() == {"generation": "39"}


def test_once_chroma_loads_a_watch_closes_and_reads_nothing(tmp_path, monkeypatch):
    a_store(tmp_path, "one").close()
    opened = []
    real_connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: opened.append(real_connect(*a, **k)) or opened[-1])
    watch = MetadataWatch(tmp_path, "entries")
    watch.read()
    assert len(opened) == 1, "the watch keeps one connection"
    before_chroma_loads()  # what kb.chroma_client calls before it imports chromadb
    with pytest.raises(sqlite3.ProgrammingError, match="closed"):
        opened[0].execute("SELECT 1")  # the connection is closed before Chroma opens the file
    with pytest.raises(ChromaInProcess):
        watch.read()


def test_a_process_without_chroma_reads_the_stores_mark_and_never_loads_chromadb(kb, settings):
    """`stats`, `show` and the like answer from the mirror; the mark they check comes from the file."""
    script = (
        "import json, sys\n"
        "from kb.config import Settings\n"
        "from kb.parts import Parts\n"
        "from kb.embedder import HashingEmbedder\n"
        f"settings = Settings(entries_dir={str(settings.entries_dir)!r}, index_dir={str(settings.index_dir)!r},"
        " chroma_url=None, model='hashing-bow')\n"
        "parts = Parts(settings, embedder=HashingEmbedder())\n"
        "print(json.dumps([parts.generation(), parts.generation(), 'chromadb' in sys.modules]))\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("KB_")}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, check=True)
    first, again, loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert first == again == kb.parts.index.generation()
    assert loaded is False


def test_chromadb_imported_by_anything_stops_the_watch(tmp_path, monkeypatch):
    """Not only kb.chroma_client's import: a chromadb module in the process is enough."""
    a_store(tmp_path, "one").close()
    watch = MetadataWatch(tmp_path, "entries")
    assert watch.read() == {"generation": "one"}
    monkeypatch.undo()  # the real rule again
    monkeypatch.setattr("kb.chroma_metadata._chroma_loading", False)  # kb.chroma_client did not import it
    importlib.import_module("chromadb")  # as a library of its own might
    with pytest.raises(ChromaInProcess):
        watch.read()


# ----------------------------------------------------------------- a process that has loaded Chroma


def written_long_ago(path: Path) -> None:
    """As if the file had last been written a minute ago: outside the racy time since its last write."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns - 60 * 10**9))


def test_chroma_is_asked_for_the_mark_again_only_after_a_commit(tmp_path):
    writer = a_store(tmp_path, "one")
    database = tmp_path / DATABASE
    changes = FileChanges(database)
    asked: list[str] = []

    def ask() -> str:
        asked.append(writer.execute("SELECT str_value FROM collection_metadata").fetchone()[0])
        return asked[-1]

    written_long_ago(database)
    assert changes.unless_changed(ask) == "one"
    assert changes.unless_changed(ask) == "one"
    assert len(asked) == 1, "nothing committed: not asked again"
    for value in ("two", "three", "four"):  # commits closer together than the file's time stamps
        mark(writer, value)
        assert changes.unless_changed(ask) == value
    written_long_ago(database)
    assert changes.unless_changed(ask) == "four"
    count = len(asked)
    assert changes.unless_changed(ask) == "four" and len(asked) == count


def test_a_file_written_moments_ago_or_beside_a_write_ahead_log_is_asked_about_every_time(tmp_path):
    """A second commit within one tick of the file's time stamps would leave them as they were; and in WAL
    mode a commit goes to the log, leaving the file alone."""
    a_store(tmp_path, "one").close()
    changes = FileChanges(tmp_path / DATABASE)
    asked: list[int] = []
    for _ in range(3):
        changes.unless_changed(lambda: asked.append(1))
    assert len(asked) == 3, "written moments ago"
    (tmp_path / "wal").mkdir()
    writer = a_store(tmp_path / "wal", "one", wal=True)
    written_long_ago(tmp_path / "wal" / DATABASE)
    in_wal_mode = FileChanges(tmp_path / "wal" / DATABASE)
    for _ in range(3):
        in_wal_mode.unless_changed(lambda: asked.append(1))
    assert len(asked) == 6, "a write-ahead log beside the file"
    writer.close()


def test_a_store_made_again_or_gone_is_asked_about(tmp_path):
    a_store(tmp_path, "one").close()
    database = tmp_path / DATABASE
    written_long_ago(database)
    changes = FileChanges(database)
    assert changes.unless_changed(lambda: "one") == "one"
    assert changes.unless_changed(lambda: "not asked") == "one"
    # Replaced while the answer is kept, by a file of the same size and time stamps.
    (tmp_path / "again").mkdir()
    a_store(tmp_path / "again", "two").close()
    os.utime(tmp_path / "again" / DATABASE, ns=(database.stat().st_atime_ns, database.stat().st_mtime_ns))
    assert (tmp_path / "again" / DATABASE).stat().st_size == database.stat().st_size
    os.replace(tmp_path / "again" / DATABASE, database)
    assert changes.unless_changed(lambda: "made again") == "made again"
    database.unlink()
    assert changes.unless_changed(lambda: None) is None  # no file: asked
    assert changes.unless_changed(lambda: "gone") == "gone"  # and asked again
