"""The database's tables: per-person state (saved searches, follows, digest bookkeeping, a feed secret),
anonymous counts (searches, entry activity) and the API's request allowances.

Nothing here is knowledge. Entries, notes and the vocabulary are files; losing this database loses
preferences and counts, never a lesson.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Named constraints, so a migration can refer to them the same way on SQLite and PostgreSQL.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

DIGEST_FREQUENCIES = ("weekly", "daily", "off")
FOLLOW_KINDS = ("theme", "organisation", "lighthouse")


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Person(Base):
    """Someone who saved a search or follows something: who they are as of their last visit.

    `account` is their e-mail address, lowercased (or `local:<name>` for the local user of a copy
    without sign-in). Organisation and e-mail are kept so a digest, sent when they are not there, knows
    what they may see and where to send it; their roles are read from the access file at that time.
    """

    __tablename__ = "people"

    id: Mapped[int] = mapped_column(primary_key=True)
    account: Mapped[str] = mapped_column(String(320), unique=True)
    email: Mapped[str] = mapped_column(String(320), default="")
    name: Mapped[str] = mapped_column(String(200), default="")
    organisation: Mapped[str] = mapped_column(String(200), default="")
    digest_frequency: Mapped[str] = mapped_column(String(10), default="weekly")
    digest_since: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    feed_secret_hash: Mapped[str | None] = mapped_column(String(64), unique=True, default=None)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    seen_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    saved_searches: Mapped[list[SavedSearch]] = relationship(back_populates="person", cascade="all, delete-orphan")
    follows: Mapped[list[Follow]] = relationship(back_populates="person", cascade="all, delete-orphan")


class SavedSearch(Base):
    """A search someone keeps: its words, mode and filters (as the search page's address holds them)."""

    __tablename__ = "saved_searches"

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    query: Mapped[str] = mapped_column(Text, default="")
    mode: Mapped[str] = mapped_column(String(20), default="hybrid")
    filters: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    person: Mapped[Person] = relationship(back_populates="saved_searches")


class Follow(Base):
    """A theme, an organisation or a lighthouse (an entry id) someone follows."""

    __tablename__ = "follows"
    __table_args__ = (UniqueConstraint("person_id", "kind", "value"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    value: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)

    person: Mapped[Person] = relationship(back_populates="follows")


class Digest(Base):
    """One digest for one person and one period: written before it is sent, marked sent after, so a run
    that fails is retried and a period sent is not sent again. (A process killed between the server's
    acceptance and the mark sends it once more, with the same Message-ID, which mail programs show once.)"""

    __tablename__ = "digests"
    __table_args__ = (UniqueConstraint("person_id", "period_end"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id", ondelete="CASCADE"), index=True)
    period_start: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))
    status: Mapped[str] = mapped_column(String(10), default="pending")  # pending, sent, empty, failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str] = mapped_column(Text, default="")
    message_id: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utc_now)
    sent_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), default=None)


class SearchCount(Base):
    """How often a normalised query was searched in a mode on a day, with no one's identity: its
    latest number of results and whether any of them was a close match."""

    __tablename__ = "search_counts"
    __table_args__ = (UniqueConstraint("day", "query", "mode"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    query: Mapped[str] = mapped_column(String(500))
    mode: Mapped[str] = mapped_column(String(20))
    searches: Mapped[int] = mapped_column(Integer, default=0)
    results: Mapped[int] = mapped_column(Integer, default=0)
    close_match: Mapped[bool] = mapped_column(Boolean, default=False)


class EntryActivity(Base):
    """How often an entry was opened, and reused (downloaded, or followed through "similar projects"),
    on a day; anonymous counts."""

    __tablename__ = "entry_activity"
    __table_args__ = (UniqueConstraint("day", "entry_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, index=True)
    entry_id: Mapped[str] = mapped_column(String(200), index=True)
    opened: Mapped[int] = mapped_column(Integer, default=0)
    reused: Mapped[int] = mapped_column(Integer, default=0)


class RequestAllowance(Base):
    """One API caller's request allowance (kb/api/limits.py), shared by every API replica: the tokens left
    in its bucket and when it was last taken from (seconds since the epoch). `key` is the SHA-256 digest of
    `token:<holder's name>` or `client:<address>`, never a token. A row untouched long enough to be full
    again is deleted; losing them all gives everyone a full allowance."""

    __tablename__ = "request_allowances"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    tokens: Mapped[float] = mapped_column(Float)
    updated: Mapped[float] = mapped_column(Float, index=True)
