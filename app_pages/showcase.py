"""Lighthouse showcase: projects that proved what cross-team data work can deliver, as a gallery or a board."""

from __future__ import annotations

import streamlit as st

from app_pages import follow, resources, ui
from app_pages.ui import plain, safe_markdown
from kb import Filters, browse, showcase
from kb.entries import LIGHTHOUSE_STAGES
from kb.showcase import LighthouseCard

kb = resources.knowledge_base()
user = resources.current_user()
VIEWS = {"gallery": "Gallery", "board": "Board"}  # plain labels: the bound URL parameter shows them
mine = follow.profile(user)  # what this person follows: each card's follow button reads it


def card(item: LighthouseCard, *, compact: bool = False) -> None:
    entry, lh = item.entry, item.entry.lighthouse
    with st.container(border=True):
        ui.entry_heading(entry.id, entry.title)
        st.markdown(ui.facts_line(stage=item.stage, outcome=entry.outcome, evidence=entry.evidence))
        if lh.impact:
            st.markdown(safe_markdown(lh.impact))
        if lh.benefits and not compact:
            st.markdown("**Measured benefits**\n" + "\n".join(f"- {plain(b)}" for b in lh.benefits))
        st.caption("Organisations: " + ", ".join(plain(o) for o in item.organisations))
        reuse = item.reuse_count
        st.markdown(
            f":material/content_copy: **Reused by {reuse} {'entry' if reuse == 1 else 'entries'}**"
            if reuse
            else ":material/content_copy: Not reused yet"
        )
        if not compact:
            for other_id, title in item.reused_by:
                ui.entry_link(other_id, title, icon=":material/subdirectory_arrow_right:")
            follow.follow_button(user, "lighthouse", entry.id, entry.title, key=f"follow-{entry.id}", mine=mine)


def gallery(cards: list[LighthouseCard]) -> None:
    columns = st.columns(3)
    for n, item in enumerate(cards):
        with columns[n % 3]:
            card(item)


def board(cards: list[LighthouseCard]) -> None:
    lanes = showcase.board(cards)
    columns = st.columns(len(LIGHTHOUSE_STAGES))
    for column, stage in zip(columns, LIGHTHOUSE_STAGES, strict=True):
        with column:
            st.markdown(f"**{ui.STAGE_ICONS[stage]} {ui.label(stage)}** ({len(lanes[stage])})")
            for item in lanes[stage]:
                card(item, compact=True)


st.title("Lighthouse showcase")
ui.flash()
st.caption(
    "Projects that proved their value: the impact they had, the benefits they measured, who took part and "
    "who reused them."
)
themes = browse.facet_counts(kb, Filters.of(status=browse.PUBLISHED, lighthouse=True), viewer=user)["theme"]
# A theme filter with nothing to choose from (a collection without themes, such as an imported register)
# is not offered, unless a link chose one.
offer_themes = bool(themes) or bool(st.query_params.get_all("theme"))
theme_col, stage_col, view_col = st.columns([3, 3, 2]) if offer_themes else (None, *st.columns([3, 2]))
chosen_themes = (
    theme_col.multiselect(
        "Theme",
        [t for t, _ in themes],
        key="theme",
        bind="query-params",
        format_func=kb.vocabulary.label,
        placeholder="Any theme",
    )
    if theme_col
    else []
)
chosen_stages = stage_col.multiselect(
    "Stage",
    list(LIGHTHOUSE_STAGES),
    key="stage",
    bind="query-params",
    format_func=ui.label,
    placeholder="Any stage",
)
view = view_col.segmented_control(
    "View", list(VIEWS), format_func=VIEWS.get, key="view", default="gallery", required=True, bind="query-params"
)
cards = showcase.lighthouses(kb, themes=chosen_themes, stages=chosen_stages, viewer=user)
if not cards:
    filtered = bool(chosen_themes or chosen_stages)
    st.info(
        "No lighthouse projects match these filters."
        if filtered
        else "No lighthouse projects yet. A lighthouse is an entry that proved its value; nominate one by editing "
        "it and choosing a lighthouse stage.",
        icon=":material/lightbulb:",
    )
elif view == "board":
    board(cards)
else:
    gallery(cards)
if cards:
    shown = [c.entry.id for c in cards]
    visit = resources.visit()  # a download counts its lighthouses as reused, once per visit
    ui.download_buttons(
        "lighthouse-showcase", lambda fmt: browse.download(kb, shown, fmt, user, visit=visit), key="download-showcase"
    )
