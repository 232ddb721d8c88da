"""The lighthouse showcase: published lighthouse entries as cards, in a gallery or one column per stage.

    cards = lighthouses(kb, themes=("data-sharing-agreements",), stages=("proven",))
    columns = board(cards)    # {"pilot": [...], "proven": [...], ...}

Reads the browse snapshot of the index's entry metadata (no streamlit here).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kb.browse import PUBLISHED, load_entries, rows
from kb.browse import titles as browse_titles
from kb.entries import LIGHTHOUSE_STAGES, Entry
from kb.filters import Filters, predicate

if TYPE_CHECKING:
    from kb.identity import User
    from kb.knowledge import KnowledgeBase


@dataclass(frozen=True)
class LighthouseCard:
    """A lighthouse entry as the showcase shows it."""

    entry: Entry
    organisations: tuple[str, ...]
    reused_by: tuple[tuple[str, str], ...]  # (entry id, title) of the entries that replicated it

    @property
    def stage(self) -> str:
        return self.entry.lighthouse.stage if self.entry.lighthouse else ""

    @property
    def reuse_count(self) -> int:
        return len(self.reused_by)


def lighthouses(
    kb: KnowledgeBase, *, themes: Sequence[str] = (), stages: Sequence[str] = (), viewer: User | None = None
) -> list[LighthouseCard]:
    """Published lighthouse entries in the themes and stages asked for, most reused first."""
    chosen = predicate(Filters.of(status=PUBLISHED, lighthouse=True, theme=tuple(themes)).where())
    ids = [
        r.entry_id
        for r in rows(kb, viewer)
        if chosen(r.metadata) and (not stages or r.metadata.get("lighthouse_stage") in stages)
    ]
    entries = [(e, e.lighthouse) for e in load_entries(kb, ids, viewer) if e.lighthouse is not None]
    reused_ids = [i for _, lighthouse in entries for i in lighthouse.reused_by]
    titles = {i: t for i, t, _ in browse_titles(kb, reused_ids, viewer)}
    cards = [
        LighthouseCard(
            entry=e,
            organisations=tuple(dict.fromkeys([e.organisation, *e.partners])),
            reused_by=tuple((i, titles[i]) for i in lighthouse.reused_by if i in titles),
        )
        for e, lighthouse in entries
    ]
    return sorted(cards, key=lambda c: (-c.reuse_count, LIGHTHOUSE_STAGES.index(c.stage), c.entry.title.lower()))


def board(cards: Iterable[LighthouseCard]) -> dict[str, list[LighthouseCard]]:
    """The cards in one column per stage, every stage present, in the lifecycle's order."""
    columns: dict[str, list[LighthouseCard]] = {stage: [] for stage in LIGHTHOUSE_STAGES}
    for card in cards:
        columns.setdefault(card.stage, []).append(card)
    return columns
