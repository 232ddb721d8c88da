"""Reading an entry's fields: typed values out of front matter (or an entry's dict form), each bad one a
Problem naming its field and what to do; the lighthouse's history and reuse lines; an entry's sections;
and its data sources with their quality grades, as structured mappings and in words.

kb.entry_files reads and writes whole entry files with these; kb.entries is the entry itself.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from kb.entries import (
    LIGHTHOUSE_PART_SEVERITY,
    LIGHTHOUSE_STAGES,
    MAX_LIST_ITEMS,
    MAX_SECTION,
    MAX_SHORT_FIELD,
    MAX_SUMMARY,
    QUALITY_DIMENSIONS,
    QUALITY_RATINGS,
    SECTIONS,
    Entry,
    Grade,
    Reuse,
    SourceQuality,
    StageChange,
    is_valid_id,
)
from kb.errors import Problem

_DATE_RE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_SECTION_RE = re.compile(r"^##[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)


class FieldReader:
    """Reads typed fields out of front matter, collecting a Problem for each bad one."""

    def __init__(self, data: dict[str, Any], source: str):
        self.data = data
        self.source = source
        self.problems: list[Problem] = []

    def problem(self, name: str, message: str, severity: str = "error") -> None:
        self.problems.append(Problem(self.source, message, field=name, severity=severity))

    def text(self, name: str, limit: int = MAX_SHORT_FIELD, data: dict | None = None) -> str:
        value = (self.data if data is None else data).get(name)
        if value is None:
            return ""
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            self.problem(name, f"must be text, not {type(value).__name__}; write it as a plain value")
            return ""
        value = str(value).strip()
        if len(value) > limit:
            self.problem(name, f"is {len(value)} characters long; shorten it to at most {limit}")
        return value

    def choice(self, name: str, allowed: tuple[str, ...], default: str = "") -> str:
        value = self.text(name)
        if not value:
            return default
        if value.lower() not in allowed:
            self.problem(name, f"'{value}' is not allowed; use one of: {', '.join(allowed)}")
            return default
        return value.lower()

    def flag(self, name: str) -> bool:
        value = self.data.get(name, False)
        if value is None:
            return False
        if not isinstance(value, bool):
            if str(value).strip().lower() in ("yes", "true", "1"):
                return True
            if str(value).strip().lower() in ("no", "false", "0", ""):
                return False
            self.problem(name, f"must be true or false, not '{value}'")
            return False
        return value

    def items(self, name: str, data: dict | None = None) -> list[str]:
        value = (self.data if data is None else data).get(name)
        if value is None or value == "":
            return []
        if isinstance(value, str):
            value = [v for v in (part.strip() for part in value.split(",")) if v]
        if not isinstance(value, list):
            self.problem(name, "must be a list, e.g. [first, second]")
            return []
        out: list[str] = []
        for item in value:
            if isinstance(item, (dict, list)) or item is None:
                self.problem(name, "each item must be a plain value, not a nested list or mapping")
                continue
            text = str(item).strip()
            if len(text) > MAX_SHORT_FIELD * 5:
                self.problem(name, f"an item is {len(text)} characters; keep items under {MAX_SHORT_FIELD * 5}")
                continue
            if text and text not in out:
                out.append(text)
        if len(out) > MAX_LIST_ITEMS:
            self.problem(name, f"has {len(out)} items; keep it to at most {MAX_LIST_ITEMS}")
        return out

    def date(self, key: str, data: dict | None = None, name: str | None = None) -> str:
        """A date field `key` of `data` (the front matter by default), its problems said of `name`."""
        return self.date_value((self.data if data is None else data).get(key), name or key)

    def date_value(self, value: Any, name: str, severity: str = "error") -> str:
        if value is None or value == "":
            return ""
        if isinstance(value, dt.datetime):
            value = value.date()
        if isinstance(value, dt.date):
            return value.isoformat()
        text = str(value).strip()
        if not _DATE_RE.match(text):
            self.problem(name, f"'{text}' is not a date; write YYYY, YYYY-MM or YYYY-MM-DD", severity)
            return ""
        try:
            parts = [int(p) for p in text.split("-")]
            dt.date(parts[0], parts[1] if len(parts) > 1 else 1, parts[2] if len(parts) > 2 else 1)
        except ValueError:
            self.problem(name, f"'{text}' is not a real calendar date", severity)
            return ""
        return text


# A stage change or a reuse written on one line, as an export's cell holds it:
# `2023-05 proven: the reason` and `entry-id (2023-05): the benefit` (both parts after the id optional).
_HISTORY_LINE = re.compile(r"^\s*(\S+)\s+([A-Za-z]+)\s*(?::\s*(.*))?$", re.S)
_REUSE_LINE = re.compile(r"^\s*([^\s:()]+)\s*(?:\(([^)]*)\))?\s*(?::\s*(.*))?$", re.S)


def _as_line(item: Any, key: str) -> Any:
    """An item written on one line without quotes (`- 2023-05 proven: reason`), which YAML reads as a
    mapping of one key, as the line it was."""
    if isinstance(item, dict) and len(item) == 1 and key not in item:
        (head, tail), *_ = item.items()
        if isinstance(head, str) and isinstance(tail, (str, int, float)) and not isinstance(tail, bool):
            return f"{head}: {tail}"
    return item


def read_history(f: FieldReader, value: Any) -> list[StageChange]:
    """`lighthouse.history`: a list of `{stage, date, reason}`, oldest first. A bad item is reported by its
    place (`lighthouse.history[2].stage`) and left out; the good ones are kept."""
    if value is None or value == "":
        return []
    if not isinstance(value, list):
        f.problem(
            "lighthouse.history",
            "must be a list of {stage, date, reason} items, oldest first",
            LIGHTHOUSE_PART_SEVERITY,
        )
        return []
    out: list[StageChange] = []
    for n, item in enumerate(value[:MAX_LIST_ITEMS], start=1):
        where = f"lighthouse.history[{n}]"
        item = _as_line(item, "stage")
        if isinstance(item, str):
            line = _HISTORY_LINE.match(item)
            item = {"date": line.group(1), "stage": line.group(2), "reason": line.group(3)} if line else item
        if not isinstance(item, dict):
            f.problem(
                where,
                "must be a mapping such as {stage: proven, date: 2023-05, reason: why it changed}",
                LIGHTHOUSE_PART_SEVERITY,
            )
            continue
        stage = str(item.get("stage") or "").strip().lower()
        if stage not in LIGHTHOUSE_STAGES:
            shown = f"'{stage}' is not a stage" if stage else "has no stage"
            f.problem(
                f"{where}.stage", f"{shown}; use one of: {', '.join(LIGHTHOUSE_STAGES)}", LIGHTHOUSE_PART_SEVERITY
            )
            continue
        if not item.get("date"):
            f.problem(
                f"{where}.date",
                "is missing; say when the lighthouse reached this stage (YYYY-MM-DD)",
                LIGHTHOUSE_PART_SEVERITY,
            )
            continue
        date = f.date_value(item.get("date"), f"{where}.date", LIGHTHOUSE_PART_SEVERITY)
        reason = item.get("reason")
        if reason is not None and (isinstance(reason, (dict, list, bool)) or len(str(reason)) > MAX_SUMMARY):
            f.problem(
                f"{where}.reason",
                f"must be a sentence of plain text, at most {MAX_SUMMARY} characters",
                LIGHTHOUSE_PART_SEVERITY,
            )
            continue
        if date:
            out.append(StageChange(stage, date, " ".join(str(reason or "").split())))
    if len(value) > MAX_LIST_ITEMS:
        f.problem(
            "lighthouse.history",
            f"has {len(value)} items; keep it to at most {MAX_LIST_ITEMS}",
            LIGHTHOUSE_PART_SEVERITY,
        )
    return out


def read_reuse(f: FieldReader, value: Any) -> tuple[list[str], dict[str, Reuse]]:
    """`lighthouse.reused_by`: entry ids, each a plain id or `{entry, date, benefit}`. A bad date or benefit
    is reported by its place (`lighthouse.reused_by[1].date`) and left out; the id and the rest are kept."""
    if value is None or value == "":
        return [], {}
    if isinstance(value, str):
        value = [v for v in (part.strip() for part in value.split(",")) if v]
    if not isinstance(value, list):
        f.problem("lighthouse.reused_by", "must be a list of entry ids, or of {entry, date, benefit} items")
        return [], {}
    ids: list[str] = []
    known: dict[str, Reuse] = {}
    for n, item in enumerate(value, start=1):
        where = f"lighthouse.reused_by[{n}]"
        item = _as_line(item, "entry")
        if isinstance(item, str):
            line = _REUSE_LINE.match(item)
            if line and is_valid_id(line.group(1)) and (line.group(2) is not None or line.group(3) is not None):
                item = {"entry": line.group(1), "date": line.group(2), "benefit": line.group(3)}
        if isinstance(item, dict):
            entry_id = str(item.get("entry") or "").strip()
            if not entry_id or isinstance(item.get("entry"), (dict, list)):
                f.problem(
                    f"{where}.entry",
                    "is missing; give the id of the entry that reused this lighthouse",
                    LIGHTHOUSE_PART_SEVERITY,
                )
                continue
            date = f.date_value(item.get("date"), f"{where}.date", LIGHTHOUSE_PART_SEVERITY)
            benefit = item.get("benefit")
            if benefit is not None and (isinstance(benefit, (dict, list, bool)) or len(str(benefit)) > MAX_SUMMARY):
                message = f"must be a sentence of plain text, at most {MAX_SUMMARY} characters"
                f.problem(f"{where}.benefit", message, LIGHTHOUSE_PART_SEVERITY)
                benefit = ""
            reuse = Reuse(date, " ".join(str(benefit or "").split()))
        elif isinstance(item, list) or item is None:
            f.problem("lighthouse.reused_by", "each item must be an entry id or a mapping {entry, date, benefit}")
            continue
        else:
            entry_id, reuse = str(item).strip(), Reuse()
        if len(entry_id) > MAX_SHORT_FIELD * 5:
            f.problem(where, f"is {len(entry_id)} characters; give the id of the entry that reused this lighthouse")
            continue
        if entry_id and entry_id not in ids:
            ids.append(entry_id)
            if reuse.date or reuse.benefit:
                known[entry_id] = reuse
    if len(ids) > MAX_LIST_ITEMS:
        f.problem("lighthouse.reused_by", f"has {len(ids)} items; keep it to at most {MAX_LIST_ITEMS}")
    return ids, known


def split_sections(body: str, source: str, problems: list[Problem]) -> dict[str, str]:
    """`## Heading` blocks, in file order. Text before the first heading goes under Context."""
    sections: dict[str, str] = {}
    matches = list(_SECTION_RE.finditer(body))
    preamble = body[: matches[0].start()] if matches else body
    if preamble.strip():
        sections["Context"] = preamble.strip()
    for i, match in enumerate(matches):
        end = matches[i + 1].start() if i + 1 < len(matches) else len(body)
        name = match.group(1).strip()
        canonical = next((s for s in SECTIONS if s.lower() == name.lower()), name)
        text = body[match.end() : end].strip()
        if canonical in sections:
            sections[canonical] += "\n\n" + text
        else:
            sections[canonical] = text
    for name, text in sections.items():
        if len(text) > MAX_SECTION:
            problems.append(
                Problem(
                    source,
                    f"is {len(text)} characters; split it or shorten it to {MAX_SECTION}",
                    field=f"section '{name}'",
                )
            )
    return {name: text for name, text in sections.items() if text}


def read_data_sources(f: FieldReader, raw: Any, extra: Any) -> tuple[list[str], dict[str, SourceQuality]]:
    """`data_sources`: plain names, or mappings `{name, grades, graded}`. A bad grade is reported with its
    place (`data_sources[2].grades.accuracy`) and never drops the other sources. `extra` is the
    `data_quality` mapping of an entry's dict form (JSONL, to_dict), read the same way."""
    if isinstance(raw, list) and any(isinstance(item, dict) for item in raw):
        items: list[Any] = raw
    else:
        plain_names = f.items("data_sources")
        return plain_names, _known_sources(f, plain_names, _quality_mapping(f, extra))
    names: list[str] = []
    quality: dict[str, SourceQuality] = {}
    for n, item in enumerate(items, start=1):
        where = f"data_sources[{n}]"
        if isinstance(item, dict):
            raw_name = item.get("name")
            name = "" if isinstance(raw_name, (dict, list, bool)) or raw_name is None else str(raw_name).strip()
            if len(name) > MAX_SHORT_FIELD:
                f.problem(f"{where}.name", f"is {len(name)} characters; keep a source's name under {MAX_SHORT_FIELD}")
                continue
            if not name:
                f.problem(
                    where, "is a mapping without a name; write e.g. {name: ONS Postcode Directory, grades: {...}}"
                )
                continue
            unknown = [str(k) for k in item if k not in ("name", "grades", "graded")]
            if unknown:
                f.problem(f"{where}.{unknown[0]}", "is not known; a data source has name, grades and graded", "warning")
            grades = _source_quality(f, where, item)
            if name not in names:
                names.append(name)
            if grades is not None:
                quality[name] = grades
        elif isinstance(item, list) or item is None:
            f.problem(where, "must be a name or a mapping with name, grades and graded")
        else:
            name = str(item).strip()
            if len(name) > MAX_SHORT_FIELD:
                f.problem(where, f"is {len(name)} characters; keep a source's name under {MAX_SHORT_FIELD}")
            elif name and name not in names:
                names.append(name)
    if len(names) > MAX_LIST_ITEMS:
        f.problem("data_sources", f"has {len(names)} items; keep it to at most {MAX_LIST_ITEMS}")
    for name, grades in _known_sources(f, names, _quality_mapping(f, extra)).items():
        quality.setdefault(name, grades)
    return names, quality


