"""The rules a query over others' data must pass, each a small function over the qualified tree.

Every rule adds human-readable reasons to the analysis instead of raising, so one refusal
lists all that is wrong. A reason names the rule, the column or construct, and what is
allowed instead.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from ..domain.agreements import AccessMode
from ..domain.schema import ColumnSpec, Seal
from . import allowlist, filters
from .analysis import (INJECTIVE, Analysis, Lineage, Ref, aggregates_in, conjuncts, is_aggregating, output_scopes,
                       short)

ALLOWED_IDENTIFIER_USES = "it may only be counted (COUNT(DISTINCT ...)), joined on by equality with another key, or tested IS NULL"


def check_access_mode(a: Analysis) -> None:
    refs = list(a.refs.values())
    own = [r for r in refs if not r.protected]
    protected = [r for r in refs if r.protected]
    for ref in protected:
        if ref.agreement.terms.mode is AccessMode.OFFER:  # type: ignore[union-attr]
            a.refuse(f"access mode: your agreement for {ref.table.key} grants per-subject offers only, whose results "
                     "go to each subject, not to you; submit the computation with `offer submit`")
        if ref.agreement.terms.mode is AccessMode.CODE:  # type: ignore[union-attr]
            a.refuse(f"access mode: your agreement for {ref.table.key} grants code access only: submit an analysis "
                     "with `code submit`; its results leave after the disclosure checks and the providers' release")
    if own and not any(r.agreement.terms.mode is AccessMode.JOIN for r in protected):  # type: ignore[union-attr]
        names = ", ".join(sorted({r.table.key for r in own}))
        a.refuse(
            f"access mode: your agreement grants aggregate access only, so your own data ({names}) cannot be "
            "combined with it; query the shared dataset alone, or ask for an agreement with access mode join"
        )


def check_scopes(a: Analysis, scopes: list[Scope], lineage: Lineage) -> None:
    outputs = {id(s.expression) for s in output_scopes(scopes)}
    for scope in scopes:
        select = scope.expression
        if scope.external_columns:
            a.refuse(
                "subqueries: a subquery may not refer to the outer query (correlated) when others' data is "
                f"involved ({short(scope.external_columns[0])}); JOIN on a permitted key or use a CTE instead"
            )
        if not isinstance(select, exp.Select):
            continue
        output = id(select) in outputs
        if not lineage.touches_protected(scope):
            if output:
                _refuse_unprotected_output(a, scopes)
            continue
        if scope.is_subquery:
            a.refuse("subqueries: subqueries in expressions (WHERE x IN (SELECT ...), scalar subqueries) may not "
                     "read others' data; join on a permitted key or use a CTE instead")
            continue
        if output:
            _check_output(a, select)
        elif is_aggregating(select):
            _check_inner_aggregation(a, scope, select, lineage)
        _check_identifier_uses(a, scope, select, lineage, output)
        _check_seal_uses(a, scope, select, lineage, output)
        _check_aggregates(a, scope, select, lineage)
        filters.check_literal_filters(a, scope, select, lineage)


def _refuse_unprotected_output(a: Analysis, scopes: list[Scope]) -> None:
    """Every output SELECT must read others' data, or its rows could not be counted in people."""
    if isinstance(scopes[-1].expression, exp.SetOperation):
        a.refuse("set operations: every branch of a UNION/INTERSECT/EXCEPT over others' data must read others' "
                 "data; query your own data separately")
    else:
        a.refuse("aggregate only: the result does not read others' data in its FROM clause, so it cannot be "
                 "counted in people; remove CTEs the result does not use")


# ---------------------------------------------------------------------------------------
# identifying columns


def _check_identifier_uses(a: Analysis, scope: Scope, select: exp.Select, lineage: Lineage, output: bool) -> None:
    """Identifying values (subject ids, identifiers, pseudonyms) may be counted, joined on, tested
    IS NULL, or carried to an outer query. Any other use can single out or probe a person: a
    comparison with a literal, a function over the value, a picking aggregate, a group of one."""
    for col in scope.columns:
        if col.find_ancestor(exp.Select) is not select:
            continue  # a correlated reference inside a subquery: refused as such
        names = lineage.identifying(lineage.column(scope, col))
        if names:
            problem = _identifier_problem(col, select, scope, lineage, output, names[0])
            if problem:
                a.refuse(problem)


