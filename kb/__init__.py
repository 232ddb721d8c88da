"""Lighthouse: a knowledge base of lessons learned and lighthouse projects."""

from kb.config import Settings
from kb.entries import Entry, Lighthouse
from kb.errors import Conflict, EntryError, KBError, NotFound, Problem, SavedNotIndexed
from kb.filters import Filters
from kb.knowledge import KnowledgeBase, SyncReport
from kb.search import Hit, SimilarHit

__all__ = [
    "Conflict",
    "Entry",
    "EntryError",
    "Filters",
    "Hit",
    "KBError",
    "KnowledgeBase",
    "Lighthouse",
    "NotFound",
    "Problem",
    "SavedNotIndexed",
    "Settings",
    "SimilarHit",
    "SyncReport",
]
__version__ = "0.1.0"
