"""Following: a person's saved searches and follows (themes, organisations, lighthouses), their digest
settings and feed secret, and what is new for them since a moment.

    following = Following(open_database(settings))
    following.visit(user)                                  # remember who they are as of now
    following.follow(user, "theme", "data-sharing")
    following.save_search(user, SearchRequest(query="DSA"))
    following.updates(kb, user, since, until)              # what is new for them, as they may see it

The one owner of this state and of "what is new": the digest (kb.digest), the Atom feeds (kb.api.feeds)
and the Following page all call it. What a person may see is kb.access's rule, applied here to every
version of an entry: an entry is new to someone when the first version of it they could read was
written in the period, so an entry published after review, or opened to their organisation, is new then.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from kb import evidence, lifecycle
from kb.access import READABLE_STATUSES, owns_lighthouse, version_for
from kb.browse import SearchRequest, every_match, ranked
from kb.database.tables import DIGEST_FREQUENCIES, FOLLOW_KINDS, Follow, Person, SavedSearch, utc_now
from kb.entries import Entry, parse_entry
from kb.errors import EntryError, KBError, NotFound
from kb.identity import User, local_user
from kb.tokens import digest as secret_digest

if TYPE_CHECKING:
    from kb.database import Database
    from kb.knowledge import KnowledgeBase
    from kb.signin import Access

log = logging.getLogger(__name__)

FEED_SECRET_PREFIX = "lhf_"  # tells a reader (or a secret scanner) what the string is
MAX_SECRET_CHARS = 200
MAX_NAME = 200
MAX_VALUE = 300
LONG_AGO = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def as_utc(when: dt.datetime) -> dt.datetime:
    """A time from the database in UTC: SQLite keeps no time zone, so its times come back without one."""
    return when.replace(tzinfo=dt.UTC) if when.tzinfo is None else when.astimezone(dt.UTC)


# --------------------------------------------------------------------------- what a person keeps


@dataclass(frozen=True)
class Followed:
    """One thing a person follows: a theme id, an organisation's name or a lighthouse's entry id."""

    id: int
    kind: str
    value: str

    @property
    def key(self) -> str:
        return f"follow:{self.id}"


@dataclass(frozen=True)
class Saved:
    """One saved search: its name and the search page's request (query, mode, filters)."""

    id: int
    name: str
    request: SearchRequest

    @property
    def key(self) -> str:
        return f"search:{self.id}"


@dataclass(frozen=True)
class Profile:
    """A person's following state: who they are, how often they want a digest, what they follow."""

    person_id: int
    account: str
    email: str
    name: str
    organisation: str
    frequency: str
    digest_since: dt.datetime
    seen_at: dt.datetime
    previous_visit: dt.datetime  # their visit before this one (this one's time for a first visit)
    has_feed_secret: bool
    follows: tuple[Followed, ...] = ()
    searches: tuple[Saved, ...] = ()

    def followed(self, kind: str, value: str) -> Followed | None:
        return next((f for f in self.follows if f.kind == kind and f.value == value), None)


def request_of(saved: SavedSearch) -> SearchRequest:
    """The search page's request a saved search holds (unknown values dropped, as from a link)."""
    return SearchRequest.from_params({"q": saved.query, "mode": saved.mode, **(saved.filters or {})})


def _filters_of(request: SearchRequest) -> dict:
    params = request.facets.to_params()
    if request.exact:
        params["exact"] = "1"
    return params


def describe_request(request: SearchRequest, label: Callable[[str], str] = str) -> str:
    """A saved search in a few words: its query (or "everything") and its filters."""
    words = [f"“{request.query}”" if request.query else "all entries"]
    for name, values in request.facets.to_params().items():
        shown = [label(v) for v in values] if name == "theme" and isinstance(values, list) else values
        words.append(f"{name}: {', '.join(shown) if isinstance(shown, list) else shown}")
    if request.mode != "hybrid":
        words.append(f"{request.mode} search")
    return " · ".join(words)


