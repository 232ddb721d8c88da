"""Suggested themes for a draft: the vocabulary's themes nearest to what is being written, by meaning.

    suggest_themes(kb, title, summary, sections, viewer=user)   # [ThemeSuggestion(theme_id, label, score), ...]

Two signals, each a cosine similarity to the draft's vector (the mean of its title and summary and of
each section, as an entry's vector in the index is the mean of its passages):
- the theme's description: its label, definition and synonyms, embedded with the knowledge base's
  embedder and kept per embedder and vocabulary content (a changed vocabulary is embedded afresh);
- the entries already tagged with it: the centroid of their vectors in the index. Only published
  entries the viewer may see count, so a suggestion never tells of a hidden entry.

The score is `(1 - ENTRY_WEIGHT) * description + ENTRY_WEIGHT * entries` (a theme no visible entry
uses yet has its description's similarity on both sides). ENTRY_WEIGHT was chosen by measuring, not
guessing: `python -m bench themes` leaves each sample entry out in turn and measures precision@3 for
the description alone, the entries alone and the combination (docs/vocabulary.md).
"""

from __future__ import annotations

import hashlib
import json
import threading
import weakref
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from kb import browse
from kb.embedder import Embedder

if TYPE_CHECKING:
    from kb.identity import User
    from kb.knowledge import KnowledgeBase
    from kb.vocabulary import Theme

ENTRY_WEIGHT = 0.4  # measured by `python -m bench themes` (docs/vocabulary.md): best at 0.3 to 0.4
SUGGESTIONS = 3  # how many the form shows
MIN_TEXT = 8  # characters of title and summary before anything is suggested


@dataclass(frozen=True)
class ThemeSuggestion:
    theme_id: str
    label: str
    score: float


@dataclass(frozen=True)
class ThemeCentroids:
    """Per theme, the sum of the vectors of the entries tagged with it, and the vector and themes of each
    of those entries (to leave one out)."""

    sums: Mapping[str, np.ndarray]
    counts: Mapping[str, int]
    vectors: Mapping[str, np.ndarray]
    themes: Mapping[str, tuple[str, ...]]

    def centroid(self, theme_id: str, exclude: str | None = None) -> np.ndarray | None:
        """The unit centroid of the theme's entries, without `exclude`; None when no entry is left."""
        total, count = self.sums.get(theme_id), self.counts.get(theme_id, 0)
        if total is None:
            return None
        if exclude is not None and theme_id in self.themes.get(exclude, ()):
            total, count = total - self.vectors[exclude], count - 1
        if count <= 0:
            return None
        norm = float(np.linalg.norm(total))
        return total / norm if norm else None


def description(theme: Theme) -> str:
    """What a theme's description vector is made of: its label, definition and synonyms."""
    parts = [theme.label, theme.definition, ", ".join(theme.synonyms)]
    return ". ".join(p.strip().rstrip(".") for p in parts if p and p.strip())


# One cache per embedder, keyed by the vocabulary's content: dropped with the embedder, and a vocabulary
# that changes (another description) misses it and is embedded afresh.
_descriptions: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def description_vectors(embedder: Embedder, themes: list[Theme]) -> np.ndarray:
    """The themes' description vectors, one row per theme, in order."""
    texts = [description(t) for t in themes]
    digest = hashlib.sha256(json.dumps(texts).encode()).hexdigest()
    with _lock:
        kept = _descriptions.setdefault(embedder, {})
        if digest in kept:
            return kept[digest]
    vectors = np.asarray(embedder.embed(texts), dtype=np.float32) if texts else np.zeros((0, 0), np.float32)
    with _lock:
        kept.clear()  # only the vocabulary as it is now is worth keeping
        kept[digest] = vectors
    return vectors


