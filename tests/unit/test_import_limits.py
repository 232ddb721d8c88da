"""The caps on what one import reads: file size, a workbook's unpacked size, and rows."""

from __future__ import annotations

import io
import json
import struct
import zipfile
from pathlib import Path

import openpyxl
import pytest

from kb.errors import KBError
from kb.importer import import_table, load_mapping
from kb.registers import cells
from kb.store import EntryStore

HEADER = ["title", "summary", "kind", "outcome", "organisation"]


def row(n: int) -> list[str]:
    return [f"Lesson {n}", "What it taught us.", "project", "partial", "GDS"]


def write_register(path: Path, rows: int) -> Path:
    """A register of `rows` rows after the header, as CSV, JSONL or .xlsx by the file's suffix."""
    if path.suffix == ".xlsx":
        workbook = openpyxl.Workbook()
        for values in [HEADER, *(row(n) for n in range(rows))]:
            workbook.active.append(values)
        workbook.save(path)
    elif path.suffix == ".jsonl":
        lines = [json.dumps(dict(zip(HEADER, row(n), strict=True))) for n in range(rows)]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    else:
        lines = [",".join(HEADER), *(",".join(row(n)) for n in range(rows))]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def import_file(tmp_path: Path, path: Path):
    return import_table(EntryStore(tmp_path / "entries"), path, load_mapping(None))


def test_the_caps_leave_room_for_real_registers() -> None:
    """NASA's whole register: 8.4 MB of JSONL, or a 2.4 MB workbook that unpacks to 8.7 MB; 2,102 rows."""
    assert cells.MAX_IMPORT_BYTES >= 20 * 8_444_407
    assert cells.MAX_IMPORT_BYTES >= 80 * 2_449_640
    assert cells.MAX_WORKBOOK_BYTES >= 100 * 8_658_224
    assert 100 * 2_102 <= 1_048_576 <= cells.MAX_ROWS  # every row a sheet in Excel itself can hold


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".xlsx"])
def test_a_file_over_the_size_cap_is_refused_before_it_is_read(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"register{suffix}"
    with path.open("wb") as handle:
        handle.truncate(cells.MAX_IMPORT_BYTES + 1)  # sparse: takes no disk space and no time
    with pytest.raises(KBError) as caught:
        import_file(tmp_path, path)
    message = str(caught.value)
    assert message.startswith(f"register{suffix} is {cells.MAX_IMPORT_BYTES + 1:,} bytes;")
    assert f"at most {cells.MAX_IMPORT_BYTES:,} bytes" in message and "split it" in message
    assert "\n" not in message


def test_a_file_that_reports_no_size_is_read_no_further_than_the_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A device (or a file still being written) can hold more than its size on disk says."""
    monkeypatch.setattr(cells, "MAX_IMPORT_BYTES", 1_000)
    path = tmp_path / "register.csv"
    path.symlink_to("/dev/zero")
    with pytest.raises(KBError, match=r"^register.csv is over 1,000 bytes; an import file may be at most 1,000"):
        import_file(tmp_path, path)


def bomb(path: Path, declared: int | None = None, unpacked: int = 0) -> Path:
    """An .xlsx-named zip whose sheet unpacks to `unpacked` bytes, or claims `declared` in its directory."""
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("xl/worksheets/sheet1.xml", b" " * unpacked)
    if declared is not None:  # rewrite the sheet's uncompressed size in the central directory, as a bomb would
        data = bytearray(path.read_bytes())
        entry = data.index(b"PK\x01\x02", data.index(b"PK\x01\x02") + 4)
        struct.pack_into("<I", data, entry + 24, declared)
        path.write_bytes(bytes(data))
    return path


def test_a_workbook_that_unpacks_past_the_cap_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    path = bomb(tmp_path / "register.xlsx", declared=0xFFFF_FFFE)
    assert path.stat().st_size < 1_000
    with pytest.raises(KBError) as caught:
        import_file(tmp_path, path)
    message = str(caught.value)
    assert message.startswith(f"register.xlsx would unpack to {0xFFFF_FFFE + 8:,} bytes;")
    assert f"at most {cells.MAX_WORKBOOK_BYTES:,}" in message and "\n" not in message


def test_a_workbook_is_measured_by_what_its_parts_really_unpack_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cells, "MAX_WORKBOOK_BYTES", 1_000_000)
    path = bomb(tmp_path / "register.xlsx", unpacked=2_000_000)
    with pytest.raises(KBError, match="would unpack to 2,000,008 bytes; a workbook may unpack to at most 1,000,000"):
        import_file(tmp_path, path)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".xlsx"])
def test_rows_past_the_cap_are_refused_with_a_clear_message(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, suffix: str
) -> None:
    monkeypatch.setattr(cells, "MAX_ROWS", 6)
    fits = write_register(tmp_path / f"fits{suffix}", 5 if suffix != ".jsonl" else 6)  # JSONL has no header row
    assert len(import_file(tmp_path, fits).created) == (5 if suffix != ".jsonl" else 6)
    path = write_register(tmp_path / f"register{suffix}", 20)
    with pytest.raises(KBError) as caught:
        import_file(tmp_path, path)
    assert str(caught.value) == (
        f"register{suffix} has more than 6 rows, the most one import reads; split it into smaller files and import each"
    )


def test_a_csv_with_a_bad_quote_still_counts_towards_the_row_cap(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cells, "MAX_ROWS", 4)
    path = tmp_path / "register.csv"
    text = io.StringIO()
    text.write(",".join(HEADER) + "\n")
    for n in range(6):
        text.write(",".join(row(n)).replace("Lesson 1", '"Lesson 1') + "\n")
    path.write_text(text.getvalue(), encoding="utf-8")
    with pytest.raises(KBError, match="has more than 4 rows"):
        import_file(tmp_path, path)