class Following:
    """Saved searches, follows, digest frequency and feed secrets, kept in the database (kb.database)."""

    def __init__(self, database: Database):
        self.database = database

    @contextmanager
    def _session(self) -> Iterator:
        """A session whose database errors (a server gone away, a write that lost a race) are one KBError."""
        try:
            with self.database.session() as session:
                yield session
        except SQLAlchemyError as exc:
            log.warning("the database of follows failed", exc_info=True)
            raise KBError(
                f"the database of follows cannot be used just now ({exc.__class__.__name__}); try again"
            ) from None

    # ----------------------------------------------------------------- people

    def visit(self, user: User) -> Profile:
        """Remember who this signed-in person is as of now (name, organisation, address, roles), making
        their record on their first visit; returns their state. A visitor keeps nothing: KBError."""
        account = _account(user)
        now = utc_now()
        with self._session() as session:
            person = _person(session, account)
            if person is None:
                person = Person(account=account, digest_since=now, created_at=now, seen_at=now)
                session.add(person)
            previous = as_utc(person.seen_at) if person.seen_at else now
            _as_now(person, user, now)
            session.flush()
            return _profile(person, previous)

    def profile(self, user: User) -> Profile | None:
        """This person's state, or None when they have never followed or saved anything."""
        if not user.account:
            return None
        with self._session() as session:
            person = _person(session, user.account)
            return None if person is None else _profile(person, as_utc(person.seen_at))

    def _changing(self, user: User, change: Callable[[object, Person], object]):
        account = _account(user)
        with self._session() as session:
            person = _person(session, account)
            now = utc_now()
            if person is None:
                person = Person(account=account, digest_since=now, created_at=now, seen_at=now)
                session.add(person)
            _as_now(person, user)
            session.flush()
            return change(session, person)

    # ----------------------------------------------------------------- follows

    def follow(self, user: User, kind: str, value: str) -> Followed:
        """Follow a theme (its id), an organisation (its name) or a lighthouse (its entry id); following
        it again changes nothing."""
        if kind not in FOLLOW_KINDS:
            raise KBError(f"one can follow a {', '.join(FOLLOW_KINDS[:-1])} or {FOLLOW_KINDS[-1]}, not '{kind}'")
        value = " ".join(str(value).split())
        if not value or len(value) > MAX_VALUE:
            raise KBError(f"name the {kind} to follow (at most {MAX_VALUE} characters)")

        def change(session, person: Person) -> Followed:
            found = next((f for f in person.follows if f.kind == kind and f.value == value), None)
            if found is None:
                found = Follow(kind=kind, value=value, created_at=utc_now())
                person.follows.append(found)
                session.flush()
            return Followed(found.id, found.kind, found.value)

        return self._changing(user, change)

    def unfollow(self, user: User, kind: str, value: str) -> bool:
        """Stop following it; False when they did not follow it."""
        return self._remove(user, lambda p: [f for f in p.follows if f.kind == kind and f.value == value])

    def remove_follow(self, user: User, follow_id: int) -> bool:
        return self._remove(user, lambda p: [f for f in p.follows if f.id == follow_id])

    def _remove(self, user: User, pick: Callable[[Person], list]) -> bool:
        if not user.account:
            return False
        with self._session() as session:
            person = _person(session, user.account)
            chosen = pick(person) if person is not None else []
            for item in chosen:
                session.delete(item)
            return bool(chosen)

    # ----------------------------------------------------------------- saved searches

    def save_search(self, user: User, request: SearchRequest, name: str = "") -> Saved:
        """Keep this search (its query, mode and filters; not its page); the same search twice is kept once."""
        request = SearchRequest(query=request.query, mode=request.mode, facets=request.facets, exact=request.exact)
        if not request.query and not request.has_filters:
            raise KBError("search for something or choose a filter first: there is nothing to save yet")
        name = " ".join((name or describe_request(request)).split())[:MAX_NAME]

        def change(session, person: Person) -> Saved:
            for saved in person.saved_searches:
                if request_of(saved) == request:
                    return Saved(saved.id, saved.name, request)
            saved = SavedSearch(
                name=name, query=request.query, mode=request.mode, filters=_filters_of(request), created_at=utc_now()
            )
            person.saved_searches.append(saved)
            session.flush()
            return Saved(saved.id, saved.name, request)

        return self._changing(user, change)

    def remove_search(self, user: User, search_id: int) -> bool:
        return self._remove(user, lambda p: [s for s in p.saved_searches if s.id == search_id])

    # ----------------------------------------------------------------- digests and feeds

    def set_frequency(self, user: User, frequency: str) -> None:
        """How often their digest comes: weekly, daily, or off."""
        if frequency not in DIGEST_FREQUENCIES:
            raise KBError(f"a digest comes {', '.join(DIGEST_FREQUENCIES[:-1])} or is {DIGEST_FREQUENCIES[-1]}")

        def change(_session, person: Person) -> None:
            if person.digest_frequency == "off" and frequency != "off":
                person.digest_since = utc_now()  # no digest of what came while they wanted none
            person.digest_frequency = frequency

        self._changing(user, change)

    def new_feed_secret(self, user: User) -> str:
        """A new secret for this person's feed addresses, shown once; the old one stops working. Only its
        hash is kept (as for API tokens, kb.tokens)."""
        secret = FEED_SECRET_PREFIX + secrets.token_urlsafe(24)

        def change(_session, person: Person) -> None:
            person.feed_secret_hash = secret_digest(secret)

        self._changing(user, change)
        return secret

    def revoke_feed_secret(self, user: User) -> None:
        """Stop every feed address of this person from working."""

        def change(_session, person: Person) -> None:
            person.feed_secret_hash = None

        self._changing(user, change)

    def feed_owner(self, secret: str, access: Access | None = None) -> tuple[User, Profile] | None:
        """The person a feed secret belongs to (as a `User` rebuilt for their access rules) and their
        state; None for a secret that is wrong or revoked."""
        if not secret or len(secret) > MAX_SECRET_CHARS or not secret.startswith(FEED_SECRET_PREFIX):
            return None
        with self._session() as session:
            person = session.scalars(select(Person).where(Person.feed_secret_hash == secret_digest(secret))).first()
            if person is None:
                return None
            return user_of(person, access), _profile(person, as_utc(person.seen_at))

    def people(self) -> list[int]:
        """Every person's id, in the order they came."""
        with self._session() as session:
            return list(session.scalars(select(Person.id).order_by(Person.id)))

    def person(self, person_id: int, access: Access | None = None) -> tuple[User, Profile] | None:
        with self._session() as session:
            person = session.get(Person, person_id)
            if person is None:
                return None
            return user_of(person, access), _profile(person, as_utc(person.seen_at))


