"""Browsing the collection: search requests, facet counts, newest entries, lighthouses, review, insights.

What the web app's pages need, as plain functions over a KnowledgeBase (no streamlit here):

    request = SearchRequest.from_params({"q": "DSA", "outcome": ["failed", "stopped"]})
    results = find(kb, request, user)      # hits, facet counts, newest entries
    cards = lighthouses(kb, stages=("proven",))
    approve(kb, "some-entry", reviewer, expected_version)

Facet counts, the showcase and the charts read one snapshot of the index's entry metadata, kept for a
few seconds per knowledge base and dropped by `invalidate(kb)` after every write the app makes.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
import time
import weakref
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from kb.entries import KINDS, LIGHTHOUSE_STAGES, OUTCOMES, STATUSES, Entry
from kb.errors import KBError
from kb.plan import PlanResult, plan_search
from kb.search import Filters, Hit

if TYPE_CHECKING:
    from kb.identity import User
    from kb.knowledge import KnowledgeBase

# Search modes as the app names them, and the library mode each one runs.
SEARCH_MODES = {"hybrid": "hybrid", "keyword": "bm25", "meaning": "dense", "plan": "hybrid"}
PLAN_MODE = "plan"  # the query is a project plan: each part is searched, failures first
MAX_QUERY_CHARS = 20_000  # room for a whole pasted project plan
PUBLISHED = ("published",)
FAILED = ("failed", "stopped")
FACETS = ("organisation", "theme", "outcome", "kind", "year", "lighthouse", "status")
SNAPSHOT_SECONDS = 30.0  # changes made outside this process (CLI, another replica) show up within this


# --------------------------------------------------------------------------- snapshot


@dataclass
class _Snapshot:
    rows: list[Any]
    taken: float


_snapshots: weakref.WeakKeyDictionary[Any, _Snapshot] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def rows(kb: KnowledgeBase) -> list[Any]:
    """Every indexed entry (id and facet metadata), from a snapshot at most SNAPSHOT_SECONDS old."""
    with _lock:
        snap = _snapshots.get(kb)
        if snap is None or time.monotonic() - snap.taken > SNAPSHOT_SECONDS:
            snap = _Snapshot(list(kb.index.entries()), time.monotonic())
            _snapshots[kb] = snap
        return snap.rows


def invalidate(kb: KnowledgeBase) -> None:
    """Forget the snapshot, after a save, an approval or a sync."""
    with _lock:
        _snapshots.pop(kb, None)


def matches(meta: Mapping[str, Any], filters: Filters) -> bool:
    """Whether an entry's metadata passes the filters: the same rules as `Filters.where` in Chroma."""
    for name in ("organisation", "kind", "outcome", "status", "evidence"):
        allowed = getattr(filters, name)
        if allowed and meta.get(name) not in allowed:
            return False
    if filters.theme and not set(filters.theme) & set(meta.get("themes") or ()):
        return False
    if filters.lighthouse is not None and bool(meta.get("lighthouse")) != bool(filters.lighthouse):
        return False
    year = meta.get("year")
    if filters.year_from is not None and (year is None or year < filters.year_from):
        return False
    return not (filters.year_to is not None and (year is None or year > filters.year_to))


# --------------------------------------------------------------------------- search requests


def _values(params: Mapping[str, Any], key: str) -> list[str]:
    value = params.get(key)
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    return [str(v).strip() for v in items if str(v).strip()]


def _year(params: Mapping[str, Any], key: str) -> int | None:
    values = _values(params, key)
    return int(values[-1]) if values and values[-1].isdigit() and len(values[-1]) == 4 else None