def _known_sources(f: FieldReader, names: list[str], quality: dict[str, SourceQuality]) -> dict[str, SourceQuality]:
    for name in [n for n in quality if n not in names]:
        f.problem(f"data_quality.{name}", "grades a source the entry does not list; add it to data_sources", "warning")
        del quality[name]
    return quality


def _quality_mapping(f: FieldReader, raw: Any) -> dict[str, SourceQuality]:
    if raw in (None, "", {}):
        return {}
    if not isinstance(raw, dict):
        f.problem("data_quality", "must be a mapping from a source's name to its grades")
        return {}
    out = {}
    for name, item in raw.items():
        if not isinstance(item, dict):
            f.problem(f"data_quality.{name}", "must be a mapping with grades and graded")
            continue
        grades = _source_quality(f, f"data_quality.{name}", item)
        if grades is not None:
            out[str(name)] = grades
    return out


def _source_quality(f: FieldReader, where: str, item: dict[str, Any]) -> SourceQuality | None:
    """The grades of one source (None if it has none); each bad part is a problem naming its place."""
    raw = item.get("grades")
    graded = f.date("graded", data=item, name=f"{where}.graded")
    if raw in (None, "", {}):
        return SourceQuality(graded=graded) if graded else None
    if not isinstance(raw, dict):
        f.problem(f"{where}.grades", f"must be a mapping of dimensions ({', '.join(QUALITY_DIMENSIONS)}) to grades")
        return None
    grades: dict[str, Grade] = {}
    for key, value in raw.items():
        dimension = str(key).strip().lower()
        at = f"{where}.grades.{key}"
        if dimension not in QUALITY_DIMENSIONS:
            f.problem(at, f"'{key}' is not a dimension; use one of: {', '.join(QUALITY_DIMENSIONS)}")
            continue
        if isinstance(value, dict):
            rating, note = value.get("rating"), value.get("note")
            unknown = [str(k) for k in value if k not in ("rating", "note")]
            if unknown:
                f.problem(f"{at}.{unknown[0]}", "is not known; a grade has a rating and a note", "warning")
        else:
            rating, note = value, None  # `accuracy: good` is a rating without a note
        rating = "" if rating is None or isinstance(rating, (dict, list)) else str(rating).strip().lower()
        if rating not in QUALITY_RATINGS:
            shown = f"'{rating}'" if rating else "a grade without a rating"
            f.problem(f"{at}.rating", f"{shown} is not a rating; use one of: {', '.join(QUALITY_RATINGS)}")
            continue
        if isinstance(note, (dict, list)):
            f.problem(f"{at}.note", "must be text; write what you found in a sentence")
            note = ""
        note = "" if note is None else " ".join(str(note).split())
        if len(note) > MAX_SUMMARY:
            f.problem(f"{at}.note", f"is {len(note)} characters long; shorten it to at most {MAX_SUMMARY}")
            continue
        grades[dimension] = Grade(rating, note)
    ordered = {d: grades[d] for d in QUALITY_DIMENSIONS if d in grades}
    return SourceQuality(ordered, graded) if ordered or graded else None


