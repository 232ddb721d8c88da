"""Insights: entries by organisation, theme, outcome and year; where we keep failing; a map of the collection."""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app_pages import resources, ui
from kb import insights

kb = resources.knowledge_base()
user = resources.current_user()
OUTCOMES = [ui.label(o) for o in ui.OUTCOME_CHART_COLOURS]  # worded as on every page: "Failed"
MIN_THEME_ENTRIES = 3
OUTCOME_SCALE = alt.Scale(domain=OUTCOMES, range=list(ui.OUTCOME_CHART_COLOURS.values()))


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


def failing(data: pd.DataFrame) -> alt.Chart:
    return (
        alt.Chart(data.head(15))
        .mark_bar(color="#c62828")
        .encode(
            x=alt.X("share:Q", title="Failed or stopped", axis=alt.Axis(format="%"), scale=alt.Scale(domain=[0, 1])),
            y=alt.Y("label:N", sort=None, title=None, axis=alt.Axis(labelLimit=260)),
            tooltip=[
                alt.Tooltip("label:N", title="Theme"),
                alt.Tooltip("share:Q", format=".0%", title="Share"),
                alt.Tooltip("failed_or_stopped:Q", title="Failed or stopped"),
                alt.Tooltip("entries:Q", title="Entries"),
            ],
        )
    )


def collection_map(points: pd.DataFrame) -> None:
    pick = alt.selection_point(name="pick", fields=["id"], on="click")
    chart = (
        alt.Chart(points)
        .mark_circle(size=220, opacity=0.85, stroke="white", strokeWidth=1)
        .encode(
            x=alt.X("x:Q", axis=None),
            y=alt.Y("y:Q", axis=None),
            color=alt.Color(
                "theme:N",
                title="First theme",
                scale=alt.Scale(scheme="tableau20"),
                legend=alt.Legend(orient="right", labelLimit=220),
            ),
            tooltip=[
                alt.Tooltip("title:N", title="Title"),
                alt.Tooltip("organisation:N", title="Organisation"),
                alt.Tooltip("outcome:N", title="Outcome"),
                alt.Tooltip("theme:N", title="Theme"),
            ],
        )
        .add_params(pick)
        .properties(height=440)
    )
    event = st.altair_chart(chart, on_select="rerun", key="collection_map", width="stretch")
    picked = (event.selection.get("pick") or []) if event else []
    if picked and picked[0].get("id"):
        st.switch_page(ui.ENTRY_PAGE, query_params={"id": picked[0]["id"]})


st.title("Insights")
st.caption("What the published collection holds, and where projects keep running into trouble.")
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


def chart(where, figure: alt.Chart, data: pd.DataFrame, empty: str) -> None:
    """A chart, or a sentence where there is nothing to chart (never an empty frame with a stray axis)."""
    if len(data):
        where.altair_chart(figure, width="stretch")
    else:
        where.info(empty, icon=":material/bar_chart:")


group = data.grouped_by  # "theme", or "tag" for a collection without themes
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

st.subheader("Where do we keep failing?")
st.caption(
    f"The share of entries in each {group} whose work failed or was stopped, for {group}s with at least "
    f"{MIN_THEME_ENTRIES} entries. A high share is a warning to the next team: read those entries first."
)
themes = data.failures_by_theme
enough = themes[themes["entries"] >= MIN_THEME_ENTRIES]  # one failure in a theme of one is not a pattern
shown = enough if len(enough) else themes
chart(
    st,
    failing(shown),
    shown,
    f"No entry has a {group} yet, so there is no pattern to show."
    if data.recorded
    else "No entry records how its work turned out, so there is no pattern of failures to show.",
)

st.subheader("Map of the collection")
st.caption(
    "Each point is an entry, placed by what it is about: close points tell similar stories. "
    "Hover for the title; click a point to open the entry."
)
collection_map(worded(insights.collection_map(kb, viewer=user)))
