"""Differencing defence: no released group may differ from another released one (earlier, or in
the same query) by the rows of fewer than k people.

Two allowed aggregates whose groups differ by one person reveal that person (a total minus a
total without them; a group and its complement; the same filter with and without an outlier).
So the engine computes, per released group, a compact sketch of the multiset of privacy units
behind its rows, and the service keeps them per (agreement, recipient). Pure here: the query
that feeds the sketch, the sketch algebra and the decision.

The sketch: each row's privacy unit is hashed (keyed, 32 bits) to x; its cell is x mod CELLS;
each cell holds (rows, sum of x, sum of x^2), sums modulo 2^64. Sketches add and subtract
cell by cell. In the difference of two sketches a cell that differs only by the rows of one
person p is *pure*: (c, c*x_p, c*x_p^2) for c = p's row-count difference, which can be
checked exactly; any other non-zero cell holds at least two people. So
`people_apart(a, b)` = pure cells + 2 x impure cells is a lower bound on the number of people
whose rows differ, exact unless three or more such people share a cell (rare for k << CELLS;
then it errs towards refusing). Identical multisets (a repeated query) give 0 and pass.

A row that stands for several base rows (after an inner aggregation, carried up by the rewrite
as a weight w) adds (w, w*x, w*x^2): the sketch counts base rows, so one person's dropped row
inside a per-person CTE still shows. The history is read through `candidate_window`: groups
whose row counts differ by more than (k-1) x the rows one person can have are >= k people apart.
"""

from __future__ import annotations

import functools
import operator
import struct
from dataclasses import dataclass
from typing import Sequence

from sqlglot import exp

from .analysis import DIALECT

CELLS = 64
_MOD = 1 << 64
_HALF = 1 << 63
_FORMAT = f"<B{CELLS}q{CELLS}Q{CELLS}Q"
# Sketch schemes: which engine's keyed hash of what made x. 0 and 1 hashed the id's text (sketches
# released before the hidden unit column, domain.schema.UNIT_HASH_COLUMN); 2 and 3 hash that column.
DUCKDB_HASH, SPARK_XXHASH64, DUCKDB_UNIT_HASH, SPARK_UNIT_XXHASH64 = 0, 1, 2, 3
UNIT = "__cg_unit"
WEIGHT = "__cg_weight"
KEY = "__cg_key_"
# The one-pass group table's extra columns (sketched_group), and the query parameter that carries
# the engine's sketch key (never in the SQL text).
CELL, CELL_ROW, CELL_ROWS, CELL_SUM, CELL_SQUARES = "__cg_cell", "__cg_cell_row", "__cg_n", "__cg_s", "__cg_q"
CELL_COLUMNS = (CELL, CELL_ROW, CELL_ROWS, CELL_SUM, CELL_SQUARES)
SKETCH_KEY = "cg_sketch_key"


@dataclass(frozen=True)
class Sketch:
    rows: tuple[int, ...]
    sums: tuple[int, ...]  # modulo 2^64
    squares: tuple[int, ...]  # modulo 2^64
    # Which engine's keyed hash made x: sketches of different schemes cannot be compared.
    scheme: int = 0

    @classmethod
    def from_cells(cls, cells: Sequence[tuple[int, int, int, int]], scheme: int = 0) -> Sketch:
        """From (cell, rows, sum x, sum x^2) as the engine aggregates them."""
        rows, sums, squares = [0] * CELLS, [0] * CELLS, [0] * CELLS
        for cell, count, total, square in cells:
            rows[cell] += int(count)
            sums[cell] = (sums[cell] + int(total)) % _MOD
            squares[cell] = (squares[cell] + int(square)) % _MOD
        return cls(tuple(rows), tuple(sums), tuple(squares), scheme)

    def __add__(self, other: Sketch) -> Sketch:
        return Sketch(tuple(a + b for a, b in zip(self.rows, other.rows)),
                      tuple((a + b) % _MOD for a, b in zip(self.sums, other.sums)),
                      tuple((a + b) % _MOD for a, b in zip(self.squares, other.squares)), self.scheme)

    def to_bytes(self) -> bytes:
        return struct.pack(_FORMAT, self.scheme, *self.rows, *self.sums, *self.squares)

    @classmethod
    def from_bytes(cls, data: bytes) -> Sketch:
        values = struct.unpack(_FORMAT, data)
        return cls(values[1:CELLS + 1], values[CELLS + 1:2 * CELLS + 1], values[2 * CELLS + 1:], values[0])


