"""Bulk import of an existing register (CSV, Excel .xlsx, JSONL) through a YAML column mapping.

    mapping = load_mapping(Path("mappings/nasa-llis.yaml"))   # None: Lighthouse's own export format
    report = import_table(EntryStore("entries"), Path("llis.xlsx"), mapping)
    print(report.summary())

Every row becomes one entry file or one reported problem, numbered as a spreadsheet numbers rows
(the header is row 1); a bad row never stops the others. Only a whole-file failure (unreadable file,
bad mapping, missing columns) raises KBError. The mapping format is described in docs/importing.md.

The readers are the standard csv and json modules and openpyxl, not pandas' readers: those stop
at the first malformed line, renumber rows around blank lines, and drop the text of formula cells,
and this module must report each of those by row and keep going.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from kb.entries import (
    EVIDENCE_GRADES,
    KINDS,
    LIGHTHOUSE_STAGES,
    MAX_FILE_BYTES,
    MAX_ID,
    MAX_SECTION,
    MAX_SUMMARY,
    MAX_TITLE,
    OUTCOMES,
    SECTIONS,
    STATUSES,
    VISIBILITIES,
    Entry,
    EntryStore,
    entry_from_dict,
    parse_entry,
    render_entry,
    slugify,
)
from kb.errors import Conflict, EntryError, KBError, Problem
from kb.exporter import (
    FIELD_COLUMNS,
    LIGHTHOUSE_COLUMNS,
    LIST_FIELDS,
    LIST_SEPARATOR,
    SECTION_PREFIX,
    unguard_formula,
)
from kb.vocabulary import Vocabulary

Cell = str | list[str]
Row = dict[str, Cell]  # normalised column name -> cleaned cell

MAX_CELL = MAX_SECTION  # longer cells are cut here and reported: no section could hold more
MAX_PREFIX = MAX_ID - 80  # slugify keeps 80 characters of the key; the id must stay within MAX_ID
FIELDS = FIELD_COLUMNS[1:]  # everything but id, which the mapping's `id:` block decides
DATE_FIELDS = ("started", "ended", "created", "updated")
# Safe values for required fields a register rarely has: held back for review, and not public.
BUILT_IN_DEFAULTS = {"status": "draft", "visibility": "internal"}
MUST_HAVE = ("kind", "outcome", "organisation")  # required, and no value is safe to assume
CHOICES = {"kind": KINDS, "outcome": OUTCOMES, "status": STATUSES, "visibility": VISIBILITIES,
           "evidence": EVIDENCE_GRADES, "lighthouse.stage": LIGHTHOUSE_STAGES}
TEXT_SUFFIXES = (".csv", ".tsv", ".txt")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
JSONL_SUFFIXES = (".jsonl", ".ndjson")
SUPPORTED = ".csv, .tsv, .xlsx, .jsonl"
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_TEMPLATE_RE = re.compile(r"\{([^{}]+)\}")
_DATETIME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")
_SECTION_HEADING_RE = re.compile(r"^##(?=[ \t])", re.M)
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+")


def column_key(name: str) -> str:
    """How column names are compared: any case, any run of spaces (Excel headers often carry stray ones)."""
    return " ".join(str(name).split()).casefold()


def _placeholder_key(text: str) -> str:
    return column_key(text).rstrip(".!:;")


# --------------------------------------------------------------------------- the mapping


@dataclass
class Rule:
    """Where one field or one part of a section comes from, and how its cells are read."""

    columns: tuple[str, ...] = ()
    template: str = ""
    split: str = ","
    keep_together: tuple[str, ...] = ()
    values: dict[str, str] = field(default_factory=dict)  # casefolded cell text -> value
    otherwise: str | None = None
    label: str = ""

    def named_columns(self) -> list[str]:
        return [*self.columns, *_TEMPLATE_RE.findall(self.template)]


@dataclass
class Mapping:
    """A register's columns mapped onto entry fields and sections; see docs/importing.md."""

    name: str
    fields: dict[str, Rule] = field(default_factory=dict)
    sections: dict[str, list[Rule]] = field(default_factory=dict)
    key_column: str | None = None
    id_prefix: str = ""
    defaults: dict[str, str] = field(default_factory=dict)
    empty_values: frozenset[str] = frozenset()
    placeholders: tuple[str, ...] = ()
    placeholder_tag: str = "needs-text"
    placeholder_status: str = "draft"
    sheet: str | int | None = None
    delimiter: str | None = None
    section_prefixes: tuple[str, ...] = ()
    strict: bool = True  # every named column must exist; the built-in format tolerates missing optional ones

    def named_columns(self) -> dict[str, str]:
        """Every column the mapping names, with what it is used for."""
        named: dict[str, str] = {}
        if self.key_column:
            named.setdefault(self.key_column, "id")
        for name, rule in self.fields.items():
            for column in rule.named_columns():
                named.setdefault(column, name)
        for name, rules in self.sections.items():
            for rule in rules:
                for column in rule.named_columns():
                    named.setdefault(column, f"section {name}")
        return named

    def label(self, field_name: str) -> str:
        """The name to show a spreadsheet user for a field: its column when it comes from exactly one."""
        rule = self.fields.get(field_name)
        if rule is not None and len(rule.columns) == 1 and not rule.template:
            return rule.columns[0]
        return field_name

    def bind(self, header: list[str], source: str) -> Mapping:
        """This mapping checked against a file's header; section-prefix columns become sections."""
        present = {column_key(h) for h in header}
        missing = {c: use for c, use in self.named_columns().items() if column_key(c) not in present}
        bound = self
        if not self.strict:  # optional columns may be absent; those a row cannot do without may not
            bound = self._without(missing)
            needed = ("title", "summary", *(n for n in MUST_HAVE if not self.defaults.get(n)))
            missing = {c: use for c, use in missing.items() if use in needed}
        if missing:
            wanted = ", ".join(f"'{c}' (for {use})" for c, use in missing.items())
            raise KBError(f"{source} has no column {wanted}; its columns are: {', '.join(header) or '(none)'}")
        if not self.section_prefixes:
            return bound
        sections = dict(bound.sections)
        for column in header:
            for prefix in self.section_prefixes:
                if column_key(column).startswith(column_key(prefix)):
                    name = _canonical_section(" ".join(column.strip()[len(prefix.strip()):].split()))
                    sections.setdefault(name, []).append(Rule((column,)))
        return replace(bound, sections=sections)

    def _without(self, missing: dict[str, str]) -> Mapping:
        gone = {column_key(c) for c in missing}
        fields = {n: r for n, r in self.fields.items()
                  if n in ("title", "summary") or not any(column_key(c) in gone for c in r.named_columns())}
        key = None if self.key_column and column_key(self.key_column) in gone else self.key_column
        return replace(self, fields=fields, key_column=key)


