"""Nothing lost under concurrency: many processes adding at once, two people editing one entry."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys

import pytest

from kb import Conflict, KnowledgeBase, Settings
from kb.store import EntryStore
from tests.conftest import ROOT

WRITERS = 20
LIBRARY_ADD = "import sys; from kb import KnowledgeBase; print(KnowledgeBase().add_file(sys.argv[1]).id)"


def draft(n: int) -> str:
    return (
        "---\ntitle: Concurrent pilot\nsummary: A pilot written at the same moment as others, "
        f"marker{n}word.\nkind: experiment\noutcome: failed\norganisation: Parallel Office\n"
        f"status: published\nvisibility: public\n---\n## Lessons\n\nLesson number marker{n}word.\n"
    )


def test_twenty_processes_adding_at_once_lose_nothing(tmp_path, empty_entries_dir):
    env = {
        **os.environ,
        "KB_ENTRIES_DIR": str(empty_entries_dir),
        "KB_INDEX_DIR": str(tmp_path / "index"),
        "KB_MODEL": "hashing-bow",
        "PYTHONPATH": str(ROOT),
    }
    processes = []
    for n in range(WRITERS):
        path = tmp_path / f"draft{n}.md"
        path.write_text(draft(n))
        command = (
            [sys.executable, "-m", "kb", "add", str(path)] if n % 2 else [sys.executable, "-c", LIBRARY_ADD, str(path)]
        )
        processes.append(
            subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        )
    for process in processes:
        out, err = process.communicate(timeout=300)
        assert process.returncode == 0, err
    loaded = EntryStore(empty_entries_dir).load()
    assert loaded.problems == [] and len(loaded.entries) == WRITERS
    assert {e.summary.split("marker")[1] for e in loaded.entries.values()} == {f"{n}word." for n in range(WRITERS)}
    kb = KnowledgeBase(Settings(entries_dir=empty_entries_dir, index_dir=tmp_path / "index", model="hashing-bow"))
    assert kb.index.count()[0] == WRITERS
    for n in range(WRITERS):  # every entry is in both retrievers
        for mode in ("bm25", "dense"):
            hits = kb.search(f"marker{n}word", mode=mode, limit=WRITERS)
            assert any(f"marker{n}word" in kb.get(h.id).summary for h in hits), (n, mode)
    assert not kb.sync().changed  # nothing was left half-indexed


def test_second_of_two_concurrent_edits_is_refused(kb):
    entry_id = "flood-response-data-cell"
    version = kb.store.version(entry_id)
    first, second = kb.get(entry_id), kb.get(entry_id)
    first.summary = "First editor's summary."
    kb.save(first, expected_version=version)
    second.summary = "Second editor's summary."
    with pytest.raises(Conflict, match="changed by someone else"):
        kb.save(second, expected_version=version)
    assert kb.get(entry_id).summary == "First editor's summary."


def test_many_threads_search_one_knowledge_base_while_it_changes(kb, monkeypatch):
    """The app's sessions share one knowledge base across threads: searches, counts and similar projects
    from many threads at once stay correct while the same object saves entries and another process's
    change is taken in."""
    import threading

    from kb import browse
    from kb.access import ANONYMOUS, can_see

    queries = ["data sharing agreement", "legacy mainframe", "dashboard in a crisis", "record matching", "DSA"]
    stop, failures, rounds = threading.Event(), [], [0]
    records = {e.entry_id: e.metadata for e in kb.indexed_entries()}

    def reader(n: int) -> None:
        try:
            while not stop.is_set():
                query = queries[(n + rounds[0]) % len(queries)]
                hits = kb.search(query, limit=10, mode=("hybrid", "dense", "bm25")[n % 3], viewer=ANONYMOUS)
                assert len({h.id for h in hits}) == len(hits), "each entry once"
                assert all(can_see(ANONYMOUS, records.get(h.id, {"status": "published"})) for h in hits)
                assert len(browse.rows(kb, ANONYMOUS)) >= 30
                if hits:
                    kb.similar(hits[0].id, limit=3, viewer=ANONYMOUS)
                rounds[0] += 1
        except Exception as exc:  # reported in the main thread, not lost in this one
            failures.append(exc)

    threads = [threading.Thread(target=reader, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    try:
        for n in range(4):  # the index changes under the readers: saves from this object
            entry = kb.get("flood-response-data-cell")
            entry.summary = f"A flood data cell, summary number {n}, rewritten while others search."
            kb.save(entry)
        other = KnowledgeBase(kb.settings, embedder=kb.embedder)  # and from another object, as another process
        entry = other.get("open-data-portal-relaunch-low-usage")
        entry.title = "An open data portal relaunch, renamed elsewhere"
        other.save(entry)
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    assert not failures, failures
    assert rounds[0] > 10, "the readers ran while the index changed"
    hits = kb.search("flood data cell summary number 3 rewritten", limit=3, mode="bm25")
    assert hits and hits[0].id == "flood-response-data-cell"
    titles = {r.entry_id: r.metadata["title"] for r in browse.rows(kb)}
    assert titles["open-data-portal-relaunch-low-usage"] == "An open data portal relaunch, renamed elsewhere"


def test_a_write_under_way_is_not_damage_and_one_left_half_done_is(kb, monkeypatch):
    """A writer changes the store's vectors before its mark. A reader that compares the store with its copy
    in between must answer, not call the index damaged; it compares once the writer is done. A writer
    that stopped between the two left the store other than every copy: that is damage, found then."""
    import threading

    from kb.errors import IndexDamaged, KBError, SavedNotIndexed
    from kb.vector_index import VectorIndex

    kb.search("flood data")
    # The writer and the reader stand for two processes: in one process a read of Chroma's file waits for
    # a call under way (kb.chroma_sharing, tested on its own), which would hold the reader back until the
    # writer's paused call ends; between processes there is no such turn to take.
    monkeypatch.setattr("kb.vector_index.chroma_call", contextlib.nullcontext)
    monkeypatch.setattr("kb.chroma_client.chroma_call", contextlib.nullcontext)
    marking = VectorIndex._bump_generation
    at_mark, carry_on, dies = threading.Event(), threading.Event(), [False]

    def mark_later(self):
        at_mark.set()
        carry_on.wait(60)
        if dies[0]:
            raise RuntimeError("the writer stopped before its mark")
        marking(self)

    monkeypatch.setattr(VectorIndex, "_bump_generation", mark_later)

    outcomes: list[Exception | None] = []

    def save_and_record(entry) -> None:
        try:
            kb.save(entry)
            outcomes.append(None)
        except KBError as exc:
            outcomes.append(exc)

    def rewrite(summary: str) -> threading.Thread:
        entry = kb.get("flood-response-data-cell")
        entry.summary = summary
        at_mark.clear()
        carry_on.clear()
        writer = threading.Thread(target=save_and_record, args=(entry,))
        writer.start()
        assert at_mark.wait(60)
        return writer

    writer = rewrite("A flood data cell, rewritten while another reads.")
    reader = KnowledgeBase(kb.settings, embedder=kb.embedder)  # unverified: compares on its first read
    assert reader.search("flood data", limit=5), "answered, not refused as damaged"
    assert not reader.mirror.verified
    carry_on.set()
    writer.join(60)
    assert reader.search("flood data", limit=5) and reader.mirror.verified, "compared once the writer was done"
    assert outcomes == [None]

    dies[0] = True
    writer = rewrite("A flood data cell, rewritten by a writer that stops half way.")
    reader = KnowledgeBase(kb.settings, embedder=kb.embedder)
    assert reader.search("flood data", limit=5)
    carry_on.set()
    writer.join(60)
    assert isinstance(outcomes[-1], SavedNotIndexed), "the writer that stopped says its entry is saved, not indexed"
    with pytest.raises(IndexDamaged, match="has another vector"):
        reader.search("flood data")
