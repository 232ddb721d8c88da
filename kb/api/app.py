"""The endpoints: each reads its input, calls one library function with the caller as the viewer, and
returns what comes back."""

from __future__ import annotations

import hmac
import logging
from typing import Annotated, Literal

from fastapi import Body, Depends, FastAPI, Path, Query
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from kb import browse, evidence, review
from kb.access import READABLE_STATUSES, UNPUBLISHED_STATUSES, present
from kb.api.feeds import feeds_router
from kb.api.gate import (
    Gate,
    Viewer,
    http_error,
    invalid_request,
    library_error,
    unexpected_error,
)
from kb.api.limits import SharedBucket
from kb.api.models import (
    EditIn,
    EntryOut,
    FacetValue,
    HitOut,
    NewEntryIn,
    NoteChangeIn,
    NoteIn,
    NoteOut,
    NotesOut,
    PastNoteOut,
    PastVersionOut,
    PlanIn,
    PlanMatchOut,
    PlanOut,
    PlanPartOut,
    QueueItemOut,
    RecurrenceOut,
    ReviewIn,
    ReviewOut,
    SavedOut,
    SearchOut,
    SimilarOut,
    StatsOut,
    ThemeOut,
)
from kb.api.openapi import described_app, problems
from kb.config import MailSettings
from kb.database import Database, open_database
from kb.drafting import save_draft
from kb.entries import EVIDENCE_GRADES, KINDS, OUTCOMES, QUALITY_RATINGS, STATUSES, Entry
from kb.errors import KBError
from kb.exporter import MEDIA_TYPES
from kb.filters import Filters
from kb.identity import User
from kb.knowledge import KnowledgeBase
from kb.oidc import BearerVerifier
from kb.plan import plan_search
from kb.searchlog import search_log
from kb.tokens import TokenStore

log = logging.getLogger("lighthouse.api")

MAX_BODY_BYTES = 1_000_000
RATE_PER_MINUTE = 120  # each token's (or visitor address's) steady rate
BURST = 60  # requests a quiet client may make at once
ENTRY_ID = Path(
    description="The entry's id (its file name without .md).", examples=["benefits-and-housing-data-sharing-pilot"]
)
NOTE_ID = Path(description="The note's id.", examples=["20261203-4fa91c"])


# =============================================================================== the app


def _filters(
    organisation: Annotated[list[str], Query(description="Only this organisation (repeatable).")] = [],  # noqa: B006
    theme: Annotated[list[str], Query(description="Only this theme id (repeatable).")] = [],  # noqa: B006
    tag: Annotated[list[str], Query()] = [],  # noqa: B006
    team: Annotated[list[str], Query()] = [],  # noqa: B006
    kind: Annotated[list[Literal[*KINDS]], Query()] = [],  # type: ignore[valid-type]  # noqa: B006
    outcome: Annotated[list[Literal[*OUTCOMES]], Query()] = [],  # type: ignore[valid-type]  # noqa: B006
    status: Annotated[
        list[Literal[*STATUSES]],  # type: ignore[valid-type]
        Query(description="Published entries unless a status is chosen; only reviewers may choose one."),
    ] = [],  # noqa: B006
    evidence: Annotated[list[Literal[*EVIDENCE_GRADES]], Query()] = [],  # type: ignore[valid-type]  # noqa: B006
    quality: Annotated[
        list[Literal[*QUALITY_RATINGS]],  # type: ignore[valid-type]
        Query(description="Only entries whose worst grade of any data source is this (repeatable)."),
    ] = [],  # noqa: B006
    lighthouse: Annotated[bool | None, Query(description="Only lighthouse projects (true) or only others.")] = None,
    year_from: Annotated[int | None, Query(ge=1000, le=9999, description="Started in or after this year.")] = None,
    year_to: Annotated[int | None, Query(ge=1000, le=9999, description="Started in or before this year.")] = None,
) -> Filters:
    return Filters.of(
        organisation=organisation,
        theme=theme,
        tag=tag,
        team=team,
        kind=kind,
        outcome=outcome,
        status=status,
        evidence=evidence,
        quality=quality,
        lighthouse=lighthouse,
        year_from=year_from,
        year_to=year_to,
    )


