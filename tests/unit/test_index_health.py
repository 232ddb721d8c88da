"""The embedded store is checked before Chroma touches it, a missing one is missing (not empty), and sync
repairs whatever the checks find. (tests/integration/test_damage.py injects every kind of fault into every file.)"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import struct
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from kb import KBError, KnowledgeBase, Settings
from kb.checked_files import RECORD, CheckedFiles
from kb.chroma_checks import DEEP, SYNC, StoreDamaged, check_store, embedded_path, stored_vectors, vector_segments
from kb.chroma_client import clear_client_cache
from kb.cli import cli
from kb.embedder import HashingEmbedder
from kb.errors import IndexDamaged, IndexMissing
from kb.vector_index import VectorIndex

COPIES = 3  # the sample entries three times over: past Chroma's 1,000-vector log, so HNSW files exist


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A synced copy of the sample entries, large enough that Chroma has written its HNSW graph."""
    from tests.conftest import SAMPLE_ENTRIES

    root = tmp_path_factory.mktemp("health")
    entries = root / "entries"
    entries.mkdir()
    shutil.copy(SAMPLE_ENTRIES / "vocabulary.yaml", entries)
    for path in SAMPLE_ENTRIES.glob("*.md"):
        if path.name.lower() == "readme.md":
            continue
        for n in range(COPIES):
            new_id = f"{path.stem}-{n}"
            (entries / f"{new_id}.md").write_text(path.read_text().replace(f"id: {path.stem}\n", f"id: {new_id}\n", 1))
    settings = Settings(entries_dir=entries, index_dir=root / "index", chroma_url=None, model="hashing-bow")
    KnowledgeBase(settings, embedder=HashingEmbedder()).sync()
    clear_client_cache()
    return settings


@pytest.fixture
def copy(built, tmp_path):
    """A fresh copy of the built index folder, safe to damage."""
    clear_client_cache()
    shutil.copytree(built.index_dir, tmp_path / "index")
    return Settings(entries_dir=built.entries_dir, index_dir=tmp_path / "index", chroma_url=None, model="hashing-bow")


def open_kb(settings: Settings) -> KnowledgeBase:
    clear_client_cache()
    return KnowledgeBase(settings, embedder=HashingEmbedder())


def graph_folder(settings: Settings):
    """The HNSW folder of the passages collection (the one that holds a graph)."""
    store = embedded_path(settings.index_dir)
    segment = next(s for s in vector_segments(store) if s.collection.endswith("-passages"))
    assert (segment.folder / "header.bin").exists(), "the fixture must be big enough for a graph"
    return segment.folder


def answers(kb: KnowledgeBase) -> tuple:
    hits = kb.search("data sharing agreement took too long", limit=5)
    similar = kb.similar("benefits-and-housing-data-sharing-pilot-0", limit=5)
    return [(h.id, round(h.score, 4)) for h in hits], [(h.id, round(h.score, 4)) for h in similar]


def test_a_whole_store_passes_and_reads_back_every_vector(built):
    store = embedded_path(built.index_dir)
    check_store(store)
    check_store(store, level=DEEP)
    check_store(store, level=SYNC)
    base = open_kb(built)
    _, passages = base.index.count()
    assert len(dict(stored_vectors(store, f"{built.collection}-passages"))) == passages


def flip(path, offset: int, size: int = 1) -> None:
    data = bytearray(path.read_bytes())
    for i in range(offset, offset + size):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_each_hnsw_file_is_checked(copy):
    folder = graph_folder(copy)
    store = embedded_path(copy.index_dir)
    header = folder / "header.bin"
    saved = header.read_bytes()
    header.write_bytes(saved[:50])
    with pytest.raises(StoreDamaged, match="header.bin"):
        check_store(store)
    # A header whose element count says more than the data file holds.
    count_at = struct.calcsize("<iQQ")
    header.write_bytes(saved[:count_at] + struct.pack("<Q", 10**6) + saved[count_at + 8 :])
    with pytest.raises(StoreDamaged, match="header.bin is garbled|data_level0.bin"):
        check_store(store)
    header.write_bytes(saved)
    # A level-0 link pointing past the last element: Chroma's graph walk would read out of bounds.
    data = folder / "data_level0.bin"
    whole = data.read_bytes()
    raw = bytearray(whole)
    raw[4:8] = struct.pack("<I", 10**7)
    raw[0:2] = struct.pack("<H", max(1, struct.unpack("<H", bytes(raw[0:2]))[0]))
    data.write_bytes(bytes(raw))
    with pytest.raises(StoreDamaged, match="a link points nowhere"):
        check_store(store)
    data.write_bytes(whole)
    (folder / "index_metadata.pickle").write_bytes(b"\x80\x04garbage")
    with pytest.raises(StoreDamaged, match="index_metadata.pickle"):
        check_store(store)
    (folder / "link_lists.bin").unlink()
    with pytest.raises(StoreDamaged, match="link_lists.bin is missing"):
        check_store(store)