def _account(user: User) -> str:
    if not user.account:
        raise KBError("sign in to follow themes, organisations and lighthouses, and to save searches")
    return user.account


def _as_now(person: Person, user: User, now: dt.datetime | None = None) -> None:
    """Who the person is as of now (what a digest sent in their absence goes by); with `now`, a visit
    to the Following page at that time."""
    person.email, person.name = user.email, user.name[:MAX_NAME]
    person.organisation = user.organisation[:MAX_NAME]
    if now is not None:
        person.seen_at = now


def _person(session, account: str) -> Person | None:
    return session.scalars(select(Person).where(Person.account == account)).first()


def _profile(person: Person, previous: dt.datetime) -> Profile:
    return Profile(
        person_id=person.id,
        account=person.account,
        email=person.email,
        name=person.name,
        organisation=person.organisation,
        frequency=person.digest_frequency,
        digest_since=as_utc(person.digest_since),
        seen_at=as_utc(person.seen_at),
        previous_visit=previous,
        has_feed_secret=bool(person.feed_secret_hash),
        follows=tuple(Followed(f.id, f.kind, f.value) for f in sorted(person.follows, key=lambda f: f.id)),
        searches=tuple(Saved(s.id, s.name, request_of(s)) for s in sorted(person.saved_searches, key=lambda s: s.id)),
    )


