"""Metadata store over SQLAlchemy Core: SQLite by default, PostgreSQL by URL.

One `transaction()` is one unit of work: a change and its ledger entry commit together or not
at all. Ledger appends are serialised (SQLite: BEGIN IMMEDIATE; PostgreSQL: an advisory
transaction lock) so concurrent writers never race for the next index.
"""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Any, Iterator

import orjson
import sqlalchemy as sa
from sqlalchemy import event

from ..domain.merkle import leaf_hash
from . import tables as t

MIGRATIONS = Path(__file__).parent / "migrations"
_LEDGER_LOCK = 0x436F6D6D  # "Comm"


def canonical_json(entry: dict[str, Any]) -> bytes:
    """One byte string per entry, whoever writes it: sorted keys, no spaces, UTF-8, RFC 3339 times."""
    return orjson.dumps(entry, option=orjson.OPT_SORT_KEYS, default=str)


class SqlStore:
    def __init__(self, url: str):
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        kwargs: dict[str, Any] = {"future": True}
        if self.is_sqlite:
            kwargs["connect_args"] = {"timeout": 30, "check_same_thread": False}
        else:
            kwargs["pool_pre_ping"] = True
        self.engine = sa.create_engine(url, **kwargs)
        self._writer: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if self.is_sqlite else contextlib.nullcontext())
        if self.is_sqlite:
            self._serialise_sqlite_writers()

    def _serialise_sqlite_writers(self) -> None:
        @event.listens_for(self.engine, "connect")
        def _connect(dbapi_connection, _record):  # pragma: no cover - driver hook
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.close()

        @event.listens_for(self.engine, "begin")
        def _begin(conn):  # pragma: no cover - driver hook
            # Writers take the write lock up front so they serialise instead of deadlocking;
            # readers take none and never wait behind a writer (WAL).
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get("cg_read_only") else "BEGIN IMMEDIATE")

    def migrate(self, revision: str = "head") -> None:
        self._alembic("upgrade", revision)

    def downgrade(self, revision: str = "base") -> None:
        self._alembic("downgrade", revision)

    def _alembic(self, action: str, revision: str) -> None:
        from alembic import command  # imported here: every CLI command pays for module imports
        from alembic.config import Config

        with self.engine.begin() as conn:
            cfg = Config()
            cfg.set_main_option("script_location", str(MIGRATIONS))
            cfg.attributes["connection"] = conn
            getattr(command, action)(cfg, revision)

    def schema_revision(self) -> str | None:
        """The Alembic revision the database is at (None before the first migration)."""
        if not sa.inspect(self.engine).has_table("alembic_version"):
            return None
        with self.engine.connect() as conn:
            return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()

    def is_initialised(self) -> bool:
        return sa.inspect(self.engine).has_table("parties")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sa.Connection]:
        # SQLite: threads of this process queue on a lock before BEGIN IMMEDIATE, instead of
        # polling SQLite's busy handler (which sleeps up to 100 ms a try under contention).
        with self._writer:
            with self.engine.begin() as conn:
                if not self.is_sqlite:
                    # PostgreSQL: writers serialise from their first statement, as BEGIN IMMEDIATE
                    # makes them on SQLite, so a read-then-write (the next agreement version, the
                    # leaves a tree head covers) never races another process's commit.
                    conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LEDGER_LOCK})
                yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator[sa.Connection]:
        with self.engine.connect().execution_options(cg_read_only=True) as conn:
            yield conn

    def dispose(self) -> None:
        self.engine.dispose()

    # -- ledger ---------------------------------------------------------------------------

    def append_entry(self, conn: sa.Connection, entry: dict[str, Any]) -> int:
        """Append one entry in the caller's transaction; returns its index."""
        return self.append_entries(conn, [entry])[0]

    def append_entries(self, conn: sa.Connection, entries: list[dict[str, Any]]) -> list[int]:
        """Append entries in order, in the caller's transaction, with one lock and one insert."""
        if conn.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": _LEDGER_LOCK})
        size = int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.ledger_entries.c.idx) + 1, 0))).scalar_one())
        rows = []
        for offset, entry in enumerate(entries):
            data = canonical_json({**entry, "index": size + offset})
            rows.append({"idx": size + offset, "leaf_hash": leaf_hash(data), "entry": data.decode()})
        if rows:
            conn.execute(t.ledger_entries.insert(), rows)
        return [r["idx"] for r in rows]

    def ledger_size(self, conn: sa.Connection) -> int:
        """Entries in the log (the next index), read from the primary key's end."""
        return int(conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.ledger_entries.c.idx) + 1, 0))).scalar_one())

    def insert_tree_head(self, conn: sa.Connection, size: int, root: bytes, timestamp, signature: bytes,
                         frontier: bytes | None = None) -> None:
        conn.execute(t.tree_heads.insert().values(tree_size=size, root_hash=root, timestamp=timestamp,
                                                  signature=signature, frontier=frontier))

    def tree_heads(self, conn: sa.Connection) -> list[tuple[int, bytes, Any, bytes]]:
        rows = conn.execute(sa.select(t.tree_heads).order_by(t.tree_heads.c.tree_size))
        return [(int(r.tree_size), bytes(r.root_hash), r.timestamp, bytes(r.signature)) for r in rows]

    def latest_tree_head(self, conn: sa.Connection) -> tuple[int, bytes, Any, bytes, bytes | None] | None:
        r = conn.execute(sa.select(t.tree_heads).order_by(t.tree_heads.c.tree_size.desc()).limit(1)).first()
        if r is None:
            return None
        return int(r.tree_size), bytes(r.root_hash), r.timestamp, bytes(r.signature), bytes(r.frontier) if r.frontier else None

    def leaf_hashes_from(self, conn: sa.Connection, start: int) -> list[bytes]:
        rows = conn.execute(sa.text("SELECT leaf_hash FROM ledger_entries WHERE idx >= :s ORDER BY idx"), {"s": start})
        return [bytes(r[0]) for r in rows]

    def iter_entries(self, conn: sa.Connection, chunk: int = 50_000) -> Iterator[list[tuple[int, bytes, str]]]:
        """All entries in index order, a chunk at a time, so verifying a large log stays small in memory."""
        cursor = conn.exec_driver_sql("SELECT idx, leaf_hash, entry FROM ledger_entries ORDER BY idx")
        while rows := cursor.fetchmany(chunk):
            yield [(idx, bytes(h), e) for idx, h, e in rows]

    def entries(self, conn: sa.Connection, start: int = 0, limit: int | None = None) -> list[tuple[int, bytes, str]]:
        """Entries in index order. Plain SQL: verifying a million entries is dominated by this read."""
        sql = "SELECT idx, leaf_hash, entry FROM ledger_entries WHERE idx >= :start ORDER BY idx"
        params: dict[str, int] = {"start": start}
        if limit is not None:
            sql += " LIMIT :limit"
            params["limit"] = limit
        return [(idx, bytes(h), e) for idx, h, e in conn.execute(sa.text(sql), params)]


