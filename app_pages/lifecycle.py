"""A lighthouse's lifecycle as the entry page and the showcase show it: its review-by flag, the timeline of
its stage, and where its value spread (the reuse chain). The rules are kb.lifecycle's; these only draw.
Dates are shown as written: kb.entry_fields lets through only digits and hyphens."""

from __future__ import annotations

from typing import TYPE_CHECKING

import streamlit as st

from app_pages import ui
from app_pages.ui import plain
from kb import access, lifecycle
from kb.access import listed_name

if TYPE_CHECKING:
    from kb import Entry, KnowledgeBase
    from kb.identity import User


def review_flag(entry: Entry, *, compact: bool = False) -> None:
    """Due for review (its review-by date has passed, or it has none), or when it is next reviewed."""
    lh = entry.lighthouse
    state = lifecycle.review_state(lh)
    told = " Its owner and curators have been told;" if lifecycle.owners_are_told(entry) else ""
    if state == lifecycle.DUE:
        text = f"**Due for review:** its review-by date ({lh.review_by}) has passed."
        more = told + (" whoever" if told else " Whoever") + " edits it can set the next date."
        st.warning(text + ("" if compact else more), icon=":material/event_busy:")
    elif state == lifecycle.MISSING:
        text = "**Due for review:** it has no review-by date."
        more = " Every lighthouse should have one; whoever edits it can set it."
        st.warning(text + ("" if compact else more), icon=":material/event_busy:")
    elif lh is not None:
        st.caption(f":material/event_available: Review by {lh.review_by}")


def timeline(entry: Entry) -> None:
    """The stage history as an ordered list, oldest first: stage, date and reason."""
    steps = lifecycle.timeline(entry.lighthouse)
    if not steps:
        return
    st.markdown("**Stage history**")
    st.markdown(
        "\n".join(
            f"{n}. **{ui.label(step.stage)}**, {step.date}" + (f": {plain(step.reason)}" if step.reason else "")
            for n, step in enumerate(steps, 1)
        )
    )


def reuse_chain(kb: KnowledgeBase, entry: Entry, user: User | None) -> None:
    """Who reused it, when and with what measured benefit, then who reused them in turn, in date order."""
    steps = lifecycle.reuse_chain(kb, entry.id, user)
    if not steps:
        st.markdown(":material/content_copy: Not reused yet")
        return
    direct = sum(1 for s in steps if s.depth == 1)
    further = len(steps) - direct
    words = f"reused by {direct} {'entry' if direct == 1 else 'entries'}"
    if further:
        words += f", and {further} more through {'it' if direct == 1 else 'them'}"
    st.markdown(f":material/content_copy: **Where the value spread:** {words}")
    titles = {entry.id: entry.title, **{s.entry_id: s.title for s in steps}}
    for step in steps:
        note = " · ".join(v for v in (step.date, step.organisation) if v)
        ui.entry_link(step.entry_id, step.title, icon=":material/subdirectory_arrow_right:", note=note)
        said = [plain(step.benefit)] if step.benefit else []
        if step.depth > 1:
            said.append(f"reused {plain(titles.get(step.reused, step.reused))}")
        if said:
            st.caption(" · ".join(said))


def due_for_review(kb: KnowledgeBase, user: User | None) -> None:
    """For those who hear of every lighthouse due for review (curators, kb.access): every published one they
    may see, longest overdue first. Nothing for anyone else."""
    if not access.hears_of_every_due_lighthouse(user):
        return
    st.header("Lighthouses due for review", anchor=False)
    due = lifecycle.due_for(kb, user)
    if not due:
        st.caption("Every lighthouse has a review-by date that has not passed yet.")
        return
    st.caption(
        "Past their review-by date, or without one. Their owners hear of them in their digest, and so do curators."
    )
    for item in due:
        when = f"review by {item.review_by}" if item.review_by else "no review-by date"
        owner = listed_name(item.entry, item.entry.author)
        note = " · ".join(v for v in (when, ui.label(item.entry.lighthouse.stage), owner and f"owner {owner}") if v)
        ui.entry_link(item.entry.id, item.entry.title, icon=":material/event_busy:", note=note)
