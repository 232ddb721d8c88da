"""Lighthouse showcase: projects that proved what cross-team data work can deliver, as a gallery or a board,
each with its review-by flag and where its value spread; under them, the map of organisations that worked
together (kb.lifecycle), with the same as a list."""

from __future__ import annotations

import streamlit as st

from app_pages import collaboration_chart, follow, lifecycle, resources, ui
from app_pages.ui import plain, safe_markdown
from kb import Filters, browse, showcase
from kb import lifecycle as lifecycles
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
        lifecycle.review_flag(entry, compact=True)
        if compact:
            reuse = item.reuse_count
            st.markdown(
                f":material/content_copy: **Reused by {reuse} {'entry' if reuse == 1 else 'entries'}**"
                if reuse
                else ":material/content_copy: Not reused yet"
            )
        else:
            lifecycle.reuse_chain(kb, entry, user)
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


MAP_KEY = "collaboration_map"


def entry_links(graph: lifecycles.CollaborationMap, ids) -> str:
    return ", ".join(f"[{plain(graph.titles.get(i, i))}]({ui.entry_href(i)})" for i in ids)


def organisation_line(graph: lifecycles.CollaborationMap, name: str) -> str:
    """An organisation in words: its name (a link to its page), how many entries and partners it has."""
    ids, partners = graph.entries_of(name), graph.partners_of(name)
    page = ui.page_href(ui.ORGANISATION_PAGE, {"org": name})
    return (
        f"**[{plain(name)}]({page})**: {len(ids)} {'entry' if len(ids) == 1 else 'entries'}, worked with "
        f"{len(partners)} {'organisation' if len(partners) == 1 else 'organisations'}"
    )


def edge_lines(graph: lifecycles.CollaborationMap, item: lifecycles.Edge) -> list[str]:
    lines = []
    if item.shared:
        lines.append(
            f"shared {'a project' if len(item.shared) == 1 else 'projects'}: {entry_links(graph, item.shared)}"
        )
    for lighthouse_id, reuser_id in item.reuses:
        lines.append(
            f"reuse: {entry_links(graph, [reuser_id])} reused the lighthouse {entry_links(graph, [lighthouse_id])}"
        )
    return lines


def picked(graph: lifecycles.CollaborationMap) -> None:
    """The entries behind the node or the edge just selected on the map."""
    selection = (st.session_state.get(MAP_KEY) or {}).get("selection") or {}
    nodes, edges = selection.get("node") or [], selection.get("edge") or []
    if nodes and nodes[0].get("organisation"):
        name = str(nodes[0]["organisation"])
        with st.container(border=True):
            st.markdown(organisation_line(graph, name))
            st.markdown("\n".join(f"- {entry_links(graph, [i])}" for i in graph.entries_of(name)))
    elif edges and edges[0].get("pair"):
        source, _, target = str(edges[0]["pair"]).partition(" – ")
        item = graph.edge(source, target)
        if item is not None:
            with st.container(border=True):
                st.markdown(f"**{plain(source)} and {plain(target)}**")
                st.markdown("\n".join(f"- {line}" for line in edge_lines(graph, item)))
    else:
        st.caption("Select an organisation or a line on the map to list the entries behind it.")


def collaboration_map() -> None:
    st.header("Who worked with whom", anchor=False)
    graph = lifecycles.collaboration_map(kb, user)
    if not graph.edges:
        st.caption("No two organisations share a published entry or a reuse yet.")
        return
    st.caption(
        "Organisations are joined where they shared a project (a solid line) or one reused another's lighthouse "
        "(a dashed line); the thicker the line, the more entries behind it."
    )
    nodes, edges = collaboration_chart.frames(graph)
    geometry = collaboration_chart.PHONE if ui.on_a_phone() else collaboration_chart.SCREEN
    st.altair_chart(collaboration_chart.chart(nodes, edges, geometry), on_select="rerun", key=MAP_KEY, width="stretch")
    picked(graph)
    count = f"{len(graph.nodes)} organisations, {len(graph.edges)} links between them"
    with st.expander(f"The map as a list ({count})", icon=":material/list:"):
        st.markdown("**Organisations**, each with its entries")
        for node in graph.nodes:
            st.markdown(organisation_line(graph, node.organisation))
            st.markdown("\n".join(f"- {entry_links(graph, [i])}" for i in node.entries))
        st.markdown("**Links between organisations**")
        for item in graph.edges:
            st.markdown(f"**{plain(item.source)} and {plain(item.target)}**")
            st.markdown("\n".join(f"- {line}" for line in edge_lines(graph, item)))


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
collaboration_map()