def test_the_label_map_never_runs_code(copy):
    import pickle

    folder = graph_folder(copy)

    class Sneaky:
        def __reduce__(self):
            return (print, ("ran",))

    (folder / "index_metadata.pickle").write_bytes(pickle.dumps({"id_to_label": Sneaky()}))
    with pytest.raises(StoreDamaged, match="index_metadata.pickle is garbled"):
        check_store(embedded_path(copy.index_dir))


def test_a_garbled_text_cell_chroma_reads_at_open_is_found_before_chroma(copy):
    """A byte flipped inside a collection's name made Chroma's Rust core panic on every command."""
    database = embedded_path(copy.index_dir) / "chroma.sqlite3"
    data = database.read_bytes()
    flip(database, data.rfind(f"{copy.collection}-passages".encode()) + 3)
    with pytest.raises(StoreDamaged):
        check_store(embedded_path(copy.index_dir))
    with pytest.raises(IndexDamaged, match="python -m kb sync"):
        open_kb(copy).search("data sharing")


def test_a_changed_vector_is_found_and_sync_repairs_it(copy, built):
    expected = answers(open_kb(built))
    folder = graph_folder(copy)
    raw = (folder / "header.bin").read_bytes()
    _, _, _, count, size, label_at, data_at = struct.unpack_from("<iQQQQQQ", raw)
    data = folder / "data_level0.bin"
    block = bytearray(data.read_bytes())
    for element in range(0, count, 7):  # finite but different numbers: nothing structural is wrong
        start = element * size + data_at
        vector = np.frombuffer(bytes(block[start : label_at + element * size]), dtype="<f4")
        block[start : label_at + element * size] = (-vector).astype("<f4").tobytes()
    data.write_bytes(bytes(block))
    check_store(embedded_path(copy.index_dir))  # the files are well formed ...
    with pytest.raises(IndexDamaged, match="disagree with the keyword index's copy"):
        open_kb(copy).search("data sharing agreement took too long")  # ... but never quietly wrong
    report = open_kb(copy).sync()
    assert report.rebuilt and any("disagree" in p.message for p in report.problems)
    assert answers(open_kb(copy)) == expected


def test_a_deleted_database_is_missing_not_empty(copy, built):
    expected = answers(open_kb(built))
    (embedded_path(copy.index_dir) / "chroma.sqlite3").unlink()
    with pytest.raises(IndexMissing, match="no index yet .*python -m kb sync"):
        open_kb(copy).search("data sharing")
    runner = CliRunner()
    args = ["--entries", str(copy.entries_dir), "--index", str(copy.index_dir), "--model", "hashing-bow"]
    for command in (["search", "data sharing"], ["stats"], ["similar", "benefits-and-housing-data-sharing-pilot-0"]):
        clear_client_cache()
        result = runner.invoke(cli, [*args, *command])
        assert result.exit_code == 1 and "there is no index" in result.output, command
        assert "No entries found" not in result.output and "Traceback" not in result.output
    assert not (embedded_path(copy.index_dir) / "chroma.sqlite3").exists(), "reading never makes an empty store"
    report = open_kb(copy).sync()
    assert any(p.message == "the index was missing: rebuilt from the entry files" for p in report.problems)
    assert answers(open_kb(copy)) == expected


