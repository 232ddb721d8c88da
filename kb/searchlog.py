"""What people look for and don't find: anonymous counts of searches, and of entries opened and reused.

A search is counted once, by `kb.browse` (the one path the search page and the HTTP API's search take),
as its normalised words, its mode, how many results it had and whether any was a close match
(kb.relevance). No one's identity is kept: no name, address, token or session. Within one browser
session a search repeated (paging, Back, a rerun of the page) is counted once: the app hands in an
opaque visit key that is held in memory for half an hour and never written.

Kept for `KB_SEARCH_LOG_DAYS` days (180 by default): older days are deleted at the first write of each
day, or by `python -m kb searches --prune`. 0 records nothing and deletes what was kept.

Counts are written on the log's own thread, so a search never waits for the database; a failure to
record (the database is down) never breaks a search: it is logged once, and recording is tried again a
minute later.

    log = search_log(kb.settings)
    log.record_search("Data sharing agreement ", "hybrid", hits)
    log.searches(days=30)          # [SearchSummary("data sharing agreement", searches=1, ...)]
"""

from __future__ import annotations

import datetime as dt
import logging
import queue
import re
import threading
import time
import unicodedata
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Integer, cast, delete, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError

from kb.access import sees_what_people_look_for
from kb.config import Settings
from kb.database import open_database
from kb.database.tables import EntryActivity, SearchCount
from kb.errors import Forbidden, KBError
from kb.search import Hit
from kb.wanted import WantedList, load_wanted

if TYPE_CHECKING:
    from kb.identity import User
    from kb.knowledge import KnowledgeBase

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 200  # longer queries are cut at a word: a pasted paragraph is not a search term
REPEAT_SECONDS = 30 * 60  # the same search in the same visit within this time counts once
REMEMBERED_VISITS = 10_000  # recent (visit, search) pairs held in memory, the oldest forgotten first
RETRY_SECONDS = 60  # after a failure to record, how long before the database is tried again
IDLE_SECONDS = 10  # the log's thread ends after this long with nothing to write (a new one starts when needed)
MAX_WAITING = 10_000  # counts waiting to be written; beyond it (a database that hangs) they are dropped
DEFAULT_REPORT_DAYS = 30
_EMAIL = re.compile(r"[^\s@]+@[^\s@]+\.[^\s@]+")
_LONG_NUMBER = re.compile(r"\d(?:[\s./-]?\d){5,}")  # six digits or more: phone, account, case numbers


def utc_today() -> dt.date:
    """Today in UTC: the day every count is kept under, whatever the server's own time zone."""
    return dt.datetime.now(dt.UTC).date()


def normalise_query(query: str) -> str | None:
    """A query as it is counted: lowercased, spaces collapsed, punctuation at the ends stripped, at most
    MAX_QUERY_CHARS (cut at a word). None for what must not be kept: nothing left, or something that
    looks like personal data (an e-mail address, a number of six digits or more)."""
    text = _strip_ends(" ".join(query.casefold().split()))
    if not text or _EMAIL.search(text) or _LONG_NUMBER.search(text):
        return None
    if len(text) > MAX_QUERY_CHARS:
        cut = text[: MAX_QUERY_CHARS + 1]
        text = _strip_ends(cut.rsplit(" ", 1)[0] if " " in cut else cut[:MAX_QUERY_CHARS])
    return text or None


def _strip_ends(text: str) -> str:
    """Without the punctuation (quotes, brackets, stops, marks, dashes) and spaces at either end."""
    start, end = 0, len(text)
    while start < end and (text[start].isspace() or unicodedata.category(text[start]).startswith("P")):
        start += 1
    while end > start and (text[end - 1].isspace() or unicodedata.category(text[end - 1]).startswith("P")):
        end -= 1
    return text[start:end]


def close_match(hits: Sequence[Hit]) -> bool:
    """Whether any hit is a close match. Where closeness is not judged (keyword search, or a model whose
    threshold is not measured) a hit found at all counts as one: only searches with no results at all
    are then "no close match"."""
    if any(h.close is None for h in hits):
        return bool(hits)
    return any(h.close for h in hits)


@dataclass(frozen=True)
class SearchSummary:
    """One query over a period: how often it was searched (in any mode), its most results, whether any
    search of it found a close match, and the last day it was searched."""

    query: str
    searches: int
    results: int
    close_match: bool
    last_day: dt.date


@dataclass(frozen=True)
class EntryUse:
    """How often an entry was opened and reused over a period."""

    entry_id: str
    opened: int
    reused: int

    @property
    def total(self) -> int:
        return self.opened + self.reused