def user_of(person: Person, access: Access | None = None) -> User:
    """The `User` a person is when they are not there (a digest, a feed): their organisation as the access
    file now gives it for their e-mail domain, else as of their last visit, and their roles from the access
    file now (kb.signin); the local user of a copy without sign-in is who KB_USER_* say, if it is still
    them (by name, or by e-mail address with KB_USER_EMAIL), and otherwise a reader with no roles."""
    local = local_user()
    if local.account == person.account:
        return local
    if person.account.startswith("local:"):
        return User(name=person.name, organisation=person.organisation, roles=(), local=True, email=person.email)
    if access is None:
        from kb.signin import load_access

        access = load_access()
    # Someone who moved (their address now maps to another organisation) reads as that one, not as the
    # organisation they were in at their last visit.
    organisation = access.organisation_for_email(person.email) or person.organisation
    return User(
        name=person.name,
        organisation=organisation,
        roles=access.roles_for(organisation, person.email),
        local=False,
        email=person.email,
    )


# --------------------------------------------------------------------------- what is new


@dataclass(frozen=True)
class Update:
    """One new thing for one person: a new entry, an evidence note, a lighthouse's new stage.

    `reasons` say in words why it reached them; `sources` name the follows and saved searches it matched
    (`follow:<id>`, `search:<id>`), so a feed of one of them keeps only its own."""

    kind: str  # "entry", "note" or "stage"
    entry_id: str
    title: str
    summary: str
    when: dt.datetime
    detail: str = ""  # a stage change ("pilot → proven"); a note's words
    reasons: tuple[str, ...] = ()
    sources: frozenset[str] = field(default_factory=frozenset)


KIND_WORDS = {
    "entry": "New entry",
    "note": "Evidence note",
    "stage": "Lighthouse stage",
    "review": "Lighthouse due for review",
}


@dataclass(frozen=True)
class Change:
    """A change found in the entry files, before it is matched with what a person follows."""

    kind: str
    entry_id: str
    when: dt.datetime
    detail: str = ""
    reason: str = ""  # why it reaches this person whatever they follow (a lighthouse due for review)


def _versions(kb: KnowledgeBase, entry_id: str) -> list[tuple[dt.datetime, Entry]]:
    """Every version of an entry that parses, oldest first, each with the time it was written: a version
    was written when the one before it was replaced (kb.store's history). The first version's time is
    its file's, but no later than the end of the day it says it was written: a file copied in (a
    checkout, a restored backup) is not new because its copy is."""
    path = kb.store.path_for(entry_id)
    history = kb.store.history(entry_id)  # newest first
    current_written = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    texts = [(v.replaced, v.text) for v in reversed(history)]
    written: list[dt.datetime] = []
    for i in range(len(texts)):
        written.append(dt.datetime.fromisoformat(texts[i - 1][0]) if i else LONG_AGO)
    versions: list[tuple[dt.datetime, Entry]] = []
    for when, (_, text) in zip(written, texts, strict=True):
        try:
            old, _ = parse_entry(text, f"{entry_id} (earlier)")
        except EntryError:
            continue
        if when is LONG_AGO:
            when = min(_written_day_end(old), dt.datetime.fromisoformat(texts[0][0]))
        versions.append((when, old))
    current = kb.stored(entry_id)
    if history:
        current_written = max(current_written, dt.datetime.fromisoformat(history[0].replaced))
    else:
        current_written = min(current_written, _written_day_end(current))
    versions.append((current_written, current))
    return versions


