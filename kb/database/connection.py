"""Opening the database and bringing its tables up to date.

Every process that opens it runs the migrations first (Alembic, `kb/database/migrations/`), under a lock
so that two processes starting at once never both create a table: a file lock beside a SQLite file, a
transaction-scoped advisory lock on PostgreSQL.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from kb.config import Settings
from kb.errors import KBError
from kb.store import file_lock

MIGRATIONS = Path(__file__).parent / "migrations"
MIGRATION_LOCK_ID = 0x4C494748  # any constant of our own: "LIGH"
SUPPORTED = ("sqlite", "postgresql")


class Database:
    """A connection pool and sessions over one database whose tables are at the newest version."""

    def __init__(self, url: str):
        try:
            parsed = make_url(url)
        except ArgumentError:
            raise KBError(f"KB_DATABASE_URL is not a database address: {url!r}") from None
        if parsed.get_backend_name() not in SUPPORTED:
            raise KBError(
                f"KB_DATABASE_URL names a {parsed.get_backend_name()} database; Lighthouse runs on SQLite or "
                "PostgreSQL (postgresql+psycopg://user:password@host/name)"
            )
        if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
            parsed = parsed.set(drivername="postgresql+psycopg")  # the driver that is installed
        self.url = parsed
        self.engine: Engine = create_engine(parsed, pool_pre_ping=True)
        if self.is_sqlite:
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.url.get_backend_name() == "sqlite"

    def describe(self) -> str:
        """The address without its password, for messages."""
        return self.url.render_as_string(hide_password=True)

    def migrate(self) -> None:
        """Create or upgrade the tables to the newest migration; safe for processes starting together."""
        from alembic import command
        from alembic.config import Config

        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        try:
            if self.is_sqlite and self.url.database:
                folder = Path(self.url.database).parent
                folder.mkdir(parents=True, exist_ok=True)
                with file_lock(folder / f".{Path(self.url.database).name}.migrate.lock"):
                    self._upgrade(command, config)
            else:
                self._upgrade(command, config)
        except SQLAlchemyError as exc:
            raise KBError(f"cannot open the database {self.describe()}: {exc.__class__.__name__}: {exc}") from None

    def _upgrade(self, command, config) -> None:
        with self.engine.begin() as connection:
            if not self.is_sqlite:
                connection.execute(text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID})
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session that commits when the block ends and rolls back if it raises."""
        with self._sessions.begin() as session:
            yield session

    def close(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(connection, _record) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")  # SQLite ignores ON DELETE CASCADE without it
    cursor.execute("PRAGMA journal_mode=WAL")  # readers (the app) do not wait for a writer (a digest run)
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


_opened: dict[str, Database] = {}
_opened_lock = threading.Lock()


def open_database(settings: Settings) -> Database:
    """The database of these settings, migrated once per process and then shared."""
    url = settings.database_url
    with _opened_lock:
        database = _opened.get(url)
        if database is None:
            database = Database(url)
            database.migrate()
            _opened[url] = database
        return database


def forget_databases() -> None:
    """Close every database this process opened (tests, and a process that changes its settings)."""
    with _opened_lock:
        for database in _opened.values():
            database.close()
        _opened.clear()
