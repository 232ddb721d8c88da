"""The YAML column mapping: which of a register's columns fill which entry fields and sections.

    mapping = load_mapping(Path("mappings/nasa-llis.yaml"))   # None: Lighthouse's own export format
    bound = mapping.bind(table.header, "llis.xlsx")           # checked against one file's columns

A mistake in the mapping, or a column it names that the file lacks, is a whole-file failure: KBError
with one clear line for the first thing wrong. The format is described in docs/importing.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from kb.entries import (
    EVIDENCE_GRADES,
    KINDS,
    LIGHTHOUSE_STAGES,
    MAX_ID,
    OUTCOMES,
    SECTIONS,
    STATUSES,
    VISIBILITIES,
    slugify,
)
from kb.errors import KBError
from kb.exporter import FIELD_COLUMNS, LIST_FIELDS, LIST_SEPARATOR, SECTION_PREFIX, WITHHELD_COLUMN
from kb.yamlfile import load_yaml

MAX_PREFIX = MAX_ID - 80  # slugify keeps 80 characters of the key; the id must stay within MAX_ID
FIELDS = FIELD_COLUMNS[1:]  # everything but id, which the mapping's `id:` block decides
# Safe values for required fields a register rarely has: held back for review, and not public.
BUILT_IN_DEFAULTS = {"status": "draft", "visibility": "internal"}
MUST_HAVE = ("kind", "outcome", "organisation")  # required, and no value is safe to assume
CHOICES = {
    "kind": KINDS,
    "outcome": OUTCOMES,
    "status": STATUSES,
    "visibility": VISIBILITIES,
    "evidence": EVIDENCE_GRADES,
    "lighthouse.stage": LIGHTHOUSE_STAGES,
}
TEMPLATE_RE = re.compile(r"\{([^{}]+)\}")


def column_key(name: str) -> str:
    """How column names are compared: any case, any run of spaces (Excel headers often carry stray ones)."""
    return " ".join(str(name).split()).casefold()


def placeholder_key(text: str) -> str:
    return column_key(text).rstrip(".!:;")


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
        return [*self.columns, *TEMPLATE_RE.findall(self.template)]


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
    withheld_column: str | None = None  # set by bind: the file's column naming the fields a reader's export left out

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
        bound = replace(bound, withheld_column=self._withheld_column(header))
        if not self.section_prefixes:
            return bound
        sections = dict(bound.sections)
        for column in header:
            for prefix in self.section_prefixes:
                if column_key(column).startswith(column_key(prefix)):
                    name = _canonical_section(" ".join(column.strip()[len(prefix.strip()) :].split()))
                    sections.setdefault(name, []).append(Rule((column,)))
        return replace(bound, sections=sections)

    def _withheld_column(self, header: list[str]) -> str | None:
        """The `withheld` column of a reader's export, unless this mapping reads that column as data."""
        named = {column_key(c) for c in self.named_columns()}
        return next((h for h in header if column_key(h) == WITHHELD_COLUMN and WITHHELD_COLUMN not in named), None)

    def _without(self, missing: dict[str, str]) -> Mapping:
        gone = {column_key(c) for c in missing}
        fields = {
            n: r
            for n, r in self.fields.items()
            if n in ("title", "summary") or not any(column_key(c) in gone for c in r.named_columns())
        }
        key = None if self.key_column and column_key(self.key_column) in gone else self.key_column
        return replace(self, fields=fields, key_column=key)


def _canonical_section(name: str) -> str:
    return next((s for s in SECTIONS if s.lower() == name.lower()), name)


class _MappingReader:
    """Turns the YAML into a Mapping, with one clear line for the first thing wrong."""

    TOP = ("description", "id", "fields", "sections", "defaults", "empty_values", "placeholders", "sheet", "delimiter")
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
            raise self.fail(
                f"id prefix '{prefix}' must be lowercase letters, digits and hyphens, "
                f"at most {MAX_PREFIX} characters, e.g. '{slugify(prefix)}-'"
            )
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
        phrases = tuple(placeholder_key(p) for p in self.strings(value.get("phrases"), "placeholders"))
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
    fields = {name: Rule(columns=(name,), split=LIST_SEPARATOR if name in LIST_FIELDS else ",") for name in FIELDS}
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
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        reason = getattr(exc, "problem", None) or "invalid YAML"
        raise KBError(
            f"mapping {path.name} is not valid YAML{where} ({reason}); check indentation and colons"
        ) from None
    return _MappingReader(path.name).read(data)