def _canonical_section(name: str) -> str:
    return next((s for s in SECTIONS if s.lower() == name.lower()), name)


class _MappingReader:
    """Turns the YAML into a Mapping, with one clear line for the first thing wrong."""

    TOP = ("description", "id", "fields", "sections", "defaults", "empty_values", "placeholders", "sheet",
           "delimiter")
    RULE_KEYS = ("column", "columns", "template", "split", "keep_together", "values", "otherwise", "label")

    def __init__(self, source: str):
        self.source = source

    def fail(self, message: str) -> KBError:
        return KBError(f"mapping {self.source}: {message}")

    def read(self, data: Any) -> Mapping:
        if not isinstance(data, dict):
            raise self.fail("must be 'key: value' lines, starting with fields: and sections:")
        unknown = [str(k) for k in data if k not in self.TOP]
        if unknown:
            raise self.fail(f"unknown setting '{unknown[0]}'; the settings are: {', '.join(self.TOP)}")
        key_column, prefix = self.id_block(data.get("id"))
        mapping = Mapping(
            name=self.source,
            fields=self.fields(data.get("fields")),
            sections=self.sections(data.get("sections")),
            key_column=key_column,
            id_prefix=prefix,
            defaults=self.defaults(data.get("defaults")),
            empty_values=frozenset(column_key(v) for v in self.strings(data.get("empty_values"), "empty_values")),
            sheet=self.sheet(data.get("sheet")),
            delimiter=self.delimiter(data.get("delimiter")),
        )
        mapping = self.placeholders(mapping, data.get("placeholders"))
        self.check_required(mapping)
        return mapping

    def strings(self, value: Any, where: str) -> list[str]:
        if value is None:
            return []
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return [str(value)]
        if isinstance(value, list) and all(isinstance(v, (str, int, float)) for v in value):
            return [str(v) for v in value]
        raise self.fail(f"{where} must be a column name or a list of them, e.g. [Topics, Keywords]")

    def id_block(self, value: Any) -> tuple[str | None, str]:
        if value is None:
            return None, ""
        if isinstance(value, str):
            return value, ""
        if not isinstance(value, dict) or set(value) - {"column", "prefix"}:
            raise self.fail("id: needs 'column: <key column>' and, if you like, 'prefix: <text>'")
        prefix = str(value.get("prefix") or "")
        if prefix and (slugify(prefix).rstrip("-") != prefix.rstrip("-") or len(prefix) > MAX_PREFIX):
            raise self.fail(f"id prefix '{prefix}' must be lowercase letters, digits and hyphens, "
                            f"at most {MAX_PREFIX} characters, e.g. '{slugify(prefix)}-'")
        column = value.get("column")
        return (str(column) if column not in (None, "") else None), prefix

    def rule(self, value: Any, where: str, *, is_list: bool = False, section: bool = False) -> Rule:
        if isinstance(value, (str, list)):
            return Rule(columns=tuple(self.strings(value, where)))
        if not isinstance(value, dict):
            raise self.fail(f"{where} must be a column name, a list of columns, or settings (column:, split:, ...)")
        unknown = [str(k) for k in value if k not in self.RULE_KEYS]
        if unknown:
            raise self.fail(f"{where}: unknown setting '{unknown[0]}'; use: {', '.join(self.RULE_KEYS)}")
        if not section and "label" in value:
            raise self.fail(f"{where}: label is for sections only")
        if not is_list and ("split" in value or "keep_together" in value):
            raise self.fail(f"{where}: split and keep_together are for list fields ({', '.join(LIST_FIELDS)})")
        columns = self.strings(value.get("column"), where) + self.strings(value.get("columns"), where)
        template = str(value.get("template") or "")
        if not columns and not template:
            raise self.fail(f"{where} names no column; add 'column: <name>' or 'template: ...'")
        values = value.get("values") or {}
        if not isinstance(values, dict):
            raise self.fail(f"{where}: values must be 'cell text: value' lines")
        otherwise = value.get("otherwise")
        return Rule(
            columns=tuple(columns),
            template=template,
            split=self.split(value),
            keep_together=tuple(self.strings(value.get("keep_together"), where)),
            values={column_key(str(k)): "" if v is None else str(v) for k, v in values.items()},
            otherwise=None if otherwise is None else str(otherwise),
            label=str(value.get("label") or ""),
        )

    @staticmethod
    def split(value: dict[str, Any]) -> str:
        """The item separator: ',' unless set; 'none' (or no, false) splits at line breaks only."""
        if "split" not in value:
            return ","
        split = value["split"]
        return "" if split in (None, False, "") or str(split).lower() == "none" else str(split)

    def fields(self, value: Any) -> dict[str, Rule]:
        if not isinstance(value, dict):
            raise self.fail("fields: must list 'entry field: column' lines (title and summary at least)")
        rules = {}
        for name, spec in value.items():
            if name not in FIELDS:
                hint = " (it is set by the id: block)" if name == "id" else ""
                raise self.fail(f"'{name}' is not an entry field{hint}; the fields are: {', '.join(FIELDS)}")
            rules[name] = self.rule(spec, f"field {name}", is_list=name in LIST_FIELDS)
        return rules

    def sections(self, value: Any) -> dict[str, list[Rule]]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail("sections: must list 'Section name: column' lines, e.g. 'Lessons: Lessons learned'")
        out: dict[str, list[Rule]] = {}
        for name, spec in value.items():
            where = f"section {name}"
            items = spec if isinstance(spec, list) else [spec]
            out[_canonical_section(str(name))] = [self.rule(item, where, section=True) for item in items]
        return out

    def defaults(self, value: Any) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail("defaults: must be 'field: value' lines, e.g. 'kind: project'")
        for name, default in value.items():
            if name not in FIELDS:
                raise self.fail(f"default for '{name}': not an entry field; the fields are: {', '.join(FIELDS)}")
            self.check_choice(name, default, "defaults")
        return {str(k): "" if v is None else str(v) for k, v in value.items()}

    def check_choice(self, name: str, value: Any, where: str) -> None:
        """A typo in a default would refuse every row; catch it once, here."""
        allowed = CHOICES.get(name)
        if allowed and value not in (None, "") and str(value).lower() not in allowed:
            raise self.fail(f"{where}: {name} '{value}' is not allowed; use one of: {', '.join(allowed)}")

    def sheet(self, value: Any) -> str | int | None:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int) and not isinstance(value, bool) and value >= 1:
            return value
        raise self.fail("sheet: is a sheet's name, or its number counting from 1")

    def delimiter(self, value: Any) -> str | None:
        if value is None:
            return None
        text = {"tab": "\t", "\\t": "\t"}.get(str(value).lower(), str(value))
        if len(text) != 1:
            raise self.fail("delimiter: is one character, such as ',' or ';' or tab")
        return text

    def placeholders(self, mapping: Mapping, value: Any) -> Mapping:
        if value is None:
            return mapping
        if isinstance(value, list):
            value = {"phrases": value}
        if not isinstance(value, dict) or set(value) - {"phrases", "tag", "status"}:
            raise self.fail("placeholders: needs phrases: [...], and tag: and status: if you like")
        tag = str(value.get("tag") or mapping.placeholder_tag)
        status = str(value.get("status") or mapping.placeholder_status)
        self.check_choice("status", status, "placeholders")
        phrases = tuple(_placeholder_key(p) for p in self.strings(value.get("phrases"), "placeholders"))
        return replace(mapping, placeholders=phrases, placeholder_tag=tag, placeholder_status=status)

    def check_required(self, mapping: Mapping) -> None:
        for name in ("title", "summary"):
            if name not in mapping.fields:
                raise self.fail(f"fields: has no '{name}'; name the column it comes from")
        for name in MUST_HAVE:
            if name not in mapping.fields and not mapping.defaults.get(name):
                raise self.fail(f"nothing gives '{name}'; map a column to it or add '{name}: ...' under defaults:")


