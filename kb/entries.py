"""Entries: one Markdown file per entry, YAML front matter for the fields, sections for the story.

This module is the entry itself: its fields, validation with clear messages (file, field, what to do),
parsing and rendering. The folder the files live in is kb.store's.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import yaml

from kb.errors import EntryError, Problem
from kb.yamlfile import DuplicateKey, load_yaml

KINDS = ("project", "experiment")
# "not-recorded": for a register that does not record how the work turned out (NASA's), rather than a
# guess; imports set it, the form never offers it.
OUTCOMES = ("succeeded", "partial", "failed", "stopped", "ongoing", "not-recorded")
NOT_RECORDED = "not-recorded"
VISIBILITIES = ("public", "internal", "organisation")
STATUSES = ("draft", "in-review", "published", "archived")
EVIDENCE_GRADES = ("anecdote", "observed", "measured", "evaluated")
LIGHTHOUSE_STAGES = ("pilot", "proven", "replicated", "retired")
# A data source's quality: the six dimensions of the UK Government Data Quality Framework, each rated on
# a four-point scale, worst first (README, "Grading a data source"; docs/data-sources.md).
QUALITY_DIMENSIONS = ("accuracy", "completeness", "consistency", "timeliness", "uniqueness", "validity")
QUALITY_RATINGS = ("poor", "fair", "good", "excellent")
# The severity of a bad part of a lighthouse's history, review date or reuse: it is left out, the rest kept.
LIGHTHOUSE_PART_SEVERITY = "warning"
LIGHTHOUSE_FIELDS = ("stage", "impact", "benefits", "reused_by", "history", "review_by")
SECTIONS = (
    "Context",
    "What we did",
    "What happened",
    "What worked",
    "What didn't",
    "Lessons",
    "Recommendations",
    "Evidence and links",
)
# What an entry must have once it is sent for review (and when published or archived). A draft is work in
# progress, saved half-done: it needs only its title (and its id, status and visibility, which the form sets).
REQUIRED = ("id", "title", "summary", "kind", "outcome", "organisation", "status", "visibility")
REQUIRED_IN_DRAFT = ("id", "title", "status", "visibility")

# Documented limits (README, "Entry format"). Generous enough for NASA's longest lesson (44k chars).
MAX_ID = 120
MAX_TITLE = 200
MAX_SUMMARY = 1_500
MAX_SHORT_FIELD = 200
MAX_LIST_ITEMS = 50
MAX_SECTION = 100_000
MAX_FILE_BYTES = 1_000_000

ENTRY_SUFFIX = ".md"
_ID_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_DATE_RE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")
_FRONT_MATTER_RE = re.compile(r"\A---[ \t]*\r?\n(.*?)\r?\n---[ \t]*(?:\r?\n|\Z)(.*)\Z", re.S)
_SECTION_RE = re.compile(r"^##[ \t]+(.+?)[ \t]*#*[ \t]*$", re.M)
# A web address: http(s), then none of the characters RFC 3986 leaves out of addresses (spaces, quotes, <>
# and the like), which would end a link early or hide something in it.
_WEB_ADDRESS = re.compile(r"https?://[^\s<>\"`\\^{|}\x00-\x1f\x7f]+", re.I)
_HOST = re.compile(r"[^\W_][\w-]*(?:\.[^\W_][\w-]*)*\.?|[0-9a-f.]*:[0-9a-f:.]*", re.I)  # a name, or an IPv6 address


@dataclass
class StageChange:
    """One step of a lighthouse's life: the stage it reached, when, and why."""

    stage: str
    date: str
    reason: str = ""


@dataclass
class Reuse:
    """What is known of one reuse of a lighthouse: when the reusing entry took it up, and what it measured."""

    date: str = ""
    benefit: str = ""


@dataclass
class Lighthouse:
    """What makes an entry a lighthouse project: its stage, impact and who reused it, the history of its
    stage, and the date by which it should be reviewed. `reused_by` holds entry ids; `reuse` what is known
    of each (date, benefit), by the same ids."""

    stage: str
    impact: str = ""
    benefits: list[str] = field(default_factory=list)
    reused_by: list[str] = field(default_factory=list)
    history: list[StageChange] = field(default_factory=list)
    review_by: str = ""
    reuse: dict[str, Reuse] = field(default_factory=dict)

    def reuse_items(self) -> list[str | dict[str, str]]:
        """`reused_by` as the file writes it: a plain id, or `{entry, date, benefit}` when more is known."""
        out: list[str | dict[str, str]] = []
        for entry_id in self.reused_by:
            known = self.reuse.get(entry_id)
            if known is None or not (known.date or known.benefit):
                out.append(entry_id)
            else:
                out.append({"entry": entry_id, **{k: v for k, v in asdict(known).items() if v}})
        return out

    def reuse_texts(self) -> list[str]:
        """`reused_by` as one line each, `id (date): benefit`: how an export's cell writes it."""
        out = []
        for entry_id in self.reused_by:
            known = self.reuse.get(entry_id) or Reuse()
            text = entry_id + (f" ({known.date})" if known.date else "")
            out.append(text + (f": {known.benefit}" if known.benefit else ""))
        return out

    def history_texts(self) -> list[str]:
        """The history as one line each, `date stage: reason`: how an export's cell writes it."""
        return [f"{h.date} {h.stage}" + (f": {h.reason}" if h.reason else "") for h in self.history]


