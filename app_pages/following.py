"""Following: what is new in what you follow, the themes, organisations and lighthouses you follow, your
saved searches, how often your digest comes, and your feed addresses. The state is kb.following's."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import streamlit as st

from app_pages import resources, ui
from app_pages.ui import plain
from kb.config import MailSettings
from kb.database.tables import DIGEST_FREQUENCIES
from kb.errors import KBError
from kb.following import Profile
from kb.whats_new import KIND_WORDS, followable, updates

MOST_NEW = 30
FREQUENCIES = {"weekly": "Weekly", "daily": "Daily", "off": "Off"}

kb = resources.knowledge_base()
visitor = resources.visitor()
user = visitor.user
mail = MailSettings()


def when(moment: dt.datetime) -> str:
    return f"{moment:%d %B %Y, %H:%M} UTC".lstrip("0")


def done(message: str) -> None:
    st.session_state["flash"] = message
    st.rerun()


def whats_new(profile: Profile) -> None:
    # Since the last visit, or the last digest if that came first (with digests off: the last visit).
    since = profile.previous_visit if profile.frequency == "off" else min(profile.previous_visit, profile.digest_since)
    st.header("What is new for you", anchor=False)
    items = updates(kb, user, profile, since, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    if not items:
        st.caption(f"Nothing new in what you follow since {when(since)}.")
        return
    st.caption(f"Since {when(since)}: your last visit, or your last digest if it came first.")
    for item in items[:MOST_NEW]:
        with st.container(border=True):
            ui.entry_link(item.entry_id, item.title, icon=":material/fiber_new:", note=KIND_WORDS[item.kind])
            if item.detail:
                st.markdown(plain(item.detail))
            st.caption("Because " + "; ".join(plain(r) for r in item.reasons) + ".")


def follows(profile: Profile) -> None:
    st.header("What you follow", anchor=False)
    if not profile.follows:
        st.caption(
            "Nothing yet. Choose a theme or an organisation among the search page's filters, or open a "
            "lighthouse in the showcase, and press Follow."
        )
    for f in profile.follows:
        name, button = st.columns([4, 1], vertical_alignment="center")
        shown = followable(kb, f.kind, f.value, user)
        with name:
            if f.kind == "lighthouse":
                ui.entry_link(f.value, shown, icon=":material/lightbulb:", note="lighthouse")
            else:
                params = {f.kind: f.value}
                st.page_link(
                    ui.SEARCH_PAGE,
                    label=f"{f.kind.capitalize()}: {plain(shown)}",
                    query_params=params,
                    icon=":material/label:" if f.kind == "theme" else ":material/domain:",
                )
        with button:
            if st.button("Unfollow", key=f"unfollow-{f.id}", width="stretch"):
                resources.following().remove_follow(user, f.id)
                done(f"You no longer follow {shown}.")


def searches(profile: Profile) -> None:
    st.header("Saved searches", anchor=False)
    if not profile.searches:
        st.caption("None yet. Search for something, then press “Save this search” above the results.")
    for s in profile.searches:
        name, button = st.columns([4, 1], vertical_alignment="center")
        with name:
            st.page_link(
                ui.SEARCH_PAGE, label=plain(s.name), query_params=s.request.to_params(), icon=":material/bookmark:"
            )
        with button:
            if st.button("Remove", key=f"remove-search-{s.id}", width="stretch"):
                resources.following().remove_search(user, s.id)
                done(f"Removed the saved search {s.name}.")


def digest(profile: Profile) -> None:
    st.header("Your digest", anchor=False)

    def changed() -> None:
        chosen = st.session_state.get("digest-frequency") or profile.frequency
        resources.following().set_frequency(user, chosen)
        st.session_state["flash"] = (
            "Digest turned off." if chosen == "off" else f"Your digest now comes {FREQUENCIES[chosen].lower()}."
        )

    st.radio(
        "How often an e-mail of what is new comes",
        DIGEST_FREQUENCIES,
        index=DIGEST_FREQUENCIES.index(profile.frequency),
        format_func=FREQUENCIES.get,
        horizontal=True,
        key="digest-frequency",
        on_change=changed,
    )
    if not profile.email:
        st.caption(
            "There is no e-mail address to send it to: whoever runs this copy sets KB_USER_EMAIL for the local user."
            if visitor.mode == "local"
            else "There is no e-mail address to send it to: your sign-in provider has not confirmed yours."
        )
    elif profile.frequency != "off":
        st.caption(f"It goes to {plain(profile.email)} and covers what is new since {when(profile.digest_since)}.")


def feeds(profile: Profile) -> None:
    st.header("Feeds", anchor=False)
    st.markdown(
        "Read what is new in a feed reader. Your feed addresses hold a secret: anyone who has one sees what "
        "you would see, so keep them to yourself."
    )
    secret = st.session_state.get("feed-secret")
    if secret and profile.has_feed_secret:
        st.warning("Copy your feed addresses now: they are shown once.", icon=":material/key:")
        st.markdown("**Everything you follow**")
        st.code(f"{mail.api_url}/feeds/{secret}/all", language=None, wrap_lines=True)
        for f in profile.follows:
            st.markdown(f"**{f.kind.capitalize()}: {plain(followable(kb, f.kind, f.value, user))}**")
            st.code(f"{mail.api_url}/feeds/{secret}/follows/{f.id}", language=None, wrap_lines=True)
        for s in profile.searches:
            st.markdown(f"**Saved search: {plain(s.name)}**")
            st.code(f"{mail.api_url}/feeds/{secret}/searches/{s.id}", language=None, wrap_lines=True)
    elif profile.has_feed_secret:
        st.caption("Your feed addresses work. To see them again, make new ones: the old ones then stop working.")
    label = "Make new feed addresses" if profile.has_feed_secret else "Make my feed addresses"
    if st.button(label, icon=":material/rss_feed:", width="stretch"):
        st.session_state["feed-secret"] = resources.following().new_feed_secret(user)
        done("New feed addresses made; any old ones no longer work.")
    if profile.has_feed_secret and st.button("Stop my feeds", icon=":material/block:", width="stretch"):
        resources.following().revoke_feed_secret(user)
        st.session_state.pop("feed-secret", None)
        done("Your feed addresses no longer work.")
    st.markdown("**New public entries**, for everyone:")
    st.code(f"{mail.api_url}/feeds/new", language=None, wrap_lines=True)


ui.tab_title("Following")
st.title("Following")
st.caption("Themes, organisations and lighthouses you follow, your saved searches, and what is new in them.")
ui.flash()
if not user.account:
    st.info(
        "Follow a theme, an organisation or a lighthouse project, or save a search, and Lighthouse tells you "
        "what is new in it: here, in a daily or weekly e-mail, and in a feed. Sign in to start.",
        icon=":material/notifications:",
    )
    if visitor.mode == "signed-out" and st.button("Sign in", icon=":material/login:", type="primary"):
        st.login()
    st.stop()

try:
    following = resources.following()
    if "following-visit" not in st.session_state:  # the last visit is read once per browser session
        st.session_state["following-visit"] = following.visit(user).previous_visit
    mine = following.profile(user)
except KBError as exc:
    st.error(f"Following is unavailable just now: {ui.message_text(str(exc))}", icon=":material/error:")
    st.stop()
mine = replace(mine, previous_visit=st.session_state["following-visit"])

if ui.on_a_phone():
    whats_new(mine)
    follows(mine)
    searches(mine)
    digest(mine)
    feeds(mine)
else:
    left, right = st.columns([3, 2], gap="large")
    with left:
        whats_new(mine)
        follows(mine)
        searches(mine)
    with right:
        digest(mine)
        feeds(mine)