def identity_mapping() -> Mapping:
    """The columns `export_entries` writes, read back as they were written."""
    fields = {
        name: Rule(columns=(name,), split=LIST_SEPARATOR if name in LIST_FIELDS else ",")
        for name in FIELDS
    }
    return Mapping(
        name="lighthouse",
        fields=fields,
        key_column="id",
        defaults=dict(BUILT_IN_DEFAULTS),
        section_prefixes=(SECTION_PREFIX, "sections."),
        strict=False,
    )


def load_mapping(path: Path | None) -> Mapping:
    """Read a YAML column mapping; None gives the mapping for Lighthouse's own CSV and JSONL export."""
    if path is None:
        return identity_mapping()
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise KBError(f"mapping {path} does not exist; check the path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise KBError(f"mapping {path} cannot be read ({exc.__class__.__name__}); save it as UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or "invalid YAML"
        raise KBError(f"mapping {path.name} is not valid YAML{where} ({reason}); "
                      "check indentation and colons") from None
    return _MappingReader(path.name).read(data)


# --------------------------------------------------------------------------- reading tables


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
    return [Problem(source, f"is not UTF-8; read it as {encoding}. Check accented letters and symbols, "
                    "or save it as CSV UTF-8", severity="warning")]


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
            problems.append(Problem(source, f"column '{name}' appears twice; the later one is read as '{renamed}'",
                                    row=1, severity="warning"))
            name = renamed
        names.append(name)
    while trim and names and not _cell_text(values[len(names) - 1]).strip():
        names.pop()  # trailing unnamed columns are formatting, not data
    return names


def _row_cells(header: list[str], values: list[Any]) -> tuple[dict[str, Cell], int]:
    """The row's cells by column name, and how many non-empty cells lie beyond the header."""
    cells = {name: _cell_text(values[i]) if i < len(values) else "" for i, name in enumerate(header)}
    extra = sum(1 for v in values[len(header):] if _cell_text(v).strip())
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
            problems.append(Problem(source, f"has {extra} filled cell(s) beyond the last named column; a cell may "
                                    "hold an unquoted separator, or a column needs a name", row=number))
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


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise _file_error(path, exc) from None


def read_csv(path: Path, delimiter: str | None = None) -> Table:
    text, encoding = _decode(_read_bytes(path), path.name)
    if not text.strip():
        raise KBError(f"{path.name} is empty; the first row must name the columns")
    if not delimiter:
        delimiter = "\t" if path.suffix.lower() == ".tsv" else _guess_delimiter(text.split("\n", 1)[0])
    csv.field_size_limit(max(csv.field_size_limit(), 1 << 30))  # huge cells are read, then cut and reported
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        records = [(number, values) for number, values in enumerate(reader, start=1)]
    except csv.Error as exc:
        raise KBError(f"{path.name} is not readable CSV near line {reader.line_num} ({exc})") from None
    table = _rows_from_records(records, path.name, fixed_width=True)
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
    try:
        with warnings.catch_warnings():  # openpyxl warns about Excel features it skips; none hold row data
            warnings.simplefilter("ignore")
            workbook = openpyxl.load_workbook(path, read_only=True, data_only=False)
    except Exception as exc:  # openpyxl raises many types for a damaged or mislabelled file
        raise KBError(f"{path.name} is not an Excel .xlsx workbook ({_one_line(exc)}); "
                      "open it in Excel and save it as .xlsx, or export it as CSV") from None
    try:
        worksheet = _pick_sheet(workbook, sheet, path.name)
        worksheet.reset_dimensions()  # some writers record a wrong sheet size; read every row there is
        records, formulas = [], []
        for number, cells in enumerate(worksheet.iter_rows(min_row=1), start=1):
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
        Problem(source, "holds a formula; its text was imported as written, not calculated", row=number,
                field=header[col] if col < len(header) else None, severity="warning")
        for number, col in formulas if number > 1
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
    for number, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            empty.append(number)
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            problems.append(Problem(path.name, f"is not valid JSON ({exc.msg} at character {exc.pos + 1})", row=number))
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


# --------------------------------------------------------------------------- rows into entries


def _clean_cell(value: Cell, empty_values: frozenset[str], spreadsheet: bool) -> Cell:
    if isinstance(value, list):
        return [c for c in (_clean_cell(v, empty_values, spreadsheet) for v in value) if c]
    text = _CONTROL_RE.sub("", value).strip()
    if spreadsheet:
        text = unguard_formula(text)
    return "" if column_key(text) in empty_values else text


def _cap(value: Cell, limit: int = MAX_CELL) -> tuple[Cell, int]:
    """The cell cut to the limit, and its original length when it was cut (else 0)."""
    if isinstance(value, str) and len(value) > limit:
        return value[:limit], len(value)
    return value, 0


def clean_row(number: int, cells: dict[str, Cell], mapping: Mapping, source: str,
              spreadsheet: bool = True) -> tuple[Row, list[Problem]]:
    """Cells keyed by normalised column name: trimmed, blank-equivalents emptied, huge ones cut and reported."""
    row: Row = {}
    problems: list[Problem] = []
    for name, value in cells.items():
        value, length = _cap(value)
        if length:
            problems.append(Problem(source, f"is {length:,} characters; kept the first {MAX_CELL:,}, the rest was "
                                    "dropped", row=number, field=name, severity="warning"))
        row[column_key(name)] = _clean_cell(value, mapping.empty_values, spreadsheet)
    return row, problems


def _cell(row: Row, column: str) -> Cell:
    return row.get(column_key(column), "")


def _as_text(value: Cell) -> str:
    return f"{LIST_SEPARATOR} ".join(value) if isinstance(value, list) else value


def _fill(template: str, row: Row) -> str:
    """The template with each {Column} replaced; nothing at all if any column it names is empty."""
    names = _TEMPLATE_RE.findall(template)
    if any(not _as_text(_cell(row, n)) for n in names):
        return ""
    return _TEMPLATE_RE.sub(lambda m: _as_text(_cell(row, m.group(1))), template).strip()


def _translate(rule: Rule, text: str) -> str:
    if not rule.values and rule.otherwise is None:
        return text
    mapped = rule.values.get(column_key(text))
    if mapped is not None:
        return mapped
    return rule.otherwise if rule.otherwise is not None else text


def text_value(rule: Rule, row: Row) -> str:
    """A single-valued field: the template, or the first of its columns that is not empty."""
    if rule.template:
        return _translate(rule, _fill(rule.template, row))
    for column in rule.columns:
        text = _as_text(_cell(row, column))
        if text:
            return _translate(rule, text)
    return ""


def split_items(text: str, separator: str, keep_together: tuple[str, ...] = ()) -> list[str]:
    """Items of a multi-valued cell: split at the separator and at line breaks, never inside brackets
    or a keep_together phrase; a doubled separator stands for the character itself."""
    guarded: list[str] = []

    def guard(match: re.Match[str]) -> str:
        guarded.append(match.group(0))
        return f"\x00{len(guarded) - 1}\x00"

    for phrase in sorted(keep_together, key=len, reverse=True):
        text = re.sub(re.escape(phrase), guard, text, flags=re.I)
    items, current, depth, i = [], [], 0, 0
    while i < len(text):
        char = text[i]
        if separator and text.startswith(separator * 2, i):
            current.append(separator)
            i += 2 * len(separator)
            continue
        if char in "([":
            depth += 1
        elif char in ")]":
            depth = max(0, depth - 1)
        if char == "\n" or (separator and depth == 0 and text.startswith(separator, i)):
            items.append("".join(current))
            current = []
            i += 1 if char == "\n" else len(separator)
            continue
        current.append(char)
        i += 1
    items.append("".join(current))
    restore = re.compile(r"\x00(\d+)\x00")
    return [restore.sub(lambda m: guarded[int(m.group(1))], item).strip() for item in items if item.strip()]


def list_value(rule: Rule, row: Row) -> list[str]:
    """A list field: the items of every column it names, in order, without repeats."""
    sources: list[Cell] = [_fill(rule.template, row)] if rule.template else [_cell(row, c) for c in rule.columns]
    items: list[str] = []
    for value in sources:
        parts = value if isinstance(value, list) else split_items(value, rule.split, rule.keep_together)
        for part in parts:
            item = _translate(rule, part.strip())
            if item and item not in items:
                items.append(item)
    return items


def _demote_headings(text: str) -> str:
    """A '## ' line inside a cell would start a new section in the entry file; make it a sub-heading."""
    return _SECTION_HEADING_RE.sub("###", text)


def section_text(rules: list[Rule], row: Row) -> str:
    parts = []
    for rule in rules:
        text = text_value(rule, row)
        if text:
            parts.append(f"**{rule.label}:** {text}" if rule.label else text)
    return _demote_headings("\n\n".join(parts))


def shorten_title(title: str, limit: int = MAX_TITLE) -> str:
    return title if len(title) <= limit else _cut_words(title, limit)


def shorten_summary(text: str, limit: int = MAX_SUMMARY) -> str:
    """The first whole sentences that fit; the first words, marked with '…', when even one does not."""
    if len(text) <= limit:
        return text
    kept = ""
    for sentence in _SENTENCE_END_RE.split(text):
        candidate = f"{kept} {sentence}".strip()
        if len(candidate) > limit:
            break
        kept = candidate
    return kept or _cut_words(text, limit)


def _cut_words(text: str, limit: int) -> str:
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    if space > limit // 2:
        cut = cut[:space]
    return cut.rstrip(" ,;:-") + "…"


@dataclass
class BuiltRow:
    """One row turned into entry fields, before it meets the entry files."""

    number: int
    entry_id: str
    data: dict[str, Any]
    sections: dict[str, str]
    keyed: bool
    defaulted: set[str] = field(default_factory=set)
    needs_text: bool = False


class _RowBuilder:
    """Builds one row's fields, sections and id; every problem carries the row number and column."""

    def __init__(self, mapping: Mapping, source: str):
        self.mapping = mapping
        self.source = source

    def problem(self, number: int, message: str, field_name: str | None = None, severity: str = "error") -> Problem:
        return Problem(self.source, message, field=field_name, row=number, severity=severity)

    def build(self, number: int, row: Row) -> tuple[BuiltRow | None, list[Problem]]:
        mapping = self.mapping
        data: dict[str, Any] = {}
        for name, rule in mapping.fields.items():
            value: Any = list_value(rule, row) if name in LIST_FIELDS else text_value(rule, row)
            if name in DATE_FIELDS and isinstance(value, str):
                match = _DATETIME_RE.match(value)
                value = match.group(1) if match else value
            if value:
                data[name] = value
        sections = {name: text for name, rules in mapping.sections.items() if (text := section_text(rules, row))}
        problems: list[Problem] = []
        needs_text = self.placeholders(number, row, problems)
        defaulted = self.apply_defaults(data, needs_text)
        problems.extend(self.missing(number, data))
        if any(p.severity == "error" for p in problems):
            return None, problems
        self.fit_title_and_summary(number, data, sections, problems)
        self.fit_sections(number, sections, problems)
        entry_id, keyed = self.entry_id(row, data)
        data["lighthouse"] = self.lighthouse(data)
        if "source" not in mapping.fields or (not keyed and not data.get("source")):
            # Where the entry came from; for ids made from titles, also how a re-import recognises its own.
            data["source"] = f"Imported from {self.source}"
            defaulted.add("source")
        built = BuiltRow(number, entry_id, data, sections, keyed, defaulted, needs_text)
        return built, problems

    def placeholders(self, number: int, row: Row, problems: list[Problem]) -> bool:
        """Cells that only point elsewhere ('See attached PDF.'): reported; a row with nothing else is held back."""
        if not self.mapping.placeholders:
            return False
        pointing, real = [], 0
        for rules in self.mapping.sections.values():
            for rule in rules:
                for column in rule.columns:
                    text = _as_text(_cell(row, column))
                    if _placeholder_key(text) in self.mapping.placeholders:
                        pointing.append((column, text))
                    elif text:
                        real += 1
        if not pointing:
            return False
        columns = ", ".join(column for column, _ in pointing)
        quoted = "; ".join(dict.fromkeys(f"'{text}'" for _, text in pointing))
        if real:
            problems.append(self.problem(number, f"says only {quoted}: that text is in an attachment this file "
                                         "does not hold", columns, "warning"))
            return False
        problems.append(self.problem(
            number, f"says only {quoted}: the lesson's text is not in this file. Imported as "
            f"{self.mapping.placeholder_status}, tagged '{self.mapping.placeholder_tag}', until a curator adds it",
            columns, "warning"))
        return True

    def apply_defaults(self, data: dict[str, Any], needs_text: bool) -> set[str]:
        """Fill empty fields from the mapping's defaults, then the built-in safe ones; say which were filled."""
        defaulted = set()
        for name, value in {**BUILT_IN_DEFAULTS, **self.mapping.defaults}.items():
            if not data.get(name) and value:
                data[name] = split_items(value, ",") if name in LIST_FIELDS else value
                defaulted.add(name)
        if needs_text:
            data["status"] = self.mapping.placeholder_status
            defaulted.add("status")
            tags = data.setdefault("tags", [])
            if self.mapping.placeholder_tag not in tags:
                tags.append(self.mapping.placeholder_tag)
        return defaulted

    def missing(self, number: int, data: dict[str, Any]) -> list[Problem]:
        out = []
        for name in ("title", "summary", *MUST_HAVE):
            if not data.get(name):
                hint = "" if name in ("title", "summary") else f" and the mapping has no default for {name}"
                out.append(self.problem(number, f"is empty{hint}; every row needs a {name}", self.mapping.label(name)))
        return out

    def fit_title_and_summary(self, number: int, data: dict[str, Any], sections: dict[str, str],
                              problems: list[Problem]) -> None:
        """Shorten an over-long title or summary, keeping the full text under Context so nothing is lost."""
        keep: list[str] = []
        title, summary = data["title"], data["summary"]
        if len(title) > MAX_TITLE:
            data["title"] = shorten_title(" ".join(title.split()))
            keep.append(f"**Full title:** {title}")
            problems.append(self.problem(number, f"is {len(title)} characters; shortened to {MAX_TITLE}, the full "
                                         "title is kept under Context", self.mapping.label("title"), "warning"))
        data["summary"] = shorten_summary(summary)
        if data["summary"] != summary and not any(summary in text for text in sections.values()):
            keep.append(summary)
        if keep:
            context = "\n\n".join(keep + ([sections["Context"]] if "Context" in sections else []))
            sections["Context"] = _demote_headings(context)

    def fit_sections(self, number: int, sections: dict[str, str], problems: list[Problem]) -> None:
        for name, text in sections.items():
            if len(text) > MAX_SECTION:
                sections[name] = text[:MAX_SECTION]
                problems.append(self.problem(number, f"section '{name}' would be {len(text):,} characters; kept the "
                                             f"first {MAX_SECTION:,}", name, "warning"))

    def entry_id(self, row: Row, data: dict[str, Any]) -> tuple[str, bool]:
        """From the key column when it has a value (stable across re-imports), else from the title."""
        prefix = self.mapping.id_prefix
        key = _as_text(_cell(row, self.mapping.key_column)) if self.mapping.key_column else ""
        if key:
            return prefix + slugify(key), True
        return prefix + slugify(data["title"]), False

    @staticmethod
    def lighthouse(data: dict[str, Any]) -> dict[str, Any] | None:
        parts = {c.split(".", 1)[1]: data.pop(c) for c in LIGHTHOUSE_COLUMNS if c in data}
        return parts or None


# --------------------------------------------------------------------------- the import


@dataclass
class ImportReport:
    """What an import did: ids created, updated and unchanged, and every problem by row."""

    source: str = ""
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    rows: int = 0
    encoding: str = ""
    dry_run: bool = False

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity != "error"]

    @property
    def refused_rows(self) -> list[int]:
        """Row numbers that did not become entries."""
        return sorted({p.row for p in self.errors if p.row is not None})

    def summary(self) -> str:
        verb = "would be " if self.dry_run else ""
        text = (f"{self.source}: {self.rows:,} rows: {len(self.created):,} {verb}created, "
                f"{len(self.updated):,} {verb}updated, {len(self.unchanged):,} unchanged, "
                f"{len(self.refused_rows):,} refused, {len(self.warnings):,} warnings")
        if self.encoding not in ("", "utf-8", "utf-8-sig", "xlsx"):
            text += f" (read as {self.encoding})"
        return text


