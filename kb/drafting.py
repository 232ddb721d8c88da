"""Drafting an entry through a form: prompts, field guidance, validation per field, and saving.

    draft = Draft.new(user)                       # or Draft.from_entry(kb.get(entry_id)) to edit
    draft.title = "..."
    entry = save_draft(kb, draft, user, status="draft")       # a draft needs only a title
    entry = save_draft(kb, draft, user, status="in-review")   # raises DraftInvalid, Conflict

A draft is saved half-done: it needs only a title, and what was typed is kept as it is (a value the entry
cannot hold at all, such as a date that is not a date, is refused rather than dropped). Sending it for
review, or saving a published entry, checks everything. `DraftInvalid.messages` says what is wrong with
each field, in words meant for the person filling in the form; no message names a file.

What the person reads after saving, and the list where they find their work again, are kb.own_work's; the
duplicate check while typing is kb.duplicates's.
"""

from __future__ import annotations

import copy
import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from kb.access import can_contribute, edit_statuses
from kb.editing import open_edit, save_edit
from kb.entries import MAX_SUMMARY, SECTIONS, Entry, is_valid_id, is_web_address, slugify
from kb.entry_fields import quality_from_words, quality_words
from kb.entry_files import entry_from_dict
from kb.errors import Conflict, EntryError, Forbidden, KBError, Problem
from kb.lifecycle import last_day, record_stage_change

if TYPE_CHECKING:
    from kb.identity import User
    from kb.knowledge import KnowledgeBase

SECTION_PROMPTS = {
    "Context": "What problem were you solving, for whom, and why then?",
    "What we did": "The approach, the data, the people involved and how long it took.",
    "What happened": "The result, in numbers where you have them. What changed for the people you served?",
    "What worked": "What would you do again?",
    "What didn't": "What would you do differently? Describe situations, not people.",
    "Lessons": "What would you tell a team starting this tomorrow?",
    "Recommendations": "Concrete steps for the next team, in the order they should take them.",
    "Evidence and links": "Reports, evaluations, code or dashboards, and how to get hold of them.",
}

FIELD_HELP = {
    "title": "A plain sentence that says what you did, e.g. 'Matching benefit and housing records to prevent "
    "homelessness'.",
    "summary": "One to three sentences: what you tried and what happened.",
    "kind": "A project delivered something; an experiment tested an idea.",
    "outcome": "Failed and stopped work is as useful to others as success. Say how it really ended.",
    "organisation": "The organisation that led the work.",
    "team": "The team that did the work. Hidden from readers if you share anonymously.",
    "contact": "A mailbox or person others can ask. Hidden from readers if you share anonymously.",
    "anonymous": "Hide the team and contact from readers: blameless sharing of what went wrong.",
    "partners": "Other organisations involved. Type a name and press Enter to add a new one.",
    "themes": "Choose from the shared vocabulary so others can find this alongside related work.",
    "tags": "Free keywords. Type one and press Enter.",
    "data_sources": "The datasets or systems the work used. Type one and press Enter.",
    "data_quality": "Optional. One line per data source you can grade, on the Data Quality Framework's "
    "dimensions (accuracy, completeness, consistency, timeliness, uniqueness, validity), each poor, fair, good "
    "or excellent, with what you found in brackets: 'School census: accuracy good, timeliness poor (a term "
    "late)'. A source graded here is added to the data sources.",
    "started": "YYYY, YYYY-MM or YYYY-MM-DD.",
    "ended": "Leave empty if the work is ongoing.",
    "phase": "e.g. discovery, alpha, beta, pilot, live.",
    "evidence": "How well is the lesson supported? Anecdote: a view; observed: seen in practice; measured: "
    "numbers; evaluated: a formal evaluation.",
    "visibility": "Public: anyone; internal: across government; organisation: your organisation only.",
    "lighthouse_stage": "Lighthouse projects show what cross-team data work can deliver. Leave as 'not a "
    "lighthouse' unless it has proved its value.",
    "lighthouse_impact": "The value it delivered, in one or two sentences.",
    "lighthouse_benefits": "Measured benefits, one per line.",
    "lighthouse_reused_by": "Entries that replicated this project.",
    "lighthouse_reuse": "One line per entry in Reused by, as an export writes it: its id, when it reused this "
    "project in brackets (YYYY, YYYY-MM or YYYY-MM-DD), then the measured benefit, e.g. "
    "school-meals-auto-enrolment-data-share (2024-05): saved 40 days of legal work. Both parts are optional; "
    "an entry added to Reused by without a date is dated this month.",
    "lighthouse_review_by": "YYYY-MM (or YYYY, or YYYY-MM-DD), e.g. 2027-06: when its owner should next check that the stage, impact and "
    "benefits still hold. Past it, the lighthouse is flagged as due for review.",
    "lighthouse_stage_reason": "Why the stage is changing (required when it does): kept, dated, in the "
    "lighthouse's history.",
    "related": "Other entries a reader should look at next.",
    "links": "Web addresses, one per line, starting with https://",
    "source": "Where this write-up came from, if it was copied from another register.",
}

