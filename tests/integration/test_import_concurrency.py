"""Imports running at once against one entries folder: each row is written once and never refused."""

from __future__ import annotations

import contextlib
import csv
import threading
from pathlib import Path

import pytest

from kb.entries import Entry
from kb.errors import Conflict
from kb.importer import ImportReport, import_table, load_mapping
from kb.store import EntryStore

HEADER = ["id", "title", "summary", "kind", "outcome", "organisation"]


def write_register(path: Path, count: int, summary: str = "What it taught us.") -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(HEADER)
        for n in range(count):
            writer.writerow([f"lesson-{n}", f"Lesson {n}", summary, "project", "partial", "GDS"])
    return path


@pytest.fixture
def store(tmp_path: Path) -> EntryStore:
    return EntryStore(tmp_path / "entries")


def another_import_creates_first(monkeypatch: pytest.MonkeyPatch, summary: str) -> None:
    """Every new entry is created by 'someone else' just after this import found its id free."""
    original = EntryStore.write

    def write(self: EntryStore, entry: Entry, *, expected_version: str | None = None, create: bool = False) -> str:
        if create and not self.path_for(entry.id).exists():
            original(self, Entry(**{**entry.__dict__, "summary": summary}), create=True)
        return original(self, entry, expected_version=expected_version, create=create)

    monkeypatch.setattr(EntryStore, "write", write)


def test_a_row_whose_entry_another_import_just_created_is_unchanged(
    tmp_path: Path, store: EntryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_register(tmp_path / "register.csv", 3)
    another_import_creates_first(monkeypatch, "What it taught us.")
    report = import_table(store, path, load_mapping(None))
    assert report.errors == []
    assert (report.created, report.updated) == ([], [])
    assert sorted(report.unchanged) == ["lesson-0", "lesson-1", "lesson-2"]


def test_a_row_whose_entry_another_import_just_created_differently_updates_it(
    tmp_path: Path, store: EntryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write_register(tmp_path / "register.csv", 2)
    another_import_creates_first(monkeypatch, "An older summary.")
    report = import_table(store, path, load_mapping(None))
    assert report.errors == []
    assert sorted(report.updated) == ["lesson-0", "lesson-1"]
    assert store.get("lesson-0").summary == "What it taught us."


def test_two_imports_of_one_file_at_once_write_each_row_once_and_refuse_none(
    tmp_path: Path, store: EntryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = 60
    path = write_register(tmp_path / "register.csv", rows)
    start = threading.Barrier(2)
    # Both imports reach each new entry's create together, so that every row is a real race.
    each_create = threading.Barrier(2, timeout=10)
    lost: list[str] = []
    original = EntryStore.write

    def write(self: EntryStore, entry: Entry, *, expected_version: str | None = None, create: bool = False) -> str:
        if create:
            with contextlib.suppress(threading.BrokenBarrierError):  # the other import has finished its creates
                each_create.wait()
        try:
            return original(self, entry, expected_version=expected_version, create=create)
        except Conflict:
            lost.append(entry.id)
            raise

    monkeypatch.setattr(EntryStore, "write", write)
    reports: list[ImportReport] = []
    failures: list[BaseException] = []

    def run() -> None:
        try:
            start.wait()
            reports.append(import_table(store, path, load_mapping(None)))
        except BaseException as exc:  # reported below, not lost in the thread
            failures.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == []
    first, second = reports
    assert [str(p) for p in first.errors + second.errors] == []
    ids = {f"lesson-{n}" for n in range(rows)}
    assert set(first.created) | set(second.created) == ids
    assert not set(first.created) & set(second.created)
    for report, other in ((first, second), (second, first)):
        assert report.updated == []
        assert set(report.unchanged) == set(other.created)
        assert report.rows == rows
    assert len(store.files()) == rows
    assert not (store.root / ".history").exists()  # no entry was written twice
    assert len(lost) >= rows // 2, "the imports raced for the rows, and the losers settled them"


def test_a_row_whose_entry_keeps_changing_is_refused_with_a_retry_hint(
    tmp_path: Path, store: EntryStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kb.errors import Conflict

    path = write_register(tmp_path / "register.csv", 1)

    def always_changed(self: EntryStore, entry: Entry, **_: object) -> str:
        raise Conflict(f"'{entry.id}' was changed by someone else since you opened it")

    monkeypatch.setattr(EntryStore, "write", always_changed)
    report = import_table(store, path, load_mapping(None))
    assert [str(p) for p in report.errors] == [
        "register.csv, row 2: could not be written: its entry file changed 3 times while this import wrote it; "
        "import again to retry this row"
    ]