def _written_day_end(entry: Entry) -> dt.datetime:
    """The latest moment of the day an entry says it was last written, in any time zone (the day's UTC
    midnight plus 38 hours: the day ends that late at UTC+14); far in the future when it does not say."""
    day = max(entry.updated, entry.created)[:10]
    try:
        return dt.datetime.fromisoformat(day).replace(tzinfo=dt.UTC) + dt.timedelta(days=1, hours=14)  # any zone
    except ValueError:
        return dt.datetime.max.replace(tzinfo=dt.UTC)


def _stage(entry: Entry | None) -> str | None:
    return entry.lighthouse.stage if entry is not None and entry.lighthouse is not None else None


def entry_changes(kb: KnowledgeBase, viewer: User | None, since: dt.datetime, until: dt.datetime) -> list[Change]:
    """New entries and lighthouse stage changes in [since, until) as this viewer may read them: a version
    counts only if they could read it (kb.access's rule for history) and it was published or archived."""
    changes: list[Change] = []
    try:
        paths = kb.store.files()
    except KBError:
        return []  # no entries folder: nothing is new
    for path in paths:
        try:
            if dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC) < since:
                continue  # not written since: nothing in it is new
            entry_id = path.stem
            versions = _versions(kb, entry_id)
        except (KBError, OSError, ValueError):
            continue  # missing, hidden, malformed or unreadable: nothing to tell
        current = versions[-1][1]
        readable = [
            (when, v)
            for when, v in versions
            if when < until and v.status in READABLE_STATUSES and version_for(viewer, v, current) is not None
        ]
        if not readable:
            continue
        first_when, _ = readable[0]
        if first_when >= since:
            changes.append(Change("entry", entry_id, first_when))
            continue
        before = [v for when, v in readable if when < since][-1]
        now = readable[-1][1]
        if _stage(now) is not None and _stage(now) != _stage(before):
            changed = next(when for when, v in readable if when >= since and _stage(v) == _stage(now))
            was = _stage(before) or "not a lighthouse"
            changes.append(Change("stage", entry_id, changed, f"{was} → {_stage(now)}"))
    return changes


def note_changes(kb: KnowledgeBase, viewer: User | None, since: dt.datetime, until: dt.datetime) -> list[Change]:
    """Evidence notes added in [since, until) that this viewer may read, one change each (kind "note",
    the note's entry, who and what as the detail). The notes come as the viewer may see them
    (`kb.evidence.notes_since` applies kb/access.py): an anonymous note names nobody."""
    changes = []
    for note in evidence.notes_since(kb, since, viewer):
        if since <= note.when < until:
            who = f"{note.organisation}, {note.year}" if note.organisation else str(note.year)
            words = " ".join(note.text.split())
            detail = f"we hit this too ({who}): {words[:200]}{'…' if len(words) > 200 else ''}"
            changes.append(Change("note", note.entry_id, note.when, detail=detail))
    return changes


def review_changes(kb: KnowledgeBase, viewer: User | None, since: dt.datetime, until: dt.datetime) -> list[Change]:
    """Lighthouses due for review at the end of the period (kb.lifecycle), as kb.access says who hears of
    them: for a curator, every one they may see; for anyone else, the ones they own. Each is told once per period, for as long as it is due,
    and reaches them whatever they follow."""
    if viewer is None:
        return []
    changes = []
    for due in lifecycle.due_for(kb, viewer, today=until.date()):
        owner = owns_lighthouse(viewer, due.entry)
        detail = f"review by {due.review_by} has passed" if due.review_by else "it has no review-by date"
        reason = "you own this lighthouse" if owner else "you are a curator"
        changes.append(Change("review", due.entry.id, _due_since(due, until), detail, reason))
    return changes


def _due_since(due: lifecycle.Due, until: dt.datetime) -> dt.datetime:
    """When a lighthouse fell due: the day after its review-by date, or (without one) the day after it
    was last written; the same at every run, so a feed item keeps its id."""
    try:
        day = (
            lifecycle.last_day(due.review_by)
            if due.review_by
            else lifecycle.last_day(max(due.entry.updated, due.entry.created))
        )
    except ValueError:
        return until - dt.timedelta(microseconds=1)
    when = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC)
    return min(when, until - dt.timedelta(microseconds=1))


