"""The database of per-person state and anonymous counts (SQLAlchemy; SQLite by default, PostgreSQL
when KB_DATABASE_URL names one), its tables and its migrations."""

from kb.database.connection import Database, open_database

__all__ = ["Database", "open_database"]