class SearchLog:
    """The anonymous counts of one database, kept for the settings' number of days."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._lock = threading.Lock()
        self._recent: OrderedDict[tuple[str, ...], float] = OrderedDict()
        self._pruned_on: dt.date | None = None
        self._failed_at: float | None = None  # when recording last failed; None: it works
        self._queue: queue.Queue = queue.Queue(maxsize=MAX_WAITING)
        self._worker: threading.Thread | None = None

    @property
    def days(self) -> int:
        return self.settings.search_log_days

    # ------------------------------------------------------------------ recording

    def record_search(self, query: str, mode: str, hits: Sequence[Hit], *, visit: str | None = None) -> bool:
        """Count one search (unless it is off, kept out by `normalise_query`, or a repeat in this visit).
        True when it was counted. Never raises."""
        text = normalise_query(query)
        if text is None or not self._on() or self._repeated(visit, "search", text, mode):
            return False
        values = {"query": text, "mode": mode, "searches": 1, "results": len(hits), "close_match": close_match(hits)}
        return self._write(SearchCount, values, ("day", "query", "mode"), ("searches",), ("results", "close_match"))

    def record_entry(self, entry_id: str, *, reused: bool = False, visit: str | None = None) -> bool:
        """Count an entry opened (or, with reused, taken away: downloaded in a search's results). True when
        it was counted. Never raises."""
        kind = "reused" if reused else "opened"
        if not entry_id or not self._on() or self._repeated(visit, kind, entry_id):
            return False
        values = {"entry_id": entry_id, "opened": int(not reused), "reused": int(reused)}
        return self._write(EntryActivity, values, ("day", "entry_id"), ("opened", "reused"), ())

    def counting(self) -> bool:
        """Whether searches are counted now (not with 0 days, nor with a setting that cannot be read)."""
        return self._on()

    def _on(self) -> bool:
        """Whether to record; when the log is off, what it kept is deleted (once per process and day)."""
        try:
            days = self.days
        except KBError as exc:  # a bad KB_SEARCH_LOG_DAYS records nothing rather than break a search
            self._failed(exc)
            return False
        if days == 0 and self._pruned_on != utc_today():
            self._pruned_on = utc_today()
            self._later(self.prune)
        return days > 0

    def _repeated(self, visit: str | None, *key: str) -> bool:
        """Whether this visit did this already, within REPEAT_SECONDS (remembered in memory only)."""
        if visit is None:
            return False
        now = time.monotonic()
        with self._lock:
            seen = self._recent.get((visit, *key))
            self._recent[(visit, *key)] = now
            self._recent.move_to_end((visit, *key))
            while len(self._recent) > REMEMBERED_VISITS:
                self._recent.popitem(last=False)
        return seen is not None and now - seen < REPEAT_SECONDS

    def _write(self, table, values: dict, unique: tuple[str, ...], added: tuple[str, ...], latest: tuple[str, ...]):
        """Add today's counts to the table's row for them (an upsert on SQLite and PostgreSQL alike), on
        the log's own thread."""
        today = utc_today()

        def write() -> None:
            database = open_database(self.settings)
            insert = (sqlite if database.is_sqlite else postgresql).insert
            statement = insert(table).values(day=today, **values)
            changes = {name: getattr(table, name) + statement.excluded[name] for name in added}
            changes |= {name: statement.excluded[name] for name in latest}
            with database.session() as session:
                session.execute(statement.on_conflict_do_update(index_elements=list(unique), set_=changes))
            if self._pruned_on != today:
                self.prune(today)

        return self._later(write)

    def _later(self, action) -> bool:
        """Hand a write to the log's own thread, so a search never waits for the database (a server that
        does not answer can take minutes to say so). False when it was dropped: the database failed less
        than RETRY_SECONDS ago, or too many writes are waiting."""
        if self._failed_at is not None and time.monotonic() - self._failed_at < RETRY_SECONDS:
            return False
        with self._lock:
            try:
                self._queue.put_nowait(action)
            except queue.Full:
                return False
            if self._worker is None:
                self._worker = threading.Thread(target=self._work, name="lighthouse-search-log", daemon=True)
                self._worker.start()
        return True

    def _work(self) -> None:
        """The log's thread: writes what is handed in, and ends when nothing came for IDLE_SECONDS."""
        while True:
            try:
                action = self._queue.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:  # nothing is handed in meanwhile: `_later` puts under this lock
                    if self._queue.empty():
                        self._worker = None
                        return
                continue
            if isinstance(action, threading.Event):
                action.set()
            else:
                self._guarded(action)

    def flush(self, timeout: float = 30.0) -> None:
        """Wait until every count handed in so far is written (or has failed): before a read."""
        done = threading.Event()
        with self._lock:
            if self._worker is None:
                return
            self._queue.put(done)
        done.wait(timeout)

    def _guarded(self, action) -> bool:
        try:
            action()
        except (SQLAlchemyError, KBError, OSError) as exc:
            self._failed(exc)
            return False
        if self._failed_at is not None:
            log.warning("the search log records again")
            self._failed_at = None
        return True

    def _failed(self, exc: Exception) -> None:
        if self._failed_at is None:  # once, until it works again
            log.warning("searches are not being counted: %s", str(exc).splitlines()[0] if str(exc) else exc)
        self._failed_at = time.monotonic()

    # ------------------------------------------------------------------ keeping

    def prune(self, today: dt.date | None = None) -> int:
        """Delete the counts of days older than the period kept (every count when it is 0); how many
        rows went. Raises KBError when the database cannot be reached."""
        today = today or utc_today()
        first_kept = today - dt.timedelta(days=self.days - 1) if self.days else None
        database = open_database(self.settings)
        removed = 0
        with database.session() as session:
            for table in (SearchCount, EntryActivity):
                statement = delete(table) if first_kept is None else delete(table).where(table.day < first_kept)
                result: Any = session.execute(statement)  # a CursorResult: a DELETE says how many it removed
                removed += result.rowcount or 0
        self._pruned_on = today
        return removed

    # ------------------------------------------------------------------ reading

    def _since(self, days: int) -> dt.date:
        return utc_today() - dt.timedelta(days=max(1, days) - 1)

    def searches(self, *, days: int = DEFAULT_REPORT_DAYS, unmatched: bool = False, limit: int = 20):
        """The most searched queries of the last `days` days, most searched first; with unmatched, only
        those no search of which found a close match. Raises KBError when the database cannot be reached."""
        matched = func.max(cast(SearchCount.close_match, Integer))
        statement = (
            select(
                SearchCount.query,
                func.sum(SearchCount.searches),
                func.max(SearchCount.results),
                matched,
                func.max(SearchCount.day),
            )
            .where(SearchCount.day >= self._since(days))
            .group_by(SearchCount.query)
            .order_by(func.sum(SearchCount.searches).desc(), func.max(SearchCount.day).desc(), SearchCount.query)
            .limit(limit)
        )
        if unmatched:
            statement = statement.having(matched == 0)
        rows = self._read(statement)
        return [SearchSummary(q, int(n), int(r), bool(c), _as_date(d)) for q, n, r, c, d in rows]

    def entries_used(self, *, days: int = DEFAULT_REPORT_DAYS, limit: int = 200) -> list[EntryUse]:
        """The entries opened and reused most in the last `days` days (every entry counted: the caller
        keeps those its reader may see)."""
        opened, reused = func.sum(EntryActivity.opened), func.sum(EntryActivity.reused)
        statement = (
            select(EntryActivity.entry_id, opened, reused)
            .where(EntryActivity.day >= self._since(days))
            .group_by(EntryActivity.entry_id)
            .order_by((opened + reused).desc(), reused.desc(), EntryActivity.entry_id)
            .limit(limit)
        )
        return [EntryUse(e, int(o), int(r)) for e, o, r in self._read(statement)]

    def _read(self, statement) -> list:
        self.flush()  # this process's own counts first
        try:
            with open_database(self.settings).session() as session:
                return list(session.execute(statement).all())
        except SQLAlchemyError as exc:
            raise KBError(f"cannot read the search log: {exc.__class__.__name__}") from None


def _as_date(value) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value))


