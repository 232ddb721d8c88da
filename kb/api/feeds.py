"""Atom feeds: new public entries for everyone, and one feed for each saved search and each follow of a
person (and one of everything they follow), at addresses that carry their feed secret.

A feed applies its owner's access rules (kb.following rebuilds who they are); a wrong or revoked secret,
and a follow or search that is not theirs, all answer the same 404.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from fastapi import Path as PathParam
from fastapi.responses import Response
from feedgen.feed import FeedGenerator

from kb.access import ANONYMOUS
from kb.api.openapi import problems
from kb.config import MailSettings
from kb.database import Database
from kb.digest import entry_url, following_url
from kb.errors import KBError
from kb.following import Following
from kb.knowledge import KnowledgeBase
from kb.whats_new import KIND_WORDS, Update, entry_changes, followable, updates

log = logging.getLogger("lighthouse.api")

ATOM = "application/atom+xml"
FEED_DAYS = 90  # how far back a feed looks
MAX_ITEMS = 50
NOT_FOUND = "no feed at this address (a wrong or revoked secret, or something no longer followed)"
SECRET = PathParam(description="The feed secret shown on the app's Following page.", max_length=200)
Days = Annotated[int, Query(ge=1, le=365, description="How many days back the feed looks.")]


class HideFeedSecrets(logging.Filter):
    """Writes feed addresses in the access log without their secret (`/feeds/***/all`): the log is read
    by more people than should read everyone's feeds."""

    SECRET_IN_PATH = re.compile(r"(/feeds/)[^/?\s]+(/)")

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                self.SECRET_IN_PATH.sub(r"\1***\2", a) if isinstance(a, str) else a for a in record.args
            )
        return True


# The API's own log (an unexpected error names the path it answered) hides them too, however it is served.
log.addFilter(HideFeedSecrets())


def _atom_responses() -> dict[int | str, dict[str, Any]]:
    return {
        200: {"description": "An Atom feed.", "content": {ATOM: {"schema": {"type": "string"}}}},
        **problems(404),
    }


def feeds_router(kb: KnowledgeBase, database: Callable[[], Database], mail: MailSettings) -> APIRouter:
    router = APIRouter(prefix="/feeds", tags=["feeds"])

    def window(days: int) -> tuple[dt.datetime, dt.datetime]:
        now = dt.datetime.now(dt.UTC)
        return now - dt.timedelta(days=days), now + dt.timedelta(seconds=1)

    def owned(secret: str):
        from kb.signin import load_access

        following = Following(database())
        try:
            access = load_access()
        except KBError:
            log.exception("feeds: the access file cannot be read")
            raise HTTPException(503, "feeds are unavailable until the sign-in settings are fixed") from None
        found = following.feed_owner(secret, access)
        if found is None:
            raise HTTPException(404, NOT_FOUND)
        return found

    @router.get("/new", response_class=Response, responses=_atom_responses())
    def new_public_entries(days: Days = FEED_DAYS) -> Response:
        """New public entries (of the last 90 days unless `days` says), newest first: open to everyone."""
        since, until = window(days)
        items = []
        for change in entry_changes(kb, ANONYMOUS, since, until):
            if change.kind != "entry":
                continue
            try:
                entry = kb.get(change.entry_id, viewer=ANONYMOUS)
            except KBError:
                continue
            items.append(Update("entry", entry.id, entry.title, entry.summary, change.when))
        items.sort(key=lambda u: (u.when, u.entry_id), reverse=True)
        return _atom("New public entries in Lighthouse", "new", items, mail, self_url=f"{mail.api_url}/feeds/new")

    @router.get("/{secret}/all", response_class=Response, responses=_atom_responses())
    def everything_followed(secret: Annotated[str, SECRET], days: Days = FEED_DAYS) -> Response:
        """What is new in everything the secret's owner follows and every search they saved."""
        user, profile = owned(secret)
        items = updates(kb, user, profile, *window(days))
        return _atom("Lighthouse: what you follow", f"{profile.person_id}/all", items, mail)

    @router.get("/{secret}/follows/{follow_id}", response_class=Response, responses=_atom_responses())
    def one_follow(
        secret: Annotated[str, SECRET], follow_id: Annotated[int, PathParam(ge=1)], days: Days = FEED_DAYS
    ) -> Response:
        """What is new in one theme, organisation or lighthouse the secret's owner follows."""
        user, profile = owned(secret)
        chosen = next((f for f in profile.follows if f.id == follow_id), None)
        if chosen is None:
            raise HTTPException(404, NOT_FOUND)
        items = updates(kb, user, profile, *window(days), only=[chosen.key])
        title = f"Lighthouse: {chosen.kind} {followable(kb, chosen.kind, chosen.value, user)}"
        return _atom(title, f"{profile.person_id}/follow/{follow_id}", items, mail)

    @router.get("/{secret}/searches/{search_id}", response_class=Response, responses=_atom_responses())
    def one_search(
        secret: Annotated[str, SECRET], search_id: Annotated[int, PathParam(ge=1)], days: Days = FEED_DAYS
    ) -> Response:
        """What is new that one of the secret's owner's saved searches finds."""
        user, profile = owned(secret)
        chosen = next((s for s in profile.searches if s.id == search_id), None)
        if chosen is None:
            raise HTTPException(404, NOT_FOUND)
        items = updates(kb, user, profile, *window(days), only=[chosen.key])
        return _atom(f"Lighthouse: {chosen.name}", f"{profile.person_id}/search/{search_id}", items, mail)

    return router


def _atom(title: str, key: str, items: list[Update], mail: MailSettings, *, self_url: str = "") -> Response:
    """An Atom document of these items (feedgen escapes every value)."""
    feed = FeedGenerator()
    feed.id(f"{mail.app_url}/feeds/{key}")
    feed.title(title)
    feed.author({"name": "Lighthouse"})
    feed.link(href=following_url(mail) if key != "new" else mail.app_url, rel="alternate")
    if self_url:
        feed.link(href=self_url, rel="self")
    feed.updated(items[0].when if items else dt.datetime(2000, 1, 1, tzinfo=dt.UTC))
    for item in reversed(items[:MAX_ITEMS]):  # feedgen puts each new entry first
        entry = feed.add_entry()
        entry.id(f"{entry_url(mail, item.entry_id)}#{item.kind}-{item.when:%Y%m%dT%H%M%S%f}")
        heading = f"{KIND_WORDS[item.kind]}: {item.title}" + (f" ({item.detail})" if item.detail else "")
        entry.title(heading)
        entry.link(href=entry_url(mail, item.entry_id))
        entry.updated(item.when)
        text = item.summary + (f"\n\nBecause {'; '.join(item.reasons)}." if item.reasons else "")
        entry.summary(text or item.title)
    return Response(feed.atom_str(pretty=True), media_type=ATOM)
