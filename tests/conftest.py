"""Shared fixtures: a fake embedder, temporary entry and index folders, clean process-wide caches.

Tests never touch the network or download a model. Tests marked `model` use the real bundled model;
tests marked `data` read ../shared/data; tests marked `browser` drive Debian's Chromium. In CI
(CI=true) nothing that is missing may be skipped: those tests fail instead.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from kb import KnowledgeBase, Settings
from kb.chroma_client import clear_client_cache
from kb.database.connection import forget_databases
from kb.embedder import HashingEmbedder

ROOT = Path(__file__).resolve().parents[1]
SAMPLE_ENTRIES = ROOT / "entries"
SHARED_DATA = ROOT.parent / "shared" / "data"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_auto_num_workers(config) -> int | None:
    """`-n auto`: one worker more than the CPUs this process may use (PYTEST_XDIST_AUTO_NUM_WORKERS, when
    set, still decides). A browser, server or several-process test spends much of its time waiting for
    what it started, and the extra worker runs meanwhile."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return usable + 1


def require(condition: bool, reason: str) -> None:
    """Skip with a reason where something optional is missing; in CI, fail instead."""
    if not condition:
        if IN_CI:
            pytest.fail(f"required in CI: {reason}")
        pytest.skip(reason)


@pytest.fixture(autouse=True)
def isolated_environment(tmp_path, monkeypatch):
    """Every test gets its own KB_* settings and fresh Chroma and Streamlit caches."""
    monkeypatch.setenv("KB_ENTRIES_DIR", str(tmp_path / "entries"))
    monkeypatch.setenv("KB_INDEX_DIR", str(tmp_path / "index"))
    monkeypatch.setenv("KB_MODEL", "hashing-bow")
    monkeypatch.delenv("KB_CHROMA_URL", raising=False)
    monkeypatch.delenv("KB_DATABASE_URL", raising=False)
    monkeypatch.setenv("ANONYMIZED_TELEMETRY", "False")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    clear_client_cache()
    yield
    clear_client_cache()
    forget_databases()
    try:
        import streamlit as st

        st.cache_resource.clear()
        st.cache_data.clear()
    except Exception:
        pass


@pytest.fixture(scope="session")
def postgres():
    """One PostgreSQL server per test process, on 127.0.0.1; skips (fails in CI) without PostgreSQL."""
    from tests.servers import PostgresServer

    server = PostgresServer().start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path) -> str:
    """An empty database of each kind Lighthouse runs on: a SQLite file, and a new PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'index' / 'lighthouse.sqlite3'}"
    return request.getfixturevalue("postgres").new_database()


@pytest.fixture
def fake_embedder() -> HashingEmbedder:
    return HashingEmbedder()


@pytest.fixture(scope="session")
def sample_index(tmp_path_factory) -> Path:
    """The sample entries indexed once with the fake embedder. A test starts from a copy of it: a copy
    takes a hundredth of a second, a sync about one; the test's own sync then finds it current."""
    root = tmp_path_factory.mktemp("sample-index")
    entries = root / "entries"
    shutil.copytree(SAMPLE_ENTRIES, entries)
    settings = Settings(entries_dir=entries, index_dir=root / "index", chroma_url=None, model="hashing-bow")
    KnowledgeBase(settings, embedder=HashingEmbedder()).sync()
    clear_client_cache()
    return root / "index"


@pytest.fixture
def entries_dir(tmp_path, sample_index) -> Path:
    """A copy of the sample entries and vocabulary, safe to change, with a copy of their index (fake
    embedder) in the test's index folder."""
    target = tmp_path / "entries"
    shutil.copytree(SAMPLE_ENTRIES, target, dirs_exist_ok=True)
    shutil.copytree(sample_index, tmp_path / "index")
    return target


@pytest.fixture
def empty_entries_dir(tmp_path) -> Path:
    target = tmp_path / "entries"
    target.mkdir(exist_ok=True)
    shutil.copy(SAMPLE_ENTRIES / "vocabulary.yaml", target / "vocabulary.yaml")
    return target


@pytest.fixture
def settings(tmp_path, entries_dir) -> Settings:
    return Settings(entries_dir=entries_dir, index_dir=tmp_path / "index", chroma_url=None, model="hashing-bow")


@pytest.fixture
def kb(settings, fake_embedder) -> KnowledgeBase:
    """The sample entries, synced with the fake embedder."""
    base = KnowledgeBase(settings, embedder=fake_embedder)
    base.sync()
    return base


@pytest.fixture(scope="session")
def real_embedder():
    """The bundled all-MiniLM-L6-v2, loaded once for the whole session."""
    from kb.embedder import SentenceTransformerEmbedder

    embedder = SentenceTransformerEmbedder()
    embedder.embed(["warm up"])
    return embedder


@pytest.fixture(scope="session")
def real_sample_index(tmp_path_factory, real_embedder) -> Path:
    """The sample entries indexed once with the real model for the whole run: the first test process to
    need it builds it (a real-model sync takes several seconds), any other waits for it. A module starts
    from a copy; its own sync then finds the copy current."""
    from filelock import FileLock

    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # the run's folder, which every worker of the run shares
    root = base / "real-sample-index"
    with FileLock(str(base / "real-sample-index.lock")):
        if not (root / "complete").is_file():
            shutil.rmtree(root, ignore_errors=True)
            settings = Settings(entries_dir=SAMPLE_ENTRIES, index_dir=root / "index", chroma_url=None)
            KnowledgeBase(settings, embedder=real_embedder).sync()
            clear_client_cache()
            (root / "complete").touch()
    return root / "index"


@pytest.fixture
def shared_data() -> Path:
    require(SHARED_DATA.is_dir(), f"the shared data folder {SHARED_DATA} is absent")
    return SHARED_DATA
