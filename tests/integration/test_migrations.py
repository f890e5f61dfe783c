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


def test_a_store_from_an_older_version_is_upgraded_on_open(tmp_path, monkeypatch):
    from commonground import bootstrap
    from commonground.adapters.tables import SCHEMA_REVISION
    from commonground.services import parties as party_svc
    from tests.conftest import use_default_database
    use_default_database(monkeypatch)
    deps = bootstrap.build(bootstrap.Settings.from_env(tmp_path / "home"))
    bootstrap.init_store(deps)
    party_svc.add_party(deps, "retailer")
    deps.store.downgrade("0001")
    reopened = bootstrap.open_store(bootstrap.build(bootstrap.Settings.from_env(tmp_path / "home")))
    assert reopened.store.schema_revision() == SCHEMA_REVISION
    assert [p.name for p in party_svc.list_parties(reopened)] == ["retailer"]


def test_schema_revision_constant_is_the_newest_migration():
    from pathlib import Path

    from commonground.adapters import migrations
    from commonground.adapters.tables import SCHEMA_REVISION
    newest = max(p.name.split("_")[0] for p in (Path(migrations.__file__).parent / "versions").glob("0*.py"))
    assert newest == SCHEMA_REVISION
