"""Whom to ask, as the pages show it: a team's card (people and organisation pages) and the entry page's
"Others who have worked on this" block. The rules (what a viewer may see, that an anonymous entry names no
team) are kb.directory's and kb.access's; this only draws what they return."""

from __future__ import annotations

from collections.abc import Callable, Iterable

import streamlit as st

from app_pages import ui
from app_pages.ui import plain
from kb import KBError, KnowledgeBase
from kb.directory import Team, Work, others_on_this
from kb.entries import Entry
from kb.identity import User

FAILED_ICON = ":material/report:"
PROJECT_ICON = ":material/task_alt:"
SHOWN = 3  # teams on an entry's page: the block stays short beside the facts


def work_note(work: Work, *, organisation: bool = False) -> str:
    """What follows a work's title in a list: its outcome, and when it was (and whose it was)."""
    words = [
        f"Outcome: {ui.label(work.outcome)}" if work.outcome else "",
        work.when,
        work.organisation if organisation else "",
        "shared anonymously" if work.anonymous else "",
    ]
    return " · ".join(w for w in words if w)


def work_links(works: Iterable[Work], *, organisation: bool = False) -> None:
    for work in works:
        icon = FAILED_ICON if work.failed else PROJECT_ICON
        ui.entry_link(work.entry_id, work.title, icon=icon, note=work_note(work, organisation=organisation))


def themes_line(themes: Iterable[str], label: Callable[[str], str]) -> str:
    return ", ".join(plain(label(t)) for t in themes)


def team_card(team: Team, label: Callable[[str], str], *, show_organisation: bool = True) -> None:
    """A team (or contact): who, where, on what themes, and its projects and failed experiments with dates."""
    with st.container(border=True):
        st.markdown(f"**:material/groups: {plain(team.name)}**")
        if team.contacts:
            st.markdown(":material/contact_mail: " + ", ".join(plain(c) for c in team.contacts))
        if show_organisation:
            ui.organisation_link(team.organisation)
        if team.themes:
            st.caption("Themes: " + themes_line(team.themes, label))
        if team.projects:
            st.markdown(f"**Projects ({len(team.projects)})**")
            work_links(team.projects)
        if team.failed:
            st.markdown(f"**Failed experiments ({len(team.failed)})**")
            work_links(team.failed)


def others_block(kb: KnowledgeBase, entry: Entry, user: User) -> None:
    """On an entry: its organisation's page, and teams from other organisations that worked on the same
    themes, each with the entries that connect them."""
    with st.container(border=True):
        st.markdown("**:material/diversity_3: Others who have worked on this**")
        try:
            others = others_on_this(kb, entry.id, user)
        except KBError:
            others = []
        if not others:
            st.caption(
                "No team from another organisation has shared work on these themes yet."
                if entry.themes
                else "This entry has no themes, so there is nothing to match others on."
            )
        for other in others[:SHOWN]:
            st.markdown(f"**{plain(other.team.name)}**")
            ui.organisation_link(other.team.organisation)
            st.caption("Shared themes: " + themes_line(other.shared_themes, kb.vocabulary.label))
            work_links(other.works[:2])
        if len(others) > SHOWN:
            theme = kb.vocabulary.label(others[0].shared_themes[0])
            st.page_link(
                ui.PEOPLE_PAGE,
                label=f"More teams on {plain(theme)}",
                query_params={"q": theme},
                icon=":material/groups:",
            )
        if entry.organisation:
            ui.organisation_link(entry.organisation, note="its entries and partners", icon=":material/arrow_forward:")
        st.page_link(ui.PEOPLE_PAGE, label="Everyone in the directory", icon=":material/groups:")
