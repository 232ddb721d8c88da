"""Lighthouses with a lifecycle: the history of a lighthouse's stage, its review-by date, the chain of
entries that reused it, and the map of organisations that worked together.

    entry = record_stage_change(edited, stored, reason="replicated by two councils")   # on an edit
    review_state(entry.lighthouse, today)      # "due", "missing" or "" (reviewed in time)
    due = due_for_review(kb, viewer)           # the published lighthouses this viewer may see that are due
    due = due_for(kb, viewer)                  # what this viewer hears of (kb.access: owners, curators)
    chain = reuse_chain(kb, "benefits-and-housing-data-sharing-pilot", viewer)
    graph = collaboration_map(kb, viewer)      # organisations, and the entries that join them

Everything here reads entries as one viewer may see them (kb.access's rules, through the knowledge
base): a hidden entry never adds a step, a node or an edge.
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections import Counter
from dataclasses import dataclass, field, replace
from itertools import combinations
from typing import TYPE_CHECKING

from kb import access
from kb.browse import PUBLISHED, load_entries, rows
from kb.entries import Entry, Reuse, StageChange
from kb.errors import KBError

if TYPE_CHECKING:
    from kb.entries import Lighthouse
    from kb.identity import User
    from kb.knowledge import KnowledgeBase

RETIRED = "retired"  # a lighthouse that has run its course: never due for review
DUE = "due"  # past its review-by date
MISSING = "missing"  # no review-by date: every lighthouse should have one, so it counts as due
SHARED = "shared project"
REUSED = "reused"


# --------------------------------------------------------------------------- stage history


def record_stage_change(edited: Entry, stored: Entry | None, reason: str = "", today: str | None = None) -> Entry:
    """An edit of `stored` (None for a new entry) with the lighthouse's history carried over, and a step
    added to it with today's date and `reason` when the lighthouse is new (its first stage: the reason is
    optional) or the edit changes its stage (the reason is then required: KBError without it). What the edit
    does not say of an earlier reuse (its date, its benefit) is kept from `stored`; a reuse added without a
    date is dated this month."""
    new = edited.lighthouse
    old = stored.lighthouse if stored is not None else None
    if new is None:
        return edited
    today = today or dt.date.today().isoformat()
    history = list(new.history) or list(old.history if old else ())
    before = old.reuse if old else {}
    reuse = {}
    for i in new.reused_by:
        said, kept = new.reuse.get(i) or Reuse(), before.get(i) or Reuse()
        known = Reuse(said.date or kept.date, said.benefit or kept.benefit)
        if not known.date and (old is None or i not in old.reused_by):
            known = replace(known, date=today[:7])  # taken up now, as far as anyone said
        if known.date or known.benefit:
            reuse[i] = known
    if old is None or old.stage != new.stage:
        reason = " ".join((reason or "").split())
        if old is not None and not reason:
            raise KBError(
                f"say why this lighthouse moved from {old.stage} to {new.stage}: the reason is kept in its history"
            )
        if old is not None or not history or history[-1].stage != new.stage:
            history.append(StageChange(new.stage, today, reason))
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
    is due too), "" while it is in time, for a retired lighthouse (nothing left to review) or for an entry
    that is not a lighthouse."""
    if lighthouse is None or lighthouse.stage == RETIRED:
        return ""
    if not lighthouse.review_by:
        return MISSING
    return DUE if last_day(lighthouse.review_by) < (today or dt.date.today()) else ""


def owners_are_told(entry: Entry) -> bool:
    """Whether the owner and curators hear of this lighthouse when it is due (in their digest): only a
    published one is told of; a draft or an entry in review is not, yet."""
    return entry.status in PUBLISHED


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


def due_for(kb: KnowledgeBase, viewer: User | None, today: dt.date | None = None) -> list[Due]:
    """What this person hears about (kb.access's rules): every lighthouse due for review that they may see,
    if they hear of every one (curators); otherwise the ones they own."""
    due = due_for_review(kb, viewer, today)
    if access.hears_of_every_due_lighthouse(viewer):
        return due
    return [d for d in due if access.owns_lighthouse(viewer, d.entry)]


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
        wanted = access.organisation_key(organisation)
        return next((n.entries for n in self.nodes if access.organisation_key(n.organisation) == wanted), ())

    def edge(self, a: str, b: str) -> Edge | None:
        pair = {access.organisation_key(a), access.organisation_key(b)}
        return next(
            (e for e in self.edges if {access.organisation_key(e.source), access.organisation_key(e.target)} == pair),
            None,
        )

    def partners_of(self, organisation: str) -> list[str]:
        """The organisations this one is joined to, by name."""
        wanted = access.organisation_key(organisation)
        return [
            other
            for e in self.edges
            for this, other in ((e.source, e.target), (e.target, e.source))
            if access.organisation_key(this) == wanted
        ]


def collaboration_map(kb: KnowledgeBase, viewer: User | None = None) -> CollaborationMap:
    """Organisations as nodes, joined where they shared a published entry (its organisation and partners)
    or one reused another's lighthouse; only entries this viewer may see take part. An organisation is one
    node whatever the case and spacing of its name (kb.access.organisation_key), shown as most entries
    spell it."""
    ids = [r.entry_id for r in rows(kb, viewer) if r.metadata.get("status") in PUBLISHED]
    entries = {e.id: e for e in load_entries(kb, ids, viewer)}
    spellings: dict[str, Counter[str]] = {}

    def key(name: str) -> str:
        found = access.organisation_key(name)
        if found:
            spellings.setdefault(found, Counter())[" ".join(name.split())] += 1
        return found

    members: dict[str, list[str]] = {}
    shared: dict[tuple[str, str], list[str]] = {}
    reuses: dict[tuple[str, str], list[tuple[str, str]]] = {}
    for entry in entries.values():
        organisations = [o for o in dict.fromkeys(key(o) for o in [entry.organisation, *entry.partners]) if o]
        for organisation in organisations:
            members.setdefault(organisation, []).append(entry.id)
        for a, b in combinations(sorted(organisations), 2):
            shared.setdefault((a, b), []).append(entry.id)
    for entry in entries.values():
        if entry.lighthouse is None:
            continue
        own = access.organisation_key(entry.organisation)
        for other_id in entry.lighthouse.reused_by:
            other = entries.get(other_id)  # hidden or unpublished: no edge
            theirs = access.organisation_key(other.organisation) if other is not None else ""
            if not theirs or not own or theirs == own:
                continue
            first, second = sorted((own, theirs))
            reuses.setdefault((first, second), []).append((entry.id, other_id))
    name = {k: sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))[0][0] for k, c in spellings.items()}
    nodes = [Node(name[k], tuple(sorted(set(i)))) for k, i in sorted(members.items())]
    edges = []
    for a, b in sorted(set(shared) | set(reuses)):
        source, target = sorted((name[a], name[b]))
        edges.append(
            Edge(source, target, tuple(sorted(set(shared.get((a, b), ())))), tuple(sorted(set(reuses.get((a, b), ())))))
        )
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
