"""Nothing lost under a crash: a sync killed with SIGKILL half way leaves every entry file whole,
and the next sync repairs the index (a real subprocess, a real kill)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from kb import KnowledgeBase, Settings
from kb.embedder import HashingEmbedder
from kb.store import EntryStore
from tests.conftest import ROOT

ENTRIES = 1500


def write_entries(folder) -> None:
    folder.mkdir(exist_ok=True)
    for n in range(ENTRIES):
        (folder / f"lesson-{n}.md").write_text(
            f"---\nid: lesson-{n}\ntitle: Lesson {n}\nsummary: Unique marker m{n}x for lesson {n}.\n"
            "kind: project\noutcome: partial\norganisation: Crash Test Office\nstatus: published\n"
            f"visibility: public\n---\n## Lessons\n\nKeep going, marker m{n}x.\n\n## Context\n\nContext {n}.\n"
        )


def test_a_killed_sync_loses_nothing_and_the_next_sync_repairs(tmp_path):
    entries, index = tmp_path / "entries", tmp_path / "index"
    write_entries(entries)
    before = {p.name: p.read_bytes() for p in entries.iterdir()}
    env = {
        **os.environ,
        "KB_ENTRIES_DIR": str(entries),
        "KB_INDEX_DIR": str(index),
        "KB_MODEL": "hashing-bow",
        "PYTHONPATH": str(ROOT),
    }
    process = subprocess.Popen([sys.executable, "-m", "kb", "sync"], env=env, cwd=ROOT, stderr=subprocess.PIPE)
    seen, deadline = b"", time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until the first chunks are in the index, then kill
        chunk = os.read(process.stderr.fileno(), 4096)
        if not chunk:
            break
        seen += chunk
        done = [int(n) for n in re.findall(rb"(\d+)/%d" % ENTRIES, seen)]
        if done and max(done) >= 128:
            os.kill(process.pid, signal.SIGKILL)
            break
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "the sync finished before it could be killed half way"

    assert {p.name: p.read_bytes() for p in entries.iterdir()} == before  # every file whole, none touched
    settings = Settings(entries_dir=entries, index_dir=index, model="hashing-bow")
    repaired = KnowledgeBase(settings, embedder=HashingEmbedder()).sync()
    assert 0 < repaired.unchanged < ENTRIES and repaired.unchanged + len(repaired.added) == ENTRIES
    kb = KnowledgeBase(settings, embedder=HashingEmbedder())
    assert kb.index.count()[0] == ENTRIES and not kb.sync().changed
    for n in (0, ENTRIES // 2, ENTRIES - 1):  # early, middle and late entries are in both indexes, once
        assert kb.search(f"m{n}x", mode="bm25", limit=3)[0].id == f"lesson-{n}"
        passages, _ = kb.index.passages(f"lesson-{n}")
        assert [p.section for p in passages] == ["Summary", "Lessons", "Context"]
    assert EntryStore(entries).load().problems == []
