"""Shared fixtures: a store home on SQLite and on PostgreSQL (skipped where it is absent)."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
PG_ADMIN_URL = os.environ.get("COMMONGROUND_TEST_PG", "postgresql://127.0.0.1:5432/test")


def _pg_available() -> bool:
    try:
        import psycopg
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=2):
            return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def pg_available() -> bool:
    return _pg_available()


@pytest.fixture
def pg_url(pg_available: bool) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    if not pg_available:
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432")
    import psycopg
    name = f"cg_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql+psycopg://127.0.0.1:5432/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str | None]:
    """The store's metadata database: None means the default SQLite under the home."""
    if request.param == "sqlite":
        yield None
    else:
        yield request.getfixturevalue("pg_url")


@pytest.fixture
def make_deps(tmp_path: Path, database_url: str | None, monkeypatch: pytest.MonkeyPatch):
    """Build an initialised store (SQLite or PostgreSQL) the way the composition root does."""
    from commonground import bootstrap
    if database_url:
        monkeypatch.setenv("COMMONGROUND_DATABASE_URL", database_url)
    else:
        monkeypatch.delenv("COMMONGROUND_DATABASE_URL", raising=False)
    built = []

    def make(clock=None):
        deps = bootstrap.build(bootstrap.Settings.from_env(tmp_path / "home"), clock=clock)
        bootstrap.init_store(deps)
        built.append(deps)
        return deps
    yield make
    for deps in built:
        deps.store.dispose()


class Cli:
    """Runs the real Typer app in-process, against one home, and decodes --json output."""

    def __init__(self, home: Path, database_url: str | None, monkeypatch: pytest.MonkeyPatch):
        from typer.testing import CliRunner
        self.home = home
        self.runner = CliRunner()
        monkeypatch.setenv("COMMONGROUND_HOME", str(home))
        if database_url:
            monkeypatch.setenv("COMMONGROUND_DATABASE_URL", database_url)
        else:
            monkeypatch.delenv("COMMONGROUND_DATABASE_URL", raising=False)

    def __call__(self, *args: str, expect: int | None = 0) -> tuple[int, Any, str]:
        from commonground.cli.main import app
        result = self.runner.invoke(app, [str(a) for a in args], catch_exceptions=False)
        try:
            data = json.loads(result.stdout) if "--json" in args and result.stdout.strip() else None
        except ValueError:
            data = None
        if expect is not None:
            assert result.exit_code == expect, f"exit {result.exit_code}, expected {expect}: {result.stdout}{result.stderr}"
        return result.exit_code, data, result.stdout + result.stderr


@pytest.fixture
def cli(tmp_path: Path, database_url: str | None, monkeypatch: pytest.MonkeyPatch) -> Cli:
    c = Cli(tmp_path / "home", database_url, monkeypatch)
    c("init")
    return c


@pytest.fixture
def sqlite_cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Cli:
    c = Cli(tmp_path / "home", None, monkeypatch)
    c("init")
    return c
