"""Whom to ask (?q=...): the people and teams behind the entries, by organisation, each with its themes,
projects and failed experiments and when each was; searchable by name, contact, theme or organisation.

Built by kb.directory from the published entries this user may see; an anonymous entry names no team here.
"""

from __future__ import annotations

import streamlit as st

from app_pages import resources, ui, whom
from app_pages.ui import plain
from kb.directory import by_organisation, directory

kb = resources.knowledge_base()
user = resources.current_user()

st.title("Whom to ask")
st.caption(
    "The teams and contacts behind the entries you can see: what they worked on, what failed, and when. "
    "Teams that shared a write-up anonymously are not listed."
)
# The box follows the address (?q=): a shared link, or Back, shows what it says; typing updates it.
linked = st.query_params.get("q", "")
if st.session_state.get("people_linked") != linked:
    st.session_state["people_linked"] = st.session_state["people_q"] = linked[:200]
query = st.text_input(
    "Find a team, contact, theme or organisation",
    key="people_q",
    placeholder="e.g. data sharing, Home Affairs, record linkage",
    max_chars=200,
)
if query != linked:
    if query.strip():
        st.query_params["q"] = query
    else:
        st.query_params.pop("q", None)
    st.session_state["people_linked"] = query if query.strip() else ""
everyone = directory(kb, user)
teams = directory(kb, user, query=query) if query.strip() else everyone
grouped = by_organisation(teams)
if not everyone:
    st.info("Nobody to list yet: entries that name their team or contact will appear here.", icon=":material/groups:")
    st.stop()
if not teams:
    st.info(
        f"No team, contact, theme or organisation matches “{plain(query[:100])}”. Try fewer words.",
        icon=":material/search_off:",
    )
    st.stop()
st.markdown(
    f"**{len(teams)} {'team' if len(teams) == 1 else 'teams'}** in "
    f"{len(grouped)} {'organisation' if len(grouped) == 1 else 'organisations'}"
)
columns = 1 if ui.on_a_phone() else 2
for name, members in grouped.items():
    st.header(plain(name), anchor=False)
    ui.organisation_link(name, note="entries, lighthouses and partners", icon=":material/domain:")
    slots = st.columns(columns)
    for n, team in enumerate(members):
        with slots[n % columns]:
            whom.team_card(team, kb.vocabulary.label, show_organisation=False)