def draft_vector(embedder: Embedder, title: str, summary: str = "", sections: Iterable[str] = ()) -> np.ndarray | None:
    """The draft's unit vector: the mean of its title and summary and of each section written; None when
    too little is written to say what it is about."""
    head = f"{title.strip()}\n{summary.strip()}".strip()
    if len(head) < MIN_TEXT:
        return None
    texts = [head, *(s.strip() for s in sections if s and s.strip())]
    mean = np.asarray(embedder.embed(texts), dtype=np.float32).mean(axis=0)
    norm = float(np.linalg.norm(mean))
    return mean / norm if norm else None


def theme_centroids(kb: KnowledgeBase, viewer: User | None) -> ThemeCentroids:
    """The centroids of the published entries this viewer may see, per theme; kept on the index's
    snapshot (kb.view) until the index changes."""
    return kb.view("theme-centroids", browse._reader(viewer), lambda: _centroids(kb, viewer))


def _centroids(kb: KnowledgeBase, viewer: User | None) -> ThemeCentroids:
    rows = {r.entry_id: r.metadata for r in browse.rows(kb, viewer) if browse.is_published(r.metadata.get("status"))}
    vectors = _entry_vectors(kb)
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    kept: dict[str, np.ndarray] = {}
    themes: dict[str, tuple[str, ...]] = {}
    for entry_id, meta in rows.items():
        vector = vectors.get(entry_id)
        tagged = tuple(dict.fromkeys(meta.get("themes") or ()))
        if vector is None or not tagged:
            continue
        kept[entry_id], themes[entry_id] = vector, tagged
        for theme_id in tagged:
            sums[theme_id] = sums.get(theme_id, 0) + vector
            counts[theme_id] = counts.get(theme_id, 0) + 1
    return ThemeCentroids(sums, counts, kept, themes)


def _entry_vectors(kb: KnowledgeBase) -> dict[str, np.ndarray]:
    """Every indexed entry's vector (the mean of its passages), read from the index once per snapshot."""

    def read() -> dict[str, np.ndarray]:
        records, vectors = kb.index.entries(include_vectors=True)
        return {r.entry_id: vectors[i] for i, r in enumerate(records)}

    return kb.view("entry-vectors", "", read)


def rank_themes(
    vector: np.ndarray,
    themes: list[Theme],
    descriptions: np.ndarray,
    centroids: ThemeCentroids,
    *,
    weight: float = ENTRY_WEIGHT,
    exclude: str | None = None,
) -> list[ThemeSuggestion]:
    """Every theme with its score for this draft vector, best first (ties by label)."""
    if not themes:
        return []
    by_description = descriptions @ vector
    scored = []
    for theme, own in zip(themes, by_description, strict=True):
        centroid = centroids.centroid(theme.id, exclude)
        by_entries = float(centroid @ vector) if centroid is not None else float(own)
        scored.append(ThemeSuggestion(theme.id, theme.label, (1 - weight) * float(own) + weight * by_entries))
    return sorted(scored, key=lambda s: (-s.score, s.label.lower()))


def suggest_themes(
    kb: KnowledgeBase,
    title: str,
    summary: str = "",
    sections: Iterable[str] = (),
    *,
    viewer: User | None = None,
    chosen: Iterable[str] = (),
    limit: int = SUGGESTIONS,
    exclude: str | None = None,
    weight: float = ENTRY_WEIGHT,
) -> list[ThemeSuggestion]:
    """The themes nearest to a draft (its title, summary and sections), best first, leaving out the themes
    already chosen and retired ones. `exclude` leaves an entry's own vector out of the themes' centroids
    (the entry being edited, or measured). Empty while too little is written."""
    vector = draft_vector(kb.embedder, title, summary, sections)
    themes = kb.vocabulary.offered
    if vector is None or not themes:
        return []
    ranked = rank_themes(
        vector,
        themes,
        description_vectors(kb.embedder, themes),
        theme_centroids(kb, viewer),
        weight=weight,
        exclude=exclude,
    )
    taken = set(chosen)
    return [s for s in ranked if s.theme_id not in taken][:limit]
