"""Reading a register file (CSV, Excel .xlsx, JSONL) into a header and rows, each row numbered as a
spreadsheet numbers it (the header is row 1).

    table = read_table(Path("llis.xlsx"), mapping)   # the mapping names the sheet or the CSV delimiter
    for number, cells in table.rows: ...

A row that cannot be read is reported by its number in `table.problems` and the rest are still read;
only a whole-file failure (missing, unreadable or empty file, unsupported format, a file past the caps
below) raises KBError.

The readers are the standard csv and json modules and openpyxl, not pandas' readers: those stop
at the first malformed line, renumber rows around blank lines, and drop the text of formula cells,
and this module must report each of those by row and keep going.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kb.errors import KBError, Problem
from kb.mapping import Mapping, column_key

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


def _decode(raw: bytes, source: str) -> tuple[str, str]:
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


def _encoding_note(source: str, encoding: str) -> list[Problem]:
    if encoding in ("utf-8", "utf-8-sig"):
        return []
    return [
        Problem(
            source,
            f"is not UTF-8; read it as {encoding}. Check accented letters and symbols, or save it as CSV UTF-8",
            severity="warning",
        )
    ]


def _guess_delimiter(first_line: str) -> str:
    """The separator used most in the header line, outside quotes: Excel in many locales writes ';'."""
    counts = dict.fromkeys(",;\t", 0)
    quoted = False
    for char in first_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(counts, key=lambda c: counts[c])
    return best if counts[best] else ","


def _header(values: list[Any], source: str, problems: list[Problem], *, trim: bool) -> list[str]:
    """Header names, with blanks named by position and repeats made distinct (and reported)."""
    names: list[str] = []
    for position, value in enumerate(values, start=1):
        name = _cell_text(value).strip() or f"column {position}"
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
    while trim and names and not _cell_text(values[len(names) - 1]).strip():
        names.pop()  # trailing unnamed columns are formatting, not data
    return names


def _row_cells(header: list[str], values: list[Any]) -> tuple[dict[str, Cell], int]:
    """The row's cells by column name, and how many non-empty cells lie beyond the header."""
    cells = {name: _cell_text(values[i]) if i < len(values) else "" for i, name in enumerate(header)}
    extra = sum(1 for v in values[len(header) :] if _cell_text(v).strip())
    return cells, extra


def _is_empty(values: list[Any] | dict[str, Any]) -> bool:
    items = values.values() if isinstance(values, dict) else values
    return not any(_cell_text(v).strip() if not isinstance(v, list) else v for v in items)


def _cell_text(value: Any) -> str:
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


def _rows_from_records(records: list[tuple[int, list[Any]]], source: str, *, fixed_width: bool) -> Table:
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
    header = _header(names, source, problems, trim=fixed_width)
    if not header:
        raise KBError(f"{source} has no column names in its first row")
    table = Table(header=header, problems=problems)
    empty: list[int] = []
    for number, values in records[1:]:
        if _is_empty(values):
            empty.append(number)
            continue
        cells, extra = _row_cells(header, values)
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
    _note_empty([n for n in empty if n < last], source, problems)
    return table


def _note_empty(numbers: list[int], source: str, problems: list[Problem]) -> None:
    if numbers:
        more = f" and {len(numbers) - 10} more" if len(numbers) > 10 else ""
        shown = ", ".join(str(n) for n in numbers[:10]) + more
        problems.append(Problem(source, f"skipped empty row(s) {shown}", severity="warning"))


def _file_error(path: Path, exc: OSError) -> KBError:
    if isinstance(exc, FileNotFoundError):
        return KBError(f"{path} does not exist; check the path")
    if isinstance(exc, IsADirectoryError):
        return KBError(f"{path} is a folder; give the register file itself")
    return KBError(f"{path.name} cannot be read ({exc.strerror or exc}); check its permissions")


def _too_large(path: Path, size: str) -> KBError:
    return KBError(
        f"{path.name} is {size}; an import file may be at most {MAX_IMPORT_BYTES:,} bytes "
        f"({MAX_IMPORT_BYTES // 1_000_000} MB): split it into smaller files and import each"
    )


def _check_file_size(path: Path) -> None:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise _file_error(path, exc) from None
    if size > MAX_IMPORT_BYTES:
        raise _too_large(path, f"{size:,} bytes")


