"""The one composition root: settings -> concrete adapters -> the services' dependencies.

Nothing is created at import time; every engine and connection is made here, on demand.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .adapters.ingest import ParquetIngest
from .adapters.keys import FileSigner
from .adapters.store import Store
from .adapters.subject_data import SubjectData, members_path
from .adapters.tables import SCHEMA_REVISION
from .domain.errors import BadInput
from .services.deps import Deps

DEFAULT_HOME = ".commonground"
DEFAULT_MAX_UPLOAD = 20 * 1024**3


ENGINES = ("duckdb", "spark")


class LazyEngine:
    """The query engine, made on the first query: most commands never query, and importing the
    engine (DuckDB, Arrow, SQLGlot; or pyspark and a JVM) is a third of every command's start-up."""

    def __init__(self, kind: str = "duckdb", **settings: Any) -> None:
        self.kind = kind
        self._settings = settings
        self._engine: Any = None

    def _made(self) -> Any:
        """The selected engine, made (and its modules imported) the first time it is needed."""
        if self._engine is None:
            if self.kind == "spark":
                try:
                    from .adapters.spark_engine import SparkEngine
                except ImportError:
                    raise BadInput("COMMONGROUND_ENGINE=spark needs pyspark: pip install 'commonground[spark]'") from None
                self._engine = SparkEngine(**self._settings)
            else:
                from .adapters.duckdb_engine import DuckDBEngine
                self._engine = DuckDBEngine(**self._settings)
        return self._engine

    def warm_up(self) -> None:
        """Make the DuckDB engine now and open one connection, so a server's first query does not
        pay for the imports (~1 s on a slow machine). Spark stays lazy: its JVM is the engine's
        own start-up, and it is started when the first query needs it."""
        if self.kind == "duckdb":
            self._made().warm_up()

    def run(self, plan: Any, sources: Any, consent: Any = None) -> Any:
        return self._made().run(plan, sources, consent)

    def export(self, plan: Any, source: Any, gate: Any, dest: Any, fmt: str, metadata: Any) -> Any:
        if self.kind == "spark":  # an export writes one file on this machine: DuckDB does it, with Spark selected too
            if getattr(self, "_exporter", None) is None:
                from .adapters.duckdb_engine import DuckDBEngine
                self._exporter = DuckDBEngine(memory_limit=self._settings.get("consent_memory_limit", "4GB"),
                                              timeout_s=self._settings.get("timeout_s", 300.0))
            return self._exporter.export(plan, source, gate, dest, fmt, metadata)
        return self._made().export(plan, source, gate, dest, fmt, metadata)

    def run_code(self, plan: Any, sources: Any, gates: Any, source: str, declared: Any, scratch: Path) -> Any:
        """A code-to-data run (adapters/code_run.py): DuckDB binds the views whichever engine is selected."""
        from .adapters.code_run import run_code
        return run_code(plan, sources, gates, source, declared, scratch,
                        memory_limit=self._settings.get("memory_limit", self._settings.get("consent_memory_limit", "4GB")),
                        timeout_s=self._settings.get("timeout_s", 300.0))

    def code_result(self, path: Path) -> Any:
        """A held or released code-to-data result's columns and rows."""
        from .adapters.code_run import read_result
        return read_result(path)