def data_source_items(entry: Entry) -> list[str | dict[str, Any]]:
    """`data_sources` as the file writes it: a plain name, or a mapping with the source's grades."""
    items: list[str | dict[str, Any]] = []
    for name in entry.data_sources:
        quality = entry.data_quality.get(name)
        if quality is None:
            items.append(name)
            continue
        item: dict[str, Any] = {"name": name}
        if quality.grades:
            item["grades"] = {
                d: ({"rating": g.rating, "note": g.note} if g.note else {"rating": g.rating})
                for d, g in quality.grades.items()
            }
        if quality.graded:
            item["graded"] = quality.graded
        items.append(item)
    return items


# One graded source in words, as a spreadsheet export and the form write it:
#   ONS Postcode Directory (graded 2024-03): accuracy good (matched 98%), timeliness poor
# The name may hold colons ("HMRC: PAYE RTI") and a note any brackets: the grades start at the colon
# followed by grades that read to the end, and a note ends at the ")" followed by the next grade or the end.
_QUALITY_NAME = re.compile(r"^(?P<name>.*?)\s*(?:\(graded (?P<graded>[^)]*)\))?$", re.I | re.S)
_DIMENSION = "|".join(QUALITY_DIMENSIONS)
_GRADES_START = (  # where the grades may start, most certain first
    re.compile(rf":(?=\s*(?:{_DIMENSION})\s+\w+)", re.I),  # a dimension and a rating
    re.compile(rf":(?=\s*(?:{_DIMENSION})\b)", re.I),  # a dimension
    re.compile(":"),
)
_GRADE = r"\s*(?P<dimension>\w+)\s+(?P<rating>\w+)(?:\s*\((?P<note>.*?)\)(?={}))?(?=\s*,|\s*$)\s*,?"
_QUALITY_GRADES = (  # a note ends at the ")" before the next grade or the end of the line; failing that, a comma
    re.compile(_GRADE.format(r"\s*,\s*\w+\s+\w+\s*(?:\(|,|$)|\s*$"), re.S),
    re.compile(_GRADE.format(r"\s*,|\s*$"), re.S),
)


