"""Data sources (?source=...): every data source the published entries used, and for one source the
entries and organisations that used it, their grades side by side and how the grades changed over time.

"The same data, repurposed in different ways": who else already uses a dataset, and what they found
wrong with it. The catalogue, its merging of names and who may see what are kb.sources's.
"""

from __future__ import annotations

import altair as alt
import pandas as pd
import streamlit as st

from app_pages import resources, ui
from app_pages.ui import plain
from kb import NotFound
from kb.entries import QUALITY_RATINGS
from kb.sources import Source, SourceUse, catalogue, rating_score, source

kb = resources.knowledge_base()
user = resources.current_user()
RATING_COLOURS = {"poor": "red", "fair": "orange", "good": "blue", "excellent": "green"}


def rating_badge(rating: str) -> str:
    return f":{RATING_COLOURS.get(rating, 'gray')}-badge[{ui.label(rating)}]" if rating else "—"


def who(use: SourceUse) -> str:
    """The organisation, and the team where the catalogue names one (never for an anonymous entry)."""
    return " · ".join(plain(v) for v in (use.organisation, use.team) if v)


def listing(sources: list[Source]) -> None:
    st.caption(
        "Every dataset or system the published entries say they used, most used first. Open one to see who "
        "else used it and what they found wrong with it: grades on the six dimensions of the UK Government "
        "Data Quality Framework."
    )
    wanted = st.text_input("Find a data source", key="sources_find", placeholder="e.g. school census")
    graded_only = st.toggle("Only sources someone graded", key="sources_graded")
    chosen = [
        s
        for s in sources
        if (not graded_only or s.graded)
        and (not wanted.strip() or any(wanted.strip().lower() in n.lower() for n in (s.label, *s.names)))
    ]
    st.markdown(f"**{len(chosen)} of {len(sources)} data sources**")
    for item in chosen:
        uses = len(item.uses)
        parts = [f"{uses} {'entry' if uses == 1 else 'entries'}"]
        if item.graded:
            parts.append(f"{len(item.graded)} graded, lowest {ui.label(item.lowest).lower()}")
        st.page_link(
            ui.SOURCES_PAGE,
            label=f"{plain(item.label)} · {' · '.join(parts)}",
            query_params={"source": item.id},
            icon=":material/dataset:",
        )


def grade_grid(item: Source) -> None:
    grid = item.grid()
    if not grid:
        st.caption("Nobody has graded this source yet. Grade it when you submit or edit an entry that used it.")
        return
    graded = item.graded
    if ui.on_a_phone() and len(graded) > 1:  # side by side is too narrow on a phone: one table per entry
        for n, use in enumerate(graded):
            st.markdown(f"**{plain(use.title)}** ({plain(use.organisation)}{', ' + use.when if use.when else ''})")
            rows = [(d, cells[n][1], cells[n][2]) for d, cells in grid.items() if cells[n][1]]
            st.markdown(
                "| Dimension | Grade |\n|---|---|\n"
                + "\n".join(
                    f"| {ui.label(d)} | {rating_badge(r)}{' ' + plain(note) if note else ''} |" for d, r, note in rows
                )
            )
        return
    heads = [f"{plain(u.title)} ({plain(u.organisation)}{', ' + u.when if u.when else ''})" for u in graded]
    lines = ["| Dimension | " + " | ".join(heads) + " |", "|---" * (len(heads) + 1) + "|"]
    for dimension, cells in grid.items():
        shown = [rating_badge(r) + (f" {plain(note)}" if note else "") for _, r, note in cells]
        lines.append(f"| {ui.label(dimension)} | " + " | ".join(shown) + " |")
    st.markdown("\n".join(lines))


def over_time(item: Source) -> None:
    points = item.timeline()
    if len({when for when, *_ in points}) < 2:
        st.caption("The grades change over time once the source is graded at two different times.")
        return
    data = pd.DataFrame(
        [
            {
                "when": when,
                "dimension": ui.label(dimension),
                "rating": ui.label(rating),
                "score": rating_score(rating),
                "entry": use.title,
            }
            for when, dimension, rating, use in points
        ]
    )
    phone = ui.on_a_phone()
    scale = alt.Scale(domain=[1, len(QUALITY_RATINGS)])
    axis = alt.Axis(
        values=list(range(1, len(QUALITY_RATINGS) + 1)),
        labelExpr="['', 'Poor', 'Fair', 'Good', 'Excellent'][datum.value]",
    )
    chart = (
        alt.Chart(data, title="Grades over time")
        .mark_line(point=alt.OverlayMarkDef(size=80))
        .encode(
            x=alt.X("when:O", title="Graded", axis=alt.Axis(labelAngle=0)),
            y=alt.Y("score:Q", title=None, scale=scale, axis=axis),
            color=alt.Color(
                "dimension:N", title="Dimension", legend=alt.Legend(orient="bottom", columns=2 if phone else 3)
            ),
            tooltip=["when:O", "dimension:N", "rating:N", "entry:N"],
        )
        .configure_axis(labelColor=ui.TEXT_COLOUR, titleColor=ui.TEXT_COLOUR)
        .configure_legend(labelColor=ui.TEXT_COLOUR, titleColor=ui.TEXT_COLOUR)
        .configure_title(color=ui.TEXT_COLOUR)
    )
    st.altair_chart(chart, width="stretch", height=380)
    with st.expander("The grades over time as a table"):
        table = data.drop(columns="score").rename(columns=str.capitalize)
        st.table(table.set_index("When"))


def detail(item: Source) -> None:
    ui.tab_title(item.label, "Data sources")
    st.title(plain(item.label))
    if item.definition:
        st.markdown(plain(item.definition))
    others = [n for n in item.names if n != item.label]
    if others:
        st.caption("Also written as: " + ", ".join(f"“{plain(n)}”" for n in others))
    uses = len(item.uses)
    st.markdown(
        f"**Used by {uses} {'entry' if uses == 1 else 'entries'}** in "
        + ", ".join(plain(o) for o in item.organisations)
    )
    st.header("Entries that used it", anchor=False)
    for use in item.uses:
        with st.container(border=True):
            ui.entry_heading(use.entry_id, use.title)
            facts = [who(use), f"graded {use.when}" if use.quality and use.quality.grades and use.when else ""]
            st.markdown(" · ".join(f for f in facts if f) + (" " + ui.tag("evidence", use.evidence)))
    st.header("Grades side by side", anchor=False)
    st.caption(
        "Each entry's grade of this source on the Data Quality Framework's dimensions, worst first: "
        + ", ".join(ui.label(r) for r in QUALITY_RATINGS)
        + ". The evidence level is the entry's own."
    )
    grade_grid(item)
    st.header("How the grades changed", anchor=False)
    over_time(item)
    st.page_link(ui.SOURCES_PAGE, label="All data sources", icon=":material/arrow_back:")


wanted = st.query_params.get("source", "")
if wanted:
    try:
        found = source(kb, wanted, viewer=user)  # used only where this user may not look: as missing
    except NotFound:
        ui.tab_title("Data source not found")
        st.title("Data source not found")
        st.warning(f"There is no data source “{plain(wanted[:120])}”.", icon=":material/search_off:")
        st.page_link(ui.SOURCES_PAGE, label="All data sources", icon=":material/dataset:")
        st.stop()
    st.query_params["source"] = found.id  # a link to the same page drops its query: keep the address shareable
    detail(found)
else:
    st.title("Data sources")
    listing(catalogue(kb, viewer=user))
