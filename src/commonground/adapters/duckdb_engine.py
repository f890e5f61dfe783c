"""Runs a governed Plan on DuckDB, in a connection that can read nothing but the plan's files.

Each query gets a fresh in-memory connection: extensions cannot be installed or loaded,
external access is off except for the exact Parquet files of the datasets involved, the
configuration is locked before any user SQL runs, and memory and time are bounded.
The governor has already refused anything that is not a plain SELECT; this is the second wall.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
import time
from pathlib import Path
from typing import Iterator, Mapping, Sequence

import duckdb
import pyarrow as pa
from ..domain.errors import BadInput
from ..domain.schema import UNIT_HASH_COLUMN
from ..policy.context import GroupQuery, Plan, RelationView
from ..policy.differencing import CELL_COLUMNS, CELL_ROW, SKETCH_KEY, Sketch
from ..policy.exports import ExportPlan
from ..ports import ConsentGate, QueryResult
from . import consent_base, dp_noise, threshold_noise
from .anonymiser import Anonymised, anonymise
from .group_sketch import released_sketches, sketch_key
from .ingest import file_sha256, has_hidden_column, unit_hash_sql
from .keyed_hash import define_pseudonym

# Exports are written at zstd level 1. A pseudonymised export is mostly 32-character hex
# pseudonyms, entropy no level compresses below 4 bits a character, so the default level 3 spends
# its time for nothing: writing 1M exported rows (then with 64-character pseudonyms) took 1.19 s
# at level 1 against 2.20 s at level 3 (medians of 7, load ~5), and the file came out smaller.
# Negative (fast) levels gained little more time and nearly doubled the file; turning the
# dictionary off did not help either (docs/benchmarks.md, export).
EXPORT_PARQUET = "FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1"
# dp plans' perfect-hash aggregation on person numbers (governed_connection): each thread holds a
# table of 2^bits slots (~25-100 bytes each, by the aggregates), so the cap shrinks as threads
# grow, keeping all threads' tables near 2^23 slots: 22 bits (~4M people) on two threads.
PERFECT_HASH_SLOTS = 1 << 23


def perfect_hash_bits(threads: int) -> int:
    """DuckDB's `perfect_ht_threshold` for a dp plan on `threads` threads (never below its
    default of 12)."""
    return max(12, (PERFECT_HASH_SLOTS // max(threads, 1)).bit_length() - 1)


def _quote(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


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

    def _config(self) -> dict[str, object]:
        config: dict[str, object] = {"memory_limit": self.memory_limit}
        if self.threads:
            config["threads"] = self.threads
        if self.temp_directory:
            config["temp_directory"] = str(self.temp_directory)
        return config

    def _connect(self, files: Sequence[Path]) -> duckdb.DuckDBPyConnection:
        config: dict[str, object] = {
            "autoinstall_known_extensions": False,
            "autoload_known_extensions": False,
            **self._config(),
        }
        con = duckdb.connect(":memory:", config=config)
        paths = [str(Path(p).resolve()) for p in files]
        con.execute("SET allowed_paths = $paths", {"paths": paths})
        con.execute("SET enable_external_access = false")
        return con

    def warm_up(self) -> None:
        """Open and close one connection as queries do (DuckDB's first connection in a process
        sets up its allocator and catalogue)."""
        con = self._connect([])
        try:
            con.execute("SELECT 1").fetchall()
        finally:
            con.close()

    @contextlib.contextmanager
    def governed_connection(self, plan: Plan, sources: Mapping[str, Path],
                            consent: Mapping[str, ConsentGate] | None = None,
                            writable: Sequence[Path] = ()) -> Iterator[duckdb.DuckDBPyConnection]:
        """A locked connection holding the plan's governed views (transforms, pseudonym functions,
        consent gates): it may touch only the plan's sources, their consent bases and `writable`,
        with no extensions and no network. Queries and code-to-data runs both read through it, so
        an analysis sees exactly what a query would."""
        gates = {view.dataset: self._consented(view, Path(sources[view.dataset]), (consent or {}).get(view.dataset))
                 for view in plan.views if view.consent}
        con = self._connect([Path(sources[d]) for d in plan.datasets] + [base for base, _ in gates.values()]
                            + list(writable))
        try:
            self._define(con, plan, sources, gates)
            if plan.dp is not None:
                # dp bounds each person's contribution by grouping on the version's person numbers
                # (policy/dp.py): up to 2^22 (~4M) people on two threads DuckDB then aggregates with
                # a perfect hash, one slot per number, instead of a hash table (0.55 s against
                # 0.69 s on 10M rows of 2M people). The cap bounds those tables' memory; beyond
                # it, hashing, as before.
                threads = con.execute("SELECT current_setting('threads')").fetchone()[0]
                con.execute(f"SET perfect_ht_threshold = {perfect_hash_bits(int(threads))}")
            con.execute("SET lock_configuration = true")
            yield con
        finally:
            con.close()

    def run(self, plan: Plan, sources: Mapping[str, Path], consent: Mapping[str, ConsentGate] | None = None) -> QueryResult:
        """`consent` gives, for each consent-gated dataset, its gate for this query's purpose."""
        started = time.perf_counter()
        with self.governed_connection(plan, sources, consent) as con:
            try:
                with self._deadline(con, "query"):
                    result = self._execute(con, plan)
            except duckdb.Error as e:
                raise _query_error(e, plan) from None
        return QueryResult(result.columns, result.rows, result.suppressed_groups, result.exact_recount,
                           (time.perf_counter() - started) * 1000, result.sketches, result.dp, result.noise)

    def export(self, plan: ExportPlan, source: Path, gate: ConsentGate | None, dest: Path, fmt: str,
               metadata: Mapping[str, str]) -> Anonymised:
        """Write a recipient's curated copy to `dest` (which may be written, nothing else):
        the governed view, k-anonymised, in keyed order, as Parquet (with `metadata`) or CSV."""
        as_plan = Plan(views=(plan.view,), pseudonym_keys=plan.pseudonym_keys, columns=plan.columns, sql="",
                       datasets=(plan.dataset,))
        with self.governed_connection(as_plan, {plan.dataset: source}, {plan.dataset: gate} if gate else None,
                                      [dest]) as con:
            try:
                with self._deadline(con, "export"):
                    result = anonymise(con, f'"{plan.view.schema_name}"."{plan.view.table_name}"', plan)
                    if fmt == "parquet":
                        pairs = ", ".join(f"'{k}': '{v}'" for k, v in metadata.items())
                        options = f"{EXPORT_PARQUET}, KV_METADATA {{{pairs}}}"
                    else:
                        options = "FORMAT csv, HEADER true"
                    con.execute(f"COPY ({result.select_sql}) TO {_quote(dest)} ({options})")
            except duckdb.Error as e:  # others' data: the message is withheld, as for governed queries
                raise _query_error(e, dataclasses.replace(as_plan, per_subject=True)) from None
        digest, size = file_sha256(dest)
        return dataclasses.replace(result, sha256=digest, bytes=size)

    @contextlib.contextmanager
    def _deadline(self, con: duckdb.DuckDBPyConnection, what: str) -> Iterator[None]:
        """Interrupt the connection's work after `timeout_s`, as a QueryTimeout."""
        timer = threading.Timer(self.timeout_s, con.interrupt)
        timer.start()
        try:
            yield
        except duckdb.InterruptException:
            raise QueryTimeout(f"{what} took longer than {self.timeout_s:.0f} s and was cancelled") from None
        finally:
            timer.cancel()

    def _consented(self, view: RelationView, source: Path, gate: ConsentGate | None) -> tuple[Path, Mapping[str, bool]]:
        """The base to read for a consent-gated view and the changes to apply over it.

        A base is used only if its header matches this version, purpose, mode and seq and its
        row count; otherwise it is rebuilt from a fresh snapshot (`gate.reload`). Without a
        usable gate the query does not run: a gated view is never read ungated.
        """
        if gate is None or gate.mode != view.consent or not view.consent_subject:
            raise BadInput(f"{view.dataset} is consent-gated and no consent state was given for it")
        if gate.snapshot is None and consent_base.is_valid(gate.base, gate.source_sha256, gate.purpose, gate.mode,
                                                           gate.base_seq):
            return gate.base, gate.changes
        if gate.snapshot is None:
            gate = gate.reload() if gate.reload is not None else gate
            if gate.snapshot is None or gate.mode != view.consent:
                raise BadInput(f"the consent base of {view.dataset} is missing or stale and cannot be rebuilt")
        if gate.snapshot.seq != gate.base_seq:
            raise BadInput(f"the consent snapshot of {view.dataset} does not match its base")
        try:
            consent_base.build(source, gate.base, view.consent_subject, gate.mode, gate.purpose, gate.source_sha256,
                               gate.base_seq, gate.snapshot.subjects, self._config())
        except (duckdb.Error, OSError, RuntimeError) as e:  # the message could quote data: keep the kind only
            raise BadInput(f"building the consent base of {view.dataset} failed ({type(e).__name__})") from None
        return gate.base, gate.changes

    def _define(self, con: duckdb.DuckDBPyConnection, plan: Plan, sources: Mapping[str, Path],
                gates: Mapping[str, tuple[Path, Mapping[str, bool]]]) -> None:
        for name, key in plan.pseudonym_keys.items():
            define_pseudonym(con, name, key)
        for i, view in enumerate(plan.views):
            path = _quote(Path(sources[view.dataset]).resolve())
            if view.consent:
                rows = self._consented_sql(con, i, view, path, *gates[view.dataset])
            else:
                rows = f"SELECT * FROM read_parquet({path})"
            if view.unit_subject and not has_hidden_column(con, f"({rows})", UNIT_HASH_COLUMN):  # a version from before the column
                rows = f"SELECT *, {unit_hash_sql(view.unit_subject)} AS {UNIT_HASH_COLUMN} FROM ({rows})"
            con.execute(f"CREATE VIEW cg_src_{i} AS {rows}")
            # The governor writes the placeholders as plain `FROM cg_source` / `FROM cg_consented`
            # (names no dataset or column can take), so binding them needs no re-parse.
            select = view.select_sql.replace("FROM cg_source", f"FROM cg_src_{i}").replace("FROM cg_consented", f"FROM cg_src_{i}")
            con.execute(f'CREATE SCHEMA IF NOT EXISTS "{view.schema_name}"')
            con.execute(f'CREATE VIEW "{view.schema_name}"."{view.table_name}" AS {select}')

    @staticmethod
    def _consented_sql(con: duckdb.DuckDBPyConnection, i: int, view: RelationView, path: str, base: Path,
                       changes: Mapping[str, bool]) -> str:
        """`cg_consented`: the base as it is when nothing changed since it was built (no join at all);
        otherwise the base without the changed subjects, plus the rows of those now admitted."""
        base_sql = f"SELECT * FROM read_parquet({_quote(base.resolve())})"
        if not changes:
            return base_sql
        subjects = sorted(changes)
        con.register(f"cg_changes_arrow_{i}", pa.table({"subject": pa.array(subjects, pa.string()),
                                                         "admitted": pa.array([changes[s] for s in subjects], pa.bool_())}))
        con.execute(f"CREATE TEMP TABLE cg_changes_{i} AS SELECT subject, admitted FROM cg_changes_arrow_{i}")
        con.unregister(f"cg_changes_arrow_{i}")
        subject = f"CAST({consent_base.ident(view.consent_subject or '')} AS VARCHAR)"
        sql = f"{base_sql} WHERE {subject} NOT IN (SELECT subject FROM cg_changes_{i})"
        if any(changes.values()):
            sql += (f" UNION ALL BY NAME SELECT * FROM read_parquet({path}) "
                    f"WHERE {subject} IN (SELECT subject FROM cg_changes_{i} WHERE admitted)")
        return sql

    @staticmethod
    def _group_table(con: duckdb.DuckDBPyConnection, table: str, group: GroupQuery, salt: bytes) -> tuple[bool, str | None]:
        """Compute one block's group table; returns whether it was recounted exactly, and the
        table holding its groups' sketch cells when they came in the same pass (`_cells`).

        The fast form bounds people by row counts; if any group is left unsure, the block is
        recounted with COUNT(DISTINCT unit). The cells of the fast pass stand for the recount
        too: the same rows under the same keys."""
        def create(plain: str, sketched: str | None) -> str | None:
            if sketched is None:
                con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {plain}")
                return None
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table}_cells AS {sketched}", {SKETCH_KEY: sketch_key(salt)})
            con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT * EXCLUDE ({', '.join(CELL_COLUMNS)}) "
                        f"FROM {table}_cells WHERE NOT {CELL_ROW}")
            return f"{table}_cells"

        if group.fast_sql is None:
            return False, create(group.exact_sql, group.exact_sketched_sql)
        cells = create(group.fast_sql, group.fast_sketched_sql)
        if not con.execute(f"SELECT count(*) FROM {table} WHERE __cg_unsure").fetchone()[0]:
            return False, cells
        create(group.exact_sql, None if cells else group.exact_sketched_sql)
        return True, cells

    def _execute(self, con: duckdb.DuckDBPyConnection, plan: Plan) -> QueryResult:
        if not plan.governed:
            cursor = con.execute(plan.sql)
            columns = [d[0] for d in cursor.description]
            return QueryResult(columns, [list(r) for r in cursor.fetchall()])
        if plan.dp is not None:
            rows, withheld, noise = dp_noise.release(plan.dp, con.execute(plan.sql).fetchall())
            return QueryResult(list(plan.columns), rows, withheld, dp=noise)
        suppressed = 0
        exact_recount = False
        sketches: list[list[Sketch]] = []
        for i, group in enumerate(plan.groups):
            table = f"__cg_groups_{i}"
            recounted, cells = self._group_table(con, table, group, plan.sketch_salt)
            exact_recount = exact_recount or recounted
            suppressed += con.execute(f"SELECT count(*) FROM {table} WHERE NOT __cg_ok").fetchone()[0]
            by_group = released_sketches(con, table, group, plan.sketch_salt, cells)
            sketches.append(list(by_group.values()))
            if plan.noise:
                threshold_noise.perturb(con, table, group, plan.noise[i], by_group, plan.sketch_salt)
        cursor = con.execute(plan.sql)
        return QueryResult(list(plan.columns), [list(r) for r in cursor.fetchall()], suppressed, exact_recount,
                           sketches=sketches,
                           noise=threshold_noise.describe(plan.noise, list(plan.columns)) if plan.noise else None)