def quality_words(entry: Entry) -> list[str]:
    """The grades of the entry's sources in words, one line per graded source (the form's and a
    spreadsheet's way to write them; `quality_from_words` reads them back)."""
    return [
        source_words(name, {d: (g.rating, g.note) for d, g in quality.grades.items()}, quality.graded)
        for name in entry.data_sources
        if (quality := entry.data_quality.get(name)) is not None
    ]


def source_words(name: str, grades: dict[str, tuple[str, str]], graded: str = "") -> str:
    """One graded source in words: its name, when it was graded, then each dimension's rating and note."""
    words = ", ".join(f"{d} {rating}" + (f" ({note})" if note else "") for d, (rating, note) in grades.items())
    return f"{name}{f' (graded {graded})' if graded else ''}: {words}"


def _read_grades(text: str) -> tuple[list[tuple[str, str, str]], list[str]]:
    """(dimension, rating, note) for each grade in `text`, and each part that is not a grade."""
    grades, bad, at = [], [], 0
    while text[at:].strip():
        found = next((m for p in _QUALITY_GRADES if (m := p.match(text, at))), None)
        if found:
            grades.append((found["dimension"], found["rating"], (found["note"] or "").strip()))
            at = found.end()
            continue
        comma = text.find(",", at)
        bad.append(text[at : comma if comma >= 0 else len(text)].strip())
        at = comma + 1 if comma >= 0 else len(text)
    return grades, bad


