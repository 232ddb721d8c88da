"""The glossary: every theme of the vocabulary, with how much it is used, as one viewer may count it.

    for term in glossary(kb, viewer=user):
        term.label, term.definition, term.synonyms, term.entries, term.organisations

Counts are over the published entries this viewer may see (kb.browse.rows): an entry hidden from them
never adds to a count, so the glossary tells nothing of it. Organisations are the ones that led an entry
or took part in it as partners. Retired themes are left out.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from kb import browse
from kb.filters import Filters

if TYPE_CHECKING:
    from kb.identity import User
    from kb.knowledge import KnowledgeBase


@dataclass(frozen=True)
class GlossaryTerm:
    theme_id: str
    label: str
    definition: str
    synonyms: tuple[str, ...]
    entries: int
    organisations: int

    def search(self) -> browse.SearchRequest:
        """The search that lists this theme's entries."""
        return browse.SearchRequest(facets=Filters.of(theme=self.theme_id))


def usage(kb: KnowledgeBase, viewer: User | None = None) -> dict[str, tuple[int, set[str]]]:
    """Per theme id: how many published entries this viewer may see use it, and their organisations."""
    counts: dict[str, tuple[int, set[str]]] = {}
    for row in browse.rows(kb, viewer):
        meta = row.metadata
        if not browse.is_published(meta.get("status")):
            continue
        organisations = {o for o in [meta.get("organisation"), *(meta.get("partners") or [])] if o}
        for theme_id in dict.fromkeys(meta.get("themes") or ()):
            entries, orgs = counts.get(theme_id, (0, set()))
            counts[theme_id] = (entries + 1, orgs | organisations)
    return counts


def glossary(kb: KnowledgeBase, viewer: User | None = None) -> list[GlossaryTerm]:
    """Every theme that may still be chosen, in label order, with its use among what the viewer may see."""
    used = usage(kb, viewer)
    terms = []
    for theme in kb.vocabulary.offered:
        entries, organisations = used.get(theme.id, (0, set()))
        terms.append(
            GlossaryTerm(theme.id, theme.label, theme.definition, tuple(theme.synonyms), entries, len(organisations))
        )
    return sorted(terms, key=lambda t: t.label.lower())