NO_STAGE = ""
FORM_ERROR = "form"  # where a message that belongs to no single field goes
DRAFT = "draft"


@dataclass
class Draft:
    """The form's values: every field of an entry, as a person types them."""

    title: str = ""
    summary: str = ""
    kind: str = "project"
    outcome: str = ""
    organisation: str = ""
    team: str = ""
    contact: str = ""
    anonymous: bool = False
    partners: list[str] = field(default_factory=list)
    themes: list[str] = field(default_factory=list)
    tags: list[str] = field(default_factory=list)
    data_sources: list[str] = field(default_factory=list)
    data_quality: str | dict[str, Any] = ""  # in words, one graded source per line (kb.entry_fields.quality_words);
    # or, from the API, the grades by source name as entry_from_dict reads them ({name: {grades, graded}})
    started: str = ""
    ended: str = ""
    phase: str = ""
    evidence: str = ""
    visibility: str = "public"
    lighthouse_stage: str = NO_STAGE
    lighthouse_impact: str = ""
    lighthouse_benefits: str = ""  # one per line
    lighthouse_reused_by: list[str] = field(default_factory=list)
    lighthouse_reuse: str = ""  # when each reuse happened and what it brought: `id (date): benefit`, one per line
    lighthouse_review_by: str = ""
    lighthouse_stage_reason: str = ""  # why the stage changed: kept in the lighthouse's history
    related: list[str] = field(default_factory=list)
    links: str = ""  # one per line
    source: str = ""
    sections: dict[str, str] = field(default_factory=dict)

    @classmethod
    def new(cls, user: User | None = None) -> Draft:
        return cls(organisation=user.organisation if user else "")

    @classmethod
    def from_entry(cls, entry: Entry) -> Draft:
        lh = entry.lighthouse
        return cls(
            title=entry.title,
            summary=entry.summary,
            kind=entry.kind or cls.kind,  # a draft saved without one shows the form's default
            outcome=entry.outcome,
            organisation=entry.organisation,
            team=entry.team,
            contact=entry.contact,
            anonymous=entry.anonymous,
            partners=list(entry.partners),
            themes=list(entry.themes),
            tags=list(entry.tags),
            data_sources=list(entry.data_sources),
            data_quality="\n".join(quality_words(entry)),
            started=entry.started,
            ended=entry.ended,
            phase=entry.phase,
            evidence=entry.evidence,
            visibility=entry.visibility,
            lighthouse_stage=lh.stage if lh else NO_STAGE,
            lighthouse_impact=lh.impact if lh else "",
            lighthouse_benefits="\n".join(lh.benefits) if lh else "",
            lighthouse_reused_by=list(lh.reused_by) if lh else [],
            lighthouse_reuse="\n".join(t for i, t in zip(lh.reused_by, lh.reuse_texts(), strict=True) if i in lh.reuse)
            if lh
            else "",
            lighthouse_review_by=lh.review_by if lh else "",
            related=list(entry.related),
            links="\n".join(entry.links),
            source=entry.source,
            sections=dict(entry.sections),
        )

    @classmethod
    def field_names(cls) -> list[str]:
        """Every form field except the sections, in form order."""
        return [f.name for f in fields(cls) if f.name != "sections"]