@dataclass(frozen=True)
class SearchRequest:
    """What the search page shows: the query, the mode and the facet filters. Lives in the URL."""

    query: str = ""
    mode: str = "hybrid"
    organisation: tuple[str, ...] = ()
    theme: tuple[str, ...] = ()
    outcome: tuple[str, ...] = ()
    kind: tuple[str, ...] = ()
    status: tuple[str, ...] = ()  # empty: published only
    year_from: int | None = None
    year_to: int | None = None
    lighthouse: bool | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Any]) -> SearchRequest:
        """From URL query parameters; unknown values are dropped rather than failing the page."""
        query = " ".join(_values(params, "q"))[:MAX_QUERY_CHARS]
        mode = (_values(params, "mode") or ["hybrid"])[-1].lower()
        flag = (_values(params, "lighthouse") or [""])[-1].lower()
        return cls(
            query=query.strip(),
            mode=mode if mode in SEARCH_MODES else "hybrid",
            organisation=tuple(dict.fromkeys(_values(params, "organisation"))),
            theme=tuple(dict.fromkeys(_values(params, "theme"))),
            outcome=tuple(v for v in dict.fromkeys(_values(params, "outcome")) if v in OUTCOMES),
            kind=tuple(v for v in dict.fromkeys(_values(params, "kind")) if v in KINDS),
            status=tuple(v for v in dict.fromkeys(_values(params, "status")) if v in STATUSES),
            year_from=_year(params, "from"),
            year_to=_year(params, "to"),
            lighthouse={"yes": True, "no": False}.get(flag),
        )

    def to_params(self) -> dict[str, str | list[str]]:
        """URL query parameters, leaving out everything at its default so links stay short."""
        params: dict[str, str | list[str]] = {}
        if self.query:
            params["q"] = self.query
        if self.mode != "hybrid":
            params["mode"] = self.mode
        for name in ("organisation", "theme", "outcome", "kind", "status"):
            values = getattr(self, name)
            if values:
                params[name] = list(values)
        if self.year_from is not None:
            params["from"] = str(self.year_from)
        if self.year_to is not None:
            params["to"] = str(self.year_to)
        if self.lighthouse is not None:
            params["lighthouse"] = "yes" if self.lighthouse else "no"
        return params

    def filters(self) -> Filters:
        return Filters.of(
            organisation=self.organisation,
            theme=self.theme,
            outcome=self.outcome,
            kind=self.kind,
            status=self.status or PUBLISHED,
            lighthouse=self.lighthouse,
            year_from=self.year_from,
            year_to=self.year_to,
        )

    @property
    def has_filters(self) -> bool:
        return self.clear_filters() != self

    def clear_filters(self) -> SearchRequest:
        return SearchRequest(query=self.query, mode=self.mode)

    def for_user(self, user: User | None) -> SearchRequest:
        """Only reviewers may look beyond published entries (drafts, entries in review)."""
        if user is not None and user.is_reviewer:
            return self
        return replace(self, status=())


@dataclass
class SearchResults:
    """Everything the search page renders for one request."""

    request: SearchRequest
    hits: list[Hit] = field(default_factory=list)
    facets: dict[str, list[tuple[Any, int]]] = field(default_factory=dict)
    in_scope: int = 0  # entries the filters allow
    unfiltered: int | None = None  # on zero results: hits for the same query without the facet filters
    newest: list[Entry] = field(default_factory=list)  # without a query: the newest entries in scope
    plan: PlanResult | None = None  # in plan mode: prior lessons grouped by outcome, per part of the plan
    seconds: float = 0.0


def find(
    kb: KnowledgeBase, request: SearchRequest, user: User | None = None, *, limit: int = 20, newest_limit: int = 5
) -> SearchResults:
    """Run one search page request: hits for the query (or the newest entries), and facet counts."""
    started = time.perf_counter()
    request = request.for_user(user)
    filters = request.filters()
    results = SearchResults(request, facets=facet_counts(kb, filters))
    results.in_scope = sum(1 for r in rows(kb) if matches(r.metadata, filters))
    if request.query and request.mode == PLAN_MODE:
        results.plan = plan_search(kb, request.query, limit=limit, filters=filters)
        results.hits = [m.hit for g in results.plan.groups for m in g.matches]
    elif request.query:
        mode = SEARCH_MODES[request.mode]
        results.hits = kb.search(request.query, limit=limit, filters=filters, mode=mode)
        if not results.hits and request.has_filters:
            wider = request.clear_filters().for_user(user)
            results.unfiltered = len(kb.search(request.query, limit=limit, filters=wider.filters(), mode=mode))
    else:
        results.newest = newest(kb, limit=limit if request.has_filters else newest_limit, filters=filters)
    results.seconds = time.perf_counter() - started
    return results