def _identifier_problem(col: exp.Column, select: exp.Select, scope: Scope, lineage: Lineage,
                        output: bool, name: str) -> str | None:
    parent = _parent(col)
    if isinstance(parent, exp.Distinct) and allowlist.is_aggregate(parent.parent):
        parent = parent.parent
    if isinstance(parent, (exp.Count, exp.ApproxDistinct)):
        return None
    if allowlist.is_aggregate(parent):
        label = allowlist.function_name(parent).upper()
        return (f"aggregates: {label}({col.name}) would return values of identifying {name}; "
                f"COUNT(DISTINCT {col.name}) is allowed")
    if isinstance(parent, exp.EQ) and _is_key_equality(parent, scope, lineage):
        return None
    if isinstance(parent, exp.Is) and isinstance(parent.expression, exp.Null):
        return None
    clause = _clause(col, select)
    if parent is select or (isinstance(parent, exp.Alias) and parent.parent is select):
        if not output:
            return None  # carried to the outer query, where the same rules apply
        return f"identifiers: {name} cannot be output; it is identifying. COUNT(DISTINCT {col.name}) is allowed"
    if clause == "group" and isinstance(parent, exp.Group):
        if not output:
            return None  # a per-person inner aggregation, counted in subjects above it
        return (f"identifiers: cannot GROUP BY {name}; it is identifying and would put each person in a group "
                f"of their own. Group by a permitted dimension instead ({_dimensions(lineage, col, scope)})")
    if clause == "order":
        return f"identifiers: cannot ORDER BY {name}; it is identifying. Order by an output column instead"
    return f"identifiers: {name} is identifying and cannot be used in {short(parent)}; {ALLOWED_IDENTIFIER_USES}"


def _parent(node: exp.Expression) -> exp.Expression:
    parent = node.parent
    while isinstance(parent, exp.Paren):
        parent = parent.parent
    return parent  # type: ignore[return-value]


def _clause(node: exp.Expression, select: exp.Select) -> str | None:
    """The clause of `select` a node sits in: expressions, where, group, having, order, joins..."""
    child = node
    while child.parent is not None and child.parent is not select:
        child = child.parent
    return child.arg_key if child.parent is select else None


def _is_key_equality(eq: exp.EQ, scope: Scope, lineage: Lineage) -> bool:
    """`a.key = b.key`: two identifying columns compared with each other, as a join does."""
    sides = (eq.this, eq.expression)
    return all(isinstance(s, exp.Column) and lineage.identifying(lineage.column(scope, s)) for s in sides)


def _dimensions(lineage: Lineage, col: exp.Column, scope: Scope) -> str:
    origins = lineage.column(scope, col)
    ref = lineage.by_id(sorted(origins)[0][0])
    names = [c for c in ref.visible() if not lineage.is_identifying((ref.id, c))]
    return "permitted: " + (", ".join(names) or "none")


# ---------------------------------------------------------------------------------------
# sealed columns (sealed at the contributor's site; docs/sealing.md)


def _check_seal_uses(a: Analysis, scope: Scope, select: exp.Select, lineage: Lineage, output: bool) -> None:
    """A fingerprint (keyed HMAC, equal exactly when the plaintexts are) may only be joined by
    equality with a fingerprint of the same collaboration, domain and normalisation, or counted;
    a sealed value (AES-GCM ciphertext) may only be carried as is to an output the agreement
    lets leave row by row (access mode rows). Both may be carried bare to an outer query, and a
    fingerprint subject id may be the GROUP BY of a per-person inner aggregation."""
    for col in scope.columns:
        if col.find_ancestor(exp.Select) is not select:
            continue
        for origin in sorted(lineage.column(scope, col)):
            spec = _spec(lineage, origin)
            if not spec.sealed:
                continue
            name = f"{lineage.by_id(origin[0]).table.key}.{origin[1]}"
            if spec.seal is Seal.FINGERPRINT:
                problem = _fingerprint_problem(col, select, scope, lineage, output, name, spec)
            else:
                problem = _sealed_problem(col, select, lineage, output, name, origin)
            if problem:
                a.refuse(problem)


def _spec(lineage: Lineage, origin: tuple[int, str]) -> ColumnSpec:
    return lineage.by_id(origin[0]).table.schema.column(origin[1])


def _seal_identity(lineage: Lineage, origin: tuple[int, str]) -> tuple[str | None, str, tuple[str, ...]]:
    spec = _spec(lineage, origin)
    return lineage.by_id(origin[0]).table.schema.collaboration, spec.domain, spec.normalize


def _bare(col: exp.Column, select: exp.Select) -> bool:
    parent = _parent(col)
    return parent is select or (isinstance(parent, exp.Alias) and parent.parent is select)


