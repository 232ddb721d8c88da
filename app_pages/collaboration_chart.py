"""The map of organisations that worked together, as an Altair chart: each organisation a point on a
circle (kb.lifecycle.circle_layout), each shared project or reuse a line.

Names are written outward from the circle, to the left of the points on its left half and to the right
on its right half (above the point at the top, below the one at the bottom), so two neighbours' names
never sit on top of each other as they did when every name was centred above its point.
"""

from __future__ import annotations

from dataclasses import dataclass

import altair as alt
import pandas as pd

from kb import lifecycle as lifecycles

SIDES = ("left", "right", "above", "below")  # where a point's name is written
TOP_OR_BOTTOM = 0.05  # a point this close to the vertical axis is at the top or the bottom of the circle


@dataclass(frozen=True)
class Geometry:
    """How the map is drawn: the x domain is [-wide, wide] around a unit circle (the room beyond 1 is for
    the names at its sides), the y domain [-reach, reach]; names in `font` px, cut at `limit` px."""

    wide: float
    height: int
    font: int
    limit: int
    gap: int = 17  # px between a point's centre and its name, beyond the largest point's radius
    reach: float = 1.25


PHONE = Geometry(wide=2.4, height=420, font=9, limit=78)  # fits a chart 330 px wide
SCREEN = Geometry(wide=1.75, height=560, font=11, limit=130)  # fits a chart 700 px wide


def side_of(x: float, y: float) -> str:
    """Where the name of the point at (x, y) on the unit circle is written: away from the circle."""
    if abs(x) <= TOP_OR_BOTTOM:
        return "above" if y > 0 else "below"
    return "left" if x < 0 else "right"


def frames(graph: lifecycles.CollaborationMap) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The map's nodes (placed on a circle, the busiest first, each with the side its name goes on) and
    edges, as the chart draws them."""
    ordered = sorted(graph.nodes, key=lambda n: (-len(n.entries), n.organisation.lower()))
    place = lifecycles.circle_layout([n.organisation for n in ordered])
    nodes = pd.DataFrame(
        [
            {
                "organisation": n.organisation,
                "entries": len(n.entries),
                "x": place[n.organisation][0],
                "y": place[n.organisation][1],
                "side": side_of(*place[n.organisation]),
            }
            for n in ordered
        ],
        columns=["organisation", "entries", "x", "y", "side"],
    )
    edges = pd.DataFrame(
        [
            {
                "pair": f"{e.source} – {e.target}",
                "joined": " and ".join(e.kinds),
                "entries": len(e.entries),
                "x": place[e.source][0],
                "y": place[e.source][1],
                "x2": place[e.target][0],
                "y2": place[e.target][1],
            }
            for e in graph.edges
        ],
        columns=["pair", "joined", "entries", "x", "y", "x2", "y2"],
    )
    return nodes, edges


def chart(nodes: pd.DataFrame, edges: pd.DataFrame, geometry: Geometry) -> alt.LayerChart:
    """Lines, points (a click selects one: "node" or "edge") and the names, written outward."""
    node = alt.selection_point(name="node", fields=["organisation"], on="click")
    edge = alt.selection_point(name="edge", fields=["pair"], on="click")
    x = alt.X("x:Q", axis=None, scale=alt.Scale(domain=[-geometry.wide, geometry.wide]))
    y = alt.Y("y:Q", axis=None, scale=alt.Scale(domain=[-geometry.reach, geometry.reach]))
    lines = (
        alt.Chart(edges)
        .mark_rule(color="#505a5f", cursor="pointer")
        .encode(
            opacity=alt.condition(edge, alt.value(0.7), alt.value(0.25)),
            x=x,
            y=y,
            x2="x2:Q",
            y2="y2:Q",
            strokeWidth=alt.StrokeWidth("entries:Q", scale=alt.Scale(range=[2, 8]), legend=None),
            strokeDash=alt.condition("datum.joined == 'shared project'", alt.value([1, 0]), alt.value([6, 3])),
            tooltip=[
                alt.Tooltip("pair:N", title="Organisations"),
                alt.Tooltip("joined:N", title="Joined by"),
                alt.Tooltip("entries:Q", title="Entries"),
            ],
        )
        .add_params(edge)
    )
    points = (
        alt.Chart(nodes)
        .mark_circle(color="#1d70b8", stroke="white", strokeWidth=2, cursor="pointer")
        .encode(
            opacity=alt.condition(node, alt.value(1.0), alt.value(0.35)),
            x=x,
            y=y,
            size=alt.Size("entries:Q", scale=alt.Scale(range=[120, 700]), legend=None),
            tooltip=[alt.Tooltip("organisation:N", title="Organisation"), alt.Tooltip("entries:Q", title="Entries")],
        )
        .add_params(node)
    )
    names = [
        alt.Chart(nodes)
        .transform_filter(f"datum.side == '{side}'")
        .mark_text(fontSize=geometry.font, color="#0b0c0c", limit=geometry.limit, **_placed(side, geometry))
        .encode(
            x=x,
            y=y,
            text="organisation:N",
            tooltip=[alt.Tooltip("organisation:N", title="Organisation"), alt.Tooltip("entries:Q", title="Entries")],
        )
        for side in SIDES
    ]
    return alt.layer(lines, points, *names).properties(height=geometry.height)


def _placed(side: str, geometry: Geometry) -> dict:
    """The text mark's alignment and offset from its point for names on this side."""
    return {
        "left": {"align": "right", "baseline": "middle", "dx": -geometry.gap},
        "right": {"align": "left", "baseline": "middle", "dx": geometry.gap},
        "above": {"align": "center", "baseline": "bottom", "dy": -geometry.gap},
        "below": {"align": "center", "baseline": "top", "dy": geometry.gap},
    }[side]