def test_a_panic_inside_chroma_is_the_index_s_error(copy, monkeypatch):
    """pyo3 panics derive from BaseException: they must not escape as a traceback."""

    class PanicException(BaseException):  # what pyo3 names the Rust core's panics
        pass

    def panics(*args, **kwargs):
        raise PanicException("called `Result::unwrap()` on an `Err` value")

    base = open_kb(copy)
    monkeypatch.setattr(base.index.client, "list_collections", panics)  # the first call an opening makes
    with pytest.raises(IndexDamaged, match="PanicException"):
        base.index.count()
    monkeypatch.setattr(
        base.index.client, "list_collections", lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt())
    )
    with pytest.raises(KeyboardInterrupt):  # an interrupt is never taken for damage
        base.index.count()


def test_a_refused_argument_is_not_taken_for_damage(copy):
    """Chroma refusing what it was given is a mistake of the caller's: never a reason to delete the index."""
    import chromadb

    base = open_kb(copy)
    with pytest.raises(chromadb.errors.InvalidArgumentError):
        base.index.query(np.zeros((1, 3), dtype=np.float32), 3)  # the wrong size for this index


def test_a_server_failure_is_reported_not_repaired(copy):
    class FailingServer:
        """A Chroma client whose server answers every request with an error."""

        def __getattr__(self, name):
            def broken(*args, **kwargs):
                raise RuntimeError("server error 500")

            return broken

    base = KnowledgeBase(copy, embedder=HashingEmbedder(), client=FailingServer())  # a store that is not ours
    with pytest.raises(KBError, match="the Chroma server failed") as caught:
        base.index.count()
    assert not isinstance(caught.value, IndexDamaged)


def test_a_folder_whose_path_has_uri_characters_is_not_taken_for_damage(built, tmp_path):
    """The database is opened by URI: '#', '?' and '%' in the path must not read as damage (which would
    make every sync rebuild the index) or create a stray file beside it."""
    odd = tmp_path / "we#ird?f%20older" / "index"
    shutil.copytree(built.index_dir, odd)
    settings = Settings(entries_dir=built.entries_dir, index_dir=odd, chroma_url=None, model="hashing-bow")
    check_store(embedded_path(odd), level=DEEP)
    report = open_kb(settings).sync()
    assert not report.problems and not report.rebuilt and not report.changed
    assert open_kb(settings).stats()["entries"] > 0
    assert sorted(p.name for p in (tmp_path).iterdir()) == ["we#ird?f%20older"]


def test_a_write_that_fails_for_another_reason_never_deletes_a_healthy_index(copy, monkeypatch):
    """A full disk or a locked database during a sync is not damage: the index stays as it was."""
    import errno

    path = copy.entries_dir / "benefits-and-housing-data-sharing-pilot-0.md"
    original = path.read_text()
    path.write_text(original.replace("summary:", "summary: Changed.", 1))
    before = open_kb(copy).index.count()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(VectorIndex, "put_entries", _guarded_for_test(disk_full))
    with pytest.raises(KBError, match="the sync stopped") as caught:
        open_kb(copy).sync()
    assert not isinstance(caught.value, IndexDamaged)
    monkeypatch.undo()
    path.write_text(original)
    again = open_kb(copy)
    assert again.index.count() == before, "nothing was deleted"
    assert not again.sync().rebuilt


def _guarded_for_test(failure):
    """A VectorIndex method that fails inside Chroma, as the real ones are wrapped."""
    from kb.chroma_client import guarded

    return guarded(failure)


def test_stored_vectors_are_what_chroma_answers_after_changes_still_in_its_log(copy):
    """Records changed or deleted since Chroma last saved its graph come from the log, each record once."""
    from kb.chroma_client import make_client

    name = f"{copy.collection}-passages"
    client = make_client(copy.index_dir, None)
    passages = client.get_collection(name, embedding_function=None)
    some = passages.get(limit=6, include=["embeddings"])
    changed, deleted = some["ids"][:3], some["ids"][3:6]
    dimension = len(some["embeddings"][0])
    moved = [[1.0 if i == n else 0.0 for i in range(dimension)] for n in range(3)]
    passages.update(ids=changed, embeddings=moved)
    passages.delete(ids=deleted)
    expected = passages.get(include=["embeddings"])
    del client, passages
    clear_client_cache()
    store = embedded_path(copy.index_dir)
    (segment,) = [s for s in vector_segments(store) if s.collection == name]
    with sqlite3.connect(f"file:{store / 'chroma.sqlite3'}?mode=ro", uri=True) as db:
        logged = {
            row[0]
            for row in db.execute(
                "SELECT id FROM embeddings_queue WHERE topic = ? AND seq_id > ?", (segment.topic, segment.flushed_up_to)
            )
        }
    assert set(changed + deleted) <= logged, "the changes are still in Chroma's log, not yet in its graph"
    got = list(stored_vectors(embedded_path(copy.index_dir), name))
    assert len(got) == len({record for record, _ in got}), "each record once"
    stored = dict(got)
    assert set(stored) == set(expected["ids"]) and not set(deleted) & set(stored)
    for record, vector in zip(expected["ids"], expected["embeddings"], strict=True):
        assert np.allclose(stored[record], vector, atol=1e-6), record
    assert [int(np.argmax(stored[r])) for r in changed] == [0, 1, 2]


