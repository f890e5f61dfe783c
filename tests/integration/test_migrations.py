"""Alembic migrations upgrade and downgrade cleanly, on SQLite and PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from commonground.adapters.store import Store
from commonground.adapters.tables import metadata


def test_upgrade_downgrade_upgrade(tmp_path, database_url):
    store = Store(database_url or f"sqlite:///{tmp_path / 'm.db'}")
    try:
        store.migrate()
        assert set(metadata.tables) <= set(sa.inspect(store.engine).get_table_names())
        store.downgrade("0001")
        assert "vocabulary_entries" not in sa.inspect(store.engine).get_table_names()
        store.downgrade("base")
        assert set(sa.inspect(store.engine).get_table_names()) <= {"alembic_version"}
        store.migrate()
        assert store.is_initialised()
    finally:
        store.dispose()
