"""Runs a governed Plan on Apache Spark: the same plan, views, consent gate and threshold as
`duckdb_engine.DuckDBEngine`, for data too large for one machine.

The plan is DuckDB SQL; SQLGlot transpiles each view's SELECT, each group query and the output
SQL to Spark SQL. Dataset versions (and consent bases) are Parquet files that the driver and
every executor must reach under the same path (a shared mount, or the store's home on one).

How the walls compare with DuckDB's (see docs/deploy.md):
- DuckDB runs each query with external access off except the plan's files; Spark has no such
  switch: its JVM may read anything its user may. What a query can read is bounded instead by
  what it can name: the governor refuses table functions and binds every table to a dataset,
  and here every table reference is rewritten to a temporary view this engine registered for
  the query (anything else is refused before Spark sees the SQL). `spark.sql.runSQLOnFiles`
  is off, so ``parquet.`/path` `` cannot name a file either. Functions are the governor's
  allow-list (no `reflect`, `java_method`, `input_file_name`, ...).
- Each query runs in its own `SparkSession.newSession()` (its own temporary views and SQL
  settings, the shared SparkContext), under a job group cancelled after the timeout.
- Memory is the cluster's (executor memory), not a per-query limit.
- The keyed pseudonym is the same truncated HMAC-SHA256 as DuckDB's, spelled in Spark SQL
  (`sha2`, `unhex`, binary `||`, `left`), so both engines give the same pseudonyms. The pads derived from the
  key are part of the query plan Spark ships to executors and shows in its UI and event log:
  the UI is off by default here, and event logs must not be enabled or must be protected.

pyspark is imported only when the first query runs (`bootstrap.LazyEngine`), so
`import commonground` works without it.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any, Mapping

import sqlglot
from sqlglot import exp

from ..domain.errors import BadInput
from ..domain.schema import UNIT_HASH_COLUMN
from ..policy.context import GroupQuery, Plan, RelationView
from ..policy.differencing import CELLS, KEY, SPARK_UNIT_XXHASH64, UNIT, WEIGHT, Sketch
from ..policy.transforms import PSEUDONYM_PREFIX, hmac_sql
from ..ports import ConsentGate, QueryResult
from .duckdb_engine import DuckDBEngine, QueryTimeout, _query_error

DEFAULT_MASTER = "local[*]"
_VALUE = "cg_pseudonym_value"


def _spark(sql: str | exp.Expression) -> str:
    tree = sqlglot.parse_one(sql, read="duckdb") if isinstance(sql, str) else sql
    return tree.sql(dialect="spark")


def _bt(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


class SparkEngine:
    """`QueryEngine` on Spark. `session` may be given (tests, notebooks); otherwise one is made from
    `master` and `conf` on the first query and kept for the life of the engine."""

    def __init__(self, master: str = DEFAULT_MASTER, timeout_s: float = 300.0, conf: Mapping[str, str] | None = None,
                 session: Any = None, app_name: str = "commonground", consent_memory_limit: str = "4GB"):
        self.master = master
        self.timeout_s = timeout_s
        self.conf = dict(conf or {})
        self.app_name = app_name
        self._session = session
        self._lock = threading.Lock()
        # Consent bases are (re)built on the driver with DuckDB, as the DuckDB engine does, into the
        # store's home; Spark then reads them like any dataset file.
        self._bases = DuckDBEngine(memory_limit=consent_memory_limit)

    # -- session ---------------------------------------------------------------------------

    def session(self) -> Any:
        with self._lock:
            if self._session is None:
                from pyspark.sql import SparkSession
                builder = SparkSession.builder.master(self.master).appName(self.app_name)
                settings = {
                    "spark.ui.enabled": "false",
                    "spark.ui.showConsoleProgress": "false",
                    "spark.sql.runSQLOnFiles": "false",
                    "spark.sql.session.timeZone": "UTC",
                    # Group tables are small: few shuffle partitions locally, Spark's default on a cluster.
                    "spark.sql.shuffle.partitions": "4" if self.master.startswith("local") else "200",
                    **self.conf,
                }
                for key, value in settings.items():
                    builder = builder.config(key, value)
                self._session = builder.getOrCreate()
                self._session.sparkContext.setLogLevel("ERROR")
            return self._session

    def stop(self) -> None:
        with self._lock:
            if self._session is not None:
                self._session.stop()
                self._session = None

    # -- QueryEngine ------------------------------------------------------------------------

    def run(self, plan: Plan, sources: Mapping[str, Path], consent: Mapping[str, ConsentGate] | None = None) -> QueryResult:
        started = time.perf_counter()
        gates = {view.dataset: self._bases._consented(view, Path(sources[view.dataset]), (consent or {}).get(view.dataset))
                 for view in plan.views if view.consent}
        from py4j.protocol import Py4JError
        from pyspark.errors import PySparkException

        spark = self.session().newSession()
        context = spark.sparkContext
        group = f"commonground-{uuid.uuid4().hex}"
        timed_out = threading.Event()

        def cancel() -> None:
            timed_out.set()
            context.cancelJobGroup(group)

        context.setJobGroup(group, "commonground governed query", interruptOnCancel=True)
        timer = threading.Timer(self.timeout_s, cancel)
        timer.start()
        try:
            names = self._define(spark, plan, sources, gates)
            result = self._execute(spark, plan, names)
        except (PySparkException, Py4JError) as e:
            if timed_out.is_set():
                raise QueryTimeout(f"query took longer than {self.timeout_s:.0f} s and was cancelled") from None
            raise _query_error(e, plan) from None
        finally:
            timer.cancel()
            context.setLocalProperty("spark.jobGroup.id", None)
        return QueryResult(result.columns, result.rows, result.suppressed_groups, result.exact_recount,
                           (time.perf_counter() - started) * 1000, result.sketches)

    # -- SQL --------------------------------------------------------------------------------

    def _pseudonyms(self, plan: Plan) -> dict[str, exp.Expression]:
        """Each pseudonym function's body, with `cg_pseudonym_value` standing for its argument."""
        return {name: sqlglot.parse_one(hmac_sql(key, _VALUE), read="duckdb") for name, key in plan.pseudonym_keys.items()}

    def _translate(self, sql: str, names: Mapping[tuple[str, str], str], pseudonyms: Mapping[str, exp.Expression],
                   local: frozenset[str] = frozenset()) -> str:
        """DuckDB SQL of the plan -> Spark SQL over this query's temporary views.

        Every table must be a dataset view of the plan (`schema.table`), a name in `local`
        (placeholders, group tables) or a CTE of the statement; anything else is refused."""
        try:
            tree = sqlglot.parse_one(sql, read="duckdb")
        except sqlglot.errors.SqlglotError:
            raise BadInput("the plan's SQL could not be translated for Spark") from None
        ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}

        def rewrite(node: exp.Expression) -> exp.Expression:
            if isinstance(node, exp.Table):
                db, name = node.db, node.name
                if node.args.get("catalog") is not None:
                    raise BadInput("the plan names a table outside its views")
                if db:
                    target = names.get((db.lower(), name.lower()))
                    if target is None:
                        raise BadInput(f"the plan names a table outside its views: {db}.{name}")
                    new = exp.Table(this=exp.to_identifier(target))
                    if node.args.get("alias") is not None:
                        new.set("alias", node.args["alias"].copy())
                    else:
                        new.set("alias", exp.TableAlias(this=exp.to_identifier(name, quoted=True)))
                    return new
                if name.lower() not in local and name.lower() not in ctes:
                    raise BadInput(f"the plan names a table outside its views: {name}")
                return node
            if isinstance(node, exp.Anonymous) and str(node.this).lower().startswith(PSEUDONYM_PREFIX):
                body = pseudonyms.get(str(node.this).lower()) or pseudonyms.get(str(node.this))
                if body is None or len(node.expressions) != 1:
                    raise BadInput(f"the plan calls an unknown pseudonym function {node.this}")
                arg = node.expressions[0].copy()
                return body.copy().transform(
                    lambda n: arg.copy() if isinstance(n, exp.Column) and n.name == _VALUE and not n.table else n)
            return node

        return _spark(tree.transform(rewrite))

    def _define(self, spark: Any, plan: Plan, sources: Mapping[str, Path],
                gates: Mapping[str, tuple[Path, Mapping[str, bool]]]) -> dict[tuple[str, str], str]:
        pseudonyms = self._pseudonyms(plan)
        names: dict[tuple[str, str], str] = {}
        for i, view in enumerate(plan.views):
            source = str(Path(sources[view.dataset]).resolve())
            src = f"cg_src_{i}"
            rows = self._consented(spark, i, view, source, *gates[view.dataset]) if view.consent \
                else spark.read.parquet(source)
            if view.unit_subject and UNIT_HASH_COLUMN not in rows.columns:  # a version from before the column
                rows = rows.selectExpr("*", f"CASE WHEN {_bt(view.unit_subject)} IS NOT NULL THEN "
                                       f"xxhash64(CAST({_bt(view.unit_subject)} AS STRING)) END AS {UNIT_HASH_COLUMN}")
            rows.createOrReplaceTempView(src)
            select = view.select_sql.replace("FROM cg_source", f"FROM {src}").replace("FROM cg_consented", f"FROM {src}")
            target = f"cg_view_{i}"
            spark.sql(self._translate(select, {}, pseudonyms, frozenset({src}))).createOrReplaceTempView(target)
            names[(view.schema_name.lower(), view.table_name.lower())] = target
        return names

    @staticmethod
    def _consented(spark: Any, i: int, view: RelationView, source: str, base: Path, changes: Mapping[str, bool]) -> Any:
        """`cg_consented`, exactly as DuckDB's: the base alone when nothing changed since it was built;
        otherwise the base without the changed subjects, plus the source rows of those now admitted."""
        base_df = spark.read.parquet(str(base.resolve()))
        if not changes:
            return base_df
        subjects = sorted(changes)
        spark.createDataFrame([(s, bool(changes[s])) for s in subjects], "subject STRING, admitted BOOLEAN") \
            .createOrReplaceTempView(f"cg_changes_{i}")
        base_df.createOrReplaceTempView(f"cg_base_{i}")
        subject = f"CAST({_bt(view.consent_subject or '')} AS STRING)"
        kept = spark.sql(f"SELECT * FROM cg_base_{i} WHERE {subject} NOT IN (SELECT subject FROM cg_changes_{i})")
        if not any(changes.values()):
            return kept
        spark.read.parquet(source).createOrReplaceTempView(f"cg_raw_{i}")
        admitted = spark.sql(f"SELECT * FROM cg_raw_{i} WHERE {subject} IN "
                             f"(SELECT subject FROM cg_changes_{i} WHERE admitted)")
        return kept.unionByName(admitted)

    def _execute(self, spark: Any, plan: Plan, names: Mapping[tuple[str, str], str]) -> QueryResult:
        if plan.dp is not None:
            raise BadInput("access mode dp runs on the DuckDB engine only (its noise and contribution bounding "
                           "are not implemented for Spark); set COMMONGROUND_ENGINE=duckdb")
        if plan.noise:
            raise BadInput("seeded noise (access.noise) runs on the DuckDB engine only; set COMMONGROUND_ENGINE=duckdb")
        pseudonyms = self._pseudonyms(plan)
        if not plan.governed:
            df = spark.sql(self._translate(plan.sql, names, pseudonyms))
            return QueryResult(list(df.columns), [list(r) for r in df.collect()])
        suppressed = 0
        exact_recount = False
        groups = frozenset(f"__cg_groups_{i}" for i in range(len(plan.groups)))
        kept: list[Any] = []  # materialised group tables, released when the query ends
        sketches: list[list[Sketch]] = []
        try:
            for i, group in enumerate(plan.groups):
                df = self._materialise(spark, group.fast_sql or group.exact_sql, names, pseudonyms, groups, kept)
                unsure, small = self._counts(df)
                if group.fast_sql is not None and unsure:
                    df = self._materialise(spark, group.exact_sql, names, pseudonyms, groups, kept)
                    _, small = self._counts(df)
                    exact_recount = True
                df.createOrReplaceTempView(f"__cg_groups_{i}")
                suppressed += small
                sketches.append(self._sketches(spark, i, group, plan.sketch_salt, names, pseudonyms, groups))
            df = spark.sql(self._translate(plan.sql, names, pseudonyms, groups))
            return QueryResult(list(plan.columns), [list(r) for r in df.collect()], suppressed, exact_recount,
                               sketches=sketches)
        finally:
            for df in kept:
                df.unpersist()

    def _materialise(self, spark: Any, sql: str, names: Mapping[tuple[str, str], str],
                     pseudonyms: Mapping[str, exp.Expression], groups: frozenset[str], kept: list[Any]) -> Any:
        """A group query computed once into the executors' storage (DuckDB's temp table)."""
        df = spark.sql(self._translate(sql, names, pseudonyms, groups)).localCheckpoint(eager=True)
        kept.append(df)
        return df

    def _sketches(self, spark: Any, i: int, group: GroupQuery, salt: bytes, names: Mapping[tuple[str, str], str],
                  pseudonyms: Mapping[str, exp.Expression], groups: frozenset[str]) -> list[Sketch]:
        """The released groups' sketches (adapters/group_sketch.py does the same on DuckDB), with
        Spark's keyed xxhash64; the key is a query parameter, never in the SQL text."""
        if group.sketch_sql is None:
            return []
        keys = [f"`{KEY}{j}`" for j in range(group.sketch_keys)]
        on = " AND ".join(f"r.{k} <=> g.{k}" for k in keys) or "TRUE"
        rows = self._translate(group.sketch_sql, names, pseudonyms, groups)
        sql = (f"WITH r AS ({rows}), "
               f"g AS (SELECT row_number() OVER (ORDER BY 1) AS gid{''.join(', ' + k for k in keys)} "
               f"FROM __cg_groups_{i} WHERE __cg_ok), "
               f"h AS (SELECT g.gid, shiftrightunsigned(xxhash64(CAST(r.`{UNIT}` AS STRING), :salt), 32) AS x, "
               f"{f'CAST(r.`{WEIGHT}` AS DECIMAL(38, 0))' if group.sketch_weighted else '1'} AS w "
               f"FROM r JOIN g ON {on}) "
               f"SELECT gid, CAST(x % {CELLS} AS INT) AS cell, sum(w) AS n, sum(w * x) AS s, "
               f"sum(w * CAST(x AS DECIMAL(38, 0)) * x) AS q FROM h GROUP BY gid, CAST(x % {CELLS} AS INT)")
        cells: dict[int, list[tuple[int, int, int, int]]] = {}
        for row in spark.sql(sql, args={"salt": salt.hex()}).collect():
            cells.setdefault(row["gid"], []).append((row["cell"], row["n"], int(row["s"]), int(row["q"])))
        return [Sketch.from_cells(c, SPARK_UNIT_XXHASH64) for c in cells.values()]

    @staticmethod
    def _counts(df: Any) -> tuple[int, int]:
        """(groups left unsure by the row-count bound, groups under the threshold), in one job."""
        row = df.selectExpr("count_if(__cg_unsure) AS unsure", "count_if(NOT __cg_ok) AS small").collect()[0]
        return int(row["unsure"] or 0), int(row["small"] or 0)
