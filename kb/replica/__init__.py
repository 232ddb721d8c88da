"""The local replica of the vector index (kb.replica.folder.Replica) and its parts: segments (segment), each
with its passages' texts and vectors (corpus), keyword files (keywords) and entry records (records); the
live rows across segments (rows), the searches and reads answered from them (reads), the spool a sync
fills (spool) and the checks of its files (files)."""

from kb.replica.corpus import Block, Corpus, EntryPassages, VectorMatch, split_passage_id
from kb.replica.files import FORMAT_VERSION, KeywordIndexDamaged
from kb.replica.folder import Replica, same_but
from kb.replica.keywords import KeywordMatch
from kb.replica.records import EntryTable, UnsupportedClause
from kb.replica.spool import Additions

__all__ = [
    "FORMAT_VERSION",
    "Additions",
    "Block",
    "Corpus",
    "EntryPassages",
    "EntryTable",
    "KeywordIndexDamaged",
    "KeywordMatch",
    "Replica",
    "UnsupportedClause",
    "VectorMatch",
    "same_but",
    "split_passage_id",
]