def _check_row_count(number: int, source: str) -> None:
    if number > MAX_ROWS:
        raise KBError(
            f"{source} has more than {MAX_ROWS:,} rows, the most one import reads; "
            "split it into smaller files and import each"
        )


def _read_bytes(path: Path) -> bytes:
    """The whole file, refused by its size on disk before it is read, and never read past the cap
    (a device or a file still growing can hold more than its size says)."""
    _check_file_size(path)
    try:
        with path.open("rb") as handle:
            raw = handle.read(MAX_IMPORT_BYTES + 1)
    except OSError as exc:
        raise _file_error(path, exc) from None
    if len(raw) > MAX_IMPORT_BYTES:
        raise _too_large(path, f"over {MAX_IMPORT_BYTES:,} bytes")
    return raw


class _CsvRecords:
    """A CSV file's records with the csv module in strict mode, handed one physical line at a time.

    A quote that is never closed would otherwise make the rest of the file one cell, and a stray
    quote closed by another rows later would make those rows one record. Either way only the row
    the quote starts in is refused, and its later lines are read again as rows, so every row after
    it is still read. Records are numbered as a spreadsheet numbers rows (the header is row 1);
    lines are numbered as a text editor numbers them. Only the current record's lines are kept.
    """

    def __init__(self, text: str, delimiter: str, source: str):
        self.stream = io.StringIO(text, newline="")  # splits lines where the csv module splits them
        self.delimiter = delimiter
        self.source = source
        self.again: list[str] = []  # lines of a refused record to read again, the next one last
        self.record: list[str] = []  # the lines of the record being read
        self.first_line = 1  # the line number of record[0]
        self.header: list[str] = []
        self.records: list[tuple[int, list[str]]] = []
        self.problems: list[Problem] = []
        self.refused = 0

    def __iter__(self) -> _CsvRecords:
        return self

    def __next__(self) -> str:
        line = self.again.pop() if self.again else self.stream.readline()
        if not line:
            raise StopIteration
        self.record.append(line)
        return line

    def _reader(self) -> Any:
        return csv.reader(self, delimiter=self.delimiter, strict=True)

    def read(self) -> _CsvRecords:
        reader = self._reader()
        while True:
            self.first_line += len(self.record)
            self.record = []
            number = len(self.records) + self.refused + 1
            try:
                values = next(reader)
            except StopIteration:
                return self
            except csv.Error:
                _check_row_count(number, self.source)
                self._refuse_bad_quote(number)
                reader = self._reader()  # a fresh reader: nothing of the failed record is carried over
                continue
            _check_row_count(number, self.source)
            if self.header and len(self.record) > 1 and self._joins_rows(values):
                self._refuse_joined_rows(number)
                continue
            if self.header and self._may_join_two_rows():
                self._warn_of_a_possible_join(number)
            if not self.header:
                self.header = _header(values, self.source, [], trim=False)
            self.records.append((number, values))

    def _refuse_joined_rows(self, number: int) -> None:
        _, cell, _ = self._quoted_cell(self.record[:1])
        message = (
            f"opens a quote at line {self.first_line} that closes only at line "
            f"{self.first_line + len(self.record) - 1}, across lines that read as rows of their own; "
            "those are read as rows. Close the quote in its own cell or remove it"
        )
        self._refuse(number, message, cell, read_again_from=1)

    def _refuse_bad_quote(self, number: int) -> None:
        """The record's lines up to the bad quote are this row; the lines after it are read again."""
        offset, cell, never_closed = self._quoted_cell(self.record)
        if never_closed:
            message = (
                f"opens a quote at line {self.first_line + offset} that is never closed; "
                "close it or remove the quote character"
            )
            self._refuse(number, message, cell, read_again_from=offset + 1)
            return
        message = (
            f"has a cell on line {self.first_line + offset} that starts with a quote and goes on after the "
            'closing one; put the whole cell in quotes and write each quote inside it twice (""), or remove the quotes'
        )
        self._refuse(number, message, cell, read_again_from=len(self.record))

    def _refuse(self, number: int, message: str, cell: int, *, read_again_from: int) -> None:
        if not self.header:
            raise KBError(f"{self.source}: the header row {message}")
        column = self.header[cell] if cell < len(self.header) else f"column {cell + 1}"
        self.problems.append(Problem(self.source, message, field=column, row=number))
        self.refused += 1
        self.again.extend(reversed(self.record[read_again_from:]))
        del self.record[read_again_from:]

    def _quoted_cell(self, lines: list[str]) -> tuple[int, int, bool]:
        """Where the last quoted cell in these lines of one record opened (which line, which cell),
        read as the csv module reads, and whether its quote was never closed.

        A quote closed with more text after it is the cell's own fault ('"Phase 2" review') unless that
        quote begins a later cell: then it is the opening quote of that cell, and the earlier one was
        never closed.
        """
        opened_line, opened_cell, cell, state = 0, 0, 0, "start"
        for offset, line in enumerate(lines):
            for position, char in enumerate(line):
                if state == "quoted":
                    state = "quote in quoted" if char == '"' else state
                elif state == "quote in quoted" and char not in (self.delimiter, "\r", "\n"):
                    if char == '"':
                        state = "quoted"  # a doubled quote is text
                        continue
                    begins_cell = position == 1 or line[position - 2] == self.delimiter
                    return opened_line, opened_cell, begins_cell
                elif char == '"' and state == "start":
                    opened_line, opened_cell, state = offset, cell, "quoted"
                elif char == self.delimiter:
                    cell, state = cell + 1, "start"
                else:
                    state = "in cell"
        return opened_line, opened_cell, state == "quoted"

    def _joins_rows(self, values: list[str]) -> bool:
        """A record over several lines that a stray quote has made of several rows.

        A cell's own line breaks leave the record in line with the header, and the lines inside such a
        cell are prose or blank, not rows. So a record is taken for joined rows when every line after
        its first reads as a row of this table on its own, and either its cells do not line up with the
        header or there are lines between its first and last. (Two lines that line up are ambiguous:
        'A,"Line one.' then 'Line two, and more.",x' is as likely a cell with a line break.) A table of
        one or two columns is too easily mistaken, and is left as the csv module reads it.
        """
        width = len(self.header)
        if width < 3:
            return False
        lined_up = len(values) >= width and not any(value.strip() for value in values[width:])
        if lined_up and len(self.record) < 3:
            return False
        return all(self._is_row(line) for line in self.record[1:])

    def _may_join_two_rows(self) -> bool:
        """A record of two lines whose second line reads as a row on its own: a cell with a line break,
        or a stray quote that swallowed the next row. Which one, only the person who wrote it can say."""
        return len(self.header) >= 3 and len(self.record) == 2 and self._is_row(self.record[1])

    def _warn_of_a_possible_join(self, number: int) -> None:
        _, cell, _ = self._quoted_cell(self.record[:1])
        column = self.header[cell] if cell < len(self.header) else f"column {cell + 1}"
        message = (
            f"has a quoted cell from line {self.first_line} to line {self.first_line + 1}, and line "
            f"{self.first_line + 1} reads as a row of its own; if it is one, a quote is missing on line "
            f"{self.first_line}: close it and import again"
        )
        self.problems.append(Problem(self.source, message, field=column, row=number, severity="warning"))

    def _is_row(self, line: str) -> bool:
        """The line on its own is one record with a cell for every column, not all of them empty."""
        try:
            cells = next(csv.reader([line], delimiter=self.delimiter, strict=True))
        except (csv.Error, StopIteration):
            return False
        return len(cells) == len(self.header) and any(cell.strip() for cell in cells)


