"""The HTTP API: `python -m kb serve`, a thin shell over the library, as the command line and the pages are.

    app = create_app(KnowledgeBase(), TokenStore(settings.tokens_path))
    uvicorn.run(app, host="127.0.0.1", port=8080)

Every endpoint reads its input, calls one library function with the caller as the viewer, and returns
what comes back; the access rules (see, edit, review, history) are kb.access's and are never repeated
here. The caller is the person a personal token names (`Authorization: Bearer <token>`, kb.tokens), or
the anonymous visitor without one. Errors are RFC 9457 problem details; none carries a stack trace or a
path. Request bodies are capped, and each token (each client address, for visitors) has a request rate.
This is the only module that imports FastAPI; docs/api.md describes the endpoints.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from http import HTTPStatus
from typing import Annotated, Any, Literal

from fastapi import Body, Depends, FastAPI, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from kb import browse, review
from kb.access import ANONYMOUS, READABLE_STATUSES, UNPUBLISHED_STATUSES, present, signed_in
from kb.drafting import Draft, DraftInvalid, save_draft
from kb.entries import EVIDENCE_GRADES, KINDS, OUTCOMES, STATUSES, Entry
from kb.errors import Conflict, Forbidden, KBError, NotFound, without_paths
from kb.filters import Filters
from kb.identity import User
from kb.knowledge import KnowledgeBase
from kb.plan import PER_PART, plan_search
from kb.search import Hit, SimilarHit
from kb.tokens import TokenStore

log = logging.getLogger("lighthouse.api")

MAX_BODY_BYTES = 1_000_000
RATE_PER_MINUTE = 120  # each token's (or visitor address's) steady rate
BURST = 60  # requests a quiet client may make at once
EXPORT_TYPES = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "jsonl": "application/jsonl; charset=utf-8",
}
PROBLEM_TYPE = "application/problem+json"
ENTRY_ID = Path(
    description="The entry's id (its file name without .md).", examples=["benefits-and-housing-data-sharing-pilot"]
)


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
    started: str = ""
    ended: str = ""
    phase: str = ""
    evidence: Literal["", *EVIDENCE_GRADES] = ""  # type: ignore[valid-type]
    visibility: Literal["public", "internal", "organisation"] = "public"
    lighthouse_stage: str = ""
    lighthouse_impact: str = ""
    lighthouse_benefits: list[str] = []
    lighthouse_reused_by: list[str] = []
    related: list[str] = []
    links: list[str] = []
    source: str = ""
    sections: dict[str, str] = {}

    def draft(self) -> Draft:
        values = self.model_dump(exclude={"status", "version"})
        values["lighthouse_benefits"] = "\n".join(self.lighthouse_benefits)
        values["links"] = "\n".join(self.links)
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


# =============================================================================== errors


def problem(status: int, detail: str, *, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status, "detail": detail}
    body |= {k: v for k, v in extra.items() if v is not None}
    return JSONResponse(body, status_code=status, media_type=PROBLEM_TYPE, headers=headers)


_BEARER_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="lighthouse"'}
_STATUS_OF = ((NotFound, 404), (Conflict, 409), (Forbidden, 403))


def _kb_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, KBError)
    detail = without_paths(str(exc)) or "the request was refused"
    status = next((code for kind, code in _STATUS_OF if isinstance(exc, kind)), 400)
    if status == 403 and not signed_in(_viewer_of(request)):  # a visitor is asked to sign in first
        return problem(
            401, f"{detail}; send a personal token as 'Authorization: Bearer <token>'", headers=_BEARER_CHALLENGE
        )
    errors = exc.messages if isinstance(exc, DraftInvalid) else None
    return problem(status, detail, errors=errors)


def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)
    detail = exc.detail if isinstance(exc.detail, str) else HTTPStatus(exc.status_code).phrase
    return problem(exc.status_code, detail, headers=getattr(exc, "headers", None))


def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    errors: dict[str, list[str]] = {}
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()) if part != "body") or "request"
        errors.setdefault(where, []).append(str(error.get("msg", "is not valid")))
    summary = "; ".join(f"{where}: {', '.join(messages)}" for where, messages in errors.items())
    return problem(422, summary or "the request is not valid", errors=errors)


def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error answering %s %s", request.method, request.url.path)
    return problem(500, "something went wrong on the server; it has been logged. Try again later.")


# =============================================================================== limits and identity


class _TooLarge(StarletteHTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"the request body is larger than {limit:,} bytes")


class TokenBucket:
    """Each key's allowance: `burst` requests at once, refilled at `per_minute` a minute."""

    def __init__(self, per_minute: float, burst: int):
        self.rate, self.burst = per_minute / 60.0, burst
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """0 when the request may go ahead (and is counted), else the seconds to wait."""
        now = time.monotonic() if now is None else now
        with self._lock:
            tokens, when = self._buckets.get(key, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - when) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                self._forget_idle(now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate if self.rate > 0 else 60.0

    def _forget_idle(self, now: float) -> None:
        if len(self._buckets) > 10_000:  # a full bucket is the same as none
            full = [k for k, (t, w) in self._buckets.items() if t + (now - w) * self.rate >= self.burst]
            for key in full:
                del self._buckets[key]


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


class Gate:
    """Before any endpoint: who the caller is (a bad token is refused), their request rate, and the
    size of what they send. Written as plain ASGI so a refused request never has its body read."""

    def __init__(self, app: Any, tokens: TokenStore, limiter: TokenBucket, max_body: int):
        self.app, self.tokens, self.limiter, self.max_body = app, tokens, limiter, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        user, refusal = self._caller(headers.get("authorization"))
        client = scope.get("client")
        key = f"token:{user.name}" if signed_in(user) else f"client:{client[0] if client else 'unknown'}"
        wait = self.limiter.take(key)
        if wait:
            retry = str(max(1, math.ceil(wait)))
            detail = f"too many requests; wait {retry} s and try again"
            await problem(429, detail, headers={"Retry-After": retry})(scope, receive, send)
            return
        if refusal:
            await problem(401, refusal, headers=_BEARER_CHALLENGE)(scope, receive, send)
            return
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body:
            await problem(413, f"the request body is larger than {self.max_body:,} bytes")(scope, receive, send)
            return
        scope.setdefault("state", {})["user"] = user
        await self.app(scope, self._capped(receive), send)

    def _caller(self, authorization: str | None) -> tuple[User, str]:
        """The person a bearer token names, or the anonymous visitor without one; a refusal otherwise."""
        if authorization is None:
            return ANONYMOUS, ""
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return ANONYMOUS, "send a personal token as 'Authorization: Bearer <token>', or no Authorization header"
        try:
            user = self.tokens.user_for(token.strip())
        except KBError:
            log.exception("the API tokens file cannot be read")
            user = None
        if user is None:
            return ANONYMOUS, "this token is not valid (wrong, or revoked); ask an admin for a new one"
        return user, ""

    def _capped(self, receive: Receive) -> Receive:
        """`receive` that refuses a body (one sent in chunks, without a length) past the cap."""
        seen = 0

        async def capped() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_body:
                    raise _TooLarge(self.max_body)
            return message

        return capped


_bearer = HTTPBearer(auto_error=False, description="A personal token from `python -m kb token create`.")


def _viewer_of(request: Request) -> User:
    return getattr(request.state, "user", ANONYMOUS)


def caller(request: Request, _: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]) -> User:
    """The person making the request (checked by Gate), or the anonymous visitor."""
    return _viewer_of(request)


