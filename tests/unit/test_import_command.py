"""`python -m kb import`: the report, with the summary line last, and an exit status a script can trust."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from kb.cli import cli
from kb.store import EntryStore

HEADER = "id,title,summary,kind,outcome,organisation\n"
GOOD = "open-data,Open data portal,It launched.,project,succeeded,GDS\n"
REFUSED = "fraud-model,Fraud model,It was stopped.,project,maybe,HMRC\n"


@pytest.fixture
def register(tmp_path: Path) -> Path:
    return tmp_path / "register.csv"


def run_import(tmp_path: Path, *args: str) -> Result:
    options = ["--entries", str(tmp_path / "entries"), "--index", str(tmp_path / "index"), "import", *args]
    return CliRunner().invoke(cli, options, catch_exceptions=False)


def last_line(result: Result) -> str:
    return result.output.rstrip("\n").split("\n")[-1]


def test_a_refused_row_exits_1_after_the_whole_report(tmp_path: Path, register: Path) -> None:
    register.write_text(HEADER + GOOD + REFUSED, encoding="utf-8")
    result = run_import(tmp_path, str(register), "--no-index")
    assert result.exit_code == 1
    assert "error: register.csv, row 3, field 'outcome': 'maybe' is not allowed" in result.stderr
    assert last_line(result) == "register.csv: 2 rows: 1 created, 0 updated, 0 unchanged, 1 refused, 0 warnings"
    assert "Traceback" not in result.output
    assert [p.stem for p in EntryStore(tmp_path / "entries").files()] == ["open-data"]


def test_a_dry_run_with_a_refused_row_exits_1(tmp_path: Path, register: Path) -> None:
    register.write_text(HEADER + GOOD + REFUSED, encoding="utf-8")
    result = run_import(tmp_path, str(register), "--dry-run")
    assert result.exit_code == 1
    assert last_line(result).startswith("dry run: register.csv: 2 rows: 1 would be created")
    assert not (tmp_path / "entries").exists()


def test_rows_created_updated_or_unchanged_exit_0_even_with_warnings(tmp_path: Path, register: Path) -> None:
    register.write_text(HEADER + GOOD + ",,,,,\n" + GOOD.replace("open-data", "open-maps"), encoding="utf-8")
    result = run_import(tmp_path, str(register), "--no-index")
    assert result.exit_code == 0, result.output
    assert last_line(result).endswith("2 created, 0 updated, 0 unchanged, 0 refused, 1 warnings")
    assert run_import(tmp_path, str(register), "--no-index").exit_code == 0  # all unchanged
    assert run_import(tmp_path, str(register), "--dry-run").exit_code == 0


def test_after_indexing_the_import_summary_is_still_the_last_line(tmp_path: Path, register: Path) -> None:
    register.write_text(HEADER + GOOD + REFUSED, encoding="utf-8")
    result = run_import(tmp_path, str(register))
    assert result.exit_code == 1
    assert last_line(result) == "register.csv: 2 rows: 1 created, 0 updated, 0 unchanged, 1 refused, 0 warnings"


def test_the_help_says_what_the_exit_status_means() -> None:
    text = " ".join(CliRunner().invoke(cli, ["import", "--help"]).output.split())
    assert "Exits with status 1 when any row is refused" in text


def test_an_index_that_fails_still_leaves_the_whole_report(
    tmp_path: Path, register: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from kb.errors import KBError
    from kb.knowledge import KnowledgeBase

    def broken_sync(self: KnowledgeBase, **_: object) -> None:
        raise KBError("the index folder is read-only")

    monkeypatch.setattr(KnowledgeBase, "sync", broken_sync)
    register.write_text(HEADER + GOOD, encoding="utf-8")
    result = run_import(tmp_path, str(register))
    assert result.exit_code == 1
    assert "written but not indexed (the index folder is read-only); run `python -m kb sync`" in result.stderr
    assert last_line(result) == "register.csv: 1 rows: 1 created, 0 updated, 0 unchanged, 0 refused, 0 warnings"