def _split_line(line: str) -> tuple[str, str, str] | None:
    """(name, graded, grades) of one line in words. The grades start at a colon followed by a dimension
    and a rating (else by a dimension, else at any colon): the first such whose grades read to the end of
    the line, else the last such, so that what is wrong with the grades is said. None without a colon."""
    starts = next(([m.start() for m in found] for p in _GRADES_START if (found := list(p.finditer(line)))), [])
    if not starts:
        return None
    chosen = next((at for at in starts if not _read_grades(line[at + 1 :])[1]), starts[-1])
    head = _QUALITY_NAME.match(line[:chosen].strip())
    if head is None or not head["name"]:
        return None
    return head["name"], (head["graded"] or "").strip(), line[chosen + 1 :]


def quality_from_words(lines: list[str]) -> tuple[dict[str, Any], list[str]]:
    """Graded sources written in words (see `quality_words`) as the `data_quality` mapping entry_from_dict
    reads, and a message for each line that cannot be read (the mapping then validates the ratings)."""
    out: dict[str, Any] = {}
    messages = []
    for n, line in enumerate(lines, start=1):
        split = _split_line(line.strip())
        if split is None or not (split[2].strip() or split[1]):
            messages.append(
                f"line {n} ('{line.strip()[:60]}') is not a graded source; write it as "
                "'name: accuracy good (what you found), timeliness poor'"
            )
            continue
        name, graded, words = split
        found, bad = _read_grades(words)
        for part in bad:
            messages.append(
                f"line {n}: '{part[:60]}' is not a grade; write a dimension, then a rating, e.g. 'accuracy good'"
            )
        grades = {dimension.lower(): {"rating": rating.lower(), "note": note} for dimension, rating, note in found}
        out[name.strip()] = {"grades": grades, "graded": graded}
    return out, messages
