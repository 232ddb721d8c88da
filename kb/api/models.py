"""What the API reads and answers, as pydantic models: the OpenAPI schema and its examples."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from kb import browse
from kb.access import UNPUBLISHED_STATUSES
from kb.drafting import Draft
from kb.entries import EVIDENCE_GRADES, OUTCOMES, STATUSES, Entry
from kb.notes import EARLIEST_YEAR, MAX_NOTE_TEXT, Note, Recurrence
from kb.plan import PER_PART
from kb.search import Hit, SimilarHit

# =============================================================================== models


class Problem(BaseModel):
    """An RFC 9457 problem: what went wrong, in words fit to show a user."""

    type: str = Field("about:blank", description="About:blank: the status says what kind of problem it is.")
    title: str = Field(description="The HTTP status, in words.")
    status: int
    detail: str = Field(description="What went wrong and what to do about it.")
    errors: dict[str, list[str]] | None = Field(
        None, description="For an entry that cannot be saved yet: what is wrong with each field."
    )

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"type": "about:blank", "title": "Not Found", "status": 404, "detail": "no entry with id 'x'"}]
        }
    )


class HitOut(BaseModel):
    """An entry a search found, with the passage that matched best."""

    id: str
    title: str
    score: float
    passage: str
    section: str
    organisation: str = ""
    kind: str = ""
    outcome: str = ""
    year: int | None = None
    themes: list[str] = []
    lighthouse_stage: str = ""
    status: str = ""
    evidence: str = ""
    close: bool | None = Field(None, description="Its passage is close to the query by meaning; null: not judged.")

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "benefits-and-housing-data-sharing-pilot",
                    "title": "Benefits and housing data sharing pilot",
                    "score": 0.0323,
                    "passage": "Start the data sharing agreement in the first week ...",
                    "section": "Lessons",
                    "organisation": "Northfield City Council",
                    "kind": "project",
                    "outcome": "partial",
                    "year": 2022,
                    "themes": ["data-sharing-agreements"],
                    "lighthouse_stage": "",
                    "status": "published",
                    "evidence": "observed",
                    "close": None,
                }
            ]
        }
    )

    @classmethod
    def of(cls, hit: Hit) -> HitOut:
        return cls(
            **{name: getattr(hit, name) for name in HitOut.model_fields if name != "themes"}, themes=list(hit.themes)
        )


class SimilarOut(HitOut):
    """An entry like the one asked about, with the pair of passages that links them."""

    source_passage: str = ""
    source_section: str = ""
    shared_themes: list[str] = []

    @classmethod
    def of(cls, hit: Hit) -> SimilarOut:
        assert isinstance(hit, SimilarHit)
        base = HitOut.of(hit).model_dump()
        return cls(
            **base,
            source_passage=hit.source_passage,
            source_section=hit.source_section,
            shared_themes=list(hit.shared_themes),
        )


class SearchOut(BaseModel):
    """One page of what a query found, and how many it found over every page."""

    query: str
    mode: str
    page: int
    limit: int
    total: int = Field(description=f"Hits over every page (at most {browse.MAX_RESULTS}).")
    hits: list[HitOut]


class PlanIn(BaseModel):
    """A project plan (text or Markdown): each part of it is searched for prior lessons."""

    plan: str = Field(min_length=1, max_length=browse.MAX_QUERY_CHARS)
    per_part: int = Field(PER_PART, ge=1, le=20, description="Lessons kept for each part.")
    mode: Literal["hybrid", "keyword", "meaning"] = "hybrid"

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "plan": "We will agree a data sharing agreement with the council.\n\n"
                    "We will build a dashboard for caseworkers.",
                    "per_part": 3,
                }
            ]
        }
    )


class PlanMatchOut(HitOut):
    relevance: float = Field(description="The score over the best score found for the same part.")


class PlanPartOut(BaseModel):
    number: int
    text: str
    matches: list[PlanMatchOut]


class PlanOut(BaseModel):
    parts: list[PlanPartOut]


class LighthouseOut(BaseModel):
    stage: str
    impact: str = ""
    benefits: list[str] = []
    reused_by: list[str] = []
    history: list[dict[str, str]] = []  # {stage, date, reason}, oldest first
    review_by: str = ""
    reuse: dict[str, dict[str, str]] = {}  # entry id -> {date, benefit}, where known


class GradeIO(BaseModel):
    rating: str = Field(description="poor, fair, good or excellent")
    note: str = ""


class SourceQualityIO(BaseModel):
    """One data source's grades on the Data Quality Framework's dimensions, and when they were given."""

    grades: dict[str, GradeIO] = Field({}, description="By dimension: accuracy, completeness, consistency, ...")
    graded: str = ""


class EntryOut(BaseModel):
    """An entry as the caller may see it; `withheld` names the fields left out for them."""

    id: str
    title: str
    summary: str
    kind: str
    outcome: str
    organisation: str
    status: str
    visibility: str
    team: str = ""
    contact: str = ""
    anonymous: bool = False
    partners: list[str] = []
    themes: list[str] = []
    tags: list[str] = []
    data_sources: list[str] = []
    data_quality: dict[str, SourceQualityIO] = Field({}, description="Grades of some data sources, by name.")
    started: str = ""
    ended: str = ""
    phase: str = ""
    evidence: str = ""
    lighthouse: LighthouseOut | None = None
    created: str = ""
    updated: str = ""
    author: str = ""
    reviewer: str = ""
    review_comment: str = ""
    revised_by: str = ""
    source: str = ""
    related: list[str] = []
    links: list[str] = []
    sections: dict[str, str] = {}
    withheld: list[str] = Field([], description="Fields withheld from the caller (blank, or links cut).")
    version: str | None = Field(None, description="The version to send back with an edit (PUT).")

    @classmethod
    def of(cls, entry: Entry, withheld: tuple[str, ...] = (), version: str | None = None) -> EntryOut:
        return cls(**entry.to_dict(), withheld=list(withheld), version=version)


class PastVersionOut(BaseModel):
    replaced: str = Field(description="When this version was replaced.")
    entry: EntryOut | None
    text: str = Field(description="The version as Markdown, as the caller may read it.")


class FacetValue(BaseModel):
    value: bool | int | str
    count: int


class StatsOut(BaseModel):
    entries: int
    passages: int
    files: int | None = None
    model: str
    lighthouses: int
    by: dict[str, dict[str, int]]


class ThemeOut(BaseModel):
    id: str
    label: str
    definition: str = ""
    synonyms: list[str] = []


class ReuseIn(BaseModel):
    """When an entry reused a lighthouse (YYYY, YYYY-MM or YYYY-MM-DD) and the benefit it measured."""

    date: str = ""
    benefit: str = ""


class EntryIn(BaseModel):
    """An entry as a form fills it in. A draft needs only a title; anything sent for review needs the
    whole entry. Sections are named as in the form ("Context", "Lessons", ...)."""

    title: str = Field("", max_length=500)
    summary: str = ""
    kind: Literal["", "project", "experiment"] = "project"
    outcome: Literal["", *OUTCOMES] = ""  # type: ignore[valid-type]
    organisation: str = ""
    team: str = ""
    contact: str = ""
    anonymous: bool = False
    partners: list[str] = []
    themes: list[str] = []
    tags: list[str] = []
    data_sources: list[str] = []
    data_quality: dict[str, SourceQualityIO] = Field({}, description="Grades of some data sources, by name.")
    started: str = ""
    ended: str = ""
    phase: str = ""
    evidence: Literal["", *EVIDENCE_GRADES] = ""  # type: ignore[valid-type]
    visibility: Literal["public", "internal", "organisation"] = "public"
    lighthouse_stage: str = ""
    lighthouse_impact: str = ""
    lighthouse_benefits: list[str] = []
    lighthouse_reused_by: list[str] = []
    lighthouse_reuse: dict[str, ReuseIn] = Field(
        {},
        description="When each entry in lighthouse_reused_by reused it, and the measured benefit, by entry id. "
        "A reuser added without a date is dated this month; what an edit leaves out is kept.",
    )
    lighthouse_review_by: str = ""
    lighthouse_stage_reason: str = ""  # required when an edit changes the stage: kept in its history
    related: list[str] = []
    links: list[str] = []
    source: str = ""
    sections: dict[str, str] = {}

    def draft(self) -> Draft:
        values = self.model_dump(exclude={"status", "version"})
        values["lighthouse_benefits"] = "\n".join(self.lighthouse_benefits)
        values["lighthouse_reuse"] = "\n".join(  # the form's words: `id (date): benefit`, one per line
            " ".join(entry_id.split())
            + (f" ({' '.join(r.date.split())})" if r.date.strip() else "")
            + (f": {' '.join(r.benefit.split())}" if r.benefit.strip() else "")
            for entry_id, r in self.lighthouse_reuse.items()
        )
        values["links"] = "\n".join(self.links)
        values["data_quality"] = {  # as the entry holds them: never written in words and read back
            name: {"grades": {d: {"rating": g.rating, "note": g.note} for d, g in q.grades.items()}, "graded": q.graded}
            for name, q in self.data_quality.items()
        }
        return Draft(**values)


_NEW_ENTRY_EXAMPLE: dict[str, Any] = {
    "title": "Parking permits go digital",
    "summary": "We moved resident parking permits online; renewals took a day instead of three weeks.",
    "kind": "project",
    "outcome": "succeeded",
    "organisation": "Northfield City Council",
    "sections": {"Lessons": "Start with renewals: they are most of the work and the easiest to automate."},
    "status": "in-review",
}


class NewEntryIn(EntryIn):
    status: Literal[*UNPUBLISHED_STATUSES] = Field("draft", description="Save as a draft, or send for review.")  # type: ignore[valid-type]

    model_config = ConfigDict(json_schema_extra={"examples": [_NEW_ENTRY_EXAMPLE]})


class EditIn(EntryIn):
    status: Literal[*STATUSES] = Field(  # type: ignore[valid-type]
        description="draft or in-review; whoever may publish the entry directly may keep it published or archived."
    )
    version: str = Field(min_length=1, max_length=200, description="The `version` of the entry you read and edited.")

    model_config = ConfigDict(json_schema_extra={"examples": [_NEW_ENTRY_EXAMPLE | {"version": "3f2a..."}]})


class SavedOut(BaseModel):
    """What was saved: the entry's id, its status and version now, and whether an edit waits for review
    (readers still see the published entry meanwhile)."""

    id: str
    status: str
    version: str | None
    pending_review: bool
    entry: EntryOut


class ReviewIn(BaseModel):
    decision: Literal["approve", "send-back"]
    comment: str = Field("", max_length=10_000, description="Required to send back: what the author should change.")
    version: str | None = Field(None, max_length=200, description="The version reviewed; refused if it changed since.")
    revision: bool = Field(False, description="Review the pending edit of a published entry rather than the entry.")

    model_config = ConfigDict(json_schema_extra={"examples": [{"decision": "approve", "version": "3f2a..."}]})


class QueueItemOut(BaseModel):
    """An entry (or an edit of a published entry) waiting for review, with the version to review."""

    id: str
    title: str
    version: str
    submitted: str
    revision: bool = Field(description="An edit of a published entry: send `revision: true` with the decision.")
    proposer: str
    may_review: bool = Field(description="False for the caller's own work: another reviewer reviews it.")


class ReviewOut(BaseModel):
    id: str
    status: str
    version: str | None


class NoteIn(BaseModel):
    """An evidence note ("we hit this too") on an entry the caller may see, whoever owns it."""

    text: str = Field(min_length=1, max_length=MAX_NOTE_TEXT, description="What happened to you.")
    year: int = Field(ge=EARLIEST_YEAR, le=9999, description="The year it happened (not after this year).")
    organisation: str | None = Field(
        None, max_length=200, description="Your organisation; by default, the one your token names."
    )
    link: str = Field("", max_length=2000, description="An optional http(s) link to more.")
    anonymous: bool = Field(False, description="Hide your organisation and name from readers.")

    model_config = ConfigDict(
        json_schema_extra={"examples": [{"text": "Our flood cell had the same late data from councils.", "year": 2021}]}
    )


class NoteChangeIn(BaseModel):
    """A change to a note you wrote (or, for curators, any note): only the fields given change."""

    text: str | None = Field(None, min_length=1, max_length=MAX_NOTE_TEXT, description="What happened to you.")
    year: int | None = Field(None, ge=EARLIEST_YEAR, le=9999, description="The year it happened.")
    link: str | None = Field(None, max_length=2000, description="An http(s) link to more; empty removes it.")
    anonymous: bool | None = Field(None, description="Hide your organisation and name from readers.")

    model_config = ConfigDict(json_schema_extra={"examples": [{"text": "Our flood cell had the same late data."}]})


class NoteOut(BaseModel):
    """A note as the caller may see it: an anonymous note's organisation and author are blank for readers."""

    id: str
    entry_id: str
    text: str
    organisation: str
    year: int
    link: str = ""
    anonymous: bool = False
    author: str = ""
    created: str
    updated: str

    @classmethod
    def of(cls, note: Note) -> NoteOut:
        return cls(**note.to_dict())


class RecurrenceOut(BaseModel):
    """How often the entry's lesson was met, as the caller may know it ("seen in 3 organisations since 2019")."""

    organisations: int
    since: int | None
    text: str

    @classmethod
    def of(cls, seen: Recurrence) -> RecurrenceOut:
        return cls(organisations=seen.organisations, since=seen.since, text=str(seen))


class PastNoteOut(BaseModel):
    replaced: str = Field(description="When this version was replaced or withdrawn.")
    note: NoteOut


class NotesOut(BaseModel):
    recurrence: RecurrenceOut
    notes: list[NoteOut] = Field(description="Oldest first.")