@dataclass
class Grade:
    """One dimension of a data source's quality: a rating from QUALITY_RATINGS and what was found."""

    rating: str
    note: str = ""


@dataclass
class SourceQuality:
    """What an entry found about one of its data sources: a grade per dimension, and when it was graded."""

    grades: dict[str, Grade] = field(default_factory=dict)  # dimension -> grade, in QUALITY_DIMENSIONS order
    graded: str = ""  # YYYY, YYYY-MM or YYYY-MM-DD

    @property
    def lowest(self) -> str:
        """The worst rating among the grades ("" when none): the "Data quality" search facet."""
        ratings = [g.rating for g in self.grades.values() if g.rating in QUALITY_RATINGS]
        return min(ratings, key=QUALITY_RATINGS.index) if ratings else ""


@dataclass
class Entry:
    """One project or experiment write-up. Field meanings are in PRODUCT.md and the README."""

    id: str
    title: str
    summary: str
    kind: str
    outcome: str
    organisation: str
    status: str = "draft"
    visibility: str = "public"
    team: str = ""
    contact: str = ""
    anonymous: bool = False
    partners: list[str] = field(default_factory=list)
    themes: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    data_sources: list[str] = field(default_factory=list)
    # Grades of some of those sources, by the source's name as written in data_sources. In the file the
    # grades sit inside the `data_sources:` item (see render_entry); in JSONL and to_dict, here.
    data_quality: dict[str, SourceQuality] = field(default_factory=dict)
    started: str = ""
    ended: str = ""
    phase: str = ""
    evidence: str = ""
    lighthouse: Lighthouse | None = None
    created: str = ""
    updated: str = ""
    author: str = ""
    reviewer: str = ""
    review_comment: str = ""
    revised_by: str = ""  # who proposed an edit waiting for review (set on `.revisions/` files only)
    source: str = ""
    related: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    sections: dict[str, str] = field(default_factory=dict)

    @property
    def year(self) -> int | None:
        """The year the work started (or, failing that, was written up): the year facet."""
        for value in (self.started, self.created, self.ended):
            if value and value[:4].isdigit():
                return int(value[:4])
        return None

    @property
    def is_lighthouse(self) -> bool:
        return self.lighthouse is not None

    @property
    def lowest_quality(self) -> str:
        """The worst rating any of the entry's graded sources got on any dimension; "" if none is graded."""
        ratings = [q.lowest for q in self.data_quality.values() if q.lowest]
        return min(ratings, key=QUALITY_RATINGS.index) if ratings else ""

    def text(self) -> str:
        """All the words of the entry: title, summary and every section, in order."""
        parts = [self.title, self.summary] + [f"{k}\n{v}" for k, v in self.sections.items()]
        return "\n\n".join(p for p in parts if p)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.lighthouse is None:
            data["lighthouse"] = None
        return data


def required_fields(status: str) -> tuple[str, ...]:
    """The fields an entry with this status must have: a draft needs only its title."""
    return REQUIRED_IN_DRAFT if str(status).strip().lower() == "draft" else REQUIRED


def is_web_address(text: str) -> bool:
    """Whether a link may be followed: an http(s) address with a host and no user name in front of it (as
    in `https://gov.uk@elsewhere.example`), and nothing in it that would end or hide a link. Anything else
    is shown as text, never as a link."""
    if not isinstance(text, str) or not _WEB_ADDRESS.fullmatch(text):
        return False
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 (raises ValueError unless the port is a number from 0 to 65535)
    except ValueError:
        return False
    return "@" not in parts.netloc and bool(_HOST.fullmatch(parts.hostname or ""))


# --------------------------------------------------------------------------- ids