# --------------------------------------------------------------------------- facets


def _facet_values(meta: Mapping[str, Any], facet: str) -> list[Any]:
    if facet == "theme":
        return list(meta.get("themes") or ())
    if facet == "lighthouse":
        return [bool(meta.get("lighthouse"))]
    value = meta.get(facet)
    return [] if value in (None, "") else [value]


def _without(filters: Filters, facet: str) -> Filters:
    if facet == "year":
        return replace(filters, year_from=None, year_to=None)
    if facet == "lighthouse":
        return replace(filters, lighthouse=None)
    return replace(filters, **{facet: ()})


def facet_counts(kb: KnowledgeBase, filters: Filters | None = None) -> dict[str, list[tuple[Any, int]]]:
    """(value, entries) for every facet, most entries first (years newest first).

    Each facet is counted with every other filter applied but not its own, so choosing one theme
    still shows how many entries each other theme would add.
    """
    filters = filters or Filters.of(status=PUBLISHED)
    data = rows(kb)
    out: dict[str, list[tuple[Any, int]]] = {}
    for facet in FACETS:
        relaxed = _without(filters, facet)
        counts: Counter[Any] = Counter()
        for row in data:
            if matches(row.metadata, relaxed):
                counts.update(_facet_values(row.metadata, facet))
        if facet == "year":
            out[facet] = sorted(counts.items(), key=lambda kv: -kv[0])
        else:
            out[facet] = sorted(counts.items(), key=lambda kv: (-kv[1], str(kv[0])))
    return out


# --------------------------------------------------------------------------- entries by date


def _load(kb: KnowledgeBase, ids: Iterable[str]) -> list[Entry]:
    """The entries with these ids, skipping any that vanished or broke since they were indexed."""
    entries = []
    for entry_id in ids:
        try:
            entries.append(kb.get(entry_id))
        except KBError:
            continue
    return entries


def newest(kb: KnowledgeBase, *, limit: int = 5, filters: Filters | None = None) -> list[Entry]:
    """The most recently written or updated entries within the filters (published ones by default)."""
    filters = filters or Filters.of(status=PUBLISHED)
    chosen = [r for r in rows(kb) if matches(r.metadata, filters)]
    ranked = sorted(chosen, key=lambda r: (str(r.metadata.get("written", "")), r.entry_id), reverse=True)
    return _load(kb, [r.entry_id for r in ranked[:limit]])


# --------------------------------------------------------------------------- lighthouses


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


def lighthouses(kb: KnowledgeBase, *, themes: Sequence[str] = (), stages: Sequence[str] = ()) -> list[LighthouseCard]:
    """Published lighthouse entries in the themes and stages asked for, most reused first."""
    filters = Filters.of(status=PUBLISHED, lighthouse=True, theme=tuple(themes))
    ids = [
        r.entry_id
        for r in rows(kb)
        if matches(r.metadata, filters) and (not stages or r.metadata.get("lighthouse_stage") in stages)
    ]
    entries = [e for e in _load(kb, ids) if e.lighthouse is not None]
    reused_ids = [i for e in entries for i in e.lighthouse.reused_by]
    titles = {i: str(m.get("title") or i) for i, m in kb.index.metadata_of(reused_ids).items()}
    cards = [
        LighthouseCard(
            entry=e,
            organisations=tuple(dict.fromkeys([e.organisation, *e.partners])),
            reused_by=tuple((i, titles.get(i, i)) for i in e.lighthouse.reused_by),
        )
        for e in entries
    ]
    return sorted(cards, key=lambda c: (-c.reuse_count, LIGHTHOUSE_STAGES.index(c.stage), c.entry.title.lower()))


def board(cards: Iterable[LighthouseCard]) -> dict[str, list[LighthouseCard]]:
    """The cards in one column per stage, every stage present, in the lifecycle's order."""
    columns: dict[str, list[LighthouseCard]] = {stage: [] for stage in LIGHTHOUSE_STAGES}
    for card in cards:
        columns.setdefault(card.stage, []).append(card)
    return columns


