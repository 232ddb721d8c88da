"""Bulk import of an existing register (CSV, Excel .xlsx, JSONL) through a YAML column mapping.

    mapping = load_mapping(Path("mappings/nasa-llis.yaml"))   # None: Lighthouse's own export format
    report = import_table(EntryStore("entries"), Path("llis.xlsx"), mapping)
    print(report.summary())

Every row becomes one entry file or one reported problem, numbered as a spreadsheet numbers rows
(the header is row 1); a bad row never stops the others. Only a whole-file failure (unreadable file,
bad mapping, missing columns) raises KBError. The mapping format is described in docs/importing.md.

The mapping lives in kb.mapping and the file readers in kb.registers; this module turns their rows into
entries and places those in the store.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from kb.entries import LIGHTHOUSE_FIELDS, MAX_FILE_BYTES, Entry, Lighthouse
from kb.entry_files import entry_from_dict, parse_entry, render_entry
from kb.errors import Conflict, EntryError, Problem
from kb.exporter import LIGHTHOUSE_COLUMNS
from kb.import_rows import (
    BuiltRow,
    RowBuilder,
    clean_row,
    list_value,
    section_text,
    shorten_summary,
    shorten_title,
    split_items,
    text_value,
)
from kb.mapping import (
    Mapping,
    load_mapping,
)
from kb.registers import read_table
from kb.store import EntryStore
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


WRITE_ATTEMPTS = 3  # a row is settled again when another writer changes its entry between read and write


# --------------------------------------------------------------------------- rows into entries


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
                name = f"lighthouse.{p.field}" if p.field in LIGHTHOUSE_FIELDS else p.field
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
        if "reused_by" in provided:  # the column gives each reuse's date and benefit with its id
            provided.add("reuse")
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
    builder = RowBuilder(bound, path.name)
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
