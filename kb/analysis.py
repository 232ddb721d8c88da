"""Words as the keyword side sees them, the one rule for texts and queries alike.

- `words(text)`: every word in order, lowercased: runs of letters and digits, so spacing and
  punctuation between words never matter. A quoted phrase matches where its words stand next to
  each other in this order (`contains_phrases`); the keyword index answers the same rule from word
  positions (kb.replica.keywords), never by reading texts.
- `term(word)`: what BM25 counts for a word: its English stem, or None for a stop word or a single
  character, which are not scored. `tokenize` gives a text's terms, the same for passages and queries.
- `meaningful(word)`: whether a reader would call the word part of what was asked. Fewer words are
  meaningful than are scored: "what", "could", "should" and the other function words are scored (so
  scores stay bm25s's) but never marked in a passage; `marked_terms` gives the stems worth marking.

The terms are bm25s's ("\\w\\w+" words, its English stop words, PyStemmer's English stemmer), so
scores agree with bm25s's own on the same texts.
"""

from __future__ import annotations

import functools
import re

import Stemmer
from bm25s.stopwords import STOPWORDS_EN, STOPWORDS_EN_PLUS

WORD = re.compile(r"\w+")
STOP_WORDS = frozenset(STOPWORDS_EN)
# Words that say how something is asked, not what about: NLTK's English stop words (which hold bm25s's)
# and the modal verbs and pronouns that list leaves out ("what could we do for ...").
FUNCTION_WORDS = frozenset(STOPWORDS_EN_PLUS) | {
    "also",
    "cannot",
    "could",
    "may",
    "might",
    "must",
    "shall",
    "us",
    "would",
}
_STEMMER = Stemmer.Stemmer("english")


def words(text: str) -> list[str]:
    """The text's words in order, lowercased."""
    return WORD.findall(text.lower())


@functools.lru_cache(maxsize=1 << 18)
def term(word: str) -> str | None:
    """The term BM25 counts for a lowercased word, or None when it is not scored."""
    if len(word) < 2 or word in STOP_WORDS:
        return None
    return _STEMMER.stemWord(word)


def meaningful(word: str) -> bool:
    """Whether a lowercased word is part of what a query is about: scored, and not a function word."""
    return word not in FUNCTION_WORDS and term(word) is not None


def marked_terms(query: str) -> frozenset[str]:
    """The stems of the query's meaningful words: a passage's word is marked when its stem is one of them
    (so "agreements" is marked for "agreement", and "could" never is)."""
    return frozenset(term(w) for w in words(query) if meaningful(w))  # type: ignore[misc]


def tokenize(texts: list[str]) -> list[list[str]]:
    """Each text's scored terms, in order (a repeated word counts again)."""
    return [[t for t in map(term, words(text)) if t is not None] for text in texts]


def phrase_words(phrase: str) -> list[str]:
    """A quoted phrase as the words a passage must hold next to each other, in order."""
    return words(phrase)


def contains_phrases(text: str, phrases: list[str] | tuple[str, ...]) -> bool:
    """True when the text holds every phrase: its words next to each other, in order, whole words."""
    held = words(text)
    return all(_holds(held, phrase_words(p)) for p in phrases)


def _holds(held: list[str], wanted: list[str]) -> bool:
    if not wanted:
        return True
    n = len(wanted)
    return any(held[i : i + n] == wanted for i, w in enumerate(held) if w == wanted[0])
