"""Chroma's database file, shared in one process by two copies of SQLite.

    with chroma_call():       # every call into embedded Chroma (kb.vector_index, kb.chroma_client)
        collection.query(...)
    with own_read():          # every read of chroma.sqlite3 with Python's sqlite3 (kb.chroma_checks)
        db = sqlite3.connect(...); ...; db.close()

Chroma's Rust core carries its own copy of SQLite. POSIX locks belong to the process, not to a copy or a
descriptor: when Python's sqlite3 closes its descriptor of the file, or ends a read, the locks Chroma's
copy holds on it at that moment are gone too (sqlite.org/howtocorrupt.html, "multiple copies of
SQLite"), and another process could write under a transaction Chroma has under way. Chroma keeps the
file in rollback-journal mode, where an idle connection holds no lock. So the two take turns: any number
of Chroma calls at once, or one read of the file by this process's own sqlite3 with no Chroma call under
way. A read waits for the calls under way to end; calls wait while a read runs (the quick check of a
large store: seconds, during a sync). Calls never wait for a read that is only waiting, so a call made
inside another call cannot deadlock; a read asked for inside a Chroma call on the same thread is a
mistake, and raises rather than waiting forever.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

_turns = threading.Condition()
_calls = 0  # Chroma calls under way, on any thread
_reader: int | None = None  # the thread reading the file with its own sqlite3, while one does
_depth = threading.local()  # per thread: calls and reads it is inside


def _inside(kind: str) -> int:
    return getattr(_depth, kind, 0)


@contextmanager
def chroma_call() -> Iterator[None]:
    """A call into embedded Chroma: it waits while this process reads the file with its own sqlite3."""
    global _calls
    me = threading.get_ident()
    with _turns:
        while _reader is not None and _reader != me:
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
    global _reader
    me = threading.get_ident()
    if _inside("reads"):  # already reading on this thread: the turn is ours
        _depth.reads += 1
        try:
            yield
        finally:
            _depth.reads -= 1
        return
    if _inside("calls"):
        raise RuntimeError("Chroma's database file read with sqlite3 inside a Chroma call: it would wait for itself")
    with _turns:
        while _calls or _reader is not None:
            _turns.wait()
        _reader = me
    _depth.reads = 1
    try:
        yield
    finally:
        _depth.reads = 0
        with _turns:
            _reader = None
            _turns.notify_all()