def read_whole(monkeypatch) -> list[str]:
    """Which of the whole-store reads a sync makes: SQLite's check of every page, the HNSW files' checks,
    the stored vectors read back."""
    from kb import chroma_checks

    reads: list[str] = []

    def spy(name: str, original):
        def call(*args, **kwargs):
            if name != "_integrity" or args[1] == "PRAGMA quick_check":
                reads.append(name)
            return original(*args, **kwargs)

        return call

    for name in ("_integrity", "check_hnsw", "stored_vectors"):
        monkeypatch.setattr(chroma_checks, name, spy(name, getattr(chroma_checks, name)))
    return reads


WHOLE = {"_integrity", "check_hnsw", "stored_vectors"}


def change_stored_vectors(settings: Settings, change) -> None:
    """Rewrite the graph's vectors in place, each element's through `change(element, vector)`: the file
    keeps its size."""
    folder = graph_folder(settings)
    raw = (folder / "header.bin").read_bytes()
    _, _, _, count, size, label_at, data_at = struct.unpack_from("<iQQQQQQ", raw)
    data = folder / "data_level0.bin"
    block = bytearray(data.read_bytes())
    for element in range(count):
        start, end = element * size + data_at, label_at + element * size
        vector = np.frombuffer(bytes(block[start:end]), dtype="<f4")
        block[start:end] = np.asarray(change(element, vector), dtype="<f4").tobytes()
    data.write_bytes(bytes(block))


def negate_some_vectors(settings: Settings) -> None:
    """Well formed, but not the vectors the replica's copy holds."""
    change_stored_vectors(settings, lambda element, vector: -vector if element % 5 == 0 else vector)


def test_a_sync_reads_again_only_what_changed_since_a_sync_checked_it(copy, built, monkeypatch):
    """Reading 4 GB at 100,000 entries on every sync is what kb.checked_files spares: an unchanged store
    is not read again, and any write to one of its files, even one that puts its modification time back,
    has it read whole (and repaired) by the next sync."""
    expected = answers(open_kb(built))
    record = CheckedFiles(copy.index_dir, copy.collection)
    reads = read_whole(monkeypatch)
    assert not open_kb(copy).sync().changed  # a copy: new files to the record, all of them read
    assert reads and set(reads) == WHOLE
    reads.clear()
    assert not open_kb(copy).sync().changed
    assert reads == [] and record.generation_if_unchanged()

    data = graph_folder(copy) / "data_level0.bin"
    before = data.stat()
    negate_some_vectors(copy)
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))  # as if untouched, to the modification time
    assert data.stat().st_mtime_ns == before.st_mtime_ns and data.stat().st_size == before.st_size
    assert record.generation_if_unchanged() is None, "the change time moved"
    report = open_kb(copy).sync()
    assert set(reads) == WHOLE
    assert report.rebuilt and any("disagree" in p.message for p in report.problems)
    assert answers(open_kb(copy)) == expected


def put_a_nan_in_a_vector(settings: Settings) -> None:
    """Damage that keeps every file's size, found by the checks a reader makes before Chroma opens."""

    def first_number_nan(element: int, vector: np.ndarray) -> np.ndarray:
        return np.concatenate([[np.nan], vector[1:]]) if element == 0 else vector

    change_stored_vectors(settings, first_number_nan)


