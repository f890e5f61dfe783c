"""Alembic environment: the connection is handed in by the store, never read from a file."""

from alembic import context

from commonground.adapters.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
