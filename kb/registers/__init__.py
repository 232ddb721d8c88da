"""Reading a register file (CSV, Excel .xlsx, JSONL) into a header and rows, each row numbered as a
spreadsheet numbers it (the header is row 1).

    table = read_table(Path("llis.xlsx"), mapping)   # the mapping names the sheet or the CSV delimiter
    for number, cells in table.rows: ...

The readers are the standard csv and json modules and openpyxl, not pandas' readers: those stop at the
first malformed line, renumber rows around blank lines, and drop the text of formula cells, and these
must report each of those by row and keep going.
"""

from __future__ import annotations

from pathlib import Path

from kb.errors import KBError
from kb.mapping import Mapping
from kb.registers.cells import (
    EXCEL_SUFFIXES,
    JSONL_SUFFIXES,
    MAX_IMPORT_BYTES,
    MAX_ROWS,
    MAX_WORKBOOK_BYTES,
    SUPPORTED,
    TEXT_SUFFIXES,
    Cell,
    Table,
)
from kb.registers.delimited import read_csv
from kb.registers.jsonl import read_jsonl
from kb.registers.workbook import read_xlsx

__all__ = [
    "MAX_IMPORT_BYTES",
    "MAX_ROWS",
    "MAX_WORKBOOK_BYTES",
    "Cell",
    "Table",
    "read_csv",
    "read_jsonl",
    "read_table",
    "read_xlsx",
]


def read_table(path: Path, mapping: Mapping) -> Table:
    """The file as a table, by its extension; KBError names the formats when it is none of them."""
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        return read_csv(path, mapping.delimiter)
    if suffix in EXCEL_SUFFIXES:
        return read_xlsx(path, mapping.sheet)
    if suffix in JSONL_SUFFIXES:
        return read_jsonl(path)
    if suffix == ".xls":
        raise KBError(f"{path.name} is an old Excel .xls file; open it in Excel and save it as .xlsx")
    raise KBError(f"{path.name}: cannot import '{suffix or 'no extension'}' files; use {SUPPORTED}")