@dataclass(frozen=True)
class LookedFor:
    """What the curators' tab shows for a period: the top searches, those with no close match (with the
    open wanted requests made from them), and the entries opened and reused most that the reader may see
    (id, title, counts)."""

    days: int
    kept_days: int  # how long the counts are kept (KB_SEARCH_LOG_DAYS); 0: the log is off
    top: list[SearchSummary]
    unmatched: list[SearchSummary]
    entries: list[tuple[str, str, EntryUse]]
    wanted: WantedList


def looked_for(
    kb: KnowledgeBase, viewer: User | None, *, days: int = DEFAULT_REPORT_DAYS, limit: int = 15
) -> LookedFor:
    """The curators' view of what people look for (Forbidden for anyone else: kb.access). Raises KBError
    when the database cannot be reached."""
    from kb.browse import titles

    if not sees_what_people_look_for(viewer):
        raise Forbidden("only curators see what people search for")
    log = search_log(kb.settings)
    used = log.entries_used(days=days)
    counts = {u.entry_id: u for u in used}
    shown = [(entry_id, title, counts[entry_id]) for entry_id, title, _ in titles(kb, list(counts), viewer)]
    return LookedFor(
        days=days,
        kept_days=log.days,
        top=log.searches(days=days, limit=limit),
        unmatched=log.searches(days=days, unmatched=True, limit=limit),
        entries=shown[:limit],
        wanted=load_wanted(kb.settings.entries_dir),
    )


_logs: dict[Settings, SearchLog] = {}
_logs_lock = threading.Lock()


def search_log(settings: Settings) -> SearchLog:
    """The search log of these settings, one per process (it remembers recent visits and failures)."""
    with _logs_lock:
        found = _logs.get(settings)
        if found is None:
            found = _logs[settings] = SearchLog(settings)
        return found


__all__ = [
    "EntryUse",
    "LookedFor",
    "SearchLog",
    "SearchSummary",
    "close_match",
    "looked_for",
    "normalise_query",
    "search_log",
]
