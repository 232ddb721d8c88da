"""Export entries to CSV, Excel or JSONL: the Lighthouse table format, which `load_mapping(None)` imports back.

    with open("register.csv", "w", newline="", encoding="utf-8") as out:
        export_entries(entries, "csv", out)
    data = export_bytes(entries, "xlsx")  # a file to hand a browser

CSV and Excel have one row per entry: list fields joined with "; " (a ";" inside an item is written ";;"),
lighthouse sub-fields as `lighthouse.stage` ... columns, one `section: <name>` column per section, and the
data sources' grades in words in a `data_quality` column, one graded source per item (the importer reads
them back with kb.entry_fields.quality_from_words).
JSONL has one JSON object per entry, lists as lists and sections as an object.

The caller decides which entries a reader may see; this module writes exactly what it is given.
An export for a reader passes `withheld`, the fields left out of each entry for that reader; the
file then says so (a last `withheld` column, or a `withheld` key), so that importing it back never
takes a blank or a shortened list for the stored value.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TextIO

import pandas as pd

from kb.entries import REQUIRED, SECTIONS, Entry
from kb.entry_fields import quality_words
from kb.errors import KBError
from kb.store import atomic_write

FORMATS = ("csv", "xlsx", "jsonl")
MEDIA_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "jsonl": "application/jsonl; charset=utf-8",
}
LIST_SEPARATOR = ";"
SECTION_PREFIX = "section: "
LIGHTHOUSE_COLUMNS = (
    "lighthouse.stage",
    "lighthouse.impact",
    "lighthouse.benefits",
    "lighthouse.reused_by",  # `id (date): benefit`, the date and benefit where known
    "lighthouse.history",  # `date stage: reason`, oldest first
    "lighthouse.review_by",
)
LIST_FIELDS = (
    "partners",
    "themes",
    "tags",
    "data_sources",
    "data_quality",  # one graded source per item, in words (kb.entry_fields.quality_words)
    "related",
    "links",
    "lighthouse.benefits",
    "lighthouse.reused_by",
    "lighthouse.history",
)
# Entry fields in their own order, with `lighthouse` spread over its sub-columns.
FIELD_COLUMNS = tuple(
    column
    for name in Entry.__dataclass_fields__
    if name != "sections"
    for column in (LIGHTHOUSE_COLUMNS if name == "lighthouse" else (name,))
)
# A redacted export names, per entry, the fields a reader was not given in full (a blank team, a
# `related` list without the ids the reader cannot see). Required fields are never withheld.
WITHHELD_COLUMN = "withheld"
WITHHOLDABLE = tuple(column for column in FIELD_COLUMNS if column not in REQUIRED)
Withheld = Mapping[str, Sequence[str]]  # entry id -> the fields withheld from it
# A spreadsheet runs a cell that starts with one of these as a formula; a leading "'" makes it text.
FORMULA_START = ("=", "+", "-", "@")


def join_items(items: Iterable[str]) -> str:
    """List items as one cell; a separator inside an item is doubled so that splitting gives it back."""
    doubled = LIST_SEPARATOR * 2
    return f"{LIST_SEPARATOR} ".join(item.replace(LIST_SEPARATOR, doubled) for item in items)


def guard_formula(text: str) -> str:
    """Prefix a "'" so a spreadsheet shows the text instead of running it; the importer removes it again.

    Text already starting with apostrophes before a formula character gets one more, so that removing
    one always gives the text back.
    """
    return "'" + text if text.lstrip("'").startswith(FORMULA_START) else text


def unguard_formula(text: str) -> str:
    """The text as it was before `guard_formula` (and as a spreadsheet shows a cell typed with a leading "'")."""
    return text[1:] if text.startswith("'") and text[1:].lstrip("'").startswith(FORMULA_START) else text


def section_names(entries: Iterable[Entry]) -> list[str]:
    """Every standard section, then any other section name the entries use, in first-seen order."""
    names = list(SECTIONS)
    for entry in entries:
        names.extend(name for name in entry.sections if name not in names)
    return names


def csv_columns(entries: Iterable[Entry]) -> list[str]:
    return [*FIELD_COLUMNS, *(SECTION_PREFIX + name for name in section_names(entries))]


def _field_value(entry: Entry, column: str) -> str | bool | list[str]:
    if column == "data_quality":  # JSONL keeps the structure; a spreadsheet gets it in words
        return quality_words(entry)
    if column.startswith("lighthouse."):
        part = column.split(".", 1)[1]
        if entry.lighthouse is None:
            return ""
        if part == "reused_by":
            return entry.lighthouse.reuse_texts()
        if part == "history":
            return entry.lighthouse.history_texts()
        return getattr(entry.lighthouse, part)
    return getattr(entry, column)


def csv_row(entry: Entry, columns: list[str]) -> list[str]:
    row: list[str] = []
    for column in columns:
        if column.startswith(SECTION_PREFIX):
            value: str | bool | list[str] = entry.sections.get(column[len(SECTION_PREFIX) :], "")
        else:
            value = _field_value(entry, column)
        if isinstance(value, bool):
            text = "true" if value else "false"
        elif isinstance(value, list):
            text = join_items(value)
        else:
            text = str(value)
        row.append(guard_formula(text))
    return row


def _table(entries: list[Entry], withheld: Withheld | None) -> pd.DataFrame:
    """The rows CSV and Excel share: every cell text, formulas guarded."""
    columns = csv_columns(entries)
    rows = [csv_row(entry, columns) for entry in entries]
    if withheld is not None:
        columns.append(WITHHELD_COLUMN)
        for entry, row in zip(entries, rows, strict=True):
            row.append(join_items(withheld.get(entry.id, ())))
    return pd.DataFrame(rows, columns=columns, dtype=str)


def _csv_text(entries: list[Entry], withheld: Withheld | None) -> str:
    return _table(entries, withheld).to_csv(index=False, lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)


def _xlsx_bytes(entries: list[Entry], withheld: Withheld | None) -> bytes:
    from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE

    # A workbook cannot hold most control characters (a form or a hand-edited file may carry one):
    # they are left out rather than failing the whole file.
    table = _table(entries, withheld).map(lambda text: ILLEGAL_CHARACTERS_RE.sub("", text))
    buffer = io.BytesIO()
    table.to_excel(buffer, index=False, sheet_name="Lighthouse", engine="openpyxl")
    return buffer.getvalue()


def _jsonl_text(entries: list[Entry], withheld: Withheld | None) -> str:
    if not entries:
        return ""
    records = [entry.to_dict() for entry in entries]
    for entry, record in zip(entries, records, strict=True):
        if entry.lighthouse is not None:  # as the CSV's lighthouse columns write it, which imports read back
            record["lighthouse"] = {c.split(".", 1)[1]: _field_value(entry, c) for c in LIGHTHOUSE_COLUMNS}
    if withheld is not None:
        for record in records:
            record[WITHHELD_COLUMN] = list(withheld.get(record["id"], ()))
    table = pd.DataFrame(records)
    return table.to_json(orient="records", lines=True, force_ascii=False) + "\n"


def _check_withheld(withheld: Withheld) -> None:
    for entry_id, names in withheld.items():
        for name in names:
            if name not in WITHHOLDABLE:
                raise KBError(
                    f"cannot mark '{name}' as withheld from {entry_id}; only these fields can be: "
                    f"{', '.join(WITHHOLDABLE)}"
                )


def _format(fmt: str) -> str:
    fmt = fmt.lower().lstrip(".")
    if fmt not in FORMATS:
        raise KBError(f"cannot export as '{fmt}'; choose one of: {', '.join(FORMATS)}")
    return fmt


def export_bytes(entries: Iterable[Entry], fmt: str, *, withheld: Withheld | None = None) -> bytes:
    """The entries as the bytes of a CSV, Excel or JSONL file (for a download); `withheld` as below."""
    fmt = _format(fmt)
    if withheld is not None:
        _check_withheld(withheld)
    items = list(entries)
    if fmt == "xlsx":
        return _xlsx_bytes(items, withheld)
    if fmt == "csv":
        # A byte-order mark lets Excel open the UTF-8 CSV with its accents intact; the importer skips it.
        return ("\ufeff" + _csv_text(items, withheld)).encode("utf-8")
    return _jsonl_text(items, withheld).encode("utf-8")


def export_entries(entries: Iterable[Entry], fmt: str, out: Path | TextIO, *, withheld: Withheld | None = None) -> int:
    """Write the entries as CSV, Excel or JSONL to a file path (atomically), or as CSV or JSONL to an
    open text stream; returns rows written.

    `withheld` is None for a full export. For a reader's view it maps entry ids to the fields left
    out of that entry (blanked, or a list with ids removed); see the module docstring.
    """
    fmt = _format(fmt)
    items = list(entries)
    if not isinstance(out, (str, Path)):
        if fmt == "xlsx":
            raise KBError("an Excel workbook cannot be written to the terminal; give a file with --out")
        if withheld is not None:
            _check_withheld(withheld)
        out.write(_csv_text(items, withheld) if fmt == "csv" else _jsonl_text(items, withheld))
        return len(items)
    data = export_bytes(items, fmt, withheld=withheld)
    try:
        atomic_write(Path(out), data)
    except OSError as exc:
        reason = exc.strerror or exc
        raise KBError(f"cannot write {out} ({reason}); check the folder exists and is writable") from None
    return len(items)
