"""Following: a person's saved searches and follows (themes, organisations, lighthouses), their digest
settings and feed secret.

    following = Following(open_database(settings))
    following.visit(user)                                  # remember who they are as of now
    following.follow(user, "theme", "data-sharing")
    following.save_search(user, SearchRequest(query="DSA"))

The one owner of this state. What is new for a person, matched to what they follow, is kb.whats_new's.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from kb.browse import SearchRequest
from kb.database.tables import DIGEST_FREQUENCIES, FOLLOW_KINDS, Follow, Person, SavedSearch, utc_now
from kb.errors import KBError
from kb.identity import User, local_user
from kb.tokens import digest as secret_digest

if TYPE_CHECKING:
    from kb.database import Database
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
