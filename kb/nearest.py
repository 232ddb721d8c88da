"""Finding the k nearest passages a filter allows: the plan behind every search by meaning.

    nearest = NearestPassages(parts, mirror)
    nearest.find(vectors, k, where, entries_where=where)                       # a list of matches per vector
    nearest.find(vectors, k, where, entries_where=where, keep=lambda m: ...)   # of passages `keep` accepts

Access rules never filter after the cut: the k are taken over what the viewer may see. Vectors that fit
in memory are searched there exactly; a narrow filter is searched exactly over the replica's copy of its
entries' vectors; a broad one asks Chroma for more neighbours without the clause and keeps the allowed
ones (see `find`).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import numpy as np

from kb.mirror import Mirror
from kb.parts import Parts
from kb.vector_index import PassageMatch

OVERFETCH = 3  # nearest passages asked for without a filter, per passage needed with it
DEEPER_FETCH = 10  # ... and how many times that again when too few of them were allowed


class NearestPassages:
    """The k nearest passages to query vectors within a filter, over the replica or the vector index."""

    def __init__(self, parts: Parts, mirror: Mirror):
        self.parts = parts
        self.mirror = mirror

    def in_memory(self) -> bool:
        """Whether a search by meaning is answered from the vectors held in memory (`_exact_in_memory`)."""
        # Not the entry table itself: a first search at 100,000 entries builds it while the model loads.
        return self.mirror.current and self.mirror.replica.holds_vectors_in_memory()

    def find(
        self,
        vectors: np.ndarray,
        k: int,
        where: dict[str, Any] | None,
        *,
        entries_where: dict[str, Any] | None = None,
        keep: Callable[[PassageMatch], bool] | None = None,
        texts: bool = True,
    ) -> list[list[PassageMatch]]:
        """The k nearest passages to each vector among those `where` allows, as Chroma's filtered query
        gives them, but fast on a large collection. With `texts` False the matches may come without
        their text (only when nothing here needs it: `keep` is None); every match has its section.

        Chroma evaluates a `where` clause over the metadata of every passage before it searches: at
        400,000 passages that takes seconds. So the clause is split in two that together say what
        `where` says: `entries_where` picks entries (all of them when None), run on the entry table in
        memory, and `keep` picks passages. Then:
        - a narrow choice (few passages allowed): exact search among just those passages, over the
          keyword index's copy of their vectors, or by Chroma among their ids where there is no copy;
        - a broad one: OVERFETCH times k neighbours without the clause, keeping the allowed ones. When
          at least k survive they are exactly the k nearest allowed passages: any allowed passage
          further out ranks below all of them. When fewer survive, DEEPER_FETCH times as many.
        Where neither answers, Chroma's filtered query does. Nothing outside the clause is returned.
        """
        if where is None or entries_where is not None:
            in_memory = self._exact_in_memory(vectors, k, entries_where, keep, texts or keep is not None)
            if in_memory is not None:
                return in_memory
        if where is None:
            return [kept for kept, _ in self._query(vectors, k, k)]
        allowed = self.mirror.allowed_entries(entries_where) if entries_where is not None else None
        wanted = k if keep is None else k * OVERFETCH
        narrow = self.mirror.narrow_choice(entries_where) if entries_where is not None else None
        if narrow is not None:
            found = self._exact_among(vectors, wanted, k, narrow.entry_ids, allowed, keep)
            if found is None:
                found = self._query(vectors, wanted, k, ids=narrow.passage_ids, allowed=allowed, keep=keep)
            exhausted = narrow.passages
        else:
            wanted = k * OVERFETCH
            found = self._query(vectors, wanted, k, allowed=allowed, keep=keep)
            exhausted = None
        results: list[list[PassageMatch] | None] = []
        for kept, returned in found:
            complete = returned < wanted or (exhausted is not None and returned >= exhausted)
            results.append(kept if len(kept) >= k or complete else None)
        missing = [i for i, r in enumerate(results) if r is None]
        if missing and narrow is not None:
            # `keep` turned down most of the nearest: rank every passage of the chosen entries instead.
            retry = self._exact_among(vectors[missing], narrow.passages, k, narrow.entry_ids, allowed, keep)
            for i, (kept, _) in zip(missing, retry or [], strict=False):
                results[i] = kept
            missing = [i for i, r in enumerate(results) if r is None]
        if missing and narrow is None:
            # Too few allowed among the nearest (a passage deep in a cluster the clause excludes): a
            # deeper walk without the clause costs tens of milliseconds, Chroma's filtered query a second.
            deeper = wanted * DEEPER_FETCH
            retry = self._query(vectors[missing], deeper, k, allowed=allowed, keep=keep)
            for i, (kept, returned) in zip(missing, retry, strict=True):
                results[i] = kept if len(kept) >= k or returned < deeper else None
            missing = [i for i, r in enumerate(results) if r is None]
        if missing:
            for i, matches in zip(missing, self.parts.index.query(vectors[missing], k, where), strict=True):
                results[i] = matches
        return results  # type: ignore[return-value]

    def _query(
        self,
        vectors: np.ndarray,
        fetch: int,
        take: int,
        *,
        ids: list[str] | None = None,
        allowed: frozenset[str] | None = None,
        keep: Callable[[PassageMatch], bool] | None = None,
    ) -> list[tuple[list[PassageMatch], int]]:
        """Chroma's `fetch` nearest passages to each vector (among `ids`) without a clause: the first
        `take` of them whose entry is `allowed` and that `keep` accepts, and how many Chroma returned.

        While the local mirror is current, Chroma returns ids and distances only, and just the passages
        kept are filled in with their text and section from the mirror: filling 300 neighbours cost
        more than finding them.
        """
        table = self.mirror.table()
        if table is not None:
            light = self.parts.index.query(vectors, fetch, None, ids, light=True)
            filled = [self._fill(matches, table, take, allowed, keep) for matches in light]
            if all(f is not None for f in filled):
                return [(f, len(matches)) for f, matches in zip(filled, light, strict=True)]  # type: ignore[misc]
        return [
            (_accepted(matches, take, allowed, keep), len(matches))
            for matches in self.parts.index.query(vectors, fetch, None, ids)
        ]

    def _exact_in_memory(
        self,
        vectors: np.ndarray,
        k: int,
        entries_where: dict[str, Any] | None,
        keep: Callable[[PassageMatch], bool] | None,
        texts: bool,
    ) -> list[list[PassageMatch]] | None:
        """The k nearest passages to each vector among the allowed entries' and that `keep` accepts, by
        exact search over every vector held in memory, while the mirror is current and its vectors fit
        (None otherwise). Exact, so no neighbour is missed, and for a collection of this size faster
        than asking Chroma: a matrix product over tens of thousands of rows takes a millisecond."""
        if not self.in_memory():
            return None
        table, replica = self.mirror.table(), self.mirror.replica
        if table is None:  # a write elsewhere moved the mark since `in_memory` looked: not mirrored now
            return None
        allowed = self.mirror.allowed_entries(entries_where) if entries_where is not None else None
        fetch = k if keep is None else k * OVERFETCH
        found = replica.nearest(vectors, None, fetch, allowed_entries=allowed)
        if found is not None and not texts:
            return [_light(matches) for matches in found]
        results: list[list[PassageMatch]] = []
        for i, matches in enumerate(found or []):
            size = fetch
            kept = self._fill(_light(matches), table, k, None, keep)
            while kept is not None and len(kept) < k and len(matches) == size:
                size *= DEEPER_FETCH  # `keep` turned down most of the nearest: look further
                (matches,) = replica.nearest(vectors[i : i + 1], None, size, allowed_entries=allowed) or [[]]
                kept = self._fill(_light(matches), table, k, None, keep)
            if kept is None:
                return None
            results.append(kept)
        return results if found is not None else None

    def _exact_among(
        self,
        vectors: np.ndarray,
        fetch: int,
        take: int,
        entry_ids: list[str],
        allowed: frozenset[str] | None,
        keep: Callable[[PassageMatch], bool] | None,
    ) -> list[tuple[list[PassageMatch], int]] | None:
        """`_query` among these entries' passages, answered by exact search over the keyword index's
        copy of the vectors while it mirrors the index; None where it cannot answer.

        Chroma answers a long id list with a filtered walk of its graph, which at 400,000 passages
        costs tens of milliseconds more than reading 12,000 vectors and one matrix product.
        """
        table = self.mirror.table()
        local = self.mirror.replica.nearest(vectors, entry_ids, fetch) if table is not None else None
        if local is None:
            return None
        found = []
        for matches in local:
            filled = self._fill(_light(matches), table, take, allowed, keep)
            if filled is None:
                return None
            found.append((filled, len(matches)))
        return found

    def _fill(
        self,
        matches: list[PassageMatch],
        table,
        take: int,
        allowed: frozenset[str] | None,
        keep: Callable[[PassageMatch], bool] | None,
    ) -> list[PassageMatch] | None:
        """The first `take` accepted matches, text and section filled from the mirror (None: not mirrored)."""
        kept: list[PassageMatch] = []
        for m in matches:
            if len(kept) == take:
                break
            if allowed is not None and m.entry_id not in allowed:
                continue
            held = self.mirror.replica.passage(m.passage_id)
            if held is None or m.entry_id not in table.position:
                return None
            section, text = held
            filled = PassageMatch(m.passage_id, m.entry_id, section, text, m.similarity)
            if keep is None or keep(filled):
                kept.append(filled)
        return kept


def _light(matches) -> list[PassageMatch]:
    """The replica's vector matches (each with its section) as passage matches whose text is still to be
    filled in."""
    return [PassageMatch(m.passage_id, m.entry_id, m.section, "", m.similarity) for m in matches]


def _accepted(
    matches: list[PassageMatch],
    take: int,
    allowed: frozenset[str] | None,
    keep: Callable[[PassageMatch], bool] | None,
) -> list[PassageMatch]:
    accepted = (m for m in matches if (allowed is None or m.entry_id in allowed) and (keep is None or keep(m)))
    return list(itertools.islice(accepted, take))
