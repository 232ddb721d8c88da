"""Chroma's database file, shared in one process by two copies of SQLite.

    with chroma_call():       # every call into Chroma (kb.vector_index, kb.chroma_client)
        collection.query(...)
    with own_read():          # every read of chroma.sqlite3 with Python's sqlite3 (kb.chroma_checks)
        db = sqlite3.connect(...); ...; db.close()

Chroma's Rust core carries its own copy of SQLite. POSIX locks belong to the process, not to a copy or a
descriptor: when Python's sqlite3 closes its descriptor of the file, or ends a read, the locks Chroma's
copy holds on it at that moment are gone too (sqlite.org/howtocorrupt.html, "multiple copies of
SQLite"), and another process could write under a transaction Chroma has under way. Chroma keeps the
file in rollback-journal mode, where an idle connection holds no lock. So the calls Lighthouse makes
and its own reads take turns: any number of calls at once, or one read with no call under way. A read
waits for the calls under way to end, and new calls wait for a read that is waiting or running, so a
steady stream of searches cannot keep a read out; a call made inside another call on the same thread
never waits (it would wait for itself). A search therefore pauses while a check reads the file: the
quick check of a large store during a sync takes seconds. Asking for a read inside a call on the same
thread, or for a call inside a read, is a mistake and raises `TurnMisuse`.

The metadata watch (kb.chroma_metadata) keeps its connection only while chromadb is not loaded, when
there are no calls to take turns with. Work Chroma's core may do on threads of its own is not covered.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_turns = threading.Condition()
_calls = 0  # Chroma calls under way, on any thread
_reader: int | None = None  # the thread reading the file with its own sqlite3, while one does
_waiting = 0  # reads waiting for the calls under way to end
_depth = threading.local()  # per thread: calls and reads it is inside


class TurnMisuse(RuntimeError):
    """A read asked for inside a Chroma call on the same thread, or a call inside a read: a bug, never
    damage (kb.chroma_client.is_chroma_failure does not count it as Chroma failing)."""


def _inside(kind: str) -> int:
    return getattr(_depth, kind, 0)


@contextmanager
def chroma_call() -> Iterator[None]:
    """A call into embedded Chroma: it waits while this process reads the file with its own sqlite3."""
    global _calls
    if _inside("reads"):
        raise TurnMisuse("a Chroma call inside a read of its database file with sqlite3")
    nested = _inside("calls") > 0
    with _turns:
        while _reader is not None or (_waiting and not nested):
            _turns.wait()
        _calls += 1
    _depth.calls = _inside("calls") + 1
    try:
        yield
    finally:
        _depth.calls -= 1
        with _turns:
            _calls -= 1
            if _calls == 0:
                _turns.notify_all()


@contextmanager
def own_read() -> Iterator[None]:
    """A read of Chroma's database file with Python's sqlite3, connection closed before it ends: alone."""
    global _reader, _waiting
    if _inside("reads"):  # already reading on this thread: the turn is ours
        _depth.reads += 1
        try:
            yield
        finally:
            _depth.reads -= 1
        return
    if _inside("calls"):
        raise TurnMisuse("Chroma's database file read with sqlite3 inside a Chroma call: it would wait for itself")
    with _turns:
        _waiting += 1
        try:
            while _calls or _reader is not None:
                _turns.wait()
        finally:
            _waiting -= 1
        _reader = threading.get_ident()
    _depth.reads = 1
    try:
        yield
    finally:
        _depth.reads = 0
        with _turns:
            _reader = None
            _turns.notify_all()