class _Importer:
    """Places built rows into the entry store: create, update, or leave alone; never two rows on one id."""

    def __init__(self, store: EntryStore, mapping: Mapping, vocabulary: Vocabulary, report: ImportReport):
        self.store = store
        self.mapping = mapping
        self.vocabulary = vocabulary
        self.report = report
        self.source = report.source
        self.claimed: dict[str, int] = {}  # entry id -> the row that took it
        self.owned_fields = set(mapping.fields)
        if any(c in mapping.fields for c in LIGHTHOUSE_COLUMNS):
            self.owned_fields.add("lighthouse")
        self.owned_sections = set(mapping.sections)

    def problem(self, number: int, message: str, field_name: str | None = None) -> None:
        self.report.problems.append(Problem(self.source, message, field=field_name, row=number))

    def validate(self, built: BuiltRow) -> Entry | None:
        data = {"id": built.entry_id, **built.data}
        try:
            entry, _ = entry_from_dict(data, self.source, built.sections)
        except EntryError as exc:
            for p in exc.problems:
                name = f"lighthouse.{p.field}" if p.field in ("stage", "impact", "benefits", "reused_by") else p.field
                self.report.problems.append(Problem(self.source, p.message, field=self.mapping.label(name or ""),
                                                    row=built.number, severity=p.severity))
            return None
        if self.vocabulary.themes and entry.themes:
            entry.themes, warnings = self.vocabulary.normalise(entry.themes, self.source)
            self.report.problems.extend(replace(w, row=built.number, field=self.mapping.label("themes"))
                                        for w in warnings)
        return entry

    def claim(self, built: BuiltRow) -> bool:
        """One id per row: a second row with the same key, or a title that slugs the same, is refused."""
        first = self.claimed.get(built.entry_id)
        if first is None:
            self.claimed[built.entry_id] = built.number
            return True
        if built.keyed:
            self.problem(built.number, f"has the same key as row {first} (id '{built.entry_id}'); keys must be "
                         "unique, so this row was not imported", self.mapping.key_column)
        else:
            self.problem(built.number, f"gives the id '{built.entry_id}', which row {first} already has; make the "
                         "titles differ or map a key column under id:", self.mapping.label("title"))
        return False

    def existing(self, built: BuiltRow) -> tuple[Entry | None, str | None, bool]:
        """The entry already on disk for this id, its version, and whether this row may replace it."""
        path = self.store.path_for(built.entry_id)
        if not path.exists():
            return None, None, True
        try:
            old, _, version = self.store.load_file(path)
        except (EntryError, OSError) as exc:
            reason = "; ".join(p.message for p in exc.problems) if isinstance(exc, EntryError) else str(exc)
            self.problem(built.number, f"would replace {path.name}, which cannot be read ({reason}); fix or remove "
                         "that file first")
            return None, None, False
        if not built.keyed and old.source != built.data.get("source", ""):
            self.problem(built.number, f"gives the id '{built.entry_id}', which an entry from elsewhere already has; "
                         "change the title or map a key column under id:", self.mapping.label("title"))
            return None, None, False
        return old, version, True

    def merge(self, new: Entry, old: Entry, built: BuiltRow) -> Entry:
        """The mapped columns win; what the file has and the mapping does not set is kept, and so are
        values a curator gave where the row itself is empty (defaults only fill a new entry)."""
        values = {}
        for name in Entry.__dataclass_fields__:
            if name == "sections":
                continue
            keep_old = name not in self.owned_fields or name in built.defaulted
            values[name] = getattr(old if keep_old else new, name)
        values["id"] = new.id
        sections = {k: v for k, v in old.sections.items() if k not in self.owned_sections}
        sections.update(new.sections)
        return Entry(**values, sections=sections)

    def place(self, built: BuiltRow) -> None:
        entry = self.validate(built)
        if entry is None or not self.claim(built):
            return
        old, version, allowed = self.existing(built)
        if not allowed:
            return
        if old is not None and built.needs_text and self.mapping.placeholder_tag not in old.tags:
            self.report.unchanged.append(entry.id)  # a curator has added the text; the register has not
            return
        if old is not None:
            entry = self.merge(entry, old, built)
        written = self.read_back(entry, built)
        if written is None:
            return
        if old is not None and written == old:  # compared as entries, so formatting alone is no change
            self.report.unchanged.append(entry.id)
            return
        if not self.write(built, entry, old, version):
            return
        (self.report.created if old is None else self.report.updated).append(entry.id)

    def read_back(self, entry: Entry, built: BuiltRow) -> Entry | None:
        """The entry exactly as its file would read, or None (reported) when that file would be refused."""
        text = render_entry(entry)
        size = len(text.encode("utf-8"))
        if size > MAX_FILE_BYTES:
            self.problem(built.number, f"would make an entry file of {size:,} bytes; the limit is {MAX_FILE_BYTES:,}; "
                         "shorten the longest cells")
            return None
        try:
            return parse_entry(text, f"{entry.id}.md")[0]
        except EntryError as exc:
            for p in exc.problems:
                self.problem(built.number, p.message, p.field)
            return None

    def write(self, built: BuiltRow, entry: Entry, old: Entry | None, version: str | None) -> bool:
        if self.report.dry_run:
            return True
        try:
            if old is None:
                self.store.write(entry, create=True)
            else:
                self.store.write(entry, expected_version=version)
        except EntryError as exc:
            for p in exc.problems:
                self.problem(built.number, p.message, p.field)
            return False
        except (Conflict, OSError) as exc:
            self.problem(built.number, f"could not be written ({exc}); import again to retry this row")
            return False
        return True


def import_table(
    store: EntryStore,
    path: Path,
    mapping: Mapping,
    *,
    vocabulary: Vocabulary | None = None,
    dry_run: bool = False,
) -> ImportReport:
    """Import every row of a CSV, .xlsx or JSONL register into the store; see the module docstring.

    `dry_run` reads and validates every row and reports what would happen, writing nothing.
    `vocabulary` defaults to the one beside the entries; themes are matched to it and unknown ones reported.
    """
    path = Path(path)
    table = read_table(path, mapping)
    bound = mapping.bind(table.header, path.name)
    report = ImportReport(source=path.name, encoding=table.encoding, dry_run=dry_run,
                          problems=list(table.problems), rows=len(table.rows) + table.refused)
    vocabulary = vocabulary if vocabulary is not None else Vocabulary.load(store.root)
    builder = _RowBuilder(bound, path.name)
    importer = _Importer(store, bound, vocabulary, report)
    for number, cells in table.rows:
        row, problems = clean_row(number, cells, bound, path.name, table.spreadsheet)
        built, build_problems = builder.build(number, row)
        report.problems.extend(problems + build_problems)
        if built is not None:
            importer.place(built)
    report.problems.sort(key=lambda p: (p.row or 0, p.severity != "error"))
    return report
