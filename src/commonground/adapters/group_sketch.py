"""Sketches of the groups a governed query is about to release (policy/differencing.py).

Runs in the query's own DuckDB connection after the group tables exist: the rows behind each
released group (`__cg_ok`, after HAVING) are joined back to it on its hidden keys, each row's
privacy unit (the version's hidden 63-bit hash of the subject id: an integer, cheap to read and
to hash) is hashed with a key derived from the agreement's secret key (bound as a parameter,
never in the SQL text) to 32 bits, and (rows, sum x, sum x^2) are summed per
(group, cell). Usually the group table's own pass has summed the cells already
(differencing.sketched_group) and only the join to the released groups is left; otherwise this
is one extra scan of the rows, no DISTINCT. Costs: benchmarks/dp.py and governed_query.py
(docs/benchmarks.md, docs/privacy.md "What the check costs").
"""

from __future__ import annotations

import hashlib

import duckdb

from ..policy.context import GroupQuery
from ..policy.differencing import (CELL, CELL_ROW, CELL_ROWS, CELL_SQUARES, CELL_SUM, CELLS, DUCKDB_UNIT_HASH, KEY, UNIT,
                                   WEIGHT, Sketch)


def sketch_key(salt: bytes) -> int:
    """The 64-bit key the unit hash is keyed with. DuckDB's `hash(u, key)` combines hash(u) with
    hash(key), a 64-bit value, so a longer key (the agreement's 32 bytes as text, as before) adds
    no strength, while hashing a text key on every row cost ~4% of a query (docs/benchmarks.md)."""
    return int.from_bytes(hashlib.blake2b(salt, digest_size=8, person=b"cg-sketch").digest(), "little")


def released_sketches(con: duckdb.DuckDBPyConnection, table: str, group: GroupQuery, salt: bytes,
                      cells: str | None = None) -> dict[int, Sketch]:
    """One sketch per released group of `table`, by the group's rowid there (seeded noise is
    drawn per group from its sketch: adapters/threshold_noise.py). `cells`: the table where the
    group table's own pass already summed the cells (policy/differencing.sketched_group);
    otherwise the rows are read again here."""
    if group.sketch_sql is None:
        return {}
    keys = [f'"{KEY}{i}"' for i in range(group.sketch_keys)]
    on = " AND ".join(f"c.{k} IS NOT DISTINCT FROM g.{k}" for k in keys) or "TRUE"
    listed = "".join(f"{k}, " for k in keys)
    released = f"g AS (SELECT rowid AS gid{''.join(', ' + k for k in keys)} FROM {table} WHERE __cg_ok)"
    if cells is not None:
        return _collect(con.execute(
            f"WITH c AS (SELECT {listed}{CELL} AS cell, {CELL_ROWS} AS n, {CELL_SUM} AS s, {CELL_SQUARES} AS q "
            f"FROM {cells} WHERE {CELL_ROW}), {released} SELECT g.gid, c.cell, c.n, c.s, c.q FROM c JOIN g ON {on}"))
    # Aggregate the rows per (group keys, cell) first, then join the few aggregated rows to the
    # released groups: one pass over the rows, no join at row level. A weighted row (one that
    # stands for several base rows after an inner aggregation) counts as that many rows, in
    # HUGEINT since weight * x^2 can pass 2^64.
    if group.sketch_weighted:
        weight = f", CAST(r.\"{WEIGHT}\" AS HUGEINT) AS w"
        sums = "sum(w) AS n, sum(w * x) AS s, sum(w * x * x) AS q"
    else:
        weight, sums = "", "count(*) AS n, sum(x) AS s, sum(x * x) AS q"
    sql = (f"WITH r AS ({group.sketch_sql}), "
           f"h AS (SELECT {listed}hash(r.\"{UNIT}\", $key::UBIGINT) >> 32 AS x{weight} FROM r), "
           f"c AS (SELECT {listed}CAST(x % {CELLS} AS INTEGER) AS cell, {sums} "
           f"FROM h GROUP BY ALL), "
           f"{released} SELECT g.gid, c.cell, c.n, c.s, c.q FROM c JOIN g ON {on}")
    return _collect(con.execute(sql, {"key": sketch_key(salt)}))


def _collect(cursor: duckdb.DuckDBPyConnection) -> dict[int, Sketch]:
    cells: dict[int, list[tuple[int, int, int, int]]] = {}
    for gid, cell, rows, total, square in cursor.fetchall():
        cells.setdefault(gid, []).append((cell, rows, total, square))
    return {gid: Sketch.from_cells(c, DUCKDB_UNIT_HASH) for gid, c in cells.items()}
