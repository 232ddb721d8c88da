"""Reading an Excel workbook register (.xlsx) with openpyxl: cells as text (formulas are not run), a
workbook that would unpack past its cap refused before it is opened."""

from __future__ import annotations

import warnings
import zipfile
from pathlib import Path
from typing import Any

from kb.errors import KBError, Problem
from kb.mapping import column_key
from kb.registers import cells
from kb.registers.cells import (
    Table,
    check_file_size,
    check_row_count,
    file_error,
    one_line,
    rows_from_records,
)


def read_xlsx(path: Path, sheet: str | int | None = None) -> Table:
    import openpyxl  # only Excel imports pay for loading it

    try:
        with path.open("rb"):  # the same clear messages as other formats for a missing or unreadable file
            pass
    except OSError as exc:
        raise file_error(path, exc) from None
    check_file_size(path)
    _check_unpacked_size(path)
    try:
        with warnings.catch_warnings():  # openpyxl warns about Excel features it skips; none hold row data
            warnings.simplefilter("ignore")
            workbook = openpyxl.load_workbook(path, read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises many types for a damaged or mislabelled file
        raise KBError(
            f"{path.name} is not an Excel .xlsx workbook ({one_line(exc)}); "
            "open it in Excel and save it as .xlsx, or export it as CSV"
        ) from None
    try:
        worksheet = _pick_sheet(workbook, sheet, path.name)
        worksheet.reset_dimensions()  # some writers record a wrong sheet size; read every row there is
        records: list[tuple[int, list[Any]]] = []
        formulas: list[tuple[int, int]] = []  # (row, column) of each formula cell
        for number, cells in enumerate(worksheet.iter_rows(min_row=1), start=1):
            check_row_count(number, path.name)
            records.append((number, [c.value for c in cells]))
            formulas.extend((number, i) for i, c in enumerate(cells) if c.data_type == "f")
    except KBError:
        raise
    except Exception as exc:
        raise KBError(f"{path.name} cannot be read as a workbook ({one_line(exc)})") from None
    finally:
        workbook.close()
    table = rows_from_records(records, path.name, fixed_width=False)
    table.encoding = "xlsx"
    table.problems.extend(_formula_notes(formulas, table.header, path.name))
    return table


def _check_unpacked_size(path: Path) -> None:
    """Refuse a workbook whose parts would unpack past the cap (a zip bomb), from the sizes its zip
    directory declares: the zipfile module never unpacks a part past its declared size."""
    try:
        with zipfile.ZipFile(path) as archive:
            unpacked = sum(info.file_size for info in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError, EOFError):
        return  # not a zip at all: openpyxl's own message says what is wrong with it
    if unpacked > cells.MAX_WORKBOOK_BYTES:
        raise KBError(
            f"{path.name} would unpack to {unpacked:,} bytes; a workbook may unpack to at most "
            f"{cells.MAX_WORKBOOK_BYTES:,} bytes ({cells.MAX_WORKBOOK_BYTES // 1_000_000:,} MB). If it is a real register, "
            "save it as CSV or split it; otherwise it is not a workbook to import"
        )


def _pick_sheet(workbook: Any, sheet: str | int | None, source: str) -> Any:
    names = workbook.sheetnames
    if sheet is None:
        return workbook[names[0]]
    if isinstance(sheet, int):
        if sheet <= len(names):
            return workbook[names[sheet - 1]]
        raise KBError(f"{source} has {len(names)} sheet(s), not {sheet}: {', '.join(names)}")
    match = next((n for n in names if column_key(n) == column_key(sheet)), None)
    if match is None:
        raise KBError(f"{source} has no sheet '{sheet}'; its sheets are: {', '.join(names)}")
    return workbook[match]


def _formula_notes(formulas: list[tuple[int, int]], header: list[str], source: str) -> list[Problem]:
    """A formula is imported as the text written in the cell, never calculated; say so where it happens."""
    return [
        Problem(
            source,
            "holds a formula; its text was imported as written, not calculated",
            row=number,
            field=header[col] if col < len(header) else None,
            severity="warning",
        )
        for number, col in formulas
        if number > 1
    ]
