"""The data-source catalogue: each data source the published entries used, who used it and how they graded it.

    sources = catalogue(kb, viewer=user)              # every source, most used first
    school = source(kb, "school-census", viewer=user)  # one source: its uses, grades side by side, over time
    school.grid()       # dimension -> the rating each use gave it
    school.timeline()   # (when, dimension, rating) points, oldest first

"The same data, repurposed in different ways": who else already uses a dataset, and what they found
wrong with it. Names an entry writes differently are one source when the vocabulary says so
(`Vocabulary.resolve_source`) or when they differ only in case, spacing or punctuation
(`kb.vocabulary.source_key`). Only published entries the viewer may see count: a source used only by
entries hidden from them answers like one that does not exist, and an anonymous entry's use never names
its team, whoever looks (`kb.access.listed_name`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kb.access import listed_name
from kb.browse import _reader, is_published, load_entries, rows
from kb.entries import QUALITY_DIMENSIONS, QUALITY_RATINGS, Entry, SourceQuality, slugify
from kb.errors import NotFound
from kb.vocabulary import Vocabulary, source_key

if TYPE_CHECKING:
    from kb.identity import User
    from kb.knowledge import KnowledgeBase

__all__ = ["Source", "SourceUse", "catalogue", "rating_score", "source", "source_id"]


def source_id(vocabulary: Vocabulary, name: str) -> str:
    """The catalogue's id for a data source's name: the vocabulary's id, else a slug of its source_key."""
    return vocabulary.resolve_source(name) or slugify(source_key(name) or name)


def rating_score(rating: str) -> int | None:
    """A rating's place on the scale, 1 (poor) to 4 (excellent): for charts and comparisons."""
    return QUALITY_RATINGS.index(rating) + 1 if rating in QUALITY_RATINGS else None


@dataclass(frozen=True)
class SourceUse:
    """One entry's use of a source, as the viewer may see it."""

    entry_id: str
    title: str
    organisation: str
    team: str  # "" for an anonymous entry, whoever looks (kb.access.listed_name)
    anonymous: bool
    name: str  # the source's name as this entry writes it
    evidence: str
    year: int | None
    quality: SourceQuality | None

    @property
    def when(self) -> str:
        """When the grades were given: the graded date, or failing that the year the work started."""
        if self.quality and self.quality.graded:
            return self.quality.graded
        return str(self.year) if self.year else ""


@dataclass(frozen=True)
class Source:
    """A data source and every use of it the viewer may see, oldest first."""

    id: str
    label: str
    definition: str
    uses: tuple[SourceUse, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """Every way the entries write this source's name, first seen first."""
        return tuple(dict.fromkeys(use.name for use in self.uses))

    @property
    def organisations(self) -> tuple[str, ...]:
        return tuple(sorted({use.organisation for use in self.uses if use.organisation}))

    @property
    def graded(self) -> tuple[SourceUse, ...]:
        return tuple(use for use in self.uses if use.quality and use.quality.grades)

    @property
    def lowest(self) -> str:
        """The worst rating any use gave on any dimension ("" if none graded it)."""
        ratings = [use.quality.lowest for use in self.graded if use.quality]
        return min(ratings, key=QUALITY_RATINGS.index) if ratings else ""

    def grid(self) -> dict[str, list[tuple[SourceUse, str, str]]]:
        """The grades side by side: for each dimension any use graded, (use, rating, note) per graded use
        ("" for a dimension that use did not grade), uses in the order of `graded`."""
        out: dict[str, list[tuple[SourceUse, str, str]]] = {}
        for dimension in QUALITY_DIMENSIONS:
            cells = []
            for use in self.graded:
                grade = use.quality.grades.get(dimension) if use.quality else None
                cells.append((use, grade.rating if grade else "", grade.note if grade else ""))
            if any(rating for _, rating, _ in cells):
                out[dimension] = cells
        return out

    def timeline(self) -> list[tuple[str, str, str, SourceUse]]:
        """How the grades changed over time: (when, dimension, rating, use) for every grade given, oldest
        first (a use with no date is left out: it cannot be placed in time)."""
        points = [
            (use.when, dimension, grade.rating, use)
            for use in self.graded
            if use.when and use.quality
            for dimension, grade in use.quality.grades.items()
        ]
        return sorted(points, key=lambda p: (p[0], QUALITY_DIMENSIONS.index(p[1]), p[3].entry_id))


def catalogue(kb: KnowledgeBase, viewer: User | None = None) -> list[Source]:
    """Every data source named by a published entry the viewer may see, most used first, then by name.
    Worked out once per reader on the index's snapshot (read-only to callers)."""
    return kb.view("sources", _reader(viewer), lambda: _catalogue(kb, viewer))


def source(kb: KnowledgeBase, wanted: str, viewer: User | None = None) -> Source:
    """One source by its catalogue id, or by any name of it. NotFound (one answer for missing and for used
    only where the viewer may not look)."""
    sources = catalogue(kb, viewer)
    key = source_id(kb.vocabulary, wanted)
    found = next((s for s in sources if s.id in (wanted, key)), None)
    if found is None:
        raise NotFound(f"no data source '{wanted}'")
    return found


def _catalogue(kb: KnowledgeBase, viewer: User | None) -> list[Source]:
    vocabulary = kb.vocabulary
    ids = [r.entry_id for r in rows(kb, viewer) if is_published(r.metadata.get("status"))]
    uses: dict[str, list[SourceUse]] = {}
    for entry in load_entries(kb, ids, viewer):
        seen: set[str] = set()
        for name in entry.data_sources:
            sid = source_id(vocabulary, name)
            if sid in seen:  # an entry listing one source twice, spelled two ways, uses it once
                continue
            seen.add(sid)
            uses.setdefault(sid, []).append(_use(entry, name))
    sources = []
    for sid, found in uses.items():
        term = vocabulary.source(sid)
        found.sort(key=lambda u: (u.when or "9999", u.title.lower()))
        sources.append(
            Source(
                id=sid,
                label=term.label if term else found[0].name,
                definition=term.definition if term else "",
                uses=tuple(found),
            )
        )
    return sorted(sources, key=lambda s: (-len(s.uses), -len(s.graded), s.label.lower()))


def _use(entry: Entry, name: str) -> SourceUse:
    return SourceUse(
        entry_id=entry.id,
        title=entry.title,
        organisation=entry.organisation,
        team=listed_name(entry, entry.team),
        anonymous=entry.anonymous,
        name=name,
        evidence=entry.evidence,
        year=entry.year,
        quality=entry.data_quality.get(name),
    )
