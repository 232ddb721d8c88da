"""Each caller's request allowance, a token bucket: `burst` requests at once, refilled at `per_minute` a
minute. The rule is `Rule.take`; the allowances live either in the database the API replicas share
(`SharedBucket`, what the API uses, so that a deployment of several replicas gives each token one allowance,
not one per replica) or in one process's memory (`TokenBucket`: the shared one's stand-in while the
database does not answer, and the limit on how often unknown tokens are checked with the provider).

Times are wall-clock seconds (`time.time`), which replicas with synchronised clocks read alike; a replica
whose clock is behind never gives a bucket more than it has (see `Rule.take`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import delete, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import SQLAlchemyError

from kb.database import Database
from kb.database.tables import RequestAllowance
from kb.errors import KBError

log = logging.getLogger("lighthouse.api")

RETRY_SECONDS = 30.0  # after the database failed to answer, how long the process limits on its own
FORGET_EVERY_SECONDS = 60.0  # how often a process deletes the allowances that are full again
MAX_KEYS_IN_MEMORY = 10_000  # past this many, a process's own buckets forget the full ones


@dataclass(frozen=True)
class Rule:
    """The token bucket: `burst` requests at once, then `per_minute` a minute."""

    per_minute: float
    burst: int

    @property
    def rate(self) -> float:
        """Requests a second."""
        return self.per_minute / 60.0

    def refilled(self, tokens: float, elapsed: float) -> float:
        """What a bucket that held `tokens` holds `elapsed` seconds later (a negative time counts as none)."""
        return min(float(self.burst), tokens + max(0.0, elapsed) * self.rate)

    def take(self, tokens: float, elapsed: float) -> tuple[float, float]:
        """One request from a bucket that held `tokens` `elapsed` seconds ago: what it holds afterwards,
        and 0 when the request may go ahead (it is counted), else the seconds to wait."""
        tokens = self.refilled(tokens, elapsed)
        if tokens >= 1:
            return tokens - 1, 0.0
        return tokens, (1 - tokens) / self.rate if self.rate > 0 else 60.0

    @property
    def full_after(self) -> float:
        """Seconds in which an empty bucket fills up: a bucket untouched that long is the same as none."""
        return self.burst / self.rate if self.rate > 0 else math.inf


class Limiter(Protocol):
    rule: Rule

    def take(self, key: str, now: float | None = None) -> float:
        """0 when the request may go ahead (and is counted), else the seconds to wait."""
        ...


class TokenBucket:
    """Each key's allowance in this process's memory."""

    def __init__(self, per_minute: float, burst: int):
        self.rule = Rule(per_minute, burst)
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, when)
        self._lock = threading.Lock()

    def take(self, key: str, now: float | None = None) -> float:
        """0 when the request may go ahead (and is counted), else the seconds to wait."""
        now = time.time() if now is None else now
        with self._lock:
            tokens, when = self._buckets.get(key, (float(self.rule.burst), now))
            left, wait = self.rule.take(tokens, now - when)
            self._buckets[key] = (left, max(when, now))
            if not wait:
                self._forget_idle(now)
            return wait

    @property
    def keys_held(self) -> frozenset[str]:
        """The keys whose allowances this process holds in memory now: past MAX_KEYS_IN_MEMORY of them,
        those full again are forgotten (a full allowance is the same as none), so memory stays bounded."""
        with self._lock:
            return frozenset(self._buckets)

    def _forget_idle(self, now: float) -> None:
        if len(self._buckets) > MAX_KEYS_IN_MEMORY:  # a full bucket is the same as none
            full = [k for k, (t, w) in self._buckets.items() if self.rule.refilled(t, now - w) >= self.rule.burst]
            for key in full:
                del self._buckets[key]


class SharedBucket:
    """Each key's allowance in the database (table `request_allowances`), so that every process using
    that database takes from the same one. A take is one short transaction that locks the key's row (an
    INSERT ... ON CONFLICT DO UPDATE, which takes PostgreSQL's row lock and SQLite's one write lock), reads
    it, and writes what `Rule.take` leaves. The key is stored as its SHA-256 digest.

    A database that does not answer never refuses a request for that: the process limits on its own
    (`TokenBucket`) for RETRY_SECONDS, logs a warning once, and logs again when the database answers."""

    def __init__(
        self,
        database: Database | Callable[[], Database],
        per_minute: float,
        burst: int,
        *,
        clock: Callable[[], float] = time.time,
    ):
        self.rule = Rule(per_minute, burst)
        self._database = database if callable(database) else (lambda: database)
        self.clock = clock
        self.fallback = TokenBucket(per_minute, burst)
        self._failed_at: float | None = None  # time.monotonic() of the last failure, while failing
        self._forgotten_at = -math.inf

    def take(self, key: str, now: float | None = None) -> float:
        """0 when the request may go ahead (and is counted), else the seconds to wait."""
        now = self.clock() if now is None else now
        failed_at = self._failed_at
        if failed_at is not None and time.monotonic() - failed_at < RETRY_SECONDS:
            return self.fallback.take(key, now)
        try:
            database = self._database()
            wait = self._take(database, key, now)
        except (SQLAlchemyError, KBError) as exc:
            if self._failed_at is None:  # once, until it works again
                message = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
                log.warning("request rates are limited per process, not shared: the database fails: %s", message)
            self._failed_at = time.monotonic()
            return self.fallback.take(key, now)
        if self._failed_at is not None:
            self._failed_at = None
            log.warning("request rates are shared through the database again")
        if now - self._forgotten_at >= FORGET_EVERY_SECONDS:
            self._forgotten_at = now
            try:
                self.forget_idle(database, now)
            except SQLAlchemyError as exc:  # tried again next time; the allowances are right either way
                log.info("full request allowances could not be deleted: %s", exc.__class__.__name__)
        return wait

    def _take(self, database: Database, key: str, now: float) -> float:
        table = RequestAllowance
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()
        insert = (sqlite_insert if database.is_sqlite else postgresql_insert)(table)
        claim = (
            insert.values(key=digest, tokens=float(self.rule.burst), updated=now)
            .on_conflict_do_update(index_elements=[table.key], set_={"key": insert.excluded.key})
            .returning(table.tokens, table.updated)
        )
        with database.engine.begin() as connection:
            tokens, when = connection.execute(claim).one()
            left, wait = self.rule.take(tokens, now - when)
            if not wait:  # a refusal changes nothing: the refill is linear, so the row already says it
                connection.execute(update(table).where(table.key == digest).values(tokens=left, updated=max(when, now)))
        return wait

    def forget_idle(self, database: Database, now: float) -> int:
        """Delete the allowances untouched long enough to be full again; how many."""
        if math.isinf(self.rule.full_after):
            return 0
        with database.engine.begin() as connection:
            gone = connection.execute(
                delete(RequestAllowance).where(RequestAllowance.updated < now - self.rule.full_after)
            )
        return gone.rowcount or 0