def slugify(text: str, max_length: int = 80, *, whole_words: bool = True) -> str:
    """A safe file-name slug: lowercase ASCII letters, digits and single hyphens, nothing else.

    No path separators, no dots (so no `..` and no hidden files) and never empty. A long text is cut
    after its last whole word that fits, so an entry's address never ends mid-word (a single word
    longer than that is cut). `whole_words=False` cuts at `max_length` exactly, as ids were made
    before: the importer keeps the ids earlier imports gave.
    """
    ascii_text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9]+", "-", ascii_text.lower()).strip("-")
    if len(slug) > max_length:
        cut = slug[: max_length + 1]
        slug = cut[: cut.rfind("-")] if whole_words and "-" in cut else slug[:max_length]
    return slug.rstrip("-") or "entry"


def is_valid_id(entry_id: str) -> bool:
    return bool(isinstance(entry_id, str) and len(entry_id) <= MAX_ID and _ID_RE.match(entry_id))


# --------------------------------------------------------------------------- parsing


class _Fields:
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


def _history(f: _Fields, value: Any) -> list[StageChange]:
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


def _reuse(f: _Fields, value: Any) -> tuple[list[str], dict[str, Reuse]]:
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


def _split_sections(body: str, source: str, problems: list[Problem]) -> dict[str, str]:
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


def _data_sources(f: _Fields, raw: Any, extra: Any) -> tuple[list[str], dict[str, SourceQuality]]:
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


def _known_sources(f: _Fields, names: list[str], quality: dict[str, SourceQuality]) -> dict[str, SourceQuality]:
    for name in [n for n in quality if n not in names]:
        f.problem(f"data_quality.{name}", "grades a source the entry does not list; add it to data_sources", "warning")
        del quality[name]
    return quality


def _quality_mapping(f: _Fields, raw: Any) -> dict[str, SourceQuality]:
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


def _source_quality(f: _Fields, where: str, item: dict[str, Any]) -> SourceQuality | None:
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


def entry_from_dict(
    data: dict[str, Any], source: str, sections: dict[str, str] | None = None, *, require_id: bool = True
) -> tuple[Entry, list[Problem]]:
    """Validate a mapping of fields into an Entry and its warnings, or raise EntryError listing every error.

    With require_id=False a missing id is left empty, for a new entry whose id is made from its title.
    """
    f = _Fields(data, source)
    draft = str(data.get("status") or "").strip().lower() == "draft"
    required = required_fields("draft" if draft else "")
    for name in required if require_id else [r for r in required if r != "id"]:
        value = data.get(name)
        if value is None or (isinstance(value, str) and not value.strip()):
            f.problem(name, "is required but missing; add it to the front matter")

    entry_id = f.text("id", MAX_ID)
    if entry_id and not is_valid_id(entry_id):
        f.problem(
            "id",
            f"'{entry_id}' is not a safe id; use lowercase letters, digits and hyphens, e.g. '{slugify(entry_id)}'",
        )

    lighthouse = None
    raw_lh = data.get("lighthouse")
    if raw_lh not in (None, False, ""):
        if not isinstance(raw_lh, dict):
            f.problem("lighthouse", "must be a mapping with stage, impact, benefits and reused_by")
        else:
            stage = f.text("stage", data=raw_lh).lower()
            if stage not in LIGHTHOUSE_STAGES:
                f.problem("lighthouse.stage", f"'{stage}' is not a stage; use one of: {', '.join(LIGHTHOUSE_STAGES)}")
            reused_by, reuse = _reuse(f, raw_lh.get("reused_by"))
            lighthouse = Lighthouse(
                stage=stage,
                impact=f.text("impact", MAX_SUMMARY, data=raw_lh),
                benefits=f.items("benefits", data=raw_lh),
                reused_by=reused_by,
                history=_history(f, raw_lh.get("history")),
                review_by=f.date_value(raw_lh.get("review_by"), "lighthouse.review_by", LIGHTHOUSE_PART_SEVERITY),
                reuse=reuse,
            )
            for name in raw_lh:
                if name not in LIGHTHOUSE_FIELDS:
                    f.problem(
                        f"lighthouse.{name}",
                        f"is not a lighthouse field; use {', '.join(LIGHTHOUSE_FIELDS)}",
                        severity="warning",
                    )

    sources, quality = _data_sources(f, data.get("data_sources"), data.get("data_quality"))

    known = {fld for fld in Entry.__dataclass_fields__} - {"sections"}
    for name in data:
        if name not in known:
            f.problem(
                str(name),
                "is not a known field; check its spelling (see the README's entry format)",
                severity="warning",
            )

    entry = Entry(
        id=entry_id,
        title=" ".join(f.text("title", MAX_TITLE).split()),  # one line: passages use it as a heading
        summary=f.text("summary", MAX_SUMMARY),
        kind=f.choice("kind", KINDS),
        outcome=f.choice("outcome", OUTCOMES),
        organisation=f.text("organisation"),
        status=f.choice("status", STATUSES, "draft"),
        visibility=f.choice("visibility", VISIBILITIES, "public"),
        team=f.text("team"),
        contact=f.text("contact"),
        anonymous=f.flag("anonymous"),
        partners=f.items("partners"),
        themes=f.items("themes"),
        tags=f.items("tags"),
        data_sources=sources,
        data_quality=quality,
        started=f.date("started"),
        ended=f.date("ended"),
        phase=f.text("phase"),
        evidence=f.choice("evidence", EVIDENCE_GRADES),
        lighthouse=lighthouse,
        created=f.date("created"),
        updated=f.date("updated"),
        author=f.text("author"),
        reviewer=f.text("reviewer"),
        review_comment=f.text("review_comment", MAX_SUMMARY),
        revised_by=f.text("revised_by"),
        source=f.text("source", MAX_SUMMARY),
        related=f.items("related"),
        links=f.items("links"),
        sections=sections or {},
    )
    if entry.started and entry.ended and entry.ended < entry.started:  # a draft may be saved before it is fixed
        severity = "warning" if draft else "error"
        f.problem("ended", f"{entry.ended} is before started ({entry.started}); check both dates", severity)
    if any(p.severity == "error" for p in f.problems):
        raise EntryError(f.problems)
    return entry, f.problems


