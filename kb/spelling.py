"""Did you mean: a query's misspelt words replaced by words the collection itself uses.

A word of the query that no passage holds ("sharring", "agrement") is replaced by the most frequent
word of the collection one edit away from it (a letter dropped, added, changed or two swapped), or,
failing that, by its closest long look-alike. Short words, numbers and words the collection holds are
left alone, so a suggestion is offered only where a word is really unknown.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping

MIN_LENGTH = 4  # shorter words are acronyms and names more often than typos ("DSA", "RAP")
MIN_COUNT = 2  # a word used once may be a typo itself: never suggested
LETTERS = "abcdefghijklmnopqrstuvwxyz"
_WORD = re.compile(r"[^\W\d_]+")


def suggest(query: str, counts: Mapping[str, int]) -> str | None:
    """The query with its unknown words corrected, or None when there is nothing to correct."""
    changed = False

    def fix(match: re.Match) -> str:
        nonlocal changed
        word = match.group(0)
        better = correction(word.lower(), counts)
        if better is None:
            return word
        changed = True
        return better.capitalize() if word[:1].isupper() and word[1:].islower() else better

    suggested = _WORD.sub(fix, query)
    return suggested if changed else None


def correction(word: str, counts: Mapping[str, int]) -> str | None:
    """The collection's word for a lowercased word it does not hold; None when it holds it, when it is
    too short to judge, or when nothing is close enough."""
    if len(word) < MIN_LENGTH or counts.get(word, 0) > 0:
        return None
    near = [w for w in _one_edit(word) if counts.get(w, 0) >= MIN_COUNT]
    if near:
        return max(near, key=lambda w: (counts[w], w))
    pool = [w for w, n in counts.items() if n >= MIN_COUNT and w[:1] == word[:1] and abs(len(w) - len(word)) <= 2]
    close = difflib.get_close_matches(word, pool, n=1, cutoff=0.8)
    return close[0] if close else None


def _one_edit(word: str) -> set[str]:
    splits = [(word[:i], word[i:]) for i in range(len(word) + 1)]
    deletes = [a + b[1:] for a, b in splits if b]
    swaps = [a + b[1] + b[0] + b[2:] for a, b in splits if len(b) > 1]
    replaces = [a + c + b[1:] for a, b in splits if b for c in LETTERS]
    inserts = [a + c + b for a, b in splits for c in LETTERS]
    return set(deletes + swaps + replaces + inserts) - {word}