# Every kind of new thing a person may hear about: each a function of (kb, viewer, since, until).
COLLECTORS: tuple[Callable[..., list[Change]], ...] = (entry_changes, note_changes, review_changes)


def updates(
    kb: KnowledgeBase,
    viewer: User,
    profile: Profile,
    since: dt.datetime,
    until: dt.datetime,
    *,
    only: Iterable[str] | None = None,
) -> list[Update]:
    """What is new for this person in [since, until) that matches what they follow or a search they saved,
    as they may see it, newest first. `only` keeps what matched these follows or searches (their keys)."""
    wanted = set(only) if only is not None else None
    follows = [f for f in profile.follows if wanted is None or f.key in wanted]
    searches = [s for s in profile.searches if wanted is None or s.key in wanted]
    if wanted is not None and not follows and not searches:
        return []
    # What reaches a person whatever they follow (a lighthouse of theirs due for review) is not in the
    # feed of one follow or search.
    changes = [
        c
        for collect in COLLECTORS
        if follows or searches or collect is review_changes
        for c in collect(kb, viewer, since, until)
        if wanted is None or not c.reason
    ]
    if not changes:
        return []
    found = {s.key: _search_ids(kb, s.request, viewer) for s in searches}
    out = []
    for change in changes:
        try:
            entry = kb.get(change.entry_id, viewer=viewer)  # as they may see it now: anonymous fields withheld
        except (KBError, OSError):
            continue
        reasons: tuple[str, ...]
        sources: frozenset[str]
        if change.reason:
            reasons, sources = (change.reason,), frozenset()
        else:
            reasons, sources = _matches(kb, entry, change, follows, searches, found)
        if reasons:
            out.append(
                Update(change.kind, entry.id, entry.title, entry.summary, change.when, change.detail, reasons, sources)
            )
    return sorted(out, key=lambda u: (u.when, u.entry_id), reverse=True)


def _search_ids(kb: KnowledgeBase, request: SearchRequest, viewer: User) -> set[str]:
    """The entries a saved search finds for this viewer: with words, its close matches (every hit where
    closeness is not judged); with filters only, every entry they allow."""
    try:
        if not request.query:
            return set(every_match(kb, request, viewer))
        return {h.id for h in ranked(kb, request, viewer) if h.close is not False}
    except KBError:
        log.warning("a saved search could not run", exc_info=True)
        return set()


def _matches(
    kb: KnowledgeBase,
    entry: Entry,
    change: Change,
    follows: list[Followed],
    searches: list[Saved],
    found: dict[str, set[str]],
) -> tuple[tuple[str, ...], frozenset[str]]:
    reasons: list[str] = []
    sources: set[str] = set()
    for f in follows:
        if (
            (f.kind == "theme" and f.value in entry.themes)
            or (f.kind == "organisation" and f.value in (entry.organisation, *entry.partners))
            or (f.kind == "lighthouse" and f.value == entry.id)
        ):
            shown = kb.vocabulary.label(f.value) if f.kind == "theme" else f.value
            reasons.append(
                f"you follow the {f.kind} {shown}" if f.kind != "lighthouse" else "you follow this lighthouse"
            )
            sources.add(f.key)
    for s in searches:
        if entry.id in found.get(s.key, ()):
            reasons.append(f"your saved search {s.name}")
            sources.add(s.key)
    return tuple(reasons), frozenset(sources)


def followable(kb: KnowledgeBase, kind: str, value: str, viewer: User) -> str:
    """What a follow of this kind and value shows as: a theme's label, an organisation's name, a
    lighthouse's title (a lighthouse they may no longer see shows as its id, never its title)."""
    if kind == "theme":
        return kb.vocabulary.label(value)
    if kind == "lighthouse":
        try:
            return kb.get(value, viewer=viewer).title
        except (NotFound, KBError, OSError):
            return value
    return value
