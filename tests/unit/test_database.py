"""The database of per-person state: created by its migrations on SQLite and on PostgreSQL, safe for
processes that start together, and refusing an address it cannot use with one clear line."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, select
from sqlalchemy.exc import IntegrityError

from kb import Settings
from kb.database import Database, open_database
from kb.database.tables import Base, Follow, Person, SavedSearch
from kb.errors import KBError


def test_the_migrations_make_every_table_of_the_model(database_url):
    database = Database(database_url)
    database.migrate()
    database.migrate()  # a second start finds it current and changes nothing
    tables = set(inspect(database.engine).get_table_names())
    assert set(Base.metadata.tables) <= tables and "alembic_version" in tables
    for name, table in Base.metadata.tables.items():
        columns = {c["name"] for c in inspect(database.engine).get_columns(name)}
        assert columns == {c.name for c in table.columns}, name
    database.close()


def test_a_person_s_follows_and_searches_go_with_them_and_a_follow_is_kept_once(database_url):
    database = Database(database_url)
    database.migrate()
    with database.session() as session:
        ada = Person(account="ada@example.gov", email="ada@example.gov", organisation="Home Affairs")
        ada.follows.append(Follow(kind="theme", value="Data sharing"))
        ada.saved_searches.append(SavedSearch(name="pilots", query="data sharing pilot", filters={"theme": ["x"]}))
        session.add(ada)
    with database.session() as session:
        stored = session.scalars(select(Person)).one()
        assert stored.saved_searches[0].filters == {"theme": ["x"]}
        assert stored.digest_since.tzinfo is not None or database.is_sqlite  # SQLite keeps no zone
    with pytest.raises(IntegrityError), database.session() as session:
        person = session.scalars(select(Person)).one()
        session.add(Follow(person_id=person.id, kind="theme", value="Data sharing"))
    with database.session() as session:
        session.delete(session.scalars(select(Person)).one())
    with database.session() as session:
        assert session.scalars(select(Follow)).all() == [] and session.scalars(select(SavedSearch)).all() == []
    database.close()


OPEN_AND_ADD = """
import os, sys
from kb.database import Database
from kb.database.tables import Person
database = Database(sys.argv[1])
database.migrate()
with database.session() as session:
    session.add(Person(account=f"p{os.getpid()}"))
print("ok")
"""


def test_processes_starting_together_migrate_once(database_url):
    """Four whole processes open a new database at once: each finds the tables made exactly once."""
    import subprocess
    import sys

    from tests.conftest import ROOT

    command = [sys.executable, "-c", OPEN_AND_ADD, database_url]
    started = [
        subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(4)
    ]
    for process in started:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0 and out.strip() == "ok", err[-1500:]
    database = Database(database_url)
    with database.session() as session:
        assert len(session.scalars(select(Person)).all()) == 4
    database.close()


def test_by_default_it_is_a_sqlite_file_beside_the_index(tmp_path):
    settings = Settings(entries_dir=tmp_path / "entries", index_dir=tmp_path / "index")
    database = open_database(settings)
    assert database.is_sqlite and (tmp_path / "index" / "lighthouse.sqlite3").is_file()
    assert open_database(settings) is database  # migrated once per process


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("not a url", "not a database address"),
        ("mysql://db.example/lighthouse", "runs on SQLite or PostgreSQL"),
    ],
)
def test_an_address_it_cannot_use_is_one_clear_line(url, message):
    with pytest.raises(KBError, match=message):
        Database(url)


def test_a_server_that_does_not_answer_is_one_clear_line():
    from tests.servers import free_port

    database = Database(f"postgresql://nobody@127.0.0.1:{free_port()}/lighthouse")
    with pytest.raises(KBError, match=r"cannot open the database postgresql\+psycopg://nobody@127.0.0.1"):
        database.migrate()