def test_damage_a_reader_finds_has_the_sync_it_asks_for_read_everything(copy, built, monkeypatch):
    """A failing disk changes bytes and no time: the record still matches. A reader that finds the damage
    anyway deletes the record, so the `python -m kb sync` its message names reads everything and repairs
    it. Here the reader is a process that has Chroma loaded already (as the app has after its first sync):
    it cannot read the store's mark from its file, so it does not take the record's word and checks the
    graphs before Chroma opens them. (A new process takes the record's word: the next test.)"""
    expected = answers(open_kb(built))
    open_kb(copy).sync()
    record = CheckedFiles(copy.index_dir, copy.collection)
    put_a_nan_in_a_vector(copy)
    record.record(record_generation(copy))  # what the disk's damage would leave: a record that matches
    assert record.generation_if_unchanged()
    with pytest.raises(IndexDamaged, match="python -m kb sync"):
        answers(open_kb(copy))
    assert record.generation_if_unchanged() is None
    reads = read_whole(monkeypatch)
    report = open_kb(copy).sync()
    # The checks read every page and graph again and find the damage; the store is rebuilt before any
    # stored vector would be compared.
    assert {"_integrity", "check_hnsw"} <= set(reads) and report.rebuilt
    assert any("not a number" in p.message for p in report.problems)
    assert answers(open_kb(copy)) == expected


def test_a_sync_in_a_new_process_reads_nothing_a_checking_sync_left_as_it_was(copy):
    """`python -m kb sync` on an unchanged index: the replica is opened while the record still vouches for
    its files, before opening the store changes one of them."""
    open_kb(copy).sync()
    clear_client_cache()
    again = read_in_a_new_process(copy, "sync")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["unchanged"], again.stdout
    for read in ("read the stored vectors", "checked the graphs", "read a keyword file's checksum"):
        assert read not in again.stderr, read


def test_damage_below_the_file_system_is_what_sync_verify_is_for(copy, built):
    """A new reader trusts a store the record vouches for, as a sync does, so damage that moves no file's
    times (a failing disk) is not found by it; `python -m kb sync --verify` reads everything and repairs
    it (SECURITY.md)."""
    expected = answers(open_kb(built))
    open_kb(copy).sync()
    clear_client_cache()
    record = CheckedFiles(copy.index_dir, copy.collection)
    negate_some_vectors(copy)
    record.record(record_generation(copy))  # what the disk's damage would leave: a record that matches
    trusted = read_in_a_new_process(copy, "search", "data sharing agreement took too long")
    assert trusted.returncode == 0, trusted.stderr
    assert "read the stored vectors" not in trusted.stderr and "checked the graphs" not in trusted.stderr
    verified = read_in_a_new_process(copy, "sync", "--verify")
    assert verified.returncode == 0, verified.stderr
    assert "read the stored vectors" in verified.stderr
    assert "disagree" in verified.stdout + verified.stderr and "rebuilt" in verified.stdout + verified.stderr
    assert answers(open_kb(copy)) == expected


def test_damage_found_in_the_replica_drops_the_record(copy, built):
    """A read that meets a damaged keyword file (here the entry records, garbled at their size and times
    kept by a failing disk) deletes the record as damage in the store does: no later process takes those
    files as checked. (The search that met it answers without the folder;
    damage no time shows is what `sync --verify` is for.)"""
    expected = read_in_a_new_process(built, "search", "data sharing agreement took too long")
    open_kb(copy).sync()
    clear_client_cache()
    record = CheckedFiles(copy.index_dir, copy.collection)
    records = next((copy.index_dir / "lexical").rglob("entries.jsonl"))
    flip(records, 10, 8)
    record.record(record_generation(copy))
    found = read_in_a_new_process(copy, "search", "data sharing agreement took too long")
    assert found.returncode == 0, found.stderr
    assert "read a keyword file's checksum" not in found.stderr, "vouched for: opened unread"
    assert not (copy.index_dir / RECORD).exists(), "the damage a read met drops the record"
    again = read_in_a_new_process(copy, "search", "data sharing agreement took too long")
    assert "entries.jsonl: checksum mismatch" in again.stderr, "the next reader reads the files and finds it"
    assert json.loads(again.stdout) == json.loads(expected.stdout), "and answers as the pristine index"


