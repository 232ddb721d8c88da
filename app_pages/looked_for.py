"""What people look for and don't find: the Insights page's curators' tab, and the submit page's list of
write-ups people are looking for. UI only: the counts are kb.searchlog's, the requests kb.wanted's, and
who may see them kb.access's."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from app_pages import lifecycle, ui
from kb import KBError, KnowledgeBase
from kb.access import sees_what_people_look_for
from kb.identity import User
from kb.searchlog import LookedFor, SearchSummary, looked_for
from kb.wanted import Wanted, add_wanted, close_wanted, load_wanted

TABS = ["Collection", "What people look for"]
TAB_KEY = "insights_tab"
PERIODS = {7: "7 days", 30: "30 days", 90: "90 days"}
PERIOD_KEY = "looked_for_days"
WANTED_SHOWN = 5  # on the submit page


def curators_tab(kb: KnowledgeBase, user: User) -> bool:
    """For curators, the Insights page's tabs: the collection (drawn by the page, under the tabs) and what
    people look for (drawn here). True when the curators' tab is open: the page draws nothing more.
    Nobody else sees the tabs or anything of the search log."""
    if not sees_what_people_look_for(user):
        return False
    _, searches = st.tabs(TABS, key=TAB_KEY, on_change="rerun")
    if not searches.open:
        return False
    with searches:
        what_people_look_for(kb, user)
    return True


def what_people_look_for(kb: KnowledgeBase, user: User) -> None:
    """The curators' tab: the top searches, the entries opened and reused most, the searches with no close
    match (each one a wanted request a click away) and the wanted write-ups."""
    ui.flash()
    days = st.segmented_control(
        "Period", list(PERIODS), key=PERIOD_KEY, default=30, required=True, format_func=PERIODS.get
    )
    try:
        seen = looked_for(kb, user, days=int(days or 30))
    except KBError as exc:
        st.warning(f"The search counts cannot be read now: {ui.message_text(str(exc))}", icon=":material/warning:")
        return
    st.caption(
        "Anonymous counts: the words searched for (lowercased, without e-mail addresses or long numbers), the "
        "mode and how many results came back; never who searched. "
        + (
            f"They are kept for {seen.kept_days} days (KB_SEARCH_LOG_DAYS)."
            if seen.kept_days
            else "Recording is off (KB_SEARCH_LOG_DAYS=0)."
        )
    )
    for problem in seen.wanted.problems:
        st.error(f"The wanted list cannot be read: {ui.plain(str(problem))}", icon=":material/error:")
    left, right = st.columns(2, gap="large")
    with left:
        st.header("Top searches", anchor=False)
        searches_table(seen.top, "No searches in this period.")
    with right:
        st.header("Entries opened and reused most", anchor=False)
        entries_used(seen)
    st.header("Searches with no close match", anchor=False)
    st.caption("Write-ups people need that don't exist yet. Ask for one: it is listed on the submit page.")
    unmatched(kb, user, seen)
    st.header("Wanted write-ups", anchor=False)
    wanted(kb, user, seen.wanted.open)
    lifecycle.due_for_review(kb, user)


def searches_table(searches: list[SearchSummary], empty: str) -> None:
    if not searches:
        st.caption(empty)
        return
    table = pd.DataFrame(
        {
            "Search": [s.query for s in searches],
            "Searches": [s.searches for s in searches],
            "Results": [s.results for s in searches],
            "Close match": ["yes" if s.close_match else "no" for s in searches],
        }
    )
    st.dataframe(table, hide_index=True, width="stretch")


def entries_used(seen: LookedFor) -> None:
    if not seen.entries:
        st.caption("No entry was opened in this period.")
        return
    for entry_id, title, use in seen.entries:
        ui.entry_link(entry_id, title, icon=":material/article:", note=f"opened {use.opened}, reused {use.reused}")
    st.caption("Reused: downloaded with a search's results, a filtered list or the showcase.")


def unmatched(kb: KnowledgeBase, user: User, seen: LookedFor) -> None:
    if not seen.unmatched:
        st.caption("Every search in this period found a close match.")
        return
    for n, search in enumerate(seen.unmatched):
        with st.container(border=True, horizontal=True, vertical_alignment="center"):
            times = f"{search.searches} search{'es' if search.searches != 1 else ''}"
            st.markdown(f"**{ui.plain(search.query)}** · {times}, {search.results} results")
            asked = seen.wanted.for_query(search.query)
            if asked:
                st.caption(f"Wanted: {ui.plain(asked.title)}")
            else:
                st.button(
                    "Ask for a write-up",
                    key=f"want_{n}",
                    icon=":material/add_task:",
                    on_click=ask_for,
                    args=(kb, user, search.query),
                    help="List it on the submit page as a write-up people are looking for",
                )


def title_for(query: str) -> str:
    return query[:1].upper() + query[1:]


def ask_for(kb: KnowledgeBase, user: User, query: str) -> None:
    """Button callback: a wanted request made from a search that found nothing close."""
    try:
        made = add_wanted(kb.settings.entries_dir, title_for(query), query, user)
    except KBError as exc:
        st.session_state["flash_warning"] = ui.user_message(str(exc))
        return
    st.session_state["flash"] = f"“{made.title}” is listed on the submit page as wanted."


def close(kb: KnowledgeBase, user: User, wanted_id: str) -> None:
    """Button callback: a wanted write-up is written; the submit page stops listing it."""
    try:
        done = close_wanted(kb.settings.entries_dir, wanted_id, user)
    except KBError as exc:
        st.session_state["flash_warning"] = ui.user_message(str(exc))
        return
    st.session_state["flash"] = f"“{done.title}” is closed: the submit page no longer lists it."


def wanted(kb: KnowledgeBase, user: User, items: list[Wanted]) -> None:
    if not items:
        st.caption("Nothing is wanted yet.")
        return
    for item in items:
        with st.container(border=True, horizontal=True, vertical_alignment="center"):
            since = f" · since {item.added}" if item.added else ""
            st.markdown(f"**{ui.plain(item.title)}**{since}")
            st.button(
                "Mark as written",
                key=f"close_{item.id}",
                icon=":material/task_alt:",
                on_click=close,
                args=(kb, user, item.id),
                help="Close the request: the submit page stops listing it",
            )


def wanted_list(kb: KnowledgeBase, start: Callable[[str], None], *, expanded: bool) -> None:
    """The submit page's short list of write-ups people are looking for: each one starts a draft with its
    title. A wanted file with problems shows nothing here (curators see its problems on their tab)."""
    items = load_wanted(kb.settings.entries_dir).open[:WANTED_SHOWN]
    if not items:
        return
    with st.expander("Write-ups people are looking for", expanded=expanded, icon=":material/lightbulb:"):
        st.caption("People searched for these and found nothing close. Know the story? Start with its title.")
        for n, item in enumerate(items):
            st.button(
                ui.plain(item.title),
                key=f"wanted_{n}",
                icon=":material/edit_note:",
                type="tertiary",
                on_click=start,
                args=(item.title,),
                help="Start a draft with this title",
            )
