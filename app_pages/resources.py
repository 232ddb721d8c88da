"""Everything built once per server process (st.cache_resource): the knowledge base and its model; and who
is using this browser session."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Literal

import streamlit as st

from kb import KBError, KnowledgeBase, Settings, SyncReport
from kb.access import ANONYMOUS
from kb.identity import User, local_user
from kb.signin import address_not_used, load_access, user_from_claims


@dataclass(frozen=True)
class Loaded:
    kb: KnowledgeBase
    report: SyncReport  # what the start-up sync found, problems included


@st.cache_resource(show_spinner="Loading the knowledge base and bringing its index up to date…")
def loaded() -> Loaded:
    """Open the knowledge base from KB_* settings, sync it once, and load the model before the first search."""
    kb = KnowledgeBase(Settings())
    report = kb.sync()
    kb.embedder.embed(["warm up"])  # the first search should not wait for the model
    return Loaded(kb, report)


def knowledge_base() -> KnowledgeBase:
    return loaded().kb


@dataclass(frozen=True)
class Visitor:
    """Who is using this browser session, and how the sidebar should say so."""

    user: User
    mode: Literal["local", "signed-out", "signed-in"]
    problem: str = ""  # why a signed-in person only sees what a visitor sees
    address_not_used: str = ""  # why an address the provider sent is not used (kb.signin.address_not_used)


def visitor() -> Visitor:
    """Without sign-in configured, the local user from KB_USER_*. With it (an [auth] section in
    .streamlit/secrets.toml), an anonymous visitor until they sign in, then the person their claims describe."""
    if "is_logged_in" not in st.user:  # Streamlit's own sign: it adds the key only when [auth] is configured
        return Visitor(local_user(), "local")
    if not st.user.is_logged_in:
        return Visitor(ANONYMOUS, "signed-out")
    try:
        claims, access = st.user.to_dict(), load_access()
        return Visitor(user_from_claims(claims, access), "signed-in", address_not_used=address_not_used(claims, access))
    except KBError as exc:  # a broken access file must not widen anyone's view: show public entries only
        return Visitor(ANONYMOUS, "signed-in", problem=str(exc))


def current_user() -> User:
    """The person using the app (see `visitor`)."""
    return visitor().user


def visit() -> str:
    """An opaque key of this browser session, so that the search log counts a search (or an entry opened)
    that the session repeats only once: held in memory for a while, never written, and no one's identity."""
    return st.session_state.setdefault("_visit", uuid.uuid4().hex)


def following():
    """Follows, saved searches, digests and feed secrets (kb.following), in the settings' database: opened
    and brought up to date once per process (kb.database). Raises KBError when it cannot be opened."""
    from kb.database import open_database
    from kb.following import Following

    return Following(open_database(knowledge_base().settings))