def test_the_record_vouches_only_for_the_files_of_the_folder_asked_and_only_until_dropped(copy):
    from kb.checked_files import vouched

    open_kb(copy).sync()
    record = CheckedFiles(copy.index_dir, copy.collection)
    replica = copy.index_dir / "lexical" / copy.collection
    texts = next(replica.rglob("texts.bin"))
    database = copy.index_dir / "chroma" / "chroma.sqlite3"
    assert not vouched(texts.stat())
    record.vouch_for(replica)
    assert vouched(texts.stat()) and not vouched(database.stat()), "only the files under the folder asked"
    os.utime(texts)  # any write to it, even of its times alone, moves its change time
    assert not vouched(texts.stat())
    record.vouch_for(replica)
    assert not vouched(texts.stat()), "the record no longer holds"
    open_kb(copy).sync()
    record.vouch_for(replica)
    assert vouched(texts.stat())
    record.forget()
    assert not vouched(texts.stat()), "dropping the record drops what it vouched for"


# A reader in a process of its own, as `python -m kb search` is: Chroma is not loaded yet when it first
# looks at the index. It says on stderr whenever it reads the stored vectors back or checks the graphs.
READER = """
import sys
from kb import chroma_checks
from kb.cli import cli
from kb.replica import files

def spy(module, name, said):
    original = getattr(module, name)
    def call(*args, **kwargs):
        print(said, file=sys.stderr)
        return original(*args, **kwargs)
    setattr(module, name, call)

spy(chroma_checks, "stored_vectors", "read the stored vectors")
spy(chroma_checks, "check_hnsw", "checked the graphs")
spy(files, "_crc32", "read a keyword file's checksum")
cli(sys.argv[1:])
"""
SIMILAR_TO = "benefits-and-housing-data-sharing-pilot-0"


