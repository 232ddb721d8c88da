"""One row of a register turned into entry fields: cells cleaned and capped, values found through the
mapping's rules (columns, templates, translations, lists), an over-long title or summary fitted, and
an id from the key column or the title. Every problem carries the row number and the column.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from kb.entries import MAX_SECTION, MAX_SUMMARY, MAX_TITLE, slugify
from kb.entry_fields import quality_from_words
from kb.errors import Problem
from kb.exporter import LIGHTHOUSE_COLUMNS, LIST_FIELDS, LIST_SEPARATOR, WITHHOLDABLE, unguard_formula
from kb.mapping import BUILT_IN_DEFAULTS, MUST_HAVE, TEMPLATE_RE, Mapping, Rule, column_key, placeholder_key
from kb.registers import Cell

Row = dict[str, Cell]  # normalised column name -> cleaned cell


MAX_CELL = MAX_SECTION  # longer cells are cut here and reported: no section could hold more


DATE_FIELDS = ("started", "ended", "created", "updated")


_CONTROL_RE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


_DATETIME_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?$")


_SECTION_HEADING_RE = re.compile(r"^##(?=[ \t])", re.M)


_SENTENCE_END_RE = re.compile(r"(?<=[.!?])\s+")


_WITHHELD_SPLIT_RE = re.compile(r"[;,\s]+")


def _clean_cell(value: Cell, empty_values: frozenset[str], spreadsheet: bool) -> Cell:
    if isinstance(value, list):
        return [text for v in value if (text := _clean_text(v, empty_values, spreadsheet))]
    return _clean_text(value, empty_values, spreadsheet)


def _clean_text(value: str, empty_values: frozenset[str], spreadsheet: bool) -> str:
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


def cell(row: Row, column: str) -> Cell:
    return row.get(column_key(column), "")


def as_text(value: Cell) -> str:
    return f"{LIST_SEPARATOR} ".join(value) if isinstance(value, list) else value


def _fill(template: str, row: Row) -> str:
    """The template with each {Column} replaced; nothing at all if any column it names is empty."""
    names = TEMPLATE_RE.findall(template)
    if any(not as_text(cell(row, n)) for n in names):
        return ""
    return TEMPLATE_RE.sub(lambda m: as_text(cell(row, m.group(1))), template).strip()


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
        text = as_text(cell(row, column))
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
    sources: list[Cell] = [_fill(rule.template, row)] if rule.template else [cell(row, c) for c in rule.columns]
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


def withheld_names(cell: Cell) -> list[str]:
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


class RowBuilder:
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
        if "data_quality" in data:  # graded sources in words, one per item, as an export writes them
            data["data_quality"], unread = quality_from_words(list(data["data_quality"]))
            problems.extend(self.problem(number, message, "data_quality") for message in unread)
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
        names = withheld_names(cell(row, column))
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
                    text = as_text(cell(row, column))
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
        key = as_text(cell(row, self.mapping.key_column)) if self.mapping.key_column else ""
        # Cut where ids were always cut, so importing the same file again finds the entries it made.
        if key:
            return prefix + slugify(key, whole_words=False), True
        return prefix + slugify(data["title"], whole_words=False), False

    @staticmethod
    def lighthouse(data: dict[str, Any]) -> dict[str, Any] | None:
        parts = {c.split(".", 1)[1]: data.pop(c) for c in LIGHTHOUSE_COLUMNS if c in data}
        return parts or None
