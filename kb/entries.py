"""Entries: one Markdown file per entry, YAML front matter for the fields, sections for the story.

This module is the entry itself: its fields and their values, the limits on them, ids, and the content
hash. Reading the fields (with clear messages: file, field, what to do) is kb.entry_fields's; the
file's format, parsing and rendering, kb.entry_files's. The folder the files live in is kb.store's.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

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
    # grades sit inside the `data_sources:` item (see kb.entry_files.render_entry); in JSONL and to_dict, here.
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


def content_hash(text: str | bytes) -> str:
    data = text.encode("utf-8") if isinstance(text, str) else text
    return hashlib.sha256(data).hexdigest()