def read_in_a_new_process(settings: Settings, *command: str) -> subprocess.CompletedProcess:
    from tests.conftest import ROOT

    options = ["--entries", str(settings.entries_dir), "--index", str(settings.index_dir), "--model", "hashing-bow"]
    return subprocess.run(
        [sys.executable, "-c", READER, *options, *command, "--json"],
        cwd=ROOT,
        env={**os.environ, "KB_COLLECTION": settings.collection},
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.parametrize("command", [["search", "data sharing agreement took too long"], ["similar", SIMILAR_TO]])
def test_a_reader_trusts_the_store_a_sync_checked_and_compares_one_that_changed(copy, command):
    """A process that only reads (`python -m kb search`, the API server) checks the graphs before Chroma
    opens them and compares every stored vector with the replica's copy before its first answer, unless
    the record says a sync did both and no file has changed since. Any change since, even one that puts
    the modification time back, is read and compared."""
    open_kb(copy).sync()
    clear_client_cache()
    trusted = read_in_a_new_process(copy, *command)
    assert trusted.returncode == 0, trusted.stderr
    assert json.loads(trusted.stdout), "it answers"
    assert "read the stored vectors" not in trusted.stderr, "the record holds: nothing to compare again"
    assert "checked the graphs" not in trusted.stderr
    assert "read a keyword file's checksum" not in trusted.stderr

    (copy.index_dir / RECORD).unlink()  # without a record the same reader reads everything
    unchecked = read_in_a_new_process(copy, *command)
    assert unchecked.returncode == 0, unchecked.stderr
    assert "read the stored vectors" in unchecked.stderr and "read a keyword file's checksum" in unchecked.stderr
    if command[0] == "similar":  # the one of the two that opens Chroma on this small index
        assert "checked the graphs" in unchecked.stderr

    open_kb(copy).sync()  # record the store again
    clear_client_cache()
    data = graph_folder(copy) / "data_level0.bin"
    before = data.stat()
    negate_some_vectors(copy)
    os.utime(data, ns=(before.st_atime_ns, before.st_mtime_ns))
    damaged = read_in_a_new_process(copy, *command)
    assert "read the stored vectors" in damaged.stderr
    assert damaged.returncode != 0 and "python -m kb sync" in damaged.stderr + damaged.stdout
    assert "Traceback" not in damaged.stderr
    assert CheckedFiles(copy.index_dir, copy.collection).generation_if_unchanged() is None


def test_a_keyword_file_changed_since_the_record_is_read_again(copy, built):
    """The replica's files are in the record too: one written since (its modification time put back) is
    read and its checksum compared, and the reader answers as from the pristine index."""
    expected = read_in_a_new_process(built, "search", "data sharing agreement took too long")
    open_kb(copy).sync()
    clear_client_cache()
    texts = next((copy.index_dir / "lexical").rglob("texts.bin"))
    before = texts.stat()
    flip(texts, before.st_size // 2)
    os.utime(texts, ns=(before.st_atime_ns, before.st_mtime_ns))
    found = read_in_a_new_process(copy, "search", "data sharing agreement took too long")
    assert found.returncode == 0, found.stderr
    assert "read a keyword file's checksum" in found.stderr
    assert "texts.bin: checksum mismatch" in found.stderr
    assert json.loads(found.stdout) == json.loads(expected.stdout)


def test_a_reader_without_a_record_compares_the_vectors(copy, monkeypatch):
    open_kb(copy).sync()
    (copy.index_dir / RECORD).unlink()
    reads = read_whole(monkeypatch)
    open_kb(copy).search("data sharing agreement took too long")
    assert "stored_vectors" in reads


def record_generation(settings: Settings) -> str:
    recorded = json.loads((settings.index_dir / RECORD).read_text())
    return recorded["generation"]


@pytest.mark.parametrize("record", ["stale", "garbage", "another collection", "another boot", "deleted", "verify"])
def test_without_a_record_that_holds_a_sync_reads_everything(copy, monkeypatch, record):
    open_kb(copy).sync()
    path = copy.index_dir / RECORD
    saved = json.loads(path.read_text())
    if record == "stale":
        path.write_text(json.dumps({**saved, "files": {"chroma/chroma.sqlite3": [1, 2, 3, 4]}}))
    elif record == "garbage":
        path.write_bytes(b"\x00\xff{not json")
    elif record == "another collection":
        path.write_text(json.dumps({**saved, "collection": "other"}))
    elif record == "another boot":
        path.write_text(json.dumps({**saved, "boot": "an-earlier-boot"}))
    elif record == "deleted":
        path.unlink()
    reads = read_whole(monkeypatch)
    if record == "verify":
        result = CliRunner().invoke(
            cli,
            [
                "--entries",
                str(copy.entries_dir),
                "--index",
                str(copy.index_dir),
                "--model",
                "hashing-bow",
                "sync",
                "--verify",
            ],
            env={"KB_COLLECTION": copy.collection},
        )
        assert result.exit_code == 0, result.output
    else:
        assert not open_kb(copy).sync().changed
    assert set(reads) == WHOLE
    assert CheckedFiles(copy.index_dir, copy.collection).generation_if_unchanged(), "and it is recorded again"


def test_a_symbolic_link_among_the_index_files_voids_the_record(copy, tmp_path):
    open_kb(copy).sync()
    record = CheckedFiles(copy.index_dir, copy.collection)
    assert record.generation_if_unchanged()
    (copy.index_dir / "lexical" / "elsewhere").symlink_to(tmp_path)
    assert record.generation_if_unchanged() is None


def test_a_save_drops_the_record_before_it_writes(copy):
    kb = open_kb(copy)
    kb.sync()
    assert (copy.index_dir / RECORD).is_file()
    entry = kb.stored("benefits-and-housing-data-sharing-pilot-0")
    from dataclasses import replace

    kb.save(replace(entry, summary=entry.summary + " Okapi."))
    assert not (copy.index_dir / RECORD).exists()


def test_reading_where_there_is_no_index_makes_no_folder(tmp_path):
    """Reading never makes a store, nor the folder for one: it says a sync builds it."""
    from tests.conftest import SAMPLE_ENTRIES

    settings = Settings(entries_dir=SAMPLE_ENTRIES, index_dir=tmp_path / "index", chroma_url=None, model="hashing-bow")
    kb = open_kb(settings)
    with pytest.raises(IndexMissing, match="python -m kb sync"):
        kb.search("data sharing agreement took too long")
    with pytest.raises(IndexMissing, match="python -m kb sync"):
        kb.similar("benefits-and-housing-data-sharing-pilot")
    assert not settings.index_dir.exists()
