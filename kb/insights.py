"""Insights: counts of entries by organisation, theme, outcome and year, and a 2-D map of the collection.

    data = insights(kb)          # tables ready to chart
    points = collection_map(kb)  # one point per entry, its vector projected to 2-D
    failures_search("data-quality", data.grouped_by)  # the search behind a "where we keep failing" bar

Counts read the browse snapshot of the index's entry metadata; the map reads the vectors (no streamlit here).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from kb.access import visible_where
from kb.browse import FAILED, PUBLISHED, SearchRequest, _reader, rows
from kb.entries import NOT_RECORDED, OUTCOMES
from kb.errors import KBError
from kb.filters import Filters, predicate

if TYPE_CHECKING:
    from kb.identity import User
    from kb.knowledge import KnowledgeBase


@dataclass
class Insights:
    """Counts for the insights page, as tables ready to chart."""

    entries: int
    lighthouses: int
    organisations: int
    failed_share: float  # of the entries in scope that record an outcome, failed or stopped
    by_organisation: pd.DataFrame
    by_theme: pd.DataFrame
    by_outcome: pd.DataFrame
    by_year: pd.DataFrame
    failures_by_theme: pd.DataFrame
    grouped_by: str = "theme"  # "tag" for a collection without themes (an imported register's topics)
    recorded: int = 0  # entries that record how their work turned out (an imported register may not)


def insights(kb: KnowledgeBase, filters: Filters | None = None, *, viewer: User | None = None) -> Insights:
    """Entries by organisation, theme (or tag, where no entry has a theme), outcome and year, and where
    experiments keep failing. An entry whose outcome is not recorded is counted as such, never as a
    failure nor a success: shares of failures are of the entries that record an outcome."""
    filters = filters or Filters.of(status=PUBLISHED)
    chosen = predicate(filters.where())
    metas = [r.metadata for r in rows(kb, viewer) if chosen(r.metadata)]
    # Themes are the common language; a collection with none (an imported register) is charted by its tags.
    grouped_by = "theme" if any(m.get("themes") for m in metas) else "tag"
    field, label = ("themes", kb.vocabulary.label) if grouped_by == "theme" else ("tags", str)
    orgs = Counter(str(m.get("organisation", "")) for m in metas)
    outcomes = Counter(str(m.get("outcome", "")) for m in metas)
    years = Counter((int(m["year"]), str(m.get("outcome", ""))) for m in metas if m.get("year") is not None)
    themes: Counter[str] = Counter()
    failed: Counter[str] = Counter()
    judged: Counter[str] = Counter()  # entries of a theme that record their outcome
    for m in metas:
        for theme in m.get(field) or ():
            themes[theme] += 1
            if m.get("outcome") != NOT_RECORDED:
                judged[theme] += 1
                failed[theme] += m.get("outcome") in FAILED
    theme_rows = [(t, label(t), n, failed[t], failed[t] / n) for t, n in judged.items()]
    recorded = len(metas) - outcomes[NOT_RECORDED]
    return Insights(
        entries=len(metas),
        lighthouses=sum(1 for m in metas if m.get("lighthouse")),
        organisations=len(orgs),
        failed_share=(sum(outcomes[o] for o in FAILED) / recorded) if recorded else 0.0,
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
        grouped_by=grouped_by,
        recorded=recorded,
    )


def failures_search(theme: str, grouped_by: str = "theme") -> SearchRequest:
    """The search that lists the entries behind one bar of "where do we keep failing": those with this
    theme (or tag, for a collection charted by its tags) whose work failed or was stopped."""
    if grouped_by not in ("theme", "tag"):
        raise ValueError(f"failures are grouped by theme or tag, not {grouped_by!r}")
    return SearchRequest(facets=Filters.of(outcome=FAILED, **{grouped_by: theme}))


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


def collection_map(kb: KnowledgeBase, filters: Filters | None = None, *, viewer: User | None = None) -> pd.DataFrame:
    """One point per entry the viewer may see: entry vectors projected to 2-D, with title, theme and outcome.
    In a collection without themes (an imported register), the "theme" column holds the entry's most used
    tag among the collection's MAP_TAGS most used ones ("Other tags" or "No tag" otherwise)."""
    filters = filters or Filters.of(status=PUBLISHED)
    visible = visible_where(viewer)
    indexed, vectors = kb.index.entries(filters.where([visible] if visible else []), include_vectors=True)
    coords = project_2d(vectors)
    group = _map_group(kb, [e.metadata for e in indexed])
    data = [
        {
            "id": e.entry_id,
            "title": str(e.metadata.get("title", e.entry_id)),
            "theme": group(e.metadata),
            "organisation": str(e.metadata.get("organisation", "")),
            "outcome": str(e.metadata.get("outcome", "")),
            "x": float(coords[i, 0]),
            "y": float(coords[i, 1]),
        }
        for i, e in enumerate(indexed)
    ]
    return pd.DataFrame(data, columns=["id", "title", "theme", "organisation", "outcome", "x", "y"])


