"""The collaboration map's names: written outward from the circle, none on top of another, all on the
chart, on a phone and on a laptop, however many organisations there are."""

from __future__ import annotations

import itertools

import pytest

from app_pages import collaboration_chart
from app_pages.collaboration_chart import PHONE, SCREEN, Geometry
from kb.lifecycle import CollaborationMap, Edge, Node

CHAR_WIDTH = 0.6  # of the font size: a generous average for the names' letters
LONGEST_POINT_RADIUS = 15  # px: a point's area is at most 700 px²


def a_map(count: int) -> CollaborationMap:
    names = [f"Department for Long Names and Public Services number {n}" for n in range(count)]
    nodes = [Node(name, tuple(f"{name}-entry-{i}" for i in range(1 + n % 4))) for n, name in enumerate(names)]
    edges = [Edge(names[n], names[(n + 1) % count], shared=(f"shared-{n}",)) for n in range(count)]
    return CollaborationMap(nodes, edges)


def name_boxes(geometry: Geometry, width: int, count: int) -> list[tuple[float, float, float, float]]:
    """Each name's box in px (left, top, right, bottom), placed as the chart places it."""
    nodes, _ = collaboration_chart.frames(a_map(count))
    boxes = []
    for row in nodes.itertuples():
        px = (row.x + geometry.wide) / (2 * geometry.wide) * width
        py = (geometry.reach - row.y) / (2 * geometry.reach) * geometry.height
        wide = min(geometry.limit, len(row.organisation) * geometry.font * CHAR_WIDTH)
        high = geometry.font * 1.2
        left, top = {
            "left": (px - geometry.gap - wide, py - high / 2),
            "right": (px + geometry.gap, py - high / 2),
            "above": (px - wide / 2, py - geometry.gap - high),
            "below": (px - wide / 2, py + geometry.gap),
        }[row.side]
        boxes.append((left, top, left + wide, top + high))
    return boxes


@pytest.mark.parametrize("count", [3, 8, 15, 24])
@pytest.mark.parametrize("geometry, width", [(PHONE, 330), (PHONE, 398), (SCREEN, 700), (SCREEN, 1100)])
def test_no_two_names_overlap_and_every_name_is_on_the_chart(geometry, width, count):
    boxes = name_boxes(geometry, width, count)
    for a, b in itertools.combinations(range(count), 2):
        one, other = boxes[a], boxes[b]
        apart = one[2] <= other[0] or other[2] <= one[0] or one[3] <= other[1] or other[3] <= one[1]
        assert apart, f"the names of organisations {a} and {b} overlap: {one} and {other}"
    for left, top, right, bottom in boxes:
        assert left >= 0 and top >= 0 and right <= width and bottom <= geometry.height


def test_names_are_written_away_from_the_circle():
    nodes, _ = collaboration_chart.frames(a_map(8))
    sides = dict(zip(nodes.organisation, nodes.side, strict=True))
    for row in nodes.itertuples():
        expected = "above" if row.y > 0.99 else "below" if row.y < -0.99 else "left" if row.x < 0 else "right"
        assert sides[row.organisation] == expected
    assert set(nodes.side) == {"left", "right", "above", "below"}
    assert min(PHONE.gap, SCREEN.gap) > LONGEST_POINT_RADIUS  # a name never covers its point


def test_the_chart_writes_each_side_s_names_with_its_own_alignment():
    nodes, edges = collaboration_chart.frames(a_map(8))
    layers = collaboration_chart.chart(nodes, edges, PHONE).to_dict()["layer"]
    aligned = {
        layer["transform"][0]["filter"].split("'")[1]: layer["mark"]["align"]
        for layer in layers
        if "transform" in layer
    }
    assert aligned == {"left": "right", "right": "left", "above": "center", "below": "center"}