Viewer = Annotated[User, Depends(caller)]


# =============================================================================== the app


def _responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    always = (401, 422, 429, 500)
    return {code: {"model": Problem, "description": HTTPStatus(code).phrase} for code in sorted({*codes, *always})}


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
) -> FastAPI:
    """The API over this knowledge base, its callers named by these tokens."""
    app = FastAPI(
        title="Lighthouse",
        version=__import__("kb").__version__,
        summary="Search lessons learned and lighthouse projects, and contribute to them, under the same access rules "
        "as the app.",
        description="Send `Authorization: Bearer <token>` (a personal token from `python -m kb token create`) to act "
        "as that person; without it you are an anonymous visitor and see what the public sees. Errors are RFC 9457 "
        "problem details.",
    )
    app.add_middleware(Gate, tokens=tokens, limiter=TokenBucket(rate_per_minute, burst), max_body=max_body)
    app.add_exception_handler(KBError, _kb_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _unexpected)

    # ------------------------------------------------------------------ reading

    @app.get("/search", response_model=SearchOut, responses=_responses(400), tags=["finding"])
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
        request = browse.SearchRequest(query=q, mode=mode, facets=facets, exact=exact)
        every = browse.ranked(kb, request, viewer)
        hits = every[(page - 1) * limit : page * limit]
        return SearchOut(
            query=q, mode=mode, page=page, limit=limit, total=len(every), hits=[HitOut.of(h) for h in hits]
        )

    @app.post("/plan", response_model=PlanOut, responses=_responses(400, 413), tags=["finding"])
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

    @app.get("/entries/{entry_id}", response_model=EntryOut, responses=_responses(400, 404), tags=["entries"])
    def show(viewer: Viewer, entry_id: Annotated[str, ENTRY_ID]) -> EntryOut:
        """One entry as the caller may see it, with its version (send it back with an edit). A hidden
        entry answers exactly as a missing one."""
        shown = kb.show(entry_id, viewer=viewer)
        return EntryOut.of(shown.entry, shown.withheld, kb.store.version(entry_id))

    @app.get(
        "/entries/{entry_id}/similar", response_model=list[SimilarOut], responses=_responses(400, 404), tags=["entries"]
    )
    def similar(
        viewer: Viewer, entry_id: Annotated[str, ENTRY_ID], limit: Annotated[int, Query(ge=1, le=100)] = 5
    ) -> list[SimilarOut]:
        """The entries most like this one, with the passages that link them."""
        return [SimilarOut.of(hit) for hit in kb.similar(entry_id, limit=limit, viewer=viewer)]

    @app.get(
        "/entries/{entry_id}/history",
        response_model=list[PastVersionOut],
        responses=_responses(400, 404),
        tags=["entries"],
    )
    def history(viewer: Viewer, entry_id: Annotated[str, ENTRY_ID]) -> list[PastVersionOut]:
        """Earlier versions of the entry, newest first: only those the caller could have seen."""
        return [
            PastVersionOut(replaced=v.replaced, entry=EntryOut.of(v.entry) if v.entry else None, text=v.text)
            for v in kb.history(entry_id, viewer=viewer)
        ]

    @app.get("/facets", response_model=dict[str, list[FacetValue]], responses=_responses(400), tags=["overview"])
    def facets(viewer: Viewer, chosen: Facets) -> dict[str, list[FacetValue]]:
        """How many entries the caller may see for each value of each facet, with the other filters
        applied (published entries unless a status is chosen)."""
        filters = browse.SearchRequest(facets=chosen).for_user(viewer).filters()
        counts = browse.facet_counts(kb, filters, viewer=viewer)
        return {name: [FacetValue(value=v, count=n) for v, n in values] for name, values in counts.items()}

    @app.get("/stats", response_model=StatsOut, responses=_responses(400), tags=["overview"])
    def stats(viewer: Viewer) -> StatsOut:
        """Counts of the indexed entries the caller may see, by facet."""
        return StatsOut(**kb.stats(viewer=viewer))

    @app.get("/vocabulary", response_model=list[ThemeOut], responses=_responses(), tags=["overview"])
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
                    media: {"schema": {"type": "string", "format": "binary"}} for media in EXPORT_TYPES.values()
                },
            },
            **_responses(400),
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
        return Response(data, media_type=EXPORT_TYPES[format], headers={"Content-Disposition": disposition})

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
            version=kb.store.version(entry.id),
            pending_review=pending,
            entry=EntryOut.of(shown.entry, shown.withheld),
        )

    @app.post(
        "/entries", status_code=201, response_model=SavedOut, responses=_responses(400, 403, 409, 413), tags=["writing"]
    )
    def submit(viewer: Viewer, body: Annotated[NewEntryIn, Body()]) -> SavedOut:
        """Save a new entry as a draft, or send it for review (contributors; a draft needs only a title)."""
        entry = save_draft(kb, body.draft(), viewer, status=body.status)
        return saved(entry, viewer)

    @app.put(
        "/entries/{entry_id}", response_model=SavedOut, responses=_responses(400, 403, 404, 409, 413), tags=["writing"]
    )
    def edit(viewer: Viewer, entry_id: Annotated[str, ENTRY_ID], body: Annotated[EditIn, Body()]) -> SavedOut:
        """Replace an entry with an edited one, made from `version` (409 if it changed since). An edit of
        a published entry by someone who may not publish it waits for review; readers see the published
        one meanwhile. Fields withheld from you are kept as they are."""
        entry = save_draft(
            kb, body.draft(), viewer, status=body.status, edit_id=entry_id, expected_version=body.version
        )
        return saved(entry, viewer)

    @app.get("/review", response_model=list[QueueItemOut], responses=_responses(), tags=["writing"])
    def queue(viewer: Viewer) -> list[QueueItemOut]:
        """New entries and edits waiting for review that the caller may see, oldest first."""
        return [
            QueueItemOut(
                id=item.entry.id,
                title=item.entry.title,
                version=item.version,
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
        responses=_responses(400, 403, 404, 409, 413),
        tags=["writing"],
    )
    def decide(viewer: Viewer, entry_id: Annotated[str, ENTRY_ID], body: Annotated[ReviewIn, Body()]) -> ReviewOut:
        """Approve an entry in review (it is published), or send it back to its author with a comment
        (reviewers only; never their own entry or edit)."""
        if body.decision == "approve":
            entry = review.approve(kb, entry_id, viewer, body.version, revision=body.revision)
        else:
            entry = review.send_back(kb, entry_id, viewer, body.comment, body.version, revision=body.revision)
        return ReviewOut(id=entry.id, status=entry.status, version=kb.store.version(entry.id))

    app.openapi = lambda: _openapi(app)  # type: ignore[method-assign]
    return app


def _openapi(app: FastAPI) -> dict[str, Any]:
    """The schema, with every error response as application/problem+json (what it is sent as)."""
    if app.openapi_schema:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title, version=app.version, summary=app.summary, description=app.description, routes=app.routes
    )
    for path in schema.get("paths", {}).values():
        for operation in path.values():
            for code, response in operation.get("responses", {}).items():
                content = response.get("content", {})
                if code.isdigit() and int(code) >= 400 and "application/json" in content:
                    content[PROBLEM_TYPE] = content.pop("application/json")
                    content[PROBLEM_TYPE]["schema"] = {"$ref": "#/components/schemas/Problem"}
    schema["components"]["schemas"].pop("HTTPValidationError", None)
    schema["components"]["schemas"].pop("ValidationError", None)
    app.openapi_schema = schema
    return schema