def _fingerprint_problem(col: exp.Column, select: exp.Select, scope: Scope, lineage: Lineage, output: bool,
                         name: str, spec: ColumnSpec) -> str | None:
    parent = _parent(col)
    if isinstance(parent, exp.Distinct) and isinstance(parent.parent, (exp.Count, exp.ApproxDistinct)):
        return None
    if isinstance(parent, (exp.Count, exp.ApproxDistinct)):
        return None
    if not output and (_bare(col, select) or isinstance(parent, exp.Group)):
        return None  # carried to the outer query, or a per-person inner GROUP BY; checked above it
    if isinstance(parent, exp.EQ):
        other = parent.expression if parent.this is col else parent.this
        mine = _seal_identity(lineage, sorted(lineage.column(scope, col))[0])
        theirs = lineage.column(scope, other) if isinstance(other, exp.Column) else frozenset()
        if theirs and all(_spec(lineage, o).seal is Seal.FINGERPRINT and _seal_identity(lineage, o) == mine
                          for o in theirs):
            return None
        if not isinstance(other, exp.Column):
            return (f"fingerprints: {name} is a fingerprint; it cannot be compared with a value ({short(parent)}), "
                    f"only joined by equality with a fingerprint column or counted (COUNT(DISTINCT {col.name}))")
        collaboration, domain, steps = mine
        return (f"fingerprints: {name} is a fingerprint (collaboration {collaboration}, domain {domain}, "
                f"normalised {'+'.join(steps) or 'not at all'}); it can only be joined by equality with a fingerprint "
                f"column sealed the same way, and {short(other)} is not one, so no value would match")
    if output and _bare(col, select):
        return (f"fingerprints: {name} is a fingerprint (a keyed pseudonym) and cannot be output; "
                f"COUNT(DISTINCT {col.name}) is allowed")
    return (f"fingerprints: {name} is a fingerprint (a keyed HMAC, equal exactly when the values are); it may only "
            f"be joined by equality with a fingerprint of the same domain or counted (COUNT(DISTINCT {col.name})), "
            f"not used in {short(parent)}")


ROWS_MODE = "rows"  # the access mode that lets rows (and so sealed values) leave, when the store has it


def _sealed_problem(col: exp.Column, select: exp.Select, lineage: Lineage, output: bool, name: str,
                    origin: tuple[int, str]) -> str | None:
    if _bare(col, select):
        if not output:
            return None  # carried to the outer query, where the same rules apply
        ref = lineage.by_id(origin[0])
        if ref.agreement is not None and ref.agreement.terms.mode.value == ROWS_MODE:
            return None  # the recipient receives the ciphertext and opens it with `unseal`
    offered = ROWS_MODE in {m.value for m in AccessMode}
    later = ("under an agreement with access mode rows" if offered
             else "under an agreement with access mode rows, which this store does not offer yet")
    return (f"sealed: {name} is sealed (AES-GCM ciphertext only the collaboration's parties can open), so it cannot "
            f"be aggregated, filtered, grouped on, ordered by or joined (here: {short(_parent(col))}); it may only "
            f"be output as is, {later}")


# ---------------------------------------------------------------------------------------
# aggregates and output shape


def _check_aggregates(a: Analysis, scope: Scope, select: exp.Select, lineage: Lineage) -> None:
    """Aggregates that return row values leak rows. Next to others' data, picking one of the
    querier's own values (MAX(name)) would tell which of its people fall in the group."""
    for agg in aggregates_in(select):
        if agg.find_ancestor(exp.Select) is not select:
            continue
        label = allowlist.function_name(agg).upper()
        own = sorted(f"{lineage.by_id(r).table.key}.{c}" for r, c in lineage.expression(scope, agg)
                     if not lineage.by_id(r).protected)
        if type(agg).__name__ in allowlist.ROW_AGGREGATES or label == "LIST":
            a.refuse(f"aggregates: {label} returns row values, which is not allowed with others' data; "
                     "use COUNT, SUM, AVG, or MIN/MAX of a non-identifying column of the shared dataset")
        elif isinstance(agg, (exp.Min, exp.Max)) and agg.args.get("count") is not None:
            a.refuse(f"aggregates: {label}(column, n) returns a list of n row values; use {label}(column) "
                     "for a single value")
        elif type(agg).__name__ in allowlist.PICKING_AGGREGATES and own:
            a.refuse(f"aggregates: {label} of your own column {own[0]} would pick one of your rows and tell "
                     "that this person is in the group; use COUNT, SUM or AVG of it")


def _check_output(a: Analysis, select: exp.Select) -> None:
    group = select.args.get("group")
    if select.args.get("distinct") and not group:
        a.refuse("aggregate only: SELECT DISTINCT without GROUP BY lists values of others' data row by row; "
                 "write GROUP BY over permitted dimensions with COUNT(*), so small groups can be suppressed")
        return
    if not is_aggregating(select):
        a.refuse("aggregate only: the result must aggregate others' data (COUNT, SUM, AVG, ...) with GROUP BY "
                 "over permitted dimensions; row-level output is not allowed")
        return
    if group and (any(group.args.get(k) for k in ("all", "cube", "rollup", "grouping_sets"))
                  or any(isinstance(n, (exp.Cube, exp.Rollup, exp.GroupingSets)) for n in group.walk())):
        a.refuse("GROUP BY: ALL, CUBE, ROLLUP and GROUPING SETS are not allowed on others' data (a subtotal minus "
                 "the shown groups would reveal the suppressed ones); list the dimensions in a plain GROUP BY")


