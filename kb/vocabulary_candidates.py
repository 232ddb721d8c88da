"""Candidate terms: what nobody recognises, offered to curators as a synonym or a new theme.

    candidate_terms(kb, curator)            # searches and entry themes that name no theme

A candidate is a theme written in entries that the vocabulary does not know (only from entries the curator
may see: a term that comes only from hidden entries is not listed at all), or a search from the search log
that named no theme and found no close result. It only reads; adding a candidate is a change of the
vocabulary like any other (kb.vocabulary_edits). Who may see them is kb.access's `keeps_the_vocabulary`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from kb.access import can_see, entry_meta, require_keeps_the_vocabulary
from kb.entries import slugify
from kb.errors import KBError
from kb.vocabulary import _key

if TYPE_CHECKING:
    from kb.identity import User
    from kb.knowledge import KnowledgeBase
    from kb.searchlog import SearchSummary

CANDIDATE_SEARCHES = 200  # unmatched searches looked at for candidate terms


@dataclass(frozen=True)
class Candidate:
    """A term nobody recognises: written as a theme in entries, or searched for with no close result and no
    theme named; with the entries (id, title) and the searches it came from."""

    term: str
    entries: tuple[tuple[str, str], ...] = ()
    searches: tuple[SearchSummary, ...] = ()

    @property
    def weight(self) -> int:
        return len(self.entries) + sum(s.searches for s in self.searches)

    @property
    def suggested_id(self) -> str:
        return slugify(self.term)


@dataclass(frozen=True)
class Candidates:
    items: list[Candidate]
    searches_problem: str = ""  # why the search log could not be read (entries' terms are still listed)


def candidate_terms(kb: KnowledgeBase, viewer: User | None, *, days: int = 30, limit: int = 30) -> Candidates:
    """Terms nobody recognises, most used first: themes written in entries that the vocabulary does not
    know (only from entries the viewer may see), and searches that named no theme and found no close
    result. A search log that cannot be read leaves the entries' terms, and says why."""
    from kb.searchlog import search_log

    require_keeps_the_vocabulary(viewer, "see the candidate terms")
    vocabulary = kb.vocabulary
    terms: dict[str, dict[str, Any]] = {}
    for entry_id, entry in sorted(kb.store.load().entries.items()):
        if not can_see(viewer, entry_meta(entry)):
            continue  # nothing of a hidden entry: not its id, its title nor its term
        for name in entry.themes:
            if vocabulary.resolve(name) is None and _key(name):
                found = terms.setdefault(_key(name), {"term": name, "entries": {}, "searches": []})
                found["entries"][entry_id] = entry.title
    problem = ""
    try:
        unmatched = search_log(kb.settings).searches(days=days, unmatched=True, limit=CANDIDATE_SEARCHES)
    except KBError as exc:
        unmatched, problem = [], str(exc)
    for search in unmatched:
        if not _key(search.query) or vocabulary.names_a_theme(search.query) or vocabulary.resolve(search.query):
            continue
        found = terms.setdefault(_key(search.query), {"term": search.query, "entries": {}, "searches": []})
        found["searches"].append(search)
    items = [Candidate(t["term"], tuple(t["entries"].items()), tuple(t["searches"])) for t in terms.values()]
    items.sort(key=lambda c: (-c.weight, c.term.casefold()))
    return Candidates(items[:limit], problem)


__all__ = ["Candidate", "Candidates", "candidate_terms"]