# --------------------------------------------------------------------------- review


@dataclass(frozen=True)
class QueueItem:
    """An entry waiting for review, with the file version the reviewer saw."""

    entry: Entry
    version: str
    submitted: str


def review_queue(kb: KnowledgeBase) -> list[QueueItem]:
    """Entries in review, oldest first. Status is read from the files, which are the source of truth."""
    ids = [r.entry_id for r in rows(kb) if r.metadata.get("status") == "in-review"]
    items = []
    for entry in _load(kb, ids):
        version = kb.store.version(entry.id)
        if entry.status == "in-review" and version is not None:
            items.append(QueueItem(entry, version, max(entry.updated, entry.created)))
    return sorted(items, key=lambda item: (item.submitted or "9999", item.entry.id))


def _today() -> str:
    return dt.date.today().isoformat()


def _reviewable(kb: KnowledgeBase, entry_id: str) -> Entry:
    entry = kb.get(entry_id)
    if entry.status != "in-review":
        raise KBError(
            f"'{entry.title}' is no longer in review (it is now {entry.status}); someone else may have handled it"
        )
    return entry


def approve(kb: KnowledgeBase, entry_id: str, reviewer: User, expected_version: str | None = None) -> Entry:
    """Publish an entry in review. Refuses if the file changed since the reviewer read it."""
    entry = _reviewable(kb, entry_id)
    entry.status, entry.reviewer, entry.review_comment, entry.updated = "published", reviewer.name, "", _today()
    saved = kb.save(entry, expected_version=expected_version)
    invalidate(kb)
    return saved


def send_back(
    kb: KnowledgeBase, entry_id: str, reviewer: User, comment: str, expected_version: str | None = None
) -> Entry:
    """Return an entry to its author as a draft, keeping the reviewer's comment on the entry."""
    comment = comment.strip()
    if not comment:
        raise KBError("write a comment so the author knows what to change")
    entry = _reviewable(kb, entry_id)
    entry.status, entry.reviewer, entry.review_comment, entry.updated = "draft", reviewer.name, comment, _today()
    saved = kb.save(entry, expected_version=expected_version)
    invalidate(kb)
    return saved


# --------------------------------------------------------------------------- insights


@dataclass
class Insights:
    """Counts for the insights page, as tables ready to chart."""

    entries: int
    lighthouses: int
    organisations: int
    failed_share: float  # of all entries in scope, failed or stopped
    by_organisation: pd.DataFrame
    by_theme: pd.DataFrame
    by_outcome: pd.DataFrame
    by_year: pd.DataFrame
    failures_by_theme: pd.DataFrame


def insights(kb: KnowledgeBase, filters: Filters | None = None) -> Insights:
    """Entries by organisation, theme, outcome and year, and where experiments keep failing."""
    filters = filters or Filters.of(status=PUBLISHED)
    metas = [r.metadata for r in rows(kb) if matches(r.metadata, filters)]
    label = kb.vocabulary.label
    orgs = Counter(str(m.get("organisation", "")) for m in metas)
    outcomes = Counter(str(m.get("outcome", "")) for m in metas)
    years = Counter((int(m["year"]), str(m.get("outcome", ""))) for m in metas if m.get("year") is not None)
    themes: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    for m in metas:
        for theme in m.get("themes") or ():
            themes[theme] += 1
            failed[theme] += m.get("outcome") in FAILED
    theme_rows = [(t, label(t), n, failed[t], failed[t] / n) for t, n in themes.items()]
    return Insights(
        entries=len(metas),
        lighthouses=sum(1 for m in metas if m.get("lighthouse")),
        organisations=len(orgs),
        failed_share=(sum(outcomes[o] for o in FAILED) / len(metas)) if metas else 0.0,
        by_organisation=_table(orgs.most_common(), ["organisation", "entries"]),
        by_theme=_table(
            sorted(((t, label(t), n) for t, n in themes.items()), key=lambda r: (-r[2], r[1])),
            ["theme", "label", "entries"],
        ),
        by_outcome=_table([(o, outcomes[o]) for o in OUTCOMES if outcomes[o]], ["outcome", "entries"]),
        by_year=_table(sorted((y, o, n) for (y, o), n in years.items()), ["year", "outcome", "entries"]),
        failures_by_theme=_table(
            sorted(theme_rows, key=lambda r: (-r[4], -r[2], r[1])),
            ["theme", "label", "entries", "failed_or_stopped", "share"],
        ),
    )


