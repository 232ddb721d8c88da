"""Bulk import of an existing register (CSV, Excel .xlsx, JSONL) through a YAML column mapping.

    mapping = load_mapping(Path("mappings/nasa-llis.yaml"))   # None: Lighthouse's own export format
    report = import_table(EntryStore("entries"), Path("llis.xlsx"), mapping)
    print(report.summary())

Every row becomes one entry file or one reported problem, numbered as a spreadsheet numbers rows
(the header is row 1); a bad row never stops the others. Only a whole-file failure (unreadable file,
bad mapping, missing columns) raises KBError. The mapping format is described in docs/importing.md.

The mapping lives in kb.mapping and the file readers in kb.tables; this module turns their rows into
entries and places those in the store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from kb.entries import (
    MAX_FILE_BYTES,
    MAX_SECTION,
    MAX_SUMMARY,
    MAX_TITLE,
    Entry,
    Lighthouse,
    entry_from_dict,
    parse_entry,
    render_entry,
    slugify,
)
from kb.errors import Conflict, EntryError, Problem
from kb.exporter import LIGHTHOUSE_COLUMNS, LIST_FIELDS, LIST_SEPARATOR, WITHHOLDABLE, unguard_formula
from kb.mapping import (
    BUILT_IN_DEFAULTS,
    MUST_HAVE,
    TEMPLATE_RE,
    Mapping,
    Rule,
    column_key,
    load_mapping,
    placeholder_key,
)
from kb.store import EntryStore
from kb.tables import Cell, read_table
from kb.vocabulary import Vocabulary

# load_mapping and Mapping are re-exported: callers import the whole import API from here.
__all__ = [
    "ImportReport",
    "Mapping",
    "clean_row",
    "import_table",
    "list_value",
    "load_mapping",
    "section_text",
    "shorten_summary",
    "shorten_title",
    "split_items",
    "text_value",
]

Row = dict[str, Cell]  # normalised column name -> cleaned cell

MAX_CELL = MAX_SECTION  # longer cells are cut here and reported: no section could hold more
WRITE_ATTEMPTS = 3  # a row is settled again when another writer changes its entry between read and write
DATE_FIELDS = ("started", "ended", "created", "updated")
_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DATETIME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")
_SECTION_HEADING_RE = re.compile(r"^##(?=[ \t])", re.M)
_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+")
_WITHHELD_SPLIT_RE = re.compile(r"[;,\s]+")


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


def clean_row(
    number: int, cells: dict[str, Cell], mapping: Mapping, source: str, spreadsheet: bool = True
) -> tuple[Row, list[Problem]]:
    """Cells keyed by normalised column name: trimmed, blank-equivalents emptied, huge ones cut and reported."""
    row: Row = {}
    problems: list[Problem] = []
    for name, value in cells.items():
        value, length = _cap(value)
        if length:
            problems.append(
                Problem(
                    source,
                    f"is {length:,} characters; kept the first {MAX_CELL:,}, the rest was dropped",
                    row=number,
                    field=name,
                    severity="warning",
                )
            )
        row[column_key(name)] = _clean_cell(value, mapping.empty_values, spreadsheet)
    return row, problems


def _cell(row: Row, column: str) -> Cell:
    return row.get(column_key(column), "")


def _as_text(value: Cell) -> str:
    return f"{LIST_SEPARATOR} ".join(value) if isinstance(value, list) else value


def _fill(template: str, row: Row) -> str:
    """The template with each {Column} replaced; nothing at all if any column it names is empty."""
    names = TEMPLATE_RE.findall(template)
    if any(not _as_text(_cell(row, n)) for n in names):
        return ""
    return TEMPLATE_RE.sub(lambda m: _as_text(_cell(row, m.group(1))), template).strip()


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


def _withheld_names(cell: Cell) -> list[str]:
    """Field names in a `withheld` cell: a JSON list, or names separated by ';' (as exported), ',' or spaces."""
    items = cell if isinstance(cell, list) else [cell]
    return list(dict.fromkeys(name.casefold() for item in items for name in _WITHHELD_SPLIT_RE.split(item) if name))


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
    withheld: frozenset[str] = frozenset()  # fields a reader's export left out: not provided by this row


class _RowBuilder:
    """Builds one row's fields, sections and id; every problem carries the row number and column."""

    def __init__(self, mapping: Mapping, source: str):
        self.mapping = mapping
        self.source = source
        self.withheld_rows: dict[str, int] = {}  # field -> how many rows had it withheld

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
        withheld = self.withheld(number, row, problems)
        for name in withheld:
            data.pop(name, None)
        needs_text = self.placeholders(number, row, problems)
        defaulted = self.apply_defaults(data, needs_text, withheld)
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
        built = BuiltRow(number, entry_id, data, sections, keyed, defaulted, needs_text, withheld)
        return built, problems

    def withheld(self, number: int, row: Row, problems: list[Problem]) -> frozenset[str]:
        """The fields this row's `withheld` cell names: a reader's export left them out or cut them short."""
        column = self.mapping.withheld_column
        if not column:
            return frozenset()
        names = _withheld_names(_cell(row, column))
        unknown = [name for name in names if name not in WITHHOLDABLE]
        if unknown:
            quoted = ", ".join(f"'{name}'" for name in unknown)
            message = f"names {quoted}, which no export withholds (only optional fields such as team); ignored"
            problems.append(self.problem(number, message, column, "warning"))
        known = frozenset(name for name in names if name in WITHHOLDABLE)
        for name in known:
            self.withheld_rows[name] = self.withheld_rows.get(name, 0) + 1
        return known

    def withheld_note(self) -> list[Problem]:
        """One warning for the whole file: which fields rows withheld, and that those were left as stored."""
        if not self.withheld_rows:
            return []
        counts = ", ".join(
            f"{name} ({count:,} row{'s' if count > 1 else ''})" for name, count in self.withheld_rows.items()
        )
        return [
            Problem(
                self.source,
                f"is an export for a reader, with fields withheld: {counts}; those fields were left as stored "
                "(and empty on new entries), not blanked",
                severity="warning",
            )
        ]

    def placeholders(self, number: int, row: Row, problems: list[Problem]) -> bool:
        """Cells that only point elsewhere ('See attached PDF.'): reported; a row with nothing else is held back."""
        if not self.mapping.placeholders:
            return False
        pointing, real = [], 0
        for rules in self.mapping.sections.values():
            for rule in rules:
                for column in rule.columns:
                    text = _as_text(_cell(row, column))
                    if placeholder_key(text) in self.mapping.placeholders:
                        pointing.append((column, text))
                    elif text:
                        real += 1
        if not pointing:
            return False
        columns = ", ".join(column for column, _ in pointing)
        quoted = "; ".join(dict.fromkeys(f"'{text}'" for _, text in pointing))
        if real:
            problems.append(
                self.problem(
                    number,
                    f"says only {quoted}: that text is in an attachment this file does not hold",
                    columns,
                    "warning",
                )
            )
            return False
        problems.append(
            self.problem(
                number,
                f"says only {quoted}: the lesson's text is not in this file. Imported as "
                f"{self.mapping.placeholder_status}, tagged '{self.mapping.placeholder_tag}', until a curator adds it",
                columns,
                "warning",
            )
        )
        return True

    def apply_defaults(self, data: dict[str, Any], needs_text: bool, withheld: frozenset[str]) -> set[str]:
        """Fill empty fields from the mapping's defaults, then the built-in safe ones; say which were filled.
        A withheld field is left empty: its value is unknown, not missing."""
        defaulted = set()
        for name, value in {**BUILT_IN_DEFAULTS, **self.mapping.defaults}.items():
            if not data.get(name) and value and name not in withheld:
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

    def fit_title_and_summary(
        self, number: int, data: dict[str, Any], sections: dict[str, str], problems: list[Problem]
    ) -> None:
        """Shorten an over-long title or summary, keeping the full text under Context so nothing is lost."""
        keep: list[str] = []
        title, summary = data["title"], data["summary"]
        if len(title) > MAX_TITLE:
            data["title"] = shorten_title(" ".join(title.split()))
            keep.append(f"**Full title:** {title}")
            problems.append(
                self.problem(
                    number,
                    f"is {len(title)} characters; shortened to {MAX_TITLE}, the full title is kept under Context",
                    self.mapping.label("title"),
                    "warning",
                )
            )
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
                problems.append(
                    self.problem(
                        number,
                        f"section '{name}' would be {len(text):,} characters; kept the first {MAX_SECTION:,}",
                        name,
                        "warning",
                    )
                )

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
        text = (
            f"{self.source}: {self.rows:,} rows: {len(self.created):,} {verb}created, "
            f"{len(self.updated):,} {verb}updated, {len(self.unchanged):,} unchanged, "
            f"{len(self.refused_rows):,} refused, {len(self.warnings):,} warnings"
        )
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
                self.report.problems.append(
                    Problem(
                        self.source,
                        p.message,
                        field=self.mapping.label(name or ""),
                        row=built.number,
                        severity=p.severity,
                    )
                )
            return None
        if self.vocabulary.themes and entry.themes:
            entry.themes, warnings = self.vocabulary.normalise(entry.themes, self.source)
            self.report.problems.extend(
                replace(w, row=built.number, field=self.mapping.label("themes")) for w in warnings
            )
        return entry

    def claim(self, built: BuiltRow) -> bool:
        """One id per row: a second row with the same key, or a title that slugs the same, is refused."""
        first = self.claimed.get(built.entry_id)
        if first is None:
            self.claimed[built.entry_id] = built.number
            return True
        if built.keyed:
            self.problem(
                built.number,
                f"has the same key as row {first} (id '{built.entry_id}'); keys must be "
                "unique, so this row was not imported",
                self.mapping.key_column,
            )
        else:
            self.problem(
                built.number,
                f"gives the id '{built.entry_id}', which row {first} already has; make the "
                "titles differ or map a key column under id:",
                self.mapping.label("title"),
            )
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
            self.problem(
                built.number,
                f"would replace {path.name}, which cannot be read ({reason}); fix or remove that file first",
            )
            return None, None, False
        if not built.keyed and old.source != built.data.get("source", ""):
            self.problem(
                built.number,
                f"gives the id '{built.entry_id}', which an entry from elsewhere already has; "
                "change the title or map a key column under id:",
                self.mapping.label("title"),
            )
            return None, None, False
        return old, version, True

    def merge(self, new: Entry, old: Entry, built: BuiltRow) -> Entry:
        """The mapped columns win; what the file has and the mapping does not set is kept, and so are
        values a curator gave where the row itself is empty (defaults only fill a new entry)."""
        values = {}
        for name in Entry.__dataclass_fields__:
            if name == "sections":
                continue
            keep_old = name not in self.owned_fields or name in built.defaulted or name in built.withheld
            values[name] = getattr(old if keep_old else new, name)
        values["id"] = new.id
        values["lighthouse"] = self.merge_lighthouse(new.lighthouse, old.lighthouse, built)
        sections = {k: v for k, v in old.sections.items() if k not in self.owned_sections}
        sections.update(new.sections)
        return Entry(**values, sections=sections)

    def merge_lighthouse(self, new: Lighthouse | None, old: Lighthouse | None, built: BuiltRow) -> Lighthouse | None:
        """Part by part, as `merge` does for fields: the row's value for each lighthouse column it provides,
        the stored one for the rest. A row that provides the stage and leaves it empty removes it."""
        provided = {
            column.split(".", 1)[1]
            for column in LIGHTHOUSE_COLUMNS
            if column in self.owned_fields and column not in built.defaulted and column not in built.withheld
        }
        if old is None or (new is None and "stage" in provided):
            return new
        if new is None:
            return old
        return Lighthouse(
            **{part: getattr(new if part in provided else old, part) for part in Lighthouse.__dataclass_fields__}
        )

    def place(self, built: BuiltRow) -> None:
        entry = self.validate(built)
        if entry is None or not self.claim(built):
            return
        for _ in range(WRITE_ATTEMPTS):
            if self.settle(built, entry):
                return
        self.problem(
            built.number,
            f"could not be written: its entry file changed {WRITE_ATTEMPTS} times while this import wrote it; "
            "import again to retry this row",
        )

    def settle(self, built: BuiltRow, entry: Entry) -> bool:
        """Create, update or leave alone this row's entry as it is on disk now, and record which.

        False when another writer (another import running at the same time, an edit in the app) got
        there between the read and the write: the row is then settled again against what it left, so
        a row that writer already wrote is unchanged rather than refused.
        """
        old, version, allowed = self.existing(built)
        if not allowed:
            return True
        if old is not None and built.needs_text and self.mapping.placeholder_tag not in old.tags:
            self.report.unchanged.append(entry.id)  # a curator has added the text; the register has not
            return True
        if old is not None:
            entry = self.merge(entry, old, built)
        written = self.read_back(entry, built)
        if written is None:
            return True
        if old is not None and written == old:  # compared as entries, so formatting alone is no change
            self.report.unchanged.append(entry.id)
            return True
        try:
            if not self.write(built, entry, old, version):
                return True
        except Conflict:
            return False
        (self.report.created if old is None else self.report.updated).append(entry.id)
        return True

    def read_back(self, entry: Entry, built: BuiltRow) -> Entry | None:
        """The entry exactly as its file would read, or None (reported) when that file would be refused."""
        text = render_entry(entry)
        size = len(text.encode("utf-8"))
        if size > MAX_FILE_BYTES:
            self.problem(
                built.number,
                f"would make an entry file of {size:,} bytes; the limit is {MAX_FILE_BYTES:,}; "
                "shorten the longest cells",
            )
            return None
        try:
            return parse_entry(text, f"{entry.id}.md")[0]
        except EntryError as exc:
            for p in exc.problems:
                self.problem(built.number, p.message, p.field)
            return None

    def write(self, built: BuiltRow, entry: Entry, old: Entry | None, version: str | None) -> bool:
        """Write the entry; False (reported) when it cannot be. Conflict, a lost race, is the caller's to settle."""
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
        except OSError as exc:
            self.problem(built.number, f"could not be written ({exc.strerror or exc}); import again to retry this row")
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
    report = ImportReport(
        source=path.name,
        encoding=table.encoding,
        dry_run=dry_run,
        problems=list(table.problems),
        rows=len(table.rows) + table.refused,
    )
    vocabulary = vocabulary if vocabulary is not None else Vocabulary.load(store.root)
    builder = _RowBuilder(bound, path.name)
    importer = _Importer(store, bound, vocabulary, report)
    for number, cells in table.rows:
        row, problems = clean_row(number, cells, bound, path.name, table.spreadsheet)
        built, build_problems = builder.build(number, row)
        report.problems.extend(problems + build_problems)
        if built is not None:
            importer.place(built)
    report.problems.extend(builder.withheld_note())
    report.problems.sort(key=lambda p: (p.row or 0, p.severity != "error"))
    return report
