"""Quasi-identifiers compared with values: refused unless the agreement allow-lists the column.

A minimum group size does not stop `WHERE zip = '02139' AND age = 34`: each query passes the
threshold, yet two of them that differ by one such filter single a person out (AWS Clean Rooms
refuses the same comparisons unless the provider allow-lists them). Identifying columns are
refused outright by `checks` (the allow-list does not relax them); this rule covers the
quasi-identifying ones: any predicate (=, <>, <, IN, BETWEEN, LIKE, regexp and prefix tests,
simple CASE) between a quasi-identifier, or a function of one, and a value the querier chose
(a literal, or a column of the querier's own data, which could be a crafted one-row table).
"""

from __future__ import annotations

from typing import Iterator

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from ..domain.schema import Role
from .analysis import Analysis, Lineage, Origin, short

# Functions that test a value against a pattern or prefix (predicates sqlglot models as Func).
_PATTERN_FUNCTIONS = (exp.StartsWith, exp.RegexpLike, exp.RegexpILike)
_PATTERN_NAMES = frozenset({"starts_with", "ends_with", "suffix", "prefix", "contains", "regexp_matches",
                            "regexp_full_match", "like_escape", "ilike_escape", "list_contains", "array_contains",
                            "strpos", "instr", "position", "jaro_similarity", "levenshtein", "hamming"})


def check_literal_filters(a: Analysis, scope: Scope, select: exp.Select, lineage: Lineage) -> None:
    for node in select.walk():
        if node.find_ancestor(exp.Select) is not select:
            continue  # inside a subquery, which has its own scope
        for probed, value in _comparisons(node):
            column = _unlisted_quasi_identifier(lineage, scope, probed)
            if column and _chosen_by_querier(lineage, scope, value):
                a.refuse(f"filters: {column} is quasi-identifying and cannot be compared with a value you choose "
                         f"({short(node)}); group by it instead, or ask the provider to list it in the "
                         "agreement's access.filterable")


def _comparisons(node: exp.Expression) -> Iterator[tuple[exp.Expression, exp.Expression]]:
    """(side, other side) pairs of a predicate node, both ways round."""
    if isinstance(node, exp.Is):
        return  # IS NULL tests presence, not a value
    if isinstance(node, exp.In):
        others = list(node.expressions) + ([node.args["query"]] if node.args.get("query") else [])
        for other in others:
            yield node.this, other
        return
    if isinstance(node, exp.Between):
        for bound in (node.args.get("low"), node.args.get("high")):
            if bound is not None:
                yield node.this, bound
        return
    if isinstance(node, exp.Case) and node.this is not None:
        for branch in node.args.get("ifs") or []:
            yield node.this, branch.this
        return
    if isinstance(node, (exp.Predicate, *_PATTERN_FUNCTIONS)) and isinstance(node, exp.Binary):
        yield node.this, node.expression
        yield node.expression, node.this
        return
    if isinstance(node, _PATTERN_FUNCTIONS) or _function_name(node) in _PATTERN_NAMES:
        args = list(node.iter_expressions())
        for i, arg in enumerate(args):
            for other in args[:i] + args[i + 1:]:
                yield arg, other


def _function_name(node: exp.Expression) -> str | None:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower() if isinstance(node, exp.Func) else None


def _unlisted_quasi_identifier(lineage: Lineage, scope: Scope, side: exp.Expression) -> str | None:
    for origin in sorted(lineage.expression(scope, side)):
        if _is_unlisted_quasi_identifier(lineage, origin):
            ref = lineage.by_id(origin[0])
            return f"{ref.table.key}.{origin[1]}"
    return None


def _is_unlisted_quasi_identifier(lineage: Lineage, origin: Origin) -> bool:
    ref = lineage.by_id(origin[0])
    if not ref.protected:
        return False
    assert ref.agreement is not None
    role = ref.table.schema.column(origin[1]).role
    return role is Role.QUASI_IDENTIFIER and origin[1] not in ref.agreement.terms.privacy.filterable


def _chosen_by_querier(lineage: Lineage, scope: Scope, value: exp.Expression) -> bool:
    """A literal or expression of literals, or one that reads only the querier's own data."""
    origins = lineage.expression(scope, value)
    return not any(lineage.by_id(r).protected for r, _ in origins)
