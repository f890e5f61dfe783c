"""Runs a governed Plan on DuckDB, in a connection that can read nothing but the plan's files.

Each query gets a fresh in-memory connection: extensions cannot be installed or loaded,
external access is off except for the exact Parquet files of the datasets involved, the
configuration is locked before any user SQL runs, and memory and time are bounded.
The governor has already refused anything that is not a plain SELECT; this is the second wall.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Mapping, Sequence

import duckdb
import pyarrow as pa
from ..domain.errors import BadInput
from ..policy.context import Plan
from ..policy.transforms import hmac_sql
from ..ports import QueryResult


class QueryTimeout(BadInput):
    pass


def _query_error(error: Exception, plan: Plan) -> BadInput:
    """An engine error as the querier may see it.

    Over others' data an error message can quote values (DuckDB's overflow and conversion
    errors print operands), so only the kind of error is kept; over one's own data the
    message is the owner's to read.
    """
    if not plan.governed:
        return BadInput(f"query failed: {str(error).strip().splitlines()[0][:300]}")
    kind = type(error).__name__.replace("Exception", "").replace("Error", "") or "engine"
    return BadInput(f"query failed in the engine ({kind.lower()} error); the message is withheld "
                    "because it could quote values of others' data")


class DuckDBEngine:
    def __init__(self, memory_limit: str = "4GB", threads: int | None = None, timeout_s: float = 120.0,
                 temp_directory: Path | None = None):
        self.memory_limit = memory_limit
        self.threads = threads
        self.timeout_s = timeout_s
        self.temp_directory = temp_directory

    def _connect(self, sources: Mapping[str, Path]) -> duckdb.DuckDBPyConnection:
        config: dict[str, object] = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            "memory_limit": self.memory_limit,
        }
        if self.threads:
            config["threads"] = self.threads
        if self.temp_directory:
            config["temp_directory"] = str(self.temp_directory)
        con = duckdb.connect(":memory:", config=config)
        paths = [str(Path(p).resolve()) for p in sources.values()]
        con.execute("SET allowed_paths = $paths", {"paths": paths})
        con.execute("SET enable_external_access = false")
        return con

    def run(self, plan: Plan, sources: Mapping[str, Path], consent: Mapping[str, Sequence[str]] | None = None) -> QueryResult:
        """`consent` maps each consent-gated dataset to its subject set for this query's purpose."""
        started = time.perf_counter()
        con = self._connect({d: sources[d] for d in plan.datasets})
        try:
            self._define(con, plan, sources, consent or {})
            con.execute("SET lock_configuration = true")
            timer = threading.Timer(self.timeout_s, con.interrupt)
            timer.start()
            try:
                result = self._execute(con, plan)
            except duckdb.InterruptException:
                raise QueryTimeout(f"query took longer than {self.timeout_s:.0f} s and was cancelled") from None
            except duckdb.Error as e:
                raise _query_error(e, plan) from None
            finally:
                timer.cancel()
        finally:
            con.close()
        return QueryResult(result.columns, result.rows, result.suppressed_groups, result.exact_recount,
                           (time.perf_counter() - started) * 1000)

    def _define(self, con: duckdb.DuckDBPyConnection, plan: Plan, sources: Mapping[str, Path],
                consent: Mapping[str, Sequence[str]]) -> None:
        for name, key in plan.pseudonym_keys.items():
            con.execute(f"CREATE MACRO {name}(v) AS {hmac_sql(key, 'v')}")
        for i, view in enumerate(plan.views):
            path = str(Path(sources[view.dataset]).resolve()).replace("'", "''")
            con.execute(f"CREATE VIEW cg_src_{i} AS SELECT * FROM read_parquet('{path}')")
            if view.consent:
                subjects = pa.table({"subject": pa.array(list(consent.get(view.dataset, ())), pa.string())})
                con.register(f"cg_consent_arrow_{i}", subjects)
                con.execute(f"CREATE TEMP TABLE cg_consent_{i} AS SELECT DISTINCT subject FROM cg_consent_arrow_{i}")
                con.unregister(f"cg_consent_arrow_{i}")
            # The governor writes the placeholders as plain `FROM cg_source` / `FROM cg_consent`
            # (names no dataset or column can take), so binding them needs no re-parse.
            select = view.select_sql.replace("FROM cg_source", f"FROM cg_src_{i}").replace("FROM cg_consent", f"FROM cg_consent_{i}")
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{view.schema_name}"')
            con.execute(f'CREATE VIEW "{view.schema_name}"."{view.table_name}" AS {select}')

    def _execute(self, con: duckdb.DuckDBPyConnection, plan: Plan) -> QueryResult:
        if not plan.governed:
            cursor = con.execute(plan.sql)
            columns = [d[0] for d in cursor.description]
            return QueryResult(columns, [list(r) for r in cursor.fetchall()])
        suppressed = 0
        exact_recount = False
        for i, group in enumerate(plan.groups):
            table = f"__cg_groups_{i}"
            if group.fast_sql is not None:
                con.execute(f"CREATE TEMP TABLE {table} AS {group.fast_sql}")
                unsure = con.execute(f"SELECT count(*) FROM {table} WHERE __cg_unsure").fetchone()[0]
                if unsure:
                    con.execute(f"DROP TABLE {table}")
                    con.execute(f"CREATE TEMP TABLE {table} AS {group.exact_sql}")
                    exact_recount = True
            else:
                con.execute(f"CREATE TEMP TABLE {table} AS {group.exact_sql}")
            suppressed += con.execute(f"SELECT count(*) FROM {table} WHERE NOT __cg_ok").fetchone()[0]
        cursor = con.execute(plan.sql)
        return QueryResult(list(plan.columns), [list(r) for r in cursor.fetchall()], suppressed, exact_recount)