class DraftInvalid(KBError):
    """The draft cannot be saved yet; `messages` maps each form field to what is wrong with it."""

    def __init__(self, messages: dict[str, list[str]]):
        self.messages = messages
        count = sum(len(m) for m in messages.values())
        super().__init__(f"{count} thing{'s' if count != 1 else ''} to fix before saving")


def _clean_list(values: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(v.strip() for v in values if v and v.strip()))


def _lines(text: str) -> list[str]:
    return _clean_list(line.strip().lstrip("-*•").strip() for line in text.splitlines())


def _quoted(text: str, limit: int = 80) -> str:
    return f"“{text if len(text) <= limit else text[: limit - 1] + '…'}”"


def _form_checks(draft: Draft, status: str) -> dict[str, list[str]]:
    """What the form asks for beyond a valid file, worded for the person filling it in. A draft needs only
    its title, and nothing typed may be lost in saving it; everything else is checked once it is sent."""
    messages: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        messages.setdefault(name, []).append(message)

    if not draft.title.strip():
        add("title", "Give the entry a title: a plain sentence that says what you did.")
    has_details = (
        draft.lighthouse_impact.strip()
        or draft.lighthouse_benefits.strip()
        or draft.lighthouse_reused_by
        or draft.lighthouse_reuse.strip()
        or draft.lighthouse_review_by.strip()
    )
    if not draft.lighthouse_stage and has_details:  # without a stage, what was typed there would be lost
        add("lighthouse_stage", "Choose a stage, or clear the lighthouse impact, benefits and reuse.")
    if status == DRAFT:
        return messages
    if not draft.summary.strip():
        add("summary", "Write a summary of one to three sentences.")
    if not draft.kind:
        add("kind", "Choose project or experiment.")
    if not draft.outcome:
        add("outcome", "Choose how the work turned out.")
    if not draft.organisation.strip():
        add("organisation", "Say which organisation led the work.")
    if not any(text.strip() for text in draft.sections.values()):
        add(
            "section:Lessons",
            "Write at least one section. Start here: what would you tell a team starting this tomorrow?",
        )
    for link in [u for u in _lines(draft.links) if not is_web_address(u)]:
        add("links", f"{_quoted(link)} is not a web address. Give each link in full, starting with https://")
    if draft.lighthouse_stage and not draft.lighthouse_impact.strip():
        add("lighthouse_impact", "Say what value this lighthouse delivered.")
    return messages


def field_key(problem: Problem) -> str:
    """The form field a validation problem belongs to."""
    name = problem.field or ""
    if name == "id":
        return "title"
    if name in ("lighthouse", "lighthouse.stage", "stage"):
        return "lighthouse_stage"
    if name in ("impact", "benefits", "reused_by"):
        return f"lighthouse_{name}"
    if name.startswith(("data_quality", "data_sources")):
        return name.split(".")[0].split("[")[0]
    if name == "lighthouse.review_by":
        return "lighthouse_review_by"
    if name.startswith("lighthouse.reused_by["):
        return "lighthouse_reuse"
    section = re.fullmatch(r"section '(.+)'", name)
    if section:  # a section the form does not show (kept from an imported file) has no field of its own
        return f"section:{section.group(1)}" if section.group(1) in SECTIONS else FORM_ERROR
    return name if name in Draft.field_names() else FORM_ERROR


def _message(problem: Problem) -> str:
    text, field = problem.message, problem.field or ""
    if field.startswith("data_quality."):  # which source and which part of its grade
        place = field.removeprefix("data_quality.").replace(".grades.", ", ").removesuffix(".rating")
        return f"{place}: {text}"
    return f"This field {text}" if text.startswith(("is ", "must ")) else text[:1].upper() + text[1:]


