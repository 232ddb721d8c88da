"""Nothing lost under concurrency: many processes adding at once, two people editing one entry."""

from __future__ import annotations

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