def _check_inner_aggregation(a: Analysis, scope: Scope, select: exp.Select, lineage: Lineage) -> None:
    """An inner aggregate must keep one row per subject, so subjects can still be counted above it."""
    group = select.args.get("group")
    keys = list(select.selects) if select.args.get("distinct") else (group.expressions if group else [])
    key_origins = [lineage.expression(scope, k) for k in keys if isinstance(k.unalias(), exp.Column)]
    for ref in lineage.protected_refs_below(scope):
        subject = ref.table.schema.subject_column
        origin = (ref.id, subject or "")
        if frozenset({origin}) in key_origins and lineage.is_subject_key(origin):
            continue
        transform = ref.visible().get(subject or "")
        why = (" (it is not shared under the agreement)" if transform is None else
               f" ({subject} is shared as {transform.kind.value}, so it no longer names one person)"
               if transform.kind not in INJECTIVE else "")
        a.refuse(
            f"inner aggregation: a subquery or CTE that aggregates {ref.table.key} must GROUP BY its subject "
            f"column {subject} as is{why}, so people can still be counted; aggregate in the outer query instead"
        )


# ---------------------------------------------------------------------------------------
# joins


def check_joins(a: Analysis, scopes: list[Scope], lineage: Lineage) -> None:
    """Joins touching others' data are equalities on permitted keys. Records what the querier's
    own join columns must be transformed by so they match the other side's pseudonyms."""
    for table in a.tree.find_all(exp.Table):
        if table.args.get("joins"):
            a.refuse("joins: parenthesised (nested) joins are not allowed with others' data; "
                     "write the joins one after another")
    for scope in scopes:
        select = scope.expression
        if not isinstance(select, exp.Select) or not lineage.touches_protected(scope):
            continue
        for join in select.args.get("joins") or []:
            _check_join(a, scope, join, lineage)


def _check_join(a: Analysis, scope: Scope, join: exp.Join, lineage: Lineage) -> None:
    on = join.args.get("on")
    kind = (join.args.get("kind") or "").upper()
    method = (join.args.get("method") or "").upper()
    if on is None or kind == "CROSS" or method:
        construct = f"{method} JOIN" if method else ("CROSS JOIN" if kind == "CROSS" else "a join without ON")
        a.refuse(f"joins: {construct} is not allowed with others' data; use JOIN ... ON equality of permitted "
                 "join keys")
        return
    for condition in conjuncts(on):
        _check_join_condition(a, scope, condition, lineage)


def _check_join_condition(a: Analysis, scope: Scope, condition: exp.Expression, lineage: Lineage) -> None:
    sides = (condition.this, condition.expression) if isinstance(condition, exp.EQ) else ()
    if not sides or not all(isinstance(s, exp.Column) for s in sides):
        a.refuse(f"joins: only equality of columns is allowed in a join condition, not {short(condition)}; "
                 "join on permitted keys, and filter in WHERE")
        return
    if sides[0].table == sides[1].table:
        a.refuse(f"joins: a join condition must compare columns of two different tables, not {short(condition)}")
        return
    foreign_keys: list[tuple[Ref, str]] = []
    own_cols: list[tuple[Ref, str]] = []
    for side in sides:
        origins = lineage.column(scope, side)
        # One dataset column, possibly through several references (a UNION of the same table).
        columns = {(lineage.by_id(r).table.key, c) for r, c in origins}
        if len(columns) != 1:
            a.refuse(f"joins: join columns must be plain dataset columns, not computed ones ({short(condition)})")
            return
        ref_id, column = sorted(origins)[0]
        ref = lineage.by_id(ref_id)
        (foreign_keys if ref.protected else own_cols).append((ref, column))
    for ref, column in foreign_keys:
        assert ref.agreement is not None
        if column not in ref.agreement.terms.join_keys:
            allowed = ", ".join(ref.agreement.terms.join_keys) or "none"
            a.refuse(f"joins: {ref.table.key}.{column} is not a permitted join key (permitted: {allowed})")
            return
    if foreign_keys and own_cols:
        _record_own_transform(a, foreign_keys[0], own_cols)


def _record_own_transform(a: Analysis, foreign: tuple[Ref, str], own_cols: list[tuple[Ref, str]]) -> None:
    """The querier's join column gets the same transform (e.g. the keyed hash) as the key it meets."""
    fref, fcol = foreign
    assert fref.agreement is not None
    wanted = (fref.visible()[fcol], fref.agreement.id)
    for oref, ocol in own_cols:
        if a.own_transforms.setdefault((oref.table.key, ocol), wanted) != wanted:
            a.refuse(f"joins: your column {oref.table.key}.{ocol} is joined to keys of different agreements; "
                     "split the query")
