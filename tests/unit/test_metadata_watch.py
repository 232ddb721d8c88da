"""The generation mark every search reads: from the embedded store's file, through one kept connection,
and never stale after a commit by another connection, a store made again, or a deleted file."""

from __future__ import annotations

import shutil
import sqlite3
import threading

import pytest

from kb import KnowledgeBase
from kb.chroma_checks import DATABASE, MetadataWatch, StoreDamaged, embedded_path
from kb.entries import Entry
from kb.vector_index import clear_client_cache


def entries_collection(kb: KnowledgeBase) -> str:
    return kb.parts.collection_names[1]


def a_save(kb: KnowledgeBase, title: str) -> None:
    note = Entry(
        id="watch-note",
        title=title,
        summary="A note written to move the generation mark.",
        kind="experiment",
        outcome="failed",
        organisation="Org",
        status="published",
        visibility="public",
    )
    kb.save(note)


def test_the_mark_follows_a_commit_made_through_another_connection(kb, settings, fake_embedder):
    watch = MetadataWatch(embedded_path(settings.index_dir), entries_collection(kb))
    before = watch.read()["generation"]
    clear_client_cache()  # the writer gets a Chroma client of its own, as another process would
    a_save(KnowledgeBase(settings, embedder=fake_embedder), "First")
    after = watch.read()["generation"]
    assert after != before
    a_save(KnowledgeBase(settings, embedder=fake_embedder), "Second")
    assert watch.read()["generation"] not in (before, after)


def test_an_unchanged_store_is_not_opened_again(kb, settings, monkeypatch):
    watch = MetadataWatch(embedded_path(settings.index_dir), entries_collection(kb))
    first = watch.read()
    opened = []
    real_connect = sqlite3.connect
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: opened.append(a) or real_connect(*a, **k))
    assert [watch.read() for _ in range(5)] == [first] * 5
    assert opened == []


def test_a_store_made_again_is_read_afresh(kb, settings, fake_embedder, tmp_path):
    store = embedded_path(settings.index_dir)
    watch = MetadataWatch(store, entries_collection(kb))
    old = watch.read()["generation"]
    clear_client_cache()
    shutil.rmtree(store)
    with pytest.raises(StoreDamaged, match="missing"):
        watch.read()
    KnowledgeBase(settings, embedder=fake_embedder).sync()
    clear_client_cache()
    new = watch.read()["generation"]
    assert new != old
    assert new == KnowledgeBase(settings, embedder=fake_embedder).parts.index.generation()


def test_a_file_that_is_not_a_database_is_damage_not_a_crash(kb, settings):
    store = embedded_path(settings.index_dir)
    watch = MetadataWatch(store, entries_collection(kb))
    watch.read()
    clear_client_cache()
    (store / DATABASE).unlink()
    (store / DATABASE).write_bytes(b"this is not a database")
    with pytest.raises(StoreDamaged):
        watch.read()


def test_readers_on_many_threads_see_each_mark_whole_while_a_writer_saves(kb, settings, fake_embedder):
    watch = MetadataWatch(embedded_path(settings.index_dir), entries_collection(kb))
    seen: set[str] = {watch.read()["generation"]}
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
    clear_client_cache()
    writer = KnowledgeBase(settings, embedder=fake_embedder)
    marks = {writer.parts.index.generation()}
    for n in range(4):
        a_save(writer, f"Save {n}")
        marks.add(writer.parts.index.generation())
    done.set()
    for reader in readers:
        reader.join()
    assert errors == []
    assert seen <= marks
    assert watch.read()["generation"] == writer.parts.index.generation()


def test_a_commit_that_leaves_the_main_file_alone_is_seen(tmp_path):
    """In write-ahead-log mode a commit goes to the log, and the database file keeps its change time:
    the watch still sees it, through SQLite's data version."""
    writer = sqlite3.connect(tmp_path / DATABASE)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.executescript(
        "CREATE TABLE collections (id TEXT, name TEXT);"
        "CREATE TABLE collection_metadata (collection_id TEXT, key TEXT, str_value TEXT);"
        "INSERT INTO collections VALUES ('c1', 'entries');"
        "INSERT INTO collection_metadata VALUES ('c1', 'generation', 'one');"
    )
    writer.commit()
    watch = MetadataWatch(tmp_path, "entries")
    assert watch.read() == {"generation": "one"}
    changed_at = (tmp_path / DATABASE).stat().st_ctime_ns
    writer.execute("UPDATE collection_metadata SET str_value = 'two'")
    writer.commit()
    assert (tmp_path / DATABASE).stat().st_ctime_ns == changed_at, "the commit went to the log only"
    assert watch.read() == {"generation": "two"}
    assert MetadataWatch(tmp_path, "other").read() is None
