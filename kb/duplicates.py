"""The duplicate check while drafting: the published entries closest to what is being written.

    hits = looks_similar(kb, title, summary, exclude=edit_id, viewer=user)   # [Hit, ...], at most 3
    key_terms(f"{title} {summary}")                                          # the words to mark in each hit

Only published entries count, as the viewer may see them (the knowledge base's search applies the access rules): the submit
page offers to add evidence to one of them rather than write a duplicate.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from kb import browse
from kb.filters import Filters
from kb.search import Hit

if TYPE_CHECKING:
    from kb.identity import User
    from kb.knowledge import KnowledgeBase


def key_terms(text: str, min_length: int = 5) -> str:
    """The longer words of a draft, to mark in a similar passage: short words are mostly "and", "the", "we"."""
    return " ".join(dict.fromkeys(w for w in re.findall(r"\w+", text) if len(w) >= min_length))


def looks_similar(
    kb: KnowledgeBase,
    title: str,
    summary: str,
    *,
    exclude: str | None = None,
    limit: int = 3,
    viewer: User | None = None,
) -> list[Hit]:
    """The published entries closest to a draft's title and summary, for the duplicate check."""
    text = f"{title.strip()}\n{summary.strip()}".strip()
    if len(text) < 8:  # too little to compare yet
        return []
    hits = kb.search(text, limit=limit + 1, filters=Filters.of(status=browse.PUBLISHED), viewer=viewer)
    return [h for h in hits if h.id != exclude][:limit]
