"""Chroma clients: the only module that imports chromadb.

chromadb is imported when an index is first opened, after kb.chroma_metadata has closed its own
connections to the store (`before_chroma_loads`). A client is made here for an embedded store, checked
by kb.chroma_checks before Chroma opens it (at the level the caller gives: kb.parts), or for a Chroma server; Chroma's per-path client cache is
cleared here, and an embedded store removed. What Chroma raises for a store it cannot read is told
apart from the caller's own mistakes here, and put in one line without paths; every call the vector index
makes into Chroma takes its turn and has a failure made the index's own error here (`guarded`).
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from kb.checked_files import store_damaged
from kb.chroma_checks import DATABASE, OPEN, StoreDamaged, check_store, embedded_path
from kb.chroma_metadata import before_chroma_loads
from kb.chroma_sharing import TurnMisuse, chroma_call
from kb.errors import IndexMissing, KBError, without_paths

if TYPE_CHECKING:
    from kb.vector_index import VectorIndex

_DONE = object()  # a generator's end, told apart from any page it yields


@functools.cache
def load_chromadb():
    """chromadb, imported when an index is first opened: a command that never opens one (`show`,
    `check`) starts without it, about half a second sooner."""
    os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
    before_chroma_loads()
    import chromadb
    import chromadb.api.client
    import chromadb.config
    import chromadb.errors

    return chromadb


def is_chroma_failure(exc: BaseException) -> bool:
    """What Chroma raises for a store it cannot read: its own errors, and the Rust core's panics, which
    pyo3 derives from BaseException (so a bare `except Exception` lets them through). Interrupts and
    exits are never swallowed."""
    if isinstance(exc, (load_chromadb().errors.InvalidArgumentError, TurnMisuse)):
        return False  # a mistake of the caller's (Chroma refused what it was given), not damage
    return isinstance(exc, Exception) or type(exc).__name__ == "PanicException"


def describe_failure(exc: BaseException) -> str:
    """Chroma's exception in one line, without the paths it may name."""
    first = str(exc).splitlines()[0][:160] if str(exc) else ""
    return f"{exc.__class__.__name__}: {without_paths(first)}"


def guarded(method):
    """Report a failure inside Chroma as the index's KBError (IndexDamaged for an embedded store), never
    as a traceback or a panic; the cause is logged with its traceback for the operator, under the name of
    the method's module (kb.vector_index). Each call takes its turn with this process's own reads of
    Chroma's file (kb.chroma_sharing). Every kb.vector_index method that reaches Chroma is wrapped."""
    log = logging.getLogger(method.__module__)

    @contextlib.contextmanager
    def failures_reported(index: VectorIndex):
        try:
            yield
        except KBError:
            raise
        except BaseException as exc:
            if not is_chroma_failure(exc):
                raise
            log.warning("Chroma failed in %s", method.__name__, exc_info=exc)
            if index.remote:
                raise KBError(
                    f"the Chroma server failed ({describe_failure(exc)}); check that it is up and healthy"
                ) from None
            raise index.damaged(f"the index cannot be read ({describe_failure(exc)})") from None

    if inspect.isgeneratorfunction(method):

        @functools.wraps(method)
        def pages(self, *args, **kwargs):
            with failures_reported(self):
                pending = method(self, *args, **kwargs)
                while True:
                    with chroma_call():  # a page at a time: the caller's own work between pages is not a call
                        page = next(pending, _DONE)
                    if page is _DONE:
                        return
                    yield page

        return pages

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        with failures_reported(self), chroma_call():
            return method(self, *args, **kwargs)

    return call


def make_client(index_dir: Path | str, chroma_url: str | None = None, *, create: bool = False, level: str = OPEN):
    """Embedded Chroma under `index_dir`, or a Chroma server when a URL is given. Telemetry off.

    The embedded store is checked (kb.chroma_checks, at `level`; TRUSTED reads nothing) before Chroma
    opens it, so a damaged file is reported as IndexDamaged instead of crashing the process. Without `create`, a folder with no store
    raises IndexMissing: only a sync builds one, so a deleted database never passes for an empty index.
    """
    settings = load_chromadb().config.Settings(anonymized_telemetry=False, allow_reset=True)
    if chroma_url:
        url = urlparse(chroma_url if "://" in chroma_url else f"http://{chroma_url}")
        if not url.hostname:
            raise KBError(f"KB_CHROMA_URL '{chroma_url}' is not a URL; use e.g. http://127.0.0.1:8000")
        ssl = url.scheme == "https"
        try:
            return load_chromadb().HttpClient(
                host=url.hostname, port=url.port or (443 if ssl else 8000), ssl=ssl, settings=settings
            )
        except Exception as exc:
            raise KBError(f"cannot reach the Chroma server at {chroma_url} ({exc}); is `chroma run` up?") from None
    path = embedded_path(index_dir)
    if not (path / DATABASE).is_file():
        if not create:
            raise IndexMissing(path)
        path.mkdir(parents=True, exist_ok=True)
    else:
        try:
            check_store(path, level=level)
        except StoreDamaged as exc:
            raise store_damaged(index_dir, f"the index is damaged ({exc})", where=path) from None
    try:
        with chroma_call():
            client = load_chromadb().PersistentClient(path=str(path.resolve()), settings=settings)
            client.list_collections()  # a damaged database fails here rather than in the middle of a search
    except BaseException as exc:  # chromadb raises several types for a broken file; all mean the same here
        if not is_chroma_failure(exc):
            raise
        clear_client_cache()
        raise store_damaged(index_dir, f"the index cannot be opened ({describe_failure(exc)})", where=path) from None
    return client


def remove_embedded(index_dir: Path | str) -> None:
    """Delete the embedded index (it is derived data: the entry files rebuild it)."""
    import shutil

    clear_client_cache()
    shutil.rmtree(embedded_path(index_dir), ignore_errors=True)


def clear_client_cache() -> None:
    """Chroma caches clients per path for the whole process; tests reset it between runs."""
    if "chromadb" in sys.modules:  # nothing is cached before an index was opened
        with chroma_call():  # Chroma's connections close as its systems stop
            load_chromadb().api.client.SharedSystemClient.clear_system_cache()
