"""A code-to-data run: materialise the governed views, run the sandbox, measure the output.

The views are the ones a clean-room query would read (the agreement's transforms and the
consent gate, bound by the DuckDB engine exactly as for queries), streamed as Arrow IPC files
into the run's private scratch directory without the hidden privacy unit (the child maps them
without a copy or a decode). The sandbox never sees the
store's files. Its output is then measured against the same views, in the same locked DuckDB
connection (which may read only the sources, the consent bases, the scratch inputs and the
output): rows, size, repeated groups, the people behind each group, output values equal to the
inputs' identifiers, and personal data found by the PII scanner. The pure rules in
`policy/code_release.py` turn those facts into refusals.

The views are bound by the query engine's own `DuckDBEngine.governed_connection` rather than a
copy of its set-up, so an analysis reads exactly what a query would.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import duckdb
import pyarrow as pa
import pyarrow.ipc  # noqa: F401  (pa.ipc)
import pyarrow.parquet as pq

from ..domain.code import Declared
from ..domain.errors import BadInput
from ..policy.analysis import PRIVACY_UNIT
from ..policy.code_release import MAX_OUTPUT_COLUMNS, CodePlan, OutputFacts, value_checked_columns
from ..policy.context import Plan
from ..ports import ConsentGate
from .duckdb_engine import DuckDBEngine
from .pii_scan import scan_file
from .sandbox import run_analysis


@dataclass(frozen=True)
class CodeOutcome:
    """`facts` and `output` when the analysis produced a file; `failure` when it did not."""

    output: Path | None
    facts: OutputFacts | None
    failure: str | None
    timings: dict[str, float] = field(default_factory=dict)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _quote(path: Path) -> str:
    return "'" + str(path.resolve()).replace("'", "''") + "'"


def run_code(plan: CodePlan, sources: Mapping[str, Path], gates: Mapping[str, ConsentGate], source: str,
             declared: Declared, scratch: Path, memory_limit: str = "4GB", timeout_s: float = 300.0) -> CodeOutcome:
    engine = DuckDBEngine(memory_limit=memory_limit, timeout_s=timeout_s)
    views = tuple(i.view for i in plan.inputs)
    as_plan = Plan(views=views, pseudonym_keys=plan.pseudonym_keys, columns=(), sql="", datasets=plan.datasets)
    timings: dict[str, float] = {}
    started = time.perf_counter()
    (scratch / "inputs").mkdir(parents=True, exist_ok=True)
    files = {i.key: scratch / "inputs" / f"{n}.arrow" for n, i in enumerate(plan.inputs)}
    output = scratch / "result.parquet"  # the child's Arrow output, validated and rewritten by the host
    try:
        with engine.governed_connection(as_plan, sources, gates, [output]) as con:
            return _run_in(con, plan, files, scratch, output, source, declared, timings, started)
    except duckdb.Error as e:
        raise BadInput(f"preparing the analysis's inputs failed ({type(e).__name__}); the message is withheld "
                       "because it could quote values of others' data") from None


def _run_in(con: duckdb.DuckDBPyConnection, plan: CodePlan, files: Mapping[str, Path], scratch: Path, output: Path, source: str,
            declared: Declared, timings: dict[str, float], started: float) -> CodeOutcome:
    """Materialise the inputs from the governed views, run the analysis confined, check its result."""
    for i in plan.inputs:
        _write_arrow(con, f"SELECT * EXCLUDE ({_ident(PRIVACY_UNIT)}) FROM {_view(i.key)}", files[i.key])
    timings["materialise_s"] = time.perf_counter() - started
    outcome = run_analysis(source, files, scratch, plan.terms)
    timings["sandbox_s"] = outcome.seconds
    if outcome.output is None:
        return CodeOutcome(None, None, outcome.failure, timings)
    started = time.perf_counter()
    try:
        table = pa.ipc.open_file(pa.memory_map(str(outcome.output))).read_all()
        table.validate(full=True)
    except (pa.ArrowException, OSError, ValueError) as e:  # the kind only: the file is the analysis's
        return CodeOutcome(None, None, f"the result is not a readable Arrow table ({type(e).__name__})", timings)
    pq.write_table(table, output, compression="zstd")
    try:
        facts = _measure(con, plan, declared, output)
    except duckdb.Error as e:  # a value the checks cannot compare: withheld, like anything unchecked
        return CodeOutcome(None, None, f"the result could not be checked ({type(e).__name__})", timings)
    timings["checks_s"] = time.perf_counter() - started
    return CodeOutcome(output, facts, None, timings)


def _write_arrow(con: duckdb.DuckDBPyConnection, sql: str, dest: Path) -> None:
    reader = con.sql(sql).to_arrow_reader(1 << 17)
    with pa.OSFile(str(dest), "wb") as sink, pa.ipc.new_file(sink, reader.schema) as writer:
        for batch in reader:
            writer.write_batch(batch)


def _view(key: str) -> str:
    owner, name = key.split(".", 1)
    return f"{_ident(owner)}.{_ident(name)}"


def _measure(con: duckdb.DuckDBPyConnection, plan: CodePlan, declared: Declared, output: Path) -> OutputFacts:
    size = output.stat().st_size
    con.execute(f"CREATE TEMP VIEW cg_out AS SELECT * FROM read_parquet({_quote(output)})")
    described = con.execute("DESCRIBE cg_out").fetchall()
    columns = tuple(str(r[0]) for r in described)
    unscalar = {str(r[0]): str(r[1]) for r in described if not _scalar(str(r[1]))}
    rows = con.execute("SELECT count(*) FROM cg_out").fetchone()[0]
    if (rows > plan.terms.max_output_rows or len(columns) > MAX_OUTPUT_COLUMNS or unscalar
            or any(c not in columns for c in declared.group_by)):
        return OutputFacts(rows, size, columns, unscalar=unscalar)  # refused on size or shape before reading further
    groups = [_ident(c) for c in declared.group_by]
    distinct = con.execute(f"SELECT count(*) FROM (SELECT DISTINCT {', '.join(groups) or '1'} FROM cg_out)").fetchone()[0]
    smallest, over, least = _group_sizes(con, plan, declared, columns)
    return OutputFacts(rows, size, columns, rows - distinct, smallest, over, least,
                       _identifier_values(con, plan, value_checked_columns(columns, declared, plan)), _pii(output))


def _scalar(column_type: str) -> bool:
    """Numbers, text, booleans, dates and times: values the checks compare one by one. Lists,
    structs, maps and blobs could carry many identifiers in one cell, so they never leave."""
    return not any(mark in column_type for mark in ("[", "(", "STRUCT", "MAP", "UNION", "BLOB", "BIT")) or \
        column_type.startswith("DECIMAL")


def _group_sizes(con, plan: CodePlan, declared: Declared, columns: tuple[str, ...]) -> tuple[int | None, int, int | None]:
    """The fewest distinct people any output row's group has in each input holding the group
    columns (values compared as text; a group absent from the inputs has none), the rows whose
    declared count exceeds that, and the smallest declared count."""
    count = _ident(declared.count) if declared.count in columns else None
    smallest: int | None = None
    over = 0
    for key in plan.group_sources(declared.group_by):
        keys = [f"CAST({_ident(c)} AS VARCHAR) AS g{n}" for n, c in enumerate(declared.group_by)]
        people = (f"SELECT {', '.join(keys + [f'count(DISTINCT {_ident(PRIVACY_UNIT)}) AS n'])} FROM {_view(key)}"
                  + (" GROUP BY ALL" if keys else ""))
        out_keys = [f"CAST({_ident(c)} AS VARCHAR) AS g{n}" for n, c in enumerate(declared.group_by)]
        out = f"SELECT {', '.join(out_keys + [f'TRY_CAST({count} AS DOUBLE) AS c' if count else 'NULL AS c'])} FROM cg_out"
        on = " AND ".join(f"o.g{n} IS NOT DISTINCT FROM p.g{n}" for n in range(len(keys))) or "TRUE"
        least, too_many = con.execute(f"SELECT min(coalesce(p.n, 0)), count(*) FILTER (WHERE o.c > coalesce(p.n, 0)) "
                                      f"FROM ({out}) o LEFT JOIN ({people}) p ON {on}").fetchone()
        if least is not None:
            smallest = least if smallest is None else min(smallest, least)
        over = max(over, too_many or 0)
    declared_least = con.execute(f"SELECT min(TRY_CAST({count} AS DOUBLE)) FROM cg_out").fetchone()[0] if count else None
    return smallest, over, int(declared_least) if declared_least is not None else None


def _identifier_values(con, plan: CodePlan, checked: tuple[str, ...]) -> dict[str, int]:
    """Per output column, its distinct values equal to a subject id, identifier or pseudonym the
    analysis was given. Values are compared as keys: text trimmed, lower-cased and without leading
    zeros, and integral numbers also as their digits, so 100234.0 matches '100234' and '00100234'.
    The keys of the (small) output are built first; the inputs are scanned once, filtered by them."""
    sources = [f"SELECT {_key(_ident(c))} AS k FROM {_view(i.key)}" for i in plan.inputs for c in i.identifying]
    if not checked or not sources:
        return {}
    keys = []
    for column in checked:
        col = _ident(column)
        number = f"TRY_CAST({col} AS DOUBLE)"
        keys.append(f"SELECT {_quote_text(column)} AS c, {_key(col)} AS k FROM cg_out")
        keys.append(f"SELECT {_quote_text(column)}, ltrim(CAST(TRY_CAST({number} AS HUGEINT) AS VARCHAR), '0') FROM cg_out "
                    f"WHERE {number} = floor({number})")
    con.execute(f"CREATE TEMP TABLE cg_outkeys AS SELECT DISTINCT c, k FROM ({' UNION ALL '.join(keys)}) "
                "WHERE k IS NOT NULL AND k <> ''")
    hits = f"SELECT DISTINCT k FROM ({' UNION ALL '.join(sources)}) WHERE k IN (SELECT k FROM cg_outkeys)"
    found = dict(con.execute(f"SELECT o.c, count(DISTINCT o.k) FROM cg_outkeys o JOIN ({hits}) h ON o.k = h.k "
                             "GROUP BY o.c").fetchall())
    return {column: int(found.get(column, 0)) for column in checked}


def _key(expression: str) -> str:
    return f"ltrim(lower(trim(CAST({expression} AS VARCHAR))), '0')"


def _quote_text(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _pii(output: Path) -> dict[str, str]:
    report = scan_file(output, full=False)
    return {f.column: (f.primary.value if f.primary else "personal data") for f in report.flagged}


def read_result(path: Path) -> tuple[list[str], list[list[object]]]:
    """A held or released result, already checked (rows and bytes within the agreement's limits)."""
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    try:
        con.execute("SET allowed_paths = $paths", {"paths": [str(path.resolve())]})
        con.execute("SET enable_external_access = false")
        cursor = con.execute(f"SELECT * FROM read_parquet({_quote(path)})")
        return [d[0] for d in cursor.description], [list(r) for r in cursor.fetchall()]
    finally:
        con.close()