def people_apart(a: Sketch, b: Sketch, enough: int) -> int:
    """A lower bound on how many people's rows differ between a and b; stops counting at `enough`."""
    if a.rows == b.rows and a.sums == b.sums and a.squares == b.squares:
        return 0  # the common repeated query: tuple equality runs in C, the loop below does not
    found = 0
    for i in range(CELLS):
        rows = a.rows[i] - b.rows[i]
        total = (a.sums[i] - b.sums[i]) % _MOD
        square = (a.squares[i] - b.squares[i]) % _MOD
        if rows == 0 and total == 0 and square == 0:
            continue
        found += 1 if _one_person(rows, total, square) else 2
        if found >= enough:
            return found
    return found


def _one_person(rows: int, total: int, square: int) -> bool:
    """Whether (rows, total, square) is c rows of one person x: (c, c*x, c*x^2) with x < 2^32."""
    if rows == 0:
        return False
    signed = total - _MOD if total >= _HALF else total
    if signed % rows:
        return False
    x = signed // rows
    return 0 <= x < (1 << 32) and (rows * x * x) % _MOD == square


@dataclass(frozen=True)
class Released:
    """A released group's sketch, and where it was released (for the refusal's reason)."""

    sketch: Sketch
    where: str  # "this query" or "your query at ledger entry N"
    row_bound: int | None = None  # most sketch rows one person can have in it; None: unknown

    @property
    def rows(self) -> int:
        return sum(self.sketch.rows)


def candidate_window(group: Released, history_bound: int | None, k: int) -> tuple[int, int] | None:
    """The row counts an earlier group must have to be within k-1 people of `group`, or None
    when any could be. If fewer than k people's rows differ between G and H, each by at most
    max(bound_G, bound_H) rows, then |rows(G) - rows(H)| <= (k-1) x max(bound_G, bound_H): so
    with R = the larger of G's bound and the largest bound in the history (`history_bound`),
    only groups with rows in rows(G) +- (k-1) x R can be refused. Groups of unknown bound
    are read whatever their rows (the store adds them)."""
    if group.row_bound is None:
        return None
    reach = (k - 1) * max(group.row_bound, history_bound or 0)
    return group.rows - reach, group.rows + reach


def differencing_reasons(new: Sequence[Released], earlier: Sequence[Released], k: int) -> list[str]:
    """Why releasing `new` would let groups be subtracted to fewer than k people, if it would.
    Compares every new group with every earlier one and with the other new ones. The reason
    does not say by how many people, or which group: that would be a release of its own."""
    for i, group in enumerate(new):
        for other in [*new[i + 1:], *earlier]:
            if other.sketch.scheme != group.sketch.scheme:
                continue  # another engine's hashes: not comparable (docs/privacy.md)
            apart = people_apart(group.sketch, other.sketch, k)
            if 0 < apart < k:
                return [f"differencing: a group of this result differs from a group released by {other.where} "
                        f"by the rows of fewer than {k} people, so subtracting one from the other would reveal "
                        "them; the whole query is refused. Widen the filter or drop the condition that "
                        "removes so few people"]
    return []


def released_groups(blocks: Sequence[Sequence[Sketch]], bounds: Sequence[int | None] = ()) -> list[Released]:
    """Each released group of a result (`blocks`: per output block), and each block's released
    groups together: a GROUP BY's groups partition its rows, so their sum is released too (a
    total beside them would reveal the suppressed groups by subtraction). `bounds`: per block,
    the most sketch rows one person has (GroupQuery.sketch_row_bound); it bounds the block's
    total too, since a person's rows in all its groups are their rows in the block."""
    per_block = [*bounds, *[None] * (len(blocks) - len(bounds))]  # a block without a bound: unknown
    released = [Released(s, "this query", bound) for block, bound in zip(blocks, per_block) for s in block]
    released += [Released(functools.reduce(operator.add, block), "this query", bound)
                 for block, bound in zip(blocks, per_block) if len(block) > 1]
    return released


def sketch_query(select: exp.Select, unit: exp.Expression, weight: exp.Expression | None = None) -> tuple[str, int]:
    """The rows behind each group of an output SELECT: its GROUP BY keys, each row's privacy
    unit and, when an inner aggregation sits below, how many base rows the row stands for
    (`weight`, carried up by the rewrite), before aggregation (and before HAVING, which the group
    table applies). Returns the SQL and the number of keys; the engine joins it to the released
    groups on the keys and sums the weights instead of counting rows."""
    rows = select.copy()
    group = rows.args.get("group")
    keys = [k.copy() for k in group.expressions] if group else []
    for arg in ("group", "having", "order", "limit", "offset", "distinct", "qualify"):
        rows.set(arg, None)
    rows.set("expressions", [exp.alias_(k, f"{KEY}{i}", quoted=True, copy=False) for i, k in enumerate(keys)]
             + [exp.alias_(unit.copy(), UNIT, quoted=True, copy=False)]
             + ([exp.alias_(weight.copy(), WEIGHT, quoted=True, copy=False)] if weight is not None else []))
    return rows.sql(DIALECT, copy=False), len(keys)