def parse_entry(text: str, source: str = "<entry>", *, require_id: bool = True) -> tuple[Entry, list[Problem]]:
    """Parse one entry file's text. Returns the entry and its warnings; raises EntryError."""
    if "\x00" in text:
        raise EntryError([Problem(source, "is a binary file, not Markdown text; remove it or replace it")])
    if not text.strip():
        raise EntryError([Problem(source, "is empty; write front matter between '---' lines, then the sections")])
    match = _FRONT_MATTER_RE.match(text.lstrip("\ufeff"))
    if not match:
        raise EntryError([Problem(source, "has no front matter; start the file with '---', the fields, then '---'")])
    try:
        data = load_yaml(match.group(1))
    except DuplicateKey as exc:
        first, second = exc.first_line + 2, exc.problem_mark.line + 2  # the front matter starts on line 2
        message = f"front matter gives '{exc.key}' twice (lines {first} and {second}); keep one of them"
        raise EntryError([Problem(source, message, field=str(exc.key))]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 2}" if mark else ""
        reason = getattr(exc, "problem", None) or "invalid YAML"
        raise EntryError([Problem(source, f"front matter is not valid YAML{where} ({reason}); fix it")]) from None
    except (ValueError, TypeError, OverflowError) as exc:  # e.g. 2021-13-01 fails inside YAML's date parsing
        raise EntryError(
            [
                Problem(
                    source,
                    f"front matter has a value YAML cannot read ({exc}); "
                    "write dates as YYYY-MM-DD and quote unusual values",
                )
            ]
        ) from None
    if not isinstance(data, dict):
        raise EntryError([Problem(source, "front matter must be 'field: value' lines")])
    problems: list[Problem] = []
    sections = _split_sections(match.group(2), source, problems)
    try:
        entry, warnings = entry_from_dict({str(k): v for k, v in data.items()}, source, sections, require_id=require_id)
    except EntryError as exc:
        raise EntryError(exc.problems + problems) from None
    if problems:
        raise EntryError(problems)
    return entry, warnings


_Dumper = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def render_entry(entry: Entry) -> str:
    """The file text of an entry: front matter with the fields set, then the sections in order."""
    data = entry.to_dict()
    sections = data.pop("sections")
    front = {k: v for k, v in data.items() if v not in ("", [], None, False) or k in REQUIRED}
    if entry.lighthouse is not None:
        lh = entry.lighthouse
        parts = {
            "stage": lh.stage,
            "impact": lh.impact,
            "benefits": lh.benefits,
            "reused_by": lh.reuse_items(),
            "history": [{k: v for k, v in asdict(h).items() if v} for h in lh.history],
            "review_by": lh.review_by,
        }
        front["lighthouse"] = {k: v for k, v in parts.items() if v not in ("", [])}
    front.pop("data_quality", None)  # the grades sit inside their data_sources items
    if entry.data_sources:
        front["data_sources"] = data_source_items(entry)
    header = yaml.dump(front, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)
    ordered = [s for s in SECTIONS if s in sections] + [s for s in sections if s not in SECTIONS]
    body = "".join(f"\n## {name}\n\n{sections[name].strip()}\n" for name in ordered)
    return f"---\n{header}---\n{body}"


def content_hash(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()