def build_entry(
    draft: Draft, user: User, *, status: str, existing: Entry | None = None, today: str | None = None
) -> Entry:
    """The entry this draft describes, or DraftInvalid with a message for every field that is wrong. A
    draft (`status="draft"`) needs only its title; any other status needs the whole entry."""
    messages = _form_checks(draft, status)
    today = today or dt.date.today().isoformat()
    lighthouse = None
    if draft.lighthouse_stage:
        old = existing.lighthouse if existing else None
        reused_by = _clean_list(draft.lighthouse_reused_by)
        known, unread_reuse = _reuse_details(draft.lighthouse_reuse, reused_by)
        if unread_reuse:
            messages["lighthouse_reuse"] = unread_reuse
        lighthouse = {
            "stage": draft.lighthouse_stage,
            "impact": draft.lighthouse_impact.strip(),
            "benefits": _lines(draft.lighthouse_benefits),
            "reused_by": [{"entry": i, **known[i]} if i in known else i for i in reused_by],
            "review_by": draft.lighthouse_review_by.strip(),
        }
        if old is not None and old.stage != draft.lighthouse_stage and not draft.lighthouse_stage_reason.strip():
            messages.setdefault("lighthouse_stage_reason", []).append(  # kb.lifecycle keeps it in the history
                f"Say why the stage changed from {old.stage} to {draft.lighthouse_stage}: it is kept in the "
                "lighthouse's history."
            )
    sources, quality, unread = _graded_sources(draft, existing, today)
    data: dict[str, Any] = {
        "id": existing.id if existing else slugify(draft.title),
        "title": " ".join(draft.title.split()),
        "summary": draft.summary.strip(),
        "kind": draft.kind,
        "outcome": draft.outcome,
        "organisation": draft.organisation.strip(),
        "status": status,
        "visibility": draft.visibility or "public",
        "team": draft.team.strip(),
        "contact": draft.contact.strip(),
        "anonymous": bool(draft.anonymous),
        "partners": _clean_list(draft.partners),
        "themes": _clean_list(draft.themes),
        "tags": _clean_list(draft.tags),
        "data_sources": sources,
        "data_quality": quality,
        "started": draft.started.strip(),
        "ended": draft.ended.strip(),
        "phase": draft.phase.strip(),
        "evidence": draft.evidence,
        "lighthouse": lighthouse,
        "created": (existing.created if existing else "") or today,
        "updated": today,
        "author": existing.author if existing else user.as_author,  # an edit never hands the entry to its editor
        "reviewer": existing.reviewer if existing else "",
        "review_comment": existing.review_comment if existing else "",
        "source": draft.source.strip(),
        "related": _clean_list(draft.related),
        "links": _lines(draft.links),
    }
    sections = {name: text.strip() for name, text in draft.sections.items() if text and text.strip()}
    if existing:  # sections the form does not show (from an imported file) are kept as they were
        sections.update({k: v for k, v in existing.sections.items() if k not in SECTIONS})
    try:
        entry, _ = entry_from_dict(data, "your entry", sections)
    except EntryError as exc:
        entry = None
        messages = _worded(exc.problems, messages)
    if unread:  # lines the form could not read, beside what the library found in the lines it could
        messages["data_quality"] = [*unread, *messages.get("data_quality", [])]
    if messages or entry is None:
        raise DraftInvalid(messages or {FORM_ERROR: ["The entry is not valid yet."]})
    return entry


_REUSE_LINE = re.compile(r"^([^\s:()]+)\s*(?:\(([^)]*)\))?\s*(?::\s*(.*))?$", re.S)  # as kb.entry_fields reads it
_DATE = re.compile(r"^\d{4}(-\d{2}(-\d{2})?)?$")


