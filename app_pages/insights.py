"""Insights: entries by organisation, theme, outcome and year; where we keep failing; lessons we keep
re-learning (evidence notes and near-duplicates); a map of the collection.

Curators also get a tab of what people look for (app_pages/looked_for.py)."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app_pages import looked_for, resources, ui
from kb import insights

kb = resources.knowledge_base()
user = resources.current_user()
OUTCOMES = [ui.label(o) for o in ui.OUTCOME_CHART_COLOURS]  # worded as on every page: "Failed"
MIN_THEME_ENTRIES = 3
OUTCOME_SCALE = alt.Scale(domain=OUTCOMES, range=list(ui.OUTCOME_CHART_COLOURS.values()))
FAILING_SHOWN = 15  # bars in "where do we keep failing"
MAP_KEY = "collection_map"
VIEWS = ["Map", "List"]  # as the address names them: ?view=List
LIST_LIMIT = 500  # entries in the list view
PALETTE = [  # Tableau 20, the map's colours for its most common themes
    "#4e79a7", "#a0cbe8", "#f28e2b", "#ffbe7d", "#59a14f", "#8cd17d", "#b6992d", "#f1ce63", "#499894", "#86bcb6",
    "#e15759", "#ff9d9a", "#79706e", "#d37295", "#fabfd2", "#b07aa1", "#d4a6c8", "#9d7660", "#d7b5a6",
]  # fmt: skip
OTHER_COLOUR = "#bab0ac"  # the palette's last grey: every theme beyond it


def worded(data: pd.DataFrame) -> pd.DataFrame:
    """The outcome column in the words every page uses."""
    return data.assign(outcome=data["outcome"].map(ui.label)) if "outcome" in data else data


def bars(data: pd.DataFrame, category: str, title: str, *, top: int = 15) -> alt.Chart:
    shown = data.head(top)
    return (
        alt.Chart(shown, title=title)
        .mark_bar(color="#1d70b8")
        .encode(
            x=alt.X("entries:Q", title="Entries", axis=alt.Axis(tickMinStep=1)),
            y=alt.Y(f"{category}:N", sort="-x", title=None, axis=alt.Axis(labelLimit=260)),
            tooltip=[alt.Tooltip(f"{category}:N", title=title.split(" by ")[-1].capitalize()), "entries:Q"],
        )
    )


def by_outcome(data: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(data, title="Entries by outcome")
        .mark_bar()
        .encode(
            x=alt.X("outcome:N", sort=OUTCOMES, title=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("entries:Q", title="Entries", axis=alt.Axis(tickMinStep=1)),
            color=alt.Color("outcome:N", scale=OUTCOME_SCALE, legend=None),
            tooltip=[alt.Tooltip("outcome:N", title="Outcome"), alt.Tooltip("entries:Q", title="Entries")],
        )
    )


def by_year(data: pd.DataFrame) -> alt.Chart:
    # The legend names only the outcomes drawn (their colours stay every chart's), in rows of three, so no
    # name is cut at the edge; one outcome alone ("Not recorded", for a register that keeps none) needs none.
    shown = [o for o in OUTCOMES if o in set(data["outcome"])]
    legend = alt.Legend(orient="bottom", title=None, columns=3, labelLimit=0, values=shown) if len(shown) > 1 else None
    return (
        alt.Chart(data, title="Entries by year started")
        .mark_bar()
        .encode(
            x=alt.X("year:O", title=None, axis=alt.Axis(labelAngle=0)),
            y=alt.Y("sum(entries):Q", title="Entries", axis=alt.Axis(tickMinStep=1)),
            color=alt.Color("outcome:N", scale=OUTCOME_SCALE, legend=legend),
            order=alt.Order("outcome:N"),
            tooltip=[
                alt.Tooltip("year:O", title="Year started"),
                alt.Tooltip("outcome:N", title="Outcome"),
                alt.Tooltip("entries:Q", title="Entries"),
            ],
        )
    )


def failing(data: pd.DataFrame, group: str) -> alt.Chart:
    """Failed or stopped share by theme (or tag); each bar links (`href`) to the search listing those entries."""
    return (
        alt.Chart(data.drop(columns="search"))
        .mark_bar(color="#c62828", cursor="pointer")
        .encode(
            x=alt.X("share:Q", title="Failed or stopped", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("label:N", sort=None, title=None, axis=alt.Axis(labelLimit=260)),
            href=alt.Href("href:N"),
            tooltip=[
                alt.Tooltip("label:N", title=group.capitalize()),
                alt.Tooltip("share:Q", format=".0%", title="Share"),
                alt.Tooltip("failed_or_stopped:Q", title="Failed or stopped"),
                alt.Tooltip("entries:Q", title="Entries"),
            ],
        )
    )


def with_searches(themes: pd.DataFrame, group: str) -> pd.DataFrame:
    """The failing themes (the top 15) with the search that lists each one's failed or stopped entries."""
    shown = themes.head(FAILING_SHOWN)
    searches = [insights.failures_search(theme, group) for theme in shown["theme"]]
    return shown.assign(search=searches, href=[ui.search_href(s) for s in searches])


