"""What every register reader shares: the table a file becomes, its limits, and reading cells and headers.

A row that cannot be read is reported by its number in `Table.problems` and the rest are still read;
only a whole-file failure (missing, unreadable or empty file, unsupported format, a file past the caps
below) raises KBError.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.errors import KBError, Problem
from kb.mapping import column_key

Cell = str | list[str]


TEXT_SUFFIXES = (".csv", ".tsv", ".txt")


EXCEL_SUFFIXES = (".xlsx", ".xlsm")


JSONL_SUFFIXES = (".jsonl", ".ndjson")


SUPPORTED = ".csv, .tsv, .xlsx, .jsonl"


# What one import reads at most, checked before anything is read into memory. NASA's whole register
# is an 8.4 MB JSONL file and a 2.4 MB workbook that unpacks to 8.7 MB: these leave room for twenty
# times that and more, while a file or a zip bomb meant to exhaust memory is refused by name.
MAX_IMPORT_BYTES = 200_000_000  # a file on disk


MAX_WORKBOOK_BYTES = 1_000_000_000  # an .xlsx (a zip) unpacked; openpyxl keeps its shared strings in memory


MAX_ROWS = 1_048_576  # rows read, the header included: the most a sheet can have in Excel itself


@dataclass
class Table:
    """A file's header and its non-empty rows, each with the row number a spreadsheet would show."""

    header: list[str]
    rows: list[tuple[int, dict[str, Cell]]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    refused: int = 0  # rows that could not even be read (bad JSON, too many cells)
    encoding: str = ""
    spreadsheet: bool = True  # cells may carry the "'" a spreadsheet export puts before formula-like text


def decode(raw: bytes, source: str) -> tuple[str, str]:
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16"), "utf-16"
    if b"\x00" in raw[:8192]:
        raise KBError(f"{source} is a binary file, not text; export it as CSV (UTF-8) or .xlsx")
    # UTF-8 first, with Excel's byte-order mark if there is one, then Windows' own encoding.
    for encoding in ("utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8", "cp1252"):
        try:
            return raw.decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise KBError(f"{source} is neither UTF-8 nor Windows (cp1252) text; save it again as CSV UTF-8")


def encoding_note(source: str, encoding: str) -> list[Problem]:
    if encoding in ("utf-8", "utf-8-sig"):
        return []
    return [
        Problem(
            source,
            f"is not UTF-8; read it as {encoding}. Check accented letters and symbols, or save it as CSV UTF-8",
            severity="warning",
        )
    ]


def header_names(values: list[Any], source: str, problems: list[Problem], *, trim: bool) -> list[str]:
    """Header names, with blanks named by position and repeats made distinct (and reported)."""
    names: list[str] = []
    for position, value in enumerate(values, start=1):
        name = cell_text(value).strip() or f"column {position}"
        if column_key(name) in {column_key(n) for n in names}:
            renamed = f"{name} ({position})"
            problems.append(
                Problem(
                    source,
                    f"column '{name}' appears twice; the later one is read as '{renamed}'",
                    row=1,
                    severity="warning",
                )
            )
            name = renamed
        names.append(name)
    while trim and names and not cell_text(values[len(names) - 1]).strip():
        names.pop()  # trailing unnamed columns are formatting, not data
    return names


def row_cells(header: list[str], values: list[Any]) -> tuple[dict[str, Cell], int]:
    """The row's cells by column name, and how many non-empty cells lie beyond the header."""
    cells: dict[str, Cell] = {name: cell_text(values[i]) if i < len(values) else "" for i, name in enumerate(header)}
    extra = sum(1 for v in values[len(header) :] if cell_text(v).strip())
    return cells, extra


def is_empty(values: list[Any] | dict[str, Any]) -> bool:
    items = values.values() if isinstance(values, dict) else values
    return not any(cell_text(v).strip() if not isinstance(v, list) else v for v in items)


def cell_text(value: Any) -> str:
    """A cell as text: dates as ISO, whole numbers without '.0', booleans as true/false."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat(sep=" ")
    if isinstance(value, (dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def rows_from_records(records: list[tuple[int, list[Any]]], source: str, *, fixed_width: bool) -> Table:
    """Header from the first record; empty records skipped and noted.

    `fixed_width` (CSV): a record longer than the header is refused, since it usually means a separator
    inside an unquoted cell. In a workbook, columns without a header name are simply not mapped.
    """
    if not records:
        raise KBError(f"{source} is empty; the first row must name the columns")
    problems: list[Problem] = []
    names = list(records[0][1])
    if not fixed_width:
        names += [None] * (max(len(values) for _, values in records) - len(names))
    header = header_names(names, source, problems, trim=fixed_width)
    if not header:
        raise KBError(f"{source} has no column names in its first row")
    table = Table(header=header, problems=problems)
    empty: list[int] = []
    for number, values in records[1:]:
        if is_empty(values):
            empty.append(number)
            continue
        cells, extra = row_cells(header, values)
        if extra:
            table.refused += 1
            problems.append(
                Problem(
                    source,
                    f"has {extra} filled cell(s) beyond the last named column; a cell may "
                    "hold an unquoted separator, or a column needs a name",
                    row=number,
                )
            )
            continue
        table.rows.append((number, cells))
    last = table.rows[-1][0] if table.rows else 1
    note_empty([n for n in empty if n < last], source, problems)
    return table


def note_empty(numbers: list[int], source: str, problems: list[Problem]) -> None:
    if numbers:
        more = f" and {len(numbers) - 10} more" if len(numbers) > 10 else ""
        shown = ", ".join(str(n) for n in numbers[:10]) + more
        problems.append(Problem(source, f"skipped empty row(s) {shown}", severity="warning"))


def file_error(path: Path, exc: OSError) -> KBError:
    if isinstance(exc, FileNotFoundError):
        return KBError(f"{path} does not exist; check the path")
    if isinstance(exc, IsADirectoryError):
        return KBError(f"{path} is a folder; give the register file itself")
    return KBError(f"{path.name} cannot be read ({exc.strerror or exc}); check its permissions")


def too_large(path: Path, size: str) -> KBError:
    return KBError(
        f"{path.name} is {size}; an import file may be at most {MAX_IMPORT_BYTES:,} bytes "
        f"({MAX_IMPORT_BYTES // 1_000_000} MB): split it into smaller files and import each"
    )


def check_file_size(path: Path) -> None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise file_error(path, exc) from None
    if size > MAX_IMPORT_BYTES:
        raise too_large(path, f"{size:,} bytes")


def check_row_count(number: int, source: str) -> None:
    if number > MAX_ROWS:
        raise KBError(
            f"{source} has more than {MAX_ROWS:,} rows, the most one import reads; "
            "split it into smaller files and import each"
        )


def read_bytes(path: Path) -> bytes:
    """The whole file, refused by its size on disk before it is read, and never read past the cap
    (a device or a file still growing can hold more than its size says)."""
    check_file_size(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_IMPORT_BYTES + 1)
    except OSError as exc:
        raise file_error(path, exc) from None
    if len(raw) > MAX_IMPORT_BYTES:
        raise too_large(path, f"over {MAX_IMPORT_BYTES:,} bytes")
    return raw


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text[:200]
