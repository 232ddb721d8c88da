"""Alembic's entry point: migrations run on the connection `Database.migrate` hands over."""

from alembic import context

from kb.database.tables import Base

connection = context.config.attributes["connection"]
# Batch mode lets a later migration alter a table on SQLite, which cannot ALTER most things in place.
context.configure(connection=connection, target_metadata=Base.metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
