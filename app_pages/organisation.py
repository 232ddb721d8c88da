"""An organisation (?org=...): its entries, its lighthouses, its teams, the organisations it worked with
(partners on an entry, either way, and reuse) and what it reused. Reached by links from entries and the
directory; hidden from the navigation like the entry page.

Built by kb.directory over what this user may see: an organisation named in none of it is not found, in
the same words as one that does not exist.
"""

from __future__ import annotations

import streamlit as st

from app_pages import resources, ui, whom
from app_pages.ui import plain
from kb import NotFound
from kb.directory import Partner, organisation

kb = resources.knowledge_base()
user = resources.current_user()


def count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def how(partner: Partner) -> str:
    """How the two worked together, in words."""
    ways = [
        f"partners on {count(len(partner.partnered), 'entry', 'entries')}" if partner.partnered else "",
        f"{count(len(partner.reused), 'of its lighthouses', 'of its lighthouses')} reused here"
        if partner.reused
        else "",
        f"reused {count(len(partner.reused_by), 'lighthouse', 'lighthouses')} from here" if partner.reused_by else "",
    ]
    return "; ".join(w for w in ways if w)


def not_found(name: str) -> None:
    ui.tab_title("Organisation not found")
    st.title("Organisation not found")
    st.warning(
        f"No entry you can see names an organisation called “{plain(name[:120])}”.", icon=":material/search_off:"
    )
    st.page_link(ui.PEOPLE_PAGE, label="See everyone in the directory", icon=":material/groups:")
    st.stop()


name = st.query_params.get("org", "")
if not name.strip():
    st.title("Organisation")
    st.info("Choose an organisation from an entry or from the directory of whom to ask.", icon=":material/domain:")
    st.page_link(ui.PEOPLE_PAGE, label="Go to whom to ask", icon=":material/groups:")
    st.stop()
try:
    page = organisation(kb, name, user)
except NotFound:
    not_found(name)

label = kb.vocabulary.label
ui.tab_title(page.name)
st.title(plain(page.name))
st.markdown(
    " · ".join(
        [
            count(len(page.entries), "entry", "entries"),
            count(len(page.lighthouses), "lighthouse project", "lighthouse projects"),
            f"worked with {count(len(page.worked_with), 'organisation', 'organisations')}",
        ]
    )
)

main, side = st.columns([3, 2], gap="large")
with main:
    st.header("Entries", anchor=False)
    if page.entries:
        whom.work_links(page.entries)
    else:
        st.caption("None of its own yet: it took part as a partner.")
    if page.lighthouses:
        st.header("Lighthouse projects", anchor=False)
        whom.work_links(page.lighthouses)
    if page.reused_by:
        st.subheader("Where its lighthouses were reused", anchor=False)
        for reuse in page.reused_by:
            ui.entry_link(
                reuse.by.entry_id,
                reuse.by.title,
                icon=":material/content_copy:",
                note=f"{reuse.by.organisation} reused “{reuse.lighthouse.title}”",
            )
    st.header("What it reused", anchor=False)
    if page.reused:
        for reuse in page.reused:
            ui.entry_link(
                reuse.lighthouse.entry_id,
                reuse.lighthouse.title,
                icon=":material/lightbulb:",
                note=f"{reuse.lighthouse.organisation}'s lighthouse, reused in “{reuse.by.title}”",
            )
    else:
        st.caption("No lighthouse project records a reuse by its entries yet.")
    if page.partnered:
        st.header("Took part as a partner", anchor=False)
        whom.work_links(page.partnered, organisation=True)
with side:
    st.header("Worked with", anchor=False)
    if page.worked_with:
        for partner in page.worked_with:
            ui.organisation_link(partner.name, note=how(partner))
    else:
        st.caption("No partners or reuse recorded in the entries you can see.")
    st.header("Teams", anchor=False)
    if page.teams:
        for team in page.teams:
            whom.team_card(team, label, show_organisation=False)
    else:
        st.caption("No entry you can see names its team.")
    st.page_link(ui.PEOPLE_PAGE, label="Everyone in the directory", icon=":material/groups:")
