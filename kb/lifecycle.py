"""Lighthouses with a lifecycle: the history of a lighthouse's stage, its review-by date, the chain of
entries that reused it, and the map of organisations that worked together.

    entry = record_stage_change(edited, stored, reason="replicated by two councils")   # on an edit
    review_state(entry.lighthouse, today)      # "due", "missing" or "" (reviewed in time)
    due = due_for_review(kb, viewer)           # the published lighthouses this viewer may see that are due
    chain = reuse_chain(kb, "benefits-and-housing-data-sharing-pilot", viewer)
    graph = collaboration_map(kb, viewer)      # organisations, and the entries that join them

Everything here reads entries as one viewer may see them (kb.access's rules, through the knowledge
base): a hidden entry never adds a step, a node or an edge.
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import TYPE_CHECKING

from kb.access import is_author
from kb.browse import PUBLISHED, load_entries, rows
from kb.entries import Entry, Reuse, StageChange
from kb.errors import KBError
from kb.identity import CURATOR

if TYPE_CHECKING:
    from kb.entries import Lighthouse
    from kb.identity import User
    from kb.knowledge import KnowledgeBase

DUE = "due"  # past its review-by date
MISSING = "missing"  # no review-by date: every lighthouse should have one, so it counts as due
SHARED = "shared project"
REUSED = "reused"


# --------------------------------------------------------------------------- stage history


def record_stage_change(edited: Entry, stored: Entry | None, reason: str = "", today: str | None = None) -> Entry:
    """An edit of `stored` with the lighthouse's history carried over, and a step added to it when the edit
    changes the stage: today's date and `reason`, which is then required (KBError without it). What the
    edit does not say of an earlier reuse (its date and benefit) is kept from `stored` too."""
    new = edited.lighthouse
    old = stored.lighthouse if stored is not None else None
    if new is None:
        return edited
    history = list(new.history) or list(old.history if old else ())
    reuse = {i: r for i, r in (old.reuse.items() if old else ()) if i in new.reused_by} | new.reuse
    if old is None or old.stage != new.stage:
        reason = " ".join((reason or "").split())
        if old is not None and not reason:
            raise KBError(
                f"say why this lighthouse moved from {old.stage} to {new.stage}: the reason is kept in its history"
            )
        if reason:
            history.append(StageChange(new.stage, today or dt.date.today().isoformat(), reason))
    return replace(edited, lighthouse=replace(new, history=history, reuse=reuse))


def timeline(lighthouse: Lighthouse) -> list[StageChange]:
    """The stage history, oldest first (dates as written: YYYY, YYYY-MM or YYYY-MM-DD)."""
    return sorted(lighthouse.history, key=lambda h: h.date)


# --------------------------------------------------------------------------- review-by dates


def last_day(date: str) -> dt.date:
    """The last day a date written as YYYY, YYYY-MM or YYYY-MM-DD stands for: "review by 2026-03" means by
    the end of March 2026."""
    parts = [int(p) for p in date.split("-")]
    if len(parts) == 1:
        return dt.date(parts[0], 12, 31)
    if len(parts) == 2:
        return dt.date(parts[0], parts[1], calendar.monthrange(parts[0], parts[1])[1])
    return dt.date(*parts)


def review_state(lighthouse: Lighthouse | None, today: dt.date | None = None) -> str:
    """ "due" once the review-by date has passed, "missing" when there is none (it should have one, so it
    is due too), "" while it is in time or for an entry that is not a lighthouse."""
    if lighthouse is None:
        return ""
    if not lighthouse.review_by:
        return MISSING
    return DUE if last_day(lighthouse.review_by) < (today or dt.date.today()) else ""


def is_owner(user: User | None, entry: Entry) -> bool:
    """Whether this person owns the entry's lighthouse: its author (kb.access's rule, by name), or the
    person whose e-mail address is its contact (the more reliable key, where the entry gives one)."""
    if user is None:
        return False
    email = (user.email or "").strip().lower()
    return is_author(user, entry) or (bool(email) and entry.contact.strip().lower() == email)


@dataclass(frozen=True)
class Due:
    """A published lighthouse due for review, as one viewer may see it."""

    entry: Entry
    state: str  # DUE or MISSING

    @property
    def review_by(self) -> str:
        return self.entry.lighthouse.review_by if self.entry.lighthouse else ""


def due_for_review(kb: KnowledgeBase, viewer: User | None, today: dt.date | None = None) -> list[Due]:
    """The published lighthouses this viewer may see that are due for review, longest overdue first (those
    with no date at all first of all)."""
    ids = [
        r.entry_id for r in rows(kb, viewer) if r.metadata.get("lighthouse") and r.metadata.get("status") in PUBLISHED
    ]
    found = []
    for entry in load_entries(kb, ids, viewer):
        state = review_state(entry.lighthouse, today)
        if state:
            found.append(Due(entry, state))
    return sorted(found, key=lambda d: (d.state != MISSING, d.review_by, d.entry.title.lower()))


def due_for(kb: KnowledgeBase, viewer: User, today: dt.date | None = None) -> list[Due]:
    """What this person hears about in their digest: every lighthouse due for review that they may see, if
    they are a curator; otherwise the ones they own."""
    due = due_for_review(kb, viewer, today)
    if viewer.has_role(CURATOR):
        return due
    return [d for d in due if is_owner(viewer, d.entry)]


# --------------------------------------------------------------------------- reuse chains


@dataclass(frozen=True)
class ReuseStep:
    """One reuse in a chain: `entry_id` reused `reused`, on `date`, with `benefit`; `depth` 1 for a direct
    reuse of the lighthouse, 2 for a reuse of a reuse, and so on."""

    entry_id: str
    title: str
    organisation: str
    reused: str  # the id of the entry it reused
    date: str = ""
    benefit: str = ""
    depth: int = 1


def reuse_chain(kb: KnowledgeBase, entry_id: str, viewer: User | None = None, *, limit: int = 100) -> list[ReuseStep]:
    """Who reused this lighthouse, and who reused them in turn, as this viewer may see them: breadth first,
    each entry once (a cycle stops where it comes back), then in date order (undated last)."""
    try:
        start = kb.get(entry_id, viewer=viewer)
    except KBError:
        return []
    seen = {start.id}
    steps: list[ReuseStep] = []
    frontier = [(start, 1)]
    while frontier and len(steps) < limit:
        source, depth = frontier.pop(0)
        lighthouse = source.lighthouse
        if lighthouse is None:
            continue
        for other in load_entries(kb, [i for i in lighthouse.reused_by if i not in seen], viewer):
            if other.id in seen:
                continue
            seen.add(other.id)
            known = lighthouse.reuse.get(other.id) or Reuse()
            steps.append(
                ReuseStep(other.id, other.title, other.organisation, source.id, known.date, known.benefit, depth)
            )
            frontier.append((other, depth + 1))
    return sorted(steps, key=lambda s: (not s.date, s.date, s.depth, s.title.lower()))


# --------------------------------------------------------------------------- the collaboration map


@dataclass(frozen=True)
class Node:
    organisation: str
    entries: tuple[str, ...]  # ids of the entries it led or took part in


@dataclass(frozen=True)
class Edge:
    """Two organisations and what joins them: entries they shared, and reuses of one's lighthouse by the
    other (lighthouse id, reusing entry id)."""

    source: str
    target: str
    shared: tuple[str, ...] = ()
    reuses: tuple[tuple[str, str], ...] = ()

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(k for k, v in ((SHARED, self.shared), (REUSED, self.reuses)) if v)

    @property
    def entries(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([*self.shared, *(i for pair in self.reuses for i in pair)]))


@dataclass(frozen=True)
class CollaborationMap:
    nodes: list[Node]
    edges: list[Edge]
    titles: dict[str, str] = field(default_factory=dict)  # entry id -> title, for every entry named

    def entries_of(self, organisation: str) -> tuple[str, ...]:
        return next((n.entries for n in self.nodes if n.organisation == organisation), ())

    def edge(self, a: str, b: str) -> Edge | None:
        pair = tuple(sorted((a, b)))
        return next((e for e in self.edges if (e.source, e.target) == pair), None)


def collaboration_map(kb: KnowledgeBase, viewer: User | None = None) -> CollaborationMap:
    """Organisations as nodes, joined where they shared a published entry (its organisation and partners)
    or one reused another's lighthouse; only entries this viewer may see take part."""
    ids = [r.entry_id for r in rows(kb, viewer) if r.metadata.get("status") in PUBLISHED]
    entries = {e.id: e for e in load_entries(kb, ids, viewer)}
    members: dict[str, list[str]] = {}
    shared: dict[tuple[str, str], list[str]] = {}
    reuses: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for entry in entries.values():
        organisations = [o for o in dict.fromkeys([entry.organisation, *entry.partners]) if o]
        for organisation in organisations:
            members.setdefault(organisation, []).append(entry.id)
        for a, b in combinations(sorted(organisations), 2):
            shared.setdefault((a, b), []).append(entry.id)
    for entry in entries.values():
        if entry.lighthouse is None:
            continue
        for other_id in entry.lighthouse.reused_by:
            other = entries.get(other_id)  # hidden or unpublished: no edge
            if other is None or not other.organisation or other.organisation == entry.organisation:
                continue
            first, second = sorted((entry.organisation, other.organisation))
            reuses.setdefault((first, second), []).append((entry.id, other.id))
    nodes = [Node(o, tuple(sorted(set(i)))) for o, i in sorted(members.items(), key=lambda m: m[0].lower())]
    edges = [
        Edge(a, b, tuple(sorted(set(shared.get((a, b), ())))), tuple(sorted(set(reuses.get((a, b), ())))))
        for a, b in sorted(set(shared) | set(reuses))
    ]
    return CollaborationMap(nodes, edges, {i: e.title for i, e in entries.items()})


def circle_layout(names: list[str]) -> dict[str, tuple[float, float]]:
    """Each name a point on a unit circle, in the order given, the first at the top: a layout that is the
    same on every run."""
    import math

    count = max(len(names), 1)
    return {
        name: (round(math.sin(2 * math.pi * n / count), 6), round(math.cos(2 * math.pi * n / count), 6))
        for n, name in enumerate(names)
    }
