"""The follow and save controls other pages show: "Save this search", "Follow this theme", "Follow this
lighthouse". The state and its rules are kb.following's; these only draw buttons and call it.

A visitor who has not signed in gets a short hint instead; a database that cannot be opened leaves the
page as it was, with one line saying following is unavailable.
"""

from __future__ import annotations

import logging

import streamlit as st

from app_pages import resources, ui
from kb.browse import SearchRequest
from kb.errors import KBError
from kb.following import Profile, describe_request
from kb.identity import User

log = logging.getLogger("lighthouse.app")
SIGN_IN_HINT = "Sign in to follow themes, organisations and lighthouses, and to save searches."


def profile(user: User) -> Profile | None:
    """This person's following state (None: a visitor, nothing followed yet, or no database)."""
    if not user.account:
        return None
    try:
        return resources.following().profile(user)
    except KBError as exc:
        log.error("following is unavailable: %s", exc)
        return None


def _changed(message: str) -> None:
    st.session_state["flash"] = message
    st.rerun()


def _act(action, message: str) -> None:
    try:
        action()
    except KBError as exc:
        st.error(ui.message_text(str(exc)), icon=":material/error:")
        return
    _changed(message)


def follow_button(
    user: User, kind: str, value: str, shown: str, *, key: str, mine: Profile | None | bool = False
) -> None:
    """A toggle: follow this theme, organisation or lighthouse, or stop following it (`mine`: the person's
    state, when the page has read it already)."""
    if not user.account:
        return
    if mine is False:
        mine = profile(user)
    followed = mine is not None and mine.followed(kind, value) is not None
    what = "this lighthouse" if kind == "lighthouse" else f"{kind} {shown}"  # for messages: flash escapes them
    label = "this lighthouse" if kind == "lighthouse" else f"{kind} {ui.plain(shown)}"  # a label is Markdown
    if followed:
        if st.button(f"Following {label}", key=key, icon=":material/notifications_active:", help="Click to unfollow"):
            _act(lambda: resources.following().unfollow(user, kind, value), f"You no longer follow {what}.")
    elif st.button(f"Follow {label}", key=key, icon=":material/notifications:"):
        _act(lambda: resources.following().follow(user, kind, value), f"You follow {what}: see the Following page.")


def search_controls(user: User, request: SearchRequest, label) -> None:
    """Beside a search's results: save it, and follow the one theme or organisation it is filtered by."""
    if not (request.query or request.has_filters):
        return
    ui.flash()
    if not user.account:
        st.caption(SIGN_IN_HINT)
        return
    mine = profile(user)
    plain_request = SearchRequest(query=request.query, mode=request.mode, facets=request.facets, exact=request.exact)
    saved = mine is not None and any(s.request == plain_request for s in mine.searches)
    with st.container(horizontal=True, gap="small"):  # side by side, wrapping where the column is narrow
        if saved:
            st.page_link(ui.FOLLOWING_PAGE, label="Saved: see Following", icon=":material/bookmark_added:")
        elif st.button("Save this search", key="save-search", icon=":material/bookmark_add:"):
            _act(
                lambda: resources.following().save_search(user, plain_request, describe_request(plain_request, label)),
                "Search saved: what is new in it comes in your digest and on the Following page.",
            )
        chosen = [("theme", t, label(t)) for t in request.facets.theme]
        chosen += [("organisation", o, o) for o in request.facets.organisation]
        for kind, value, shown in chosen[:2]:
            follow_button(user, kind, value, shown, key=f"follow-{kind}-{value}", mine=mine)


def entry_controls(user: User, entry, label) -> None:
    """Beside an entry's facts: follow it (a lighthouse), its organisation and its themes."""
    with st.container(border=True):
        st.markdown("**:material/notifications: Follow**")
        if not user.account:
            st.caption(SIGN_IN_HINT)
            return
        mine = profile(user)
        if entry.lighthouse is not None:
            follow_button(user, "lighthouse", entry.id, entry.title, key="follow-lighthouse", mine=mine)
        if entry.organisation:
            follow_button(user, "organisation", entry.organisation, entry.organisation, key="follow-org", mine=mine)
        for theme in entry.themes:
            follow_button(user, "theme", theme, label(theme), key=f"follow-theme-{theme}", mine=mine)
        st.caption("What is new in what you follow comes in your digest and on the Following page.")