class SystemClock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    max_upload_bytes: int = DEFAULT_MAX_UPLOAD
    query_memory: str = "4GB"
    query_timeout_s: float = 300.0
    engine: str = "duckdb"  # COMMONGROUND_ENGINE: "duckdb" (one machine) or "spark"
    spark_master: str = "local[*]"  # COMMONGROUND_SPARK_MASTER, e.g. spark://host:7077

    @classmethod
    def from_env(cls, home: str | Path | None = None) -> "Settings":
        home_path = Path(home or os.environ.get("COMMONGROUND_HOME") or DEFAULT_HOME).absolute()
        url = os.environ.get("COMMONGROUND_DATABASE_URL") or f"sqlite:///{home_path / 'metadata.db'}"
        try:
            max_upload = int(os.environ.get("COMMONGROUND_MAX_UPLOAD_BYTES", DEFAULT_MAX_UPLOAD))
            timeout = float(os.environ.get("COMMONGROUND_QUERY_TIMEOUT", 300))
        except ValueError:
            raise BadInput("COMMONGROUND_MAX_UPLOAD_BYTES and COMMONGROUND_QUERY_TIMEOUT must be numbers") from None
        engine = (os.environ.get("COMMONGROUND_ENGINE") or "duckdb").strip().lower()
        if engine not in ENGINES:
            raise BadInput(f"COMMONGROUND_ENGINE must be one of {', '.join(ENGINES)}, not {engine!r}")
        return cls(home_path, url, max_upload, os.environ.get("COMMONGROUND_QUERY_MEMORY", "4GB"), timeout, engine,
                   os.environ.get("COMMONGROUND_SPARK_MASTER") or "local[*]")


def build(settings: Settings, clock=None) -> Deps:
    ingest = ParquetIngest(settings.home, settings.max_upload_bytes)
    return Deps(
        home=settings.home,
        store=Store(settings.database_url),
        clock=clock or SystemClock(),
        ingest=ingest,
        engine=_engine(settings),
        subject_data=SubjectData(ingest),
        signer=FileSigner(settings.home / "keys" / "ledger-ed25519.pem"),
        new_id=lambda: uuid.uuid4().hex,
        new_secret=lambda: "cg_" + secrets.token_urlsafe(32),
    )


def _engine(settings: Settings) -> LazyEngine:
    if settings.engine == "spark":
        return LazyEngine("spark", master=settings.spark_master, timeout_s=settings.query_timeout_s,
                          consent_memory_limit=settings.query_memory)
    return LazyEngine(memory_limit=settings.query_memory, timeout_s=settings.query_timeout_s)


def warm_up(deps: Deps) -> None:
    """What a server does before it answers: read the vocabulary (the store's first read),
    govern a query that reads nothing (SQLGlot loads a dialect on its first use, ~0.13 s) and
    make the query engine (DuckDB and Arrow, ~1 s of imports on a slow machine), so its first
    request is about as fast as the next ones (docs/benchmarks.md, First request)."""
    from .policy.context import QueryContext  # noqa: PLC0415 - only a server needs these up front
    from .policy.governor import govern  # noqa: PLC0415
    from .services.vocabulary import vocabulary  # noqa: PLC0415
    vocabulary(deps)
    govern("SELECT 1 AS warm", QueryContext("", "", {}, ()))
    if isinstance(deps.engine, LazyEngine):
        deps.engine.warm_up()


def init_store(deps: Deps) -> None:
    """Create the home, migrate the metadata to head, create the signing key, sweep leftovers."""
    deps.home.mkdir(parents=True, exist_ok=True)
    (deps.home / "data").mkdir(exist_ok=True)
    deps.store.migrate()
    deps.signer.create_if_missing()  # type: ignore[attr-defined]
    sweep(deps)


def open_store(deps: Deps) -> Deps:
    """An existing store, upgraded to this version's metadata schema if it is behind."""
    if not deps.home.exists() or not deps.store.is_initialised():
        raise BadInput(f"no store at {deps.home}: run `commonground init` first (or set --home / COMMONGROUND_HOME)")
    if deps.store.schema_revision() != SCHEMA_REVISION:
        deps.store.migrate()
    return deps


def sweep(deps: Deps) -> list[Path]:
    with deps.store.read() as conn:
        referenced = {deps.home / p for p in deps.store.all_paths(conn)}
    # A purged version's members file (its subject ids, for receipts) is referenced through it.
    return deps.ingest.sweep(referenced | {members_path(p) for p in referenced})