def failing_links(shown: pd.DataFrame) -> None:
    """The bars' links again, as text: for the keyboard and screen readers, which cannot click a bar. A
    bar of no failures has nothing to read."""
    failed = shown[shown["failed_or_stopped"] > 0]
    if failed.empty:
        return
    st.caption("Read the failed or stopped entries behind a bar:")
    with st.container(horizontal=True, gap="small"):
        for row in failed.itertuples():
            st.page_link(
                ui.SEARCH_PAGE,
                label=f"{ui.plain(row.label)} ({row.failed_or_stopped} of {row.entries})",
                query_params=row.search.to_params(),
                icon=":material/search:",
            )


def theme_colours(points: pd.DataFrame) -> dict[str, str]:
    """A colour for each first theme, the most common first; beyond the palette, themes share one grey."""
    counts = points["theme"].value_counts()
    ordered = sorted(counts.index, key=lambda t: (-counts[t], t))
    colours = dict(zip(ordered, PALETTE, strict=False))
    return {t: colours.get(t, OTHER_COLOUR) for t in ordered}


def collection_map(points: pd.DataFrame, colours: dict[str, str]) -> None:
    pick = alt.selection_point(name="pick", fields=["id"], on="click")
    chart = (
        alt.Chart(points)
        .mark_circle(size=220, opacity=0.85, stroke="white", strokeWidth=1, cursor="pointer")
        .encode(
            x=alt.X("x:Q", axis=None),
            y=alt.Y("y:Q", axis=None),
            # The legend is a list beside the chart (`map_legend`), where no label is cut short.
            color=alt.Color(
                "theme:N", scale=alt.Scale(domain=list(colours), range=list(colours.values())), legend=None
            ),
            tooltip=[
                alt.Tooltip("title:N", title="Title"),
                alt.Tooltip("organisation:N", title="Organisation"),
                alt.Tooltip("outcome:N", title="Outcome"),
                alt.Tooltip("theme:N", title="Theme"),
            ],
        )
        .add_params(pick)
        .properties(height=360 if ui.on_a_phone() else 440)
    )
    st.altair_chart(chart, on_select="rerun", key=MAP_KEY, width="stretch")


def map_legend(points: pd.DataFrame, colours: dict[str, str]) -> None:
    """The colours' key: an entry's first theme, or, in a collection without themes, its most used tag."""
    counts = points["theme"].value_counts()
    ui.legend(COLOURED_BY[group], [(colour, f"{theme} ({counts[theme]})") for theme, colour in colours.items()])


def view_in_address() -> str:
    """The view the address asks for (?view=List), the map where it names none or one we do not have."""
    view = st.query_params.get("view")
    return view if view in VIEWS else VIEWS[0]


def show_view() -> None:
    """Put the view chosen into the address, a new step in the browser's history; the map is the default
    and leaves it out. (Not Streamlit's bound parameters: they leave a stray step in the history when a
    link to another page is followed, so Back would lose the view.)"""
    if st.session_state["view"] == VIEWS[0]:
        st.query_params.pop("view", None)
    else:
        st.query_params["view"] = st.session_state["view"]