def _reuse_details(text: str, reused_by: list[str]) -> tuple[dict[str, dict[str, str]], list[str]]:
    """When each reuse happened and what it brought, from lines such as `some-entry (2024-05): saved 40
    days`, by entry id; and a message for each line that cannot be read or names an entry not in Reused by."""
    known: dict[str, dict[str, str]] = {}
    unread = []
    for line in _lines(text):
        found = _REUSE_LINE.match(line)
        if not found or not is_valid_id(found.group(1)):
            unread.append(f"{_quoted(line)}: write the entry's id, the date in brackets, then the benefit, e.g. "
                          "some-entry (2024-05): saved 40 days")  # fmt: skip
            continue
        entry_id, date, benefit = found.group(1), (found.group(2) or "").strip(), found.group(3) or ""
        if entry_id not in reused_by:
            unread.append(f"{_quoted(line)}: {entry_id} is not in Reused by; choose it there, or remove this line")
            continue
        if date and not _real_date(date):
            unread.append(f"{_quoted(line)}: '{date[:40]}' is not a date; write YYYY, YYYY-MM or YYYY-MM-DD")
            continue
        benefit = " ".join(benefit.split())
        if len(benefit) > MAX_SUMMARY:
            unread.append(f"{_quoted(line)}: say the benefit in at most {MAX_SUMMARY} characters")
            continue
        known[entry_id] = {k: v for k, v in (("date", date), ("benefit", benefit)) if v}
    return known, unread


def _real_date(text: str) -> bool:
    if not _DATE.match(text):
        return False
    try:
        last_day(text)
    except ValueError:
        return False
    return True


def _graded_sources(draft: Draft, existing: Entry | None, today: str) -> tuple[list[str], dict[str, Any], list[str]]:
    """The data sources and their grades from the form, and a message for each line it cannot read: a
    graded source joins the list; a grade given without a date is dated this month, unless it is the
    grade the entry already had."""
    if isinstance(draft.data_quality, str):
        quality, unread = quality_from_words(_lines(draft.data_quality))
    else:  # already structured: read as it is, never through words
        quality, unread = copy.deepcopy(draft.data_quality), []
    sources = _clean_list(draft.data_sources)
    for name, item in quality.items():
        if name not in sources:
            sources.append(name)
        before = existing.data_quality.get(name) if existing else None
        if not item["graded"]:
            unchanged = before is not None and {d: (g.rating, g.note) for d, g in before.grades.items()} == {
                d: (g["rating"], g["note"]) for d, g in item["grades"].items()
            }
            item["graded"] = before.graded if unchanged and before else today[:7]
    return sources, quality, [message[:1].upper() + message[1:] for message in unread]


def _worded(problems: Iterable[Problem], messages: dict[str, list[str]]) -> dict[str, list[str]]:
    """The form's messages with the library's errors added under their fields (never naming a file); the
    form's own wording wins where both found a problem with a field."""
    worded = set(messages)
    messages = {k: list(v) for k, v in messages.items()}
    for problem in problems:
        key = field_key(problem)
        if problem.severity == "error" and key not in worded:
            messages.setdefault(key, []).append(_message(problem))
    return {k: list(dict.fromkeys(v)) for k, v in messages.items()}


def save_draft(
    kb: KnowledgeBase,
    draft: Draft,
    user: User,
    *,
    status: str,
    edit_id: str | None = None,
    expected_version: str | None = None,
) -> Entry:
    """Validate, write and index the draft: a new entry, or an edit of `edit_id` under the access rules
    (kb.editing) that refuses to overwrite a change made since `expected_version` was read (Conflict).

    An edit that must wait for review comes back with `revised_by` set: it is kept as a revision, and
    readers still see the published entry.
    """
    if not can_contribute(user):
        raise Forbidden("you need the contributor role to save an entry; sign in first if you have not")
    try:
        if edit_id:
            target = open_edit(kb, edit_id, user)
            if expected_version is not None and target.version != expected_version:
                raise Conflict(
                    f"'{edit_id}' was changed by someone else since you opened it; reload it and apply your edits again"
                )
            entry = build_entry(draft, user, status=status, existing=target.entry)
            reason = draft.lighthouse_stage_reason
            return save_edit(kb, target, entry, user, status=status, stage_reason=reason).entry
        if status not in edit_statuses(user, None):
            raise KBError(f"a new entry is saved as a draft or sent for review, not '{status}'")
        new_entry = record_stage_change(build_entry(draft, user, status=status), None, draft.lighthouse_stage_reason)
        return kb.save(new_entry, new=True)
    except EntryError as exc:  # found when the file is written: said per field, without the file's name
        raise DraftInvalid(_worded(exc.problems, {}) or {FORM_ERROR: ["The entry is not valid yet."]}) from None