Facets = Annotated[Filters, Depends(_filters)]
Mode = Annotated[
    Literal["hybrid", "keyword", "meaning"],
    Query(description="Keywords and meaning fused (hybrid), keywords only (BM25) or meaning only (dense)."),
]


def create_app(
    kb: KnowledgeBase,
    tokens: TokenStore,
    *,
    max_body: int = MAX_BODY_BYTES,
    rate_per_minute: float = RATE_PER_MINUTE,
    burst: int = BURST,
    provider: BearerVerifier | None = None,
    database: Database | None = None,
    mail: MailSettings | None = None,
) -> FastAPI:
    """The API over this knowledge base, its callers named by these tokens or, with a provider, by the
    tokens it issues; the feeds read people's follows from this database (by default the settings' own,
    opened at the first request), and each caller's request allowance is kept there."""
    app = described_app()

    def outward(version: str | None) -> str | None:
        """A file's version as the API hands it out: keyed, so that it is no hash of the whole file, which
        a reader could test guesses at withheld names against."""
        return None if version is None else hmac.new(tokens.version_key(), version.encode(), "sha256").hexdigest()

    def inward(given: str | None, *versions: str | None) -> str | None:
        """The file version a client's `version` names, among those it may mean; one that names none of
        them is passed on as it is, and the library answers as for any stale version (after its checks
        of who may see and do what)."""
        if given is None:
            return None
        wanted = given.encode("utf-8")  # as bytes: compare_digest refuses a str with non-ASCII characters
        return next((v for v in versions if v and hmac.compare_digest((outward(v) or "").encode(), wanted)), given)

    def the_database() -> Database:
        return database or open_database(kb.settings)

    # Each caller's allowance is kept in the database, so that replicas sharing it share one allowance.
    limiter = SharedBucket(the_database, rate_per_minute, burst)
    app.add_middleware(Gate, tokens=tokens, limiter=limiter, max_body=max_body, provider=provider)
    app.add_exception_handler(KBError, library_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(Exception, unexpected_error)

    app.include_router(feeds_router(kb, the_database, mail or MailSettings()))

    # ------------------------------------------------------------------ reading

    @app.get("/search", response_model=SearchOut, responses=problems(400), tags=["finding"])
    def search(
        viewer: Viewer,
        facets: Facets,
        q: Annotated[str, Query(min_length=1, max_length=browse.MAX_QUERY_CHARS, description="What to look for.")],
        mode: Mode = "hybrid",
        exact: Annotated[bool, Query(description="Only the query's own words: no other names of its themes.")] = False,
        limit: Annotated[int, Query(ge=1, le=browse.MAX_RESULTS)] = browse.PAGE_SIZE,
        page: Annotated[int, Query(ge=1, le=browse.MAX_RESULTS)] = 1,
    ) -> SearchOut:
        """Entries matching a query, best first, each with the passage that matched; quote a phrase to
        require it. Filters as the search page has them."""
        request = browse.SearchRequest(query=q, mode=mode, facets=facets, exact=exact, page=page)
        every = browse.ranked(kb, request, viewer, record=True)  # a person asked: counted on its first page
        hits = every[(page - 1) * limit : page * limit]
        return SearchOut(
            query=q, mode=mode, page=page, limit=limit, total=len(every), hits=[HitOut.of(h) for h in hits]
        )

    @app.post("/plan", response_model=PlanOut, responses=problems(400, 413), tags=["finding"])
    def plan(viewer: Viewer, facets: Facets, body: PlanIn) -> PlanOut:
        """A project plan, split into parts: the best prior lessons for each part, failures first."""
        filters = browse.SearchRequest(facets=facets).for_user(viewer).filters()
        mode = browse.SEARCH_MODES[body.mode]
        result = plan_search(kb, body.plan, per_part=body.per_part, mode=mode, filters=filters, viewer=viewer)
        return PlanOut(
            parts=[
                PlanPartOut(
                    number=part.number,
                    text=part.text,
                    matches=[
                        PlanMatchOut(**HitOut.of(m.hit).model_dump(), relevance=round(m.relevance, 4))
                        for m in part.matches
                    ],
                )
                for part in result.parts
            ]
        )

    @app.get("/entries/{entry_id}", response_model=EntryOut, responses=problems(400, 404), tags=["entries"])
    def show(viewer: Viewer, entry_id: Annotated[str, ENTRY_ID]) -> EntryOut:
        """One entry as the caller may see it, with its version (send it back with an edit). A hidden
        entry answers exactly as a missing one."""
        shown = kb.show(entry_id, viewer=viewer)
        search_log(kb.settings).record_entry(entry_id)  # anonymous: how often each entry is read
        return EntryOut.of(shown.entry, shown.withheld, outward(kb.store.version(entry_id)))

    @app.get(
        "/entries/{entry_id}/similar", response_model=list[SimilarOut], responses=problems(400, 404), tags=["entries"]
    )
    def similar(
        viewer: Viewer, entry_id: Annotated[str, ENTRY_ID], limit: Annotated[int, Query(ge=1, le=100)] = 5
    ) -> list[SimilarOut]:
        """The entries most like this one, with the passages that link them."""
        return [SimilarOut.of(hit) for hit in kb.similar(entry_id, limit=limit, viewer=viewer)]

    @app.get(
        "/entries/{entry_id}/history",
        response_model=list[PastVersionOut],
        responses=problems(400, 404),
        tags=["entries"],
    )
    def history(viewer: Viewer, entry_id: Annotated[str, ENTRY_ID]) -> list[PastVersionOut]:
        """Earlier versions of the entry, newest first: only those the caller could have seen."""
        return [
            PastVersionOut(replaced=v.replaced, entry=EntryOut.of(v.entry) if v.entry else None, text=v.text)
            for v in kb.history(entry_id, viewer=viewer)
        ]

    @app.get("/facets", response_model=dict[str, list[FacetValue]], responses=problems(400), tags=["overview"])
    def facets(viewer: Viewer, chosen: Facets) -> dict[str, list[FacetValue]]:
        """How many entries the caller may see for each value of each facet, with the other filters
        applied (published entries unless a status is chosen)."""
        filters = browse.SearchRequest(facets=chosen).for_user(viewer).filters()
        counts = browse.facet_counts(kb, filters, viewer=viewer)
        return {name: [FacetValue(value=v, count=n) for v, n in values] for name, values in counts.items()}

    @app.get("/stats", response_model=StatsOut, responses=problems(400), tags=["overview"])
    def stats(viewer: Viewer) -> StatsOut:
        """Counts of the indexed entries the caller may see, by facet."""
        return StatsOut(**kb.stats(viewer=viewer))

    @app.get("/vocabulary", response_model=list[ThemeOut], responses=problems(), tags=["overview"])
    def vocabulary(viewer: Viewer) -> list[ThemeOut]:
        """The shared vocabulary of themes, with their synonyms."""
        return [
            ThemeOut(id=t.id, label=t.label, definition=t.definition, synonyms=list(t.synonyms))
            for t in kb.vocabulary.themes
        ]

    @app.get(
        "/export",
        response_class=Response,
        responses={
            200: {
                "description": "The file, as the caller may see the entries.",
                "content": {
                    media: {"schema": {"type": "string", "format": "binary"}} for media in MEDIA_TYPES.values()
                },
            },
            **problems(400),
        },
        tags=["overview"],
    )
    def export(
        viewer: Viewer,
        chosen: Facets,
        format: Annotated[Literal["csv", "xlsx", "jsonl"], Query(description="The file's format.")] = "csv",
        q: Annotated[
            str | None,
            Query(
                min_length=1,
                max_length=browse.MAX_QUERY_CHARS,
                description="Only what this search finds, in its order.",
            ),
        ] = None,
        mode: Mode = "hybrid",
    ) -> Response:
        """Every entry the caller may see as CSV, Excel or JSONL (or, with `q` or filters, what that search
        lists): hidden entries left out, withheld fields blank and named in the `withheld` column. The
        file imports back with `python -m kb import`."""
        request = browse.SearchRequest(query=q or "", mode=mode, facets=chosen)
        ids = browse.every_match(kb, request, viewer) if q or chosen.active else None
        data = browse.download(kb, ids, format, viewer)
        disposition = f'attachment; filename="lighthouse.{format}"'
        return Response(data, media_type=MEDIA_TYPES[format], headers={"Content-Disposition": disposition})

    # ------------------------------------------------------------------ writing

    def saved(entry: Entry, viewer: User) -> SavedOut:
        """What a save returns: the entry as saved (a pending edit: the revision), as this caller may see it
        (what was withheld from them was put back before writing, and must not come back to them now)."""
        pending = entry.status in UNPUBLISHED_STATUSES and kb.stored(entry.id).status in READABLE_STATUSES
        links = [*entry.related, *(entry.lighthouse.reused_by if entry.lighthouse else ())]
        shown = present(entry, viewer, kb.visible_to(viewer, links))
        return SavedOut(
            id=entry.id,
            status=entry.status,
            version=outward(kb.store.version(entry.id)),
            pending_review=pending,
            entry=EntryOut.of(shown.entry, shown.withheld),
        )

    @app.post(
        "/entries", status_code=201, response_model=SavedOut, responses=problems(400, 403, 409, 413), tags=["writing"]
    )
    def submit(viewer: Viewer, body: Annotated[NewEntryIn, Body()]) -> SavedOut:
        """Save a new entry as a draft, or send it for review (contributors; a draft needs only a title)."""
        entry = save_draft(kb, body.draft(), viewer, status=body.status)
        return saved(entry, viewer)

    @app.put(
        "/entries/{entry_id}", response_model=SavedOut, responses=problems(400, 403, 404, 409, 413), tags=["writing"]
    )
    def edit(viewer: Viewer, entry_id: Annotated[str, ENTRY_ID], body: Annotated[EditIn, Body()]) -> SavedOut:
        """Replace an entry with an edited one, made from `version` (409 if it changed since). An edit of
        a published entry by someone who may not publish it waits for review; readers see the published
        one meanwhile. Fields withheld from you are kept as they are."""
        entry = save_draft(
            kb,
            body.draft(),
            viewer,
            status=body.status,
            edit_id=entry_id,
            expected_version=inward(body.version, kb.store.version(entry_id)),
        )
        return saved(entry, viewer)

    @app.get("/entries/{entry_id}/notes", response_model=NotesOut, responses=problems(400, 404), tags=["entries"])
    def notes(viewer: Viewer, entry_id: Annotated[str, ENTRY_ID]) -> NotesOut:
        """An entry's evidence notes, oldest first, and its recurrence, as the caller may see them (the
        same 404 as for a missing entry when they may not see it)."""
        shown = evidence.notes(kb, entry_id, viewer=viewer)
        return NotesOut(
            recurrence=RecurrenceOut.of(evidence.recurrence(kb, entry_id, viewer=viewer)),
            notes=[NoteOut.of(n) for n in shown],
        )

    @app.post(
        "/entries/{entry_id}/notes",
        status_code=201,
        response_model=NoteOut,
        responses=problems(400, 403, 404, 413),
        tags=["writing"],
    )
    def add_note(viewer: Viewer, entry_id: Annotated[str, ENTRY_ID], body: Annotated[NoteIn, Body()]) -> NoteOut:
        """Add your evidence note to an entry you may see, whoever owns it (contributors). The entry's own
        text and status never change."""
        note = evidence.add_note(
            kb,
            entry_id,
            text=body.text,
            year=body.year,
            organisation=body.organisation,
            link=body.link,
            anonymous=body.anonymous,
            viewer=viewer,
        )
        return NoteOut.of(note)

    @app.patch(
        "/entries/{entry_id}/notes/{note_id}",
        response_model=NoteOut,
        responses=problems(400, 403, 404, 413),
        tags=["writing"],
    )
    def change_note(
        viewer: Viewer,
        entry_id: Annotated[str, ENTRY_ID],
        note_id: Annotated[str, NOTE_ID],
        body: Annotated[NoteChangeIn, Body()],
    ) -> NoteOut:
        """Change a note (its author, curators and admins): only the fields given change, and the version
        it replaces is kept in its history."""
        changed = evidence.edit_note(
            kb,
            entry_id,
            note_id,
            text=body.text,
            year=body.year,
            link=body.link,
            anonymous=body.anonymous,
            viewer=viewer,
        )
        return NoteOut.of(changed)

    @app.get(
        "/entries/{entry_id}/notes/{note_id}/history",
        response_model=list[PastNoteOut],
        responses=problems(400, 404),
        tags=["entries"],
    )
    def note_history(
        viewer: Viewer, entry_id: Annotated[str, ENTRY_ID], note_id: Annotated[str, NOTE_ID]
    ) -> list[PastNoteOut]:
        """A note's earlier versions, newest first, as the caller may read them (an anonymous note's
        organisation and author withheld from readers; a withdrawn note's only to its author and reviewers)."""
        return [
            PastNoteOut(replaced=v.replaced, note=NoteOut.of(v.note))
            for v in evidence.note_history(kb, entry_id, note_id, viewer=viewer)
        ]

    @app.delete(
        "/entries/{entry_id}/notes/{note_id}",
        status_code=204,
        response_class=Response,
        responses=problems(400, 403, 404),
        tags=["writing"],
    )
    def withdraw_note(
        viewer: Viewer,
        entry_id: Annotated[str, ENTRY_ID],
        note_id: Annotated[str, NOTE_ID],
    ) -> Response:
        """Withdraw a note (its author, curators and admins): it is no longer shown nor searched; its last
        version stays in its history."""
        evidence.withdraw_note(kb, entry_id, note_id, viewer=viewer)
        return Response(status_code=204)

    @app.get("/review", response_model=list[QueueItemOut], responses=problems(), tags=["writing"])
    def queue(viewer: Viewer) -> list[QueueItemOut]:
        """New entries and edits waiting for review that the caller may see, oldest first."""
        return [
            QueueItemOut(
                id=item.entry.id,
                title=item.entry.title,
                version=outward(item.version) or "",
                submitted=item.submitted,
                revision=item.revision,
                proposer=item.proposer,
                may_review=item.may_review,
            )
            for item in review.review_queue(kb, viewer)
        ]

    @app.post(
        "/entries/{entry_id}/review",
        response_model=ReviewOut,
        responses=problems(400, 403, 404, 409, 413),
        tags=["writing"],
    )
    def decide(viewer: Viewer, entry_id: Annotated[str, ENTRY_ID], body: Annotated[ReviewIn, Body()]) -> ReviewOut:
        """Approve an entry in review (it is published), or send it back to its author with a comment
        (reviewers only; never their own entry or edit)."""
        pending = kb.store.revision(entry_id)
        version = inward(body.version, kb.store.version(entry_id), pending[1] if pending else None)
        if body.decision == "approve":
            entry = review.approve(kb, entry_id, viewer, version, revision=body.revision)
        else:
            entry = review.send_back(kb, entry_id, viewer, body.comment, version, revision=body.revision)
        return ReviewOut(id=entry.id, status=entry.status, version=outward(kb.store.version(entry.id)))

    return app