def read_csv(path: Path, delimiter: str | None = None) -> Table:
    text, encoding = _decode(_read_bytes(path), path.name)
    if not text.strip():
        raise KBError(f"{path.name} is empty; the first row must name the columns")
    if not delimiter:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else _guess_delimiter(text.split("\n", 1)[0])
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # huge cells are read, then cut and reported
    csv_records = _CsvRecords(text, delimiter, path.name).read()
    table = _rows_from_records(csv_records.records, path.name, fixed_width=True)
    table.refused += csv_records.refused
    table.problems.extend(csv_records.problems)
    table.encoding = encoding
    table.problems[:0] = _encoding_note(path.name, encoding)
    return table


def read_xlsx(path: Path, sheet: str | int | None = None) -> Table:
    import openpyxl  # only Excel imports pay for loading it

    try:
        with path.open("rb"):  # the same clear messages as other formats for a missing or unreadable file
            pass
    except OSError as exc:
        raise _file_error(path, exc) from None
    _check_file_size(path)
    _check_unpacked_size(path)
    try:
        with warnings.catch_warnings():  # openpyxl warns about Excel features it skips; none hold row data
            warnings.simplefilter("ignore")
            workbook = openpyxl.load_workbook(path, read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises many types for a damaged or mislabelled file
        raise KBError(
            f"{path.name} is not an Excel .xlsx workbook ({_one_line(exc)}); "
            "open it in Excel and save it as .xlsx, or export it as CSV"
        ) from None
    try:
        worksheet = _pick_sheet(workbook, sheet, path.name)
        worksheet.reset_dimensions()  # some writers record a wrong sheet size; read every row there is
        records, formulas = [], []
        for number, cells in enumerate(worksheet.iter_rows(min_row=1), start=1):
            _check_row_count(number, path.name)
            records.append((number, [c.value for c in cells]))
            formulas.extend((number, i) for i, c in enumerate(cells) if c.data_type == "f")
    except KBError:
        raise
    except Exception as exc:
        raise KBError(f"{path.name} cannot be read as a workbook ({_one_line(exc)})") from None
    finally:
        workbook.close()
    table = _rows_from_records(records, path.name, fixed_width=False)
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
    if unpacked > MAX_WORKBOOK_BYTES:
        raise KBError(
            f"{path.name} would unpack to {unpacked:,} bytes; a workbook may unpack to at most "
            f"{MAX_WORKBOOK_BYTES:,} bytes ({MAX_WORKBOOK_BYTES // 1_000_000:,} MB). If it is a real register, "
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


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or exc.__class__.__name__
    return text[:200]


def read_jsonl(path: Path) -> Table:
    text, encoding = _decode(_read_bytes(path), path.name)
    records: list[tuple[int, dict[str, Cell]]] = []
    problems = _encoding_note(path.name, encoding)
    refused, empty = 0, []
    # Split at line feeds only: str.splitlines would also break at characters JSON keeps inside strings.
    # Read lazily, so that the row cap stops a flood of lines before they are all in memory.
    for number, line in enumerate(io.StringIO(text, newline="\n"), start=1):
        _check_row_count(number, path.name)
        if not line.strip():
            empty.append(number)
            continue
        try:
            data = json.loads(line, object_pairs_hook=_refuse_repeated_keys)
        except json.JSONDecodeError as exc:
            problems.append(Problem(path.name, f"is not valid JSON ({exc.msg} at character {exc.pos + 1})", row=number))
            refused += 1
            continue
        except RepeatedKey as exc:  # the last value would win silently, as with a repeated YAML key
            problems.append(Problem(path.name, f"gives '{exc.key}' twice; keep one of them", field=exc.key, row=number))
            refused += 1
            continue
        if not isinstance(data, dict):
            problems.append(Problem(path.name, "must be one JSON object {...} per line", row=number))
            refused += 1
            continue
        records.append((number, _flatten(data)))
    if not records and not refused:
        raise KBError(f"{path.name} is empty; write one JSON object per line")
    header = list(dict.fromkeys(name for _, cells in records for name in cells))
    table = Table(header=header, problems=problems, refused=refused, encoding=encoding, spreadsheet=False)
    for number, cells in records:
        if _is_empty(cells):
            empty.append(number)
        else:
            table.rows.append((number, {name: cells.get(name, "") for name in header}))
    last = records[-1][0] if records else 0
    _note_empty(sorted(n for n in empty if n < last), path.name, problems)
    return table


class RepeatedKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _refuse_repeated_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for key, value in pairs:
        if key in data:
            raise RepeatedKey(key)
        data[key] = value
    return data


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Cell]:
    """Nested objects become dotted columns (lighthouse.stage, sections.Context); lists stay lists."""
    out: dict[str, Cell] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten(value, f"{name}."))
        elif isinstance(value, list):
            out[name] = [v if isinstance(v, str) else _json_item(v) for v in value if v is not None]
        else:
            out[name] = _cell_text(value)
    return out


def _json_item(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False) if isinstance(value, (dict, list)) else _cell_text(value)


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