MAP_TAGS = 9  # a themeless collection's map is coloured by its most used tags; the rest share one colour


def _map_group(kb: KnowledgeBase, metas: list[dict]) -> Callable[[dict], str]:
    """What colours an entry's point: its first theme; in a collection without themes, its most used tag."""
    if any(m.get("themes") for m in metas) or not any(m.get("tags") for m in metas):
        label = kb.vocabulary.label
        return lambda m: label(m["themes"][0]) if m.get("themes") else "No theme"
    used = Counter(tag for m in metas for tag in dict.fromkeys(m.get("tags") or ()))
    rank = {tag: n for n, (tag, _) in enumerate(sorted(used.items(), key=lambda kv: (-kv[1], kv[0]))[:MAP_TAGS])}

    def most_used_tag(meta: dict) -> str:
        tags = [t for t in meta.get("tags") or () if t in rank]
        if tags:
            return str(min(tags, key=rank.__getitem__))
        return "Other tags" if meta.get("tags") else "No tag"

    return most_used_tag


# --------------------------------------------------------------------------- lessons we keep re-learning

RELEARN_SCANNED = 300  # entries looked at for near-duplicates; past that, only entries with evidence notes


def relearned(kb: KnowledgeBase, *, viewer: User | None = None, limit: int = 10) -> pd.DataFrame:
    """ "Lessons we keep re-learning": published entries the viewer may see, ranked by their evidence notes
    plus their near-duplicates from other organisations (entries whose similar-projects match is close by
    kb.relevance's threshold). Notes are counted, never named, so an anonymous note tells nobody whose it
    is. Computed once per index generation and reader (a note re-indexes its entry, so it moves it)."""
    from kb.relevance import close_similarity

    metas = {r.entry_id: r.metadata for r in rows(kb, viewer) if r.metadata.get("status") in PUBLISHED}
    threshold = close_similarity(kb.embedder.name)
    key = f"{_reader(viewer)}|{limit}|{threshold}"

    def compute() -> pd.DataFrame:
        counted = {e: len(n) for e, n in kb.note_store.all()[0].items() if e in metas}
        scanned = list(metas) if len(metas) <= RELEARN_SCANNED else list(counted)
        near: Counter[str] = Counter()
        if threshold is not None:
            for entry_id in scanned:
                own = str(metas[entry_id].get("organisation", ""))
                try:
                    hits = kb.similar(entry_id, limit=10, filters=Filters.of(status=PUBLISHED), viewer=viewer)
                except KBError:
                    continue
                near[entry_id] = sum(1 for h in hits if h.score >= threshold and h.organisation != own)
        data = [
            (e, str(metas[e].get("title", e)), str(metas[e].get("organisation", "")), notes, near[e], notes + near[e])
            for e in metas
            if (notes := counted.get(e, 0)) + near[e] > 0
        ]
        data.sort(key=lambda r: (-r[5], -r[3], r[1]))
        return _table(data[:limit], ["id", "title", "organisation", "notes", "near_duplicates", "score"])

    return kb.view("relearned", key, compute)
