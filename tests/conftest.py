"""Shared fixtures: a store home on SQLite and on PostgreSQL (skipped where it is absent).

PostgreSQL-everywhere mode: when `COMMONGROUND_TEST_DATABASE_URL` (or, at the start of the
session, `COMMONGROUND_DATABASE_URL`) names a PostgreSQL database, every test outside
tests/unit that builds a store builds it on PostgreSQL, in a fresh database of that server made
for the test (the named database is only used to create and drop them). `database_url` then
has only its PostgreSQL case, and tests that would build the default SQLite store get
`COMMONGROUND_DATABASE_URL` pointing at the test's database (`make test-postgres`).
"""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path
from typing import Any, Iterator

import pytest

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def _everywhere_url() -> str | None:
    """Decided once, when the session starts; the decision is kept in the environment so a second
    import of this module (`from tests.conftest import ...`) agrees whatever a test set since."""
    if "COMMONGROUND_TEST_DATABASE_URL" not in os.environ:
        url = os.environ.get("COMMONGROUND_DATABASE_URL") or ""
        os.environ["COMMONGROUND_TEST_DATABASE_URL"] = url if url.startswith("postgresql") else ""
    return os.environ["COMMONGROUND_TEST_DATABASE_URL"] or None


PG_EVERYWHERE_URL = _everywhere_url()
PG_EVERYWHERE = PG_EVERYWHERE_URL is not None
# A libpq URL (psycopg's own form, without SQLAlchemy's "+driver") of the server's admin database.
PG_ADMIN_URL = (PG_EVERYWHERE_URL or os.environ.get("COMMONGROUND_TEST_PG", "postgresql://127.0.0.1:5432/test")
                ).replace("postgresql+psycopg://", "postgresql://", 1)


def _pg_available() -> bool:
    try:
        import psycopg
        with psycopg.connect(PG_ADMIN_URL, connect_timeout=2):
            return True
    except Exception:
        return False


def create_pg_database(kept: bool = False) -> str:
    """A fresh, empty PostgreSQL database on the test server; returns its SQLAlchemy URL.
    `kept`: it outlives one test and is dropped when this process's session ends."""
    import psycopg
    from sqlalchemy.engine import make_url
    name = f"cg_keep_{os.getpid()}_{uuid.uuid4().hex[:12]}" if kept else f"cg_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return make_url(PG_ADMIN_URL).set(drivername="postgresql+psycopg", database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    import psycopg
    from sqlalchemy.engine import make_url
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')


def store_database_url(home: Path) -> str:
    """The metadata URL for a store kept beyond one test (module or session fixtures): SQLite
    beside `home`, or in PostgreSQL-everywhere mode a fresh database dropped when the session ends."""
    if not PG_EVERYWHERE:
        return f"sqlite:///{Path(home).absolute().parent / 'metadata.db'}"
    return create_pg_database(kept=True)


def use_default_database(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let `Settings.from_env` pick the default metadata database: SQLite under the home, or in
    PostgreSQL-everywhere mode the test's own PostgreSQL database (already in the environment)."""
    if not PG_EVERYWHERE:
        monkeypatch.delenv("COMMONGROUND_DATABASE_URL", raising=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop the databases `store_database_url` made in this process (xdist workers each drop their own)."""
    if not PG_EVERYWHERE:
        return
    try:
        import psycopg
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                                                (f"cg_keep_{os.getpid()}_%",))]
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    except Exception:
        pass


@pytest.fixture(scope="session")
def pg_available() -> bool:
    return _pg_available()


@pytest.fixture(scope="session")
def store_database():
    """`store_database_url`, for module and session fixtures that build a store of their own."""
    return store_database_url


@pytest.fixture
def pg_url(pg_available: bool) -> Iterator[str]:
    """A fresh PostgreSQL database for one test, dropped afterwards."""
    if not pg_available:
        if PG_EVERYWHERE:
            pytest.fail(f"PostgreSQL-everywhere mode, but {PG_ADMIN_URL} is not reachable")
        pytest.skip("PostgreSQL not reachable at 127.0.0.1:5432")
    url = create_pg_database()
    try:
        yield url
    finally:
        drop_pg_database(url)


@pytest.fixture(autouse=True)
def _postgres_everywhere(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """In PostgreSQL-everywhere mode, a store a test builds by default lives in the test's own database."""
    if PG_EVERYWHERE and "unit" not in request.node.path.parts:
        monkeypatch.setenv("COMMONGROUND_DATABASE_URL", request.getfixturevalue("pg_url"))


@pytest.fixture(params=["postgresql"] if PG_EVERYWHERE else ["sqlite", "postgresql"])
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
        use_default_database(monkeypatch)
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
            use_default_database(monkeypatch)

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