def picked_entry() -> str | None:
    """The entry whose point was just clicked on the map, read from the map's state before anything else
    is drawn: opening it should not wait for the page's charts."""
    state = st.session_state.get(MAP_KEY) or {}
    picked = (state.get("selection") or {}).get("pick") or []
    return str(picked[0]["id"]) if picked and picked[0].get("id") else None


def entry_list(points: pd.DataFrame, colours: dict[str, str]) -> None:
    """The map's entries as links, under their first theme in the legend's order: the keyboard's way in."""
    shown = points.head(LIST_LIMIT)
    if len(points) > LIST_LIMIT:
        st.caption(f"The first {LIST_LIMIT} of {len(points)} entries, by theme. Search to narrow them down.")
    for theme in colours:
        group = shown[shown["theme"] == theme].sort_values("title")
        if group.empty:
            continue
        st.markdown(f"**{ui.plain(theme)}** ({len(group)})")
        for row in group.itertuples():
            with st.container(gap=None):  # the title, and under it what happened and where
                ui.entry_link(row.id, row.title)
                facts = [f"Outcome: {row.outcome}" if row.outcome else "", ui.plain(row.organisation)]
                st.caption(" · ".join(f for f in facts if f))


entry_id = picked_entry()
if entry_id:
    st.switch_page(ui.ENTRY_PAGE, query_params={"id": entry_id})

st.title("Insights")
st.caption("What the published collection holds, and where projects keep running into trouble.")
if looked_for.curators_tab(kb, user):  # curators only: what people look for, drawn in its own tab
    st.stop()
data = insights.insights(kb, viewer=user)
metrics = st.columns(4)
metrics[0].metric("Entries", data.entries)
metrics[1].metric("Organisations", data.organisations)
metrics[2].metric("Lighthouse projects", data.lighthouses)
metrics[3].metric(  # of the entries that record an outcome: "not recorded" is never counted as a failure
    "Failed or stopped",
    f"{data.failed_share:.0%}" if data.recorded else "Not recorded",
    help=f"Of the {data.recorded} entries that record how their work turned out."
    if 0 < data.recorded < data.entries
    else None,
)
if data.entries == 0:
    st.info("Nothing has been published yet, so there is nothing to chart.", icon=":material/insights:")
    st.stop()


def legible(figure: alt.Chart) -> alt.Chart:
    """The chart's words in the page's text colour: Streamlit's grey axis labels are 3.7:1 on white,
    below the 4.5:1 that text of their size needs."""
    return (
        figure.configure_axis(labelColor=ui.TEXT_COLOUR, titleColor=ui.TEXT_COLOUR)
        .configure_legend(labelColor=ui.TEXT_COLOUR, titleColor=ui.TEXT_COLOUR)
        .configure_title(color=ui.TEXT_COLOUR)
    )


def chart(where, figure: alt.Chart, data: pd.DataFrame, empty: str) -> None:
    """A chart, or a sentence where there is nothing to chart (never an empty frame with a stray axis)."""
    if len(data):
        where.altair_chart(legible(figure), width="stretch")
    else:
        where.info(empty, icon=":material/bar_chart:")


RELEARN_PARTS = {"notes": "Evidence notes", "near_duplicates": "Near-duplicates"}


def relearning(data: pd.DataFrame) -> alt.Chart:
    """Each entry's bar: its evidence notes, then its near-duplicates from other organisations."""
    long = data.melt(id_vars=["id", "title"], value_vars=list(RELEARN_PARTS), var_name="part", value_name="count")
    long = long.assign(part=long["part"].map(RELEARN_PARTS))
    return (
        alt.Chart(long)  # the heading above names it
        .mark_bar()
        .encode(
            x=alt.X("sum(count):Q", title="Times met again", axis=alt.Axis(tickMinStep=1)),
            y=alt.Y(
                "title:N",
                sort=list(data["title"]),
                title=None,
                axis=alt.Axis(labelLimit=150 if ui.on_a_phone() else 320),
            ),
            color=alt.Color(
                "part:N",
                scale=alt.Scale(domain=list(RELEARN_PARTS.values()), range=["#1d70b8", "#f47738"]),
                legend=None,  # said in words under the chart, where no name is cut on a phone
            ),
            tooltip=[alt.Tooltip("title:N", title="Entry"), alt.Tooltip("part:N", title="What"), "count:Q"],
        )
    )