def _table(data: list[tuple], columns: list[str]) -> pd.DataFrame:
    return pd.DataFrame(data, columns=columns)


def project_2d(vectors: np.ndarray) -> np.ndarray:
    """Principal-component projection to two dimensions, with a deterministic sign per axis."""
    n = len(vectors)
    if n == 0:
        return np.zeros((0, 2), dtype=np.float32)
    centred = np.asarray(vectors, dtype=np.float64) - np.mean(vectors, axis=0)
    if n == 1 or not np.any(centred):
        return np.zeros((n, 2), dtype=np.float32)
    _, _, components = np.linalg.svd(centred, full_matrices=False)
    axes = components[:2]
    signs = np.sign(axes[np.arange(len(axes)), np.argmax(np.abs(axes), axis=1)])
    coords = centred @ (axes * signs[:, None]).T
    if coords.shape[1] < 2:  # one meaningful direction only
        coords = np.hstack([coords, np.zeros((n, 2 - coords.shape[1]))])
    return coords.astype(np.float32)


def collection_map(kb: KnowledgeBase, filters: Filters | None = None) -> pd.DataFrame:
    """One point per entry: the entry vectors projected to 2-D, with title, first theme and outcome."""
    filters = filters or Filters.of(status=PUBLISHED)
    indexed, vectors = kb.index.entries(filters.where(), include_vectors=True)
    coords = project_2d(vectors)
    label = kb.vocabulary.label
    data = [
        {
            "id": e.entry_id,
            "title": str(e.metadata.get("title", e.entry_id)),
            "theme": label(e.metadata["themes"][0]) if e.metadata.get("themes") else "No theme",
            "organisation": str(e.metadata.get("organisation", "")),
            "outcome": str(e.metadata.get("outcome", "")),
            "x": float(coords[i, 0]),
            "y": float(coords[i, 1]),
        }
        for i, e in enumerate(indexed)
    ]
    return pd.DataFrame(data, columns=["id", "title", "theme", "organisation", "outcome", "x", "y"])


# --------------------------------------------------------------------------- display


_IMAGE = re.compile(r"!\[")


def safe_markdown(text: str) -> str:
    """User Markdown made safe to show: images become links (nothing is fetched from elsewhere) and
    dollar signs stay money rather than starting a formula."""
    return _IMAGE.sub(r"\\![", text).replace("$", r"\$")


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>$~:])")


def plain(text: str) -> str:
    """A short user-written value (a title, an organisation) escaped so Markdown shows it exactly as typed."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(str(text).split()))


def titles(kb: KnowledgeBase, entry_ids: Sequence[str]) -> list[tuple[str, str, str]]:
    """(id, title, outcome) of the indexed entries among these ids, in the order given."""
    meta = kb.index.metadata_of(list(entry_ids)) if entry_ids else {}
    return [(i, str(meta[i].get("title", i)), str(meta[i].get("outcome", ""))) for i in entry_ids if i in meta]


def entry_choices(kb: KnowledgeBase) -> dict[str, str]:
    """Every indexed entry's id and title, by title: the options for "related" and "reused by"."""
    pairs = ((r.entry_id, str(r.metadata.get("title", r.entry_id))) for r in rows(kb))
    return dict(sorted(pairs, key=lambda p: p[1].lower()))


def known_organisations(kb: KnowledgeBase) -> list[str]:
    """Every organisation named in the collection, as lead or partner, alphabetically."""
    names = set()
    for r in rows(kb):
        names.add(str(r.metadata.get("organisation", "")))
        names.update(str(p) for p in r.metadata.get("partners") or ())
    return sorted(n for n in names if n)
