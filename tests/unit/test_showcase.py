"""The lighthouse showcase: cards, most reused first, filtered by stage and theme, and the board."""

from __future__ import annotations

from kb import showcase
from kb.entries import LIGHTHOUSE_STAGES


def test_lighthouses_are_published_and_most_reused_first(kb):
    cards = showcase.lighthouses(kb)
    assert cards and all(c.entry.lighthouse and c.entry.status == "published" for c in cards)
    counts = [c.reuse_count for c in cards]
    assert counts == sorted(counts, reverse=True)
    first = cards[0]
    assert first.organisations[0] == first.entry.organisation
    assert all(title for _, title in first.reused_by)


def test_lighthouses_filter_by_stage_and_theme(kb):
    proven = showcase.lighthouses(kb, stages=("proven",))
    assert proven and {c.stage for c in proven} == {"proven"}
    themed = showcase.lighthouses(kb, themes=("data-sharing-agreements",))
    assert themed and all("data-sharing-agreements" in c.entry.themes for c in themed)


def test_board_has_a_column_per_stage(kb):
    columns = showcase.board(showcase.lighthouses(kb))
    assert list(columns) == list(LIGHTHOUSE_STAGES)
    assert sum(len(v) for v in columns.values()) == len(showcase.lighthouses(kb))