def lessons_relearned() -> None:
    st.header("Lessons we keep re-learning", anchor=False)
    st.caption(
        'Entries other teams met again: their evidence notes ("we hit this too") plus close near-duplicate '
        "entries written up by other organisations. Read these before you start."
    )
    table = insights.relearned(kb, viewer=user)
    chart(st, relearning(table), table, "No lesson has been met again yet: nobody has added evidence to an entry.")
    if len(table):
        st.markdown(":blue[■] Evidence notes &nbsp; :orange[■] Near-duplicates from other organisations")
    for row in table.itertuples():
        notes = f"{row.notes} evidence {'note' if row.notes == 1 else 'notes'}"
        near = f"{row.near_duplicates} {'near-duplicate' if row.near_duplicates == 1 else 'near-duplicates'}"
        ui.entry_link(row.id, row.title, icon=":material/repeat:", note=f"{notes}, {near}")


group = data.grouped_by  # "theme", or "tag" for a collection without themes
COLOURED_BY = {"theme": "First theme", "tag": "Most used tag"}  # what a map point's colour says
left, right = st.columns(2, gap="large")
chart(
    left,
    bars(data.by_organisation, "organisation", "Entries by organisation"),
    data.by_organisation,
    "No entry names its organisation.",
)
chart(right, bars(data.by_theme, "label", f"Entries by {group}"), data.by_theme, "No entry has a theme or a tag yet.")
if data.recorded:
    chart(left, by_outcome(worded(data.by_outcome)), data.by_outcome, "No entry records its outcome.")
else:  # one bar as tall as the collection says nothing: a sentence says it
    left.info(
        f"None of these {data.entries} entries records how its work turned out, so there are no outcomes to "
        "chart. Their register does not say; a curator who knows can set an entry's outcome.",
        icon=":material/bar_chart:",
    )
chart(right, by_year(worded(data.by_year)), data.by_year, "No entry says when its work started.")

st.header("Where do we keep failing?", anchor=False)
st.caption(
    f"The share of entries in each {group} whose work failed or was stopped, for {group}s with at least "
    f"{MIN_THEME_ENTRIES} entries. A high share is a warning to the next team: read those entries first."
)
themes = data.failures_by_theme
enough = themes[themes["entries"] >= MIN_THEME_ENTRIES]  # one failure in a theme of one is not a pattern
shown = with_searches(enough if len(enough) else themes, group)
chart(
    st,
    failing(shown, group),
    shown,
    f"No entry has a {group} yet, so there is no pattern to show."
    if data.recorded
    else "No entry records how its work turned out, so there is no pattern of failures to show.",
)
failing_links(shown)
lessons_relearned()

st.header("Map of the collection", anchor=False)
st.session_state["view"] = view_in_address()  # the address is the only source of truth
view = st.segmented_control("Show the collection as", VIEWS, key="view", required=True, on_change=show_view)
points = worded(insights.collection_map(kb, viewer=user))
colours = theme_colours(points)
if view == "List":
    st.caption(f"The entries on the map, under their {COLOURED_BY[group].lower()}. Each title opens the entry.")
    entry_list(points, colours)
else:
    st.caption(
        "Each point is an entry, placed by what it is about: close points tell similar stories. "
        "Hover for the title; click a point to open the entry. With a keyboard or a screen reader, "
        "choose **List** above: it holds the same entries as links."
    )
    if ui.on_a_phone():  # stacked: the map across the screen, then its legend
        collection_map(points, colours)
        map_legend(points, colours)
    else:
        plot, key = st.columns([3, 1], gap="medium")
        with plot:
            collection_map(points, colours)
        with key:
            map_legend(points, colours)