def group_keys(select: exp.Select) -> list[exp.Expression]:
    """The hidden key columns the group table carries, so released groups can be joined to
    the rows behind them."""
    group = select.args.get("group")
    return [exp.alias_(k.copy(), f"{KEY}{i}", quoted=True, copy=False)
            for i, k in enumerate(group.expressions if group else [])]


def sketched_group(inner: exp.Select, unit: exp.Expression, weight: exp.Expression | None) -> exp.Select | None:
    """(Changes `inner` in place and returns it, or None leaving it as it was.) The group table and its groups' sketch cells in one pass over the rows (DuckDB): the
    group SELECT (`inner`, its output already extended with keys and threshold) grouped by
    GROUPING SETS ((keys), (keys, cell)), so the cell rows (`__cg_cell_row`) carry per (group,
    cell) the rows, sum x and sum x^2 of x = the unit's keyed hash >> 32 (the scheme
    group_sketch.py computes in a pass of its own). A join or a scan runs once instead of twice.
    HAVING keeps every cell row: it judges groups, and the engine joins cells to the groups kept.
    None where grouping sets would change the block's meaning (DISTINCT, windows, QUALIFY, a
    GROUP BY that already has sets) or its keys could be positions; the engine then sketches
    in its own pass (`sketch_sql`)."""
    group = inner.args.get("group")
    keys = list(group.expressions) if group else []
    if (inner.args.get("distinct") or inner.args.get("qualify") or inner.find(exp.Window)
            or (group and any(group.args.get(a) for a in ("grouping_sets", "cube", "rollup", "all")))
            or any(isinstance(k, (exp.Cube, exp.Rollup, exp.GroupingSets, exp.Literal)) for k in keys)):
        return None
    sketched = inner  # changed in place: the caller has generated the plain form already
    key = exp.Cast(this=exp.Placeholder(this=SKETCH_KEY), to=exp.DataType.build("UBIGINT", dialect=DIALECT))
    x = exp.paren(exp.BitwiseRightShift(this=exp.Anonymous(this="hash", expressions=[unit.copy(), key]),
                                        expression=exp.Literal.number(32)), copy=False)
    if weight is None:
        rows, total, square = exp.Count(this=exp.Star()), exp.Sum(this=x.copy()), exp.Sum(this=exp.Mul(this=x.copy(), expression=x.copy()))
    else:  # weight * x^2 can pass 2^64
        w = exp.cast(weight.copy(), "HUGEINT")
        rows, total = exp.Sum(this=w.copy()), exp.Sum(this=exp.Mul(this=w.copy(), expression=x.copy()))
        square = exp.Sum(this=exp.Mul(this=exp.Mul(this=w, expression=x.copy()), expression=x.copy()))
    cell = exp.column(CELL, quoted=True)
    grouping = exp.Anonymous(this="GROUPING", expressions=[cell.copy()])
    sketched.set("expressions", [*sketched.expressions,
                                 exp.alias_(exp.cast(exp.Mod(this=x, expression=exp.Literal.number(CELLS)), "INTEGER"), CELL, quoted=True),
                                 exp.alias_(exp.EQ(this=grouping.copy(), expression=exp.Literal.number(0)), CELL_ROW, quoted=True),
                                 exp.alias_(rows, CELL_ROWS, quoted=True), exp.alias_(total, CELL_SUM, quoted=True),
                                 exp.alias_(square, CELL_SQUARES, quoted=True)])
    sets = exp.GroupingSets(expressions=[exp.Tuple(expressions=[k.copy() for k in keys]),
                                         exp.Tuple(expressions=[*(k.copy() for k in keys), cell])])
    sketched.set("group", exp.Group(expressions=[sets]))
    having = sketched.args.get("having")
    if having is not None:
        cells = exp.EQ(this=grouping, expression=exp.Literal.number(0))
        sketched.set("having", exp.Having(this=exp.or_(cells, exp.paren(having.this, copy=False), copy=False)))
    return sketched
