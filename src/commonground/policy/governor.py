"""The clean-room query governor: SQL + catalog + agreements in force -> a Plan or a refusal.

Pure: no I/O, no clock. The pipeline is parse -> screen -> resolve tables -> qualify ->
check -> rewrite. Checks collect every reason before refusing, so one refusal tells the
querier all that is wrong. Enforcement is by rewriting: the threshold on distinct subjects
is added to the query, never trusted to it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError, ParseError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import Scope, traverse_scope

from ..domain.agreements import AccessMode, AgreementState, Transform, TransformKind
from ..domain.errors import BadInput, NotFound, Refused
from . import allowlist, transforms
from .context import GroupQuery, Plan, QueryContext, RelationView, TableInfo

DIALECT = "duckdb"
RESERVED_PREFIX = "__cg"
PRIVACY_UNIT = "__cg_pu"
MAX_SQL_LENGTH = 100_000


@dataclass
class _Ref:
    """One occurrence of a dataset in the query (a self-join has two)."""

    id: int
    table: TableInfo
    agreement: AgreementState | None  # None: the querier's own dataset

    @property
    def protected(self) -> bool:
        return self.agreement is not None


@dataclass
class _Analysis:
    ctx: QueryContext
    tree: exp.Query
    refs: dict[int, _Ref] = field(default_factory=dict)  # id(exp.Table) -> ref
    reasons: list[str] = field(default_factory=list)

    def refuse(self, reason: str) -> None:
        if reason not in self.reasons:
            self.reasons.append(reason)


# ---------------------------------------------------------------------------------------
# entry point


def govern(sql: str, ctx: QueryContext) -> Plan:
    tree = _parse(sql)
    _screen(tree)
    analysis = _Analysis(ctx, tree)
    foreign = _resolve_tables(analysis)
    if not foreign:
        return _own_plan(analysis)
    return _governed_plan(analysis)


def _parse(sql: str) -> exp.Query:
    if not sql or not sql.strip():
        raise BadInput("empty query")
    if len(sql) > MAX_SQL_LENGTH:
        raise BadInput(f"query is longer than {MAX_SQL_LENGTH} characters")
    try:
        statements = [s for s in sqlglot.parse(sql, read=DIALECT) if s is not None]
    except ParseError as e:
        raise BadInput(f"SQL does not parse: {e.errors[0]['description'] if e.errors else e}") from None
    if len(statements) != 1:
        raise Refused([f"read-only: exactly one statement is allowed, found {len(statements)}"])
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        kind = type(tree).__name__.upper()
        raise Refused([f"read-only: only SELECT queries are allowed, not {kind}"])
    return tree


def _screen(tree: exp.Query) -> None:
    """Refuse constructs that are never allowed, before looking at any table."""
    reasons: list[str] = []
    for node in tree.walk():
        if isinstance(node, exp.Identifier) and str(node.this).lower().startswith(RESERVED_PREFIX):
            reasons.append(f"names starting with {RESERVED_PREFIX} are reserved: {node.this}")
        for cls, label in allowlist.FORBIDDEN_NODES:
            if isinstance(node, cls):
                reasons.append(f"allow-list: {label} is not allowed")
        if isinstance(node, exp.Func) and not allowlist.is_allowed_function(node):
            reasons.append(
                f"allow-list: function {allowlist.function_name(node)}() is not allowed "
                "(use plain aggregates and scalar functions; no table functions, file or network readers, UDFs)"
            )
        if isinstance(node, exp.Table) and not isinstance(node.this, exp.Identifier):
            reasons.append("allow-list: table functions are not allowed; name tables as owner.dataset")
        if isinstance(node, exp.Table) and node.args.get("catalog"):
            reasons.append(f"tables are named owner.dataset; {node.sql(DIALECT)} has too many parts")
    if reasons:
        raise Refused(list(dict.fromkeys(reasons)))


def _resolve_tables(a: _Analysis) -> list[_Ref]:
    """Bind every table reference to a dataset and, for others' datasets, an agreement."""
    ctes = {cte.alias_or_name for cte in a.tree.find_all(exp.CTE)}
    foreign: list[_Ref] = []
    for node in a.tree.find_all(exp.Table):
        if not node.db:
            if node.name in ctes:
                continue
            raise NotFound(f"no dataset {node.name!r} is available to you; name tables as owner.dataset")
        key = f"{node.db}.{node.name}"
        table = a.ctx.tables.get(key)
        if table is None:
            raise NotFound(f"no dataset {key} is available to you")
        agreement = None
        if table.owner != a.ctx.party:
            agreement = _agreement_for(a.ctx, key)
            if agreement is None:
                raise Refused([f"agreement: no agreement in force grants you {key} for purpose {a.ctx.purpose}"])
        ref = _Ref(len(a.refs), table, agreement)
        a.refs[id(node)] = ref
        if ref.protected:
            foreign.append(ref)
    return foreign


def _agreement_for(ctx: QueryContext, dataset: str) -> AgreementState | None:
    """The newest agreement in force that grants this dataset for this purpose."""
    for agreement in sorted(ctx.agreements, key=lambda s: s.id, reverse=True):
        terms = agreement.terms
        if ctx.party in terms.recipients and ctx.purpose in terms.purposes and terms.grant_for(dataset):
            return agreement
    return None


# ---------------------------------------------------------------------------------------
# the querier's own data


def _own_plan(a: _Analysis) -> Plan:
    views = {}
    for ref in a.refs.values():
        cols = ", ".join(exp.to_identifier(c).sql(DIALECT) for c in ref.table.schema.names)
        views[ref.table.key] = RelationView(ref.table.key, f"SELECT {cols} FROM cg_source")
    return Plan(
        views=tuple(views.values()),
        pseudonym_keys={},
        columns=tuple(s.alias_or_name for s in a.tree.selects),
        sql=a.tree.sql(DIALECT),
        datasets=tuple(sorted(views)),
    )


# ---------------------------------------------------------------------------------------
# queries that touch others' data


def _visible_columns(ref: _Ref) -> dict[str, Transform]:
    if ref.agreement is None:
        return {c: Transform(TransformKind.RAW) for c in ref.table.schema.names}
    grant = ref.agreement.terms.grant_for(ref.table.key)
    assert grant is not None
    return grant.visible()


def _governed_plan(a: _Analysis) -> Plan:
    refs = list(a.refs.values())
    own = [r for r in refs if not r.protected]
    protected = [r for r in refs if r.protected]
    if own and not any(r.agreement.terms.mode is AccessMode.JOIN for r in protected):  # type: ignore[union-attr]
        raise Refused([
            "access mode: your agreement grants aggregate access only; joining your own data "
            "needs an agreement with access mode join"
        ])
    if a.tree.find(exp.Window):
        a.refuse("window functions are not allowed on others' data (they compute per row)")
    schema = {}
    for ref in refs:
        cols = {c: ref.table.schema.column(c).type.sql for c in _visible_columns(ref)}
        schema.setdefault(ref.table.owner, {})[ref.table.name] = cols
    _name_outputs(a.tree)
    # Qualify rebuilds tables; remember references by position in a walk.
    order = [a.refs[id(t)] for t in a.tree.find_all(exp.Table) if id(t) in a.refs]
    try:
        tree = qualify(a.tree.copy(), schema=schema, dialect=DIALECT, validate_qualify_columns=True,
                       quote_identifiers=True, identify=True)
    except OptimizeError as e:
        raise Refused([f"columns: {_column_error(e, refs)}"]) from None
    tables = [t for t in tree.find_all(exp.Table) if t.db]
    assert len(tables) == len(order), "qualify changed the table references"
    a.refs = {id(t): r for t, r in zip(tables, order)}
    a.tree = tree
    scopes = traverse_scope(tree)
    lineage = _Lineage(a, scopes)
    _check_scopes(a, scopes, lineage)
    own_transforms = _check_joins(a, scopes, lineage)
    if a.reasons:
        raise Refused(a.reasons)
    return _rewrite(a, scopes, lineage, own_transforms)


def _name_outputs(tree: exp.Query) -> None:
    """Give unnamed output expressions the name the user would expect (`sum(spend)`)."""
    for branch in _branches(tree)[:1]:
        for projection in list(branch.selects):
            if not isinstance(projection, (exp.Alias, exp.Column, exp.Star)):
                projection.replace(exp.alias_(projection.copy(), projection.sql(DIALECT).lower(), quoted=True))


def _column_error(e: OptimizeError, refs: list[_Ref]) -> str:
    message = str(e).split(". Line:")[0]
    visible = "; ".join(
        f"{r.table.key}: {', '.join(_visible_columns(r)) or '(none)'}" for r in {r.table.key: r for r in refs}.values()
    )
    return f"{message} (dropped, not granted or unknown). Columns you may use: {visible}"


# ---------------------------------------------------------------------------------------
# lineage: which base columns each expression derives from


Origin = tuple[int, str]  # (ref id, column name)


class _Lineage:
    def __init__(self, a: _Analysis, scopes: list[Scope]):
        self.a = a
        self.scope_of = {id(s.expression): s for s in scopes}
        self._cache: dict[tuple[int, str], frozenset[Origin]] = {}

    def ref(self, table: exp.Table) -> _Ref:
        return self.a.refs[id(table)]

    def column(self, scope: Scope, col: exp.Column) -> frozenset[Origin]:
        source = scope.sources.get(col.table)
        if isinstance(source, exp.Table):
            return frozenset({(self.ref(source).id, col.name)})
        if isinstance(source, Scope):
            return self.output(source, col.name)
        return frozenset()

    def output(self, scope: Scope, name: str) -> frozenset[Origin]:
        key = (id(scope.expression), name)
        if key in self._cache:
            return self._cache[key]
        self._cache[key] = frozenset()  # guards recursive CTEs
        expression = scope.expression
        result: set[Origin] = set()
        if isinstance(expression, exp.SetOperation):
            index = next((i for i, s in enumerate(expression.selects) if s.alias_or_name == name), None)
            for branch in _branches(expression):
                branch_scope = self.scope_of.get(id(branch))
                if branch_scope is not None and index is not None and index < len(branch.selects):
                    result |= self.expression(branch_scope, branch.selects[index])
        elif isinstance(expression, exp.Select):
            for projection in expression.selects:
                if projection.alias_or_name == name:
                    result |= self.expression(scope, projection)
        self._cache[key] = frozenset(result)
        return self._cache[key]

    def expression(self, scope: Scope, node: exp.Expression) -> frozenset[Origin]:
        result: set[Origin] = set()
        for col in node.find_all(exp.Column):
            result |= self.column(scope, col)
        return frozenset(result)

    def role(self, origin: Origin):
        ref = self._by_id(origin[0])
        return ref.table.schema.column(origin[1]).role

    def identifying(self, origins: frozenset[Origin]) -> list[str]:
        names = []
        for o in sorted(origins):
            if self.role(o).identifying:
                ref = self._by_id(o[0])
                names.append(f"{ref.table.key}.{o[1]}")
        return names

    def _by_id(self, ref_id: int) -> _Ref:
        return next(r for r in self.a.refs.values() if r.id == ref_id)


def _branches(node: exp.Expression) -> list[exp.Select]:
    if isinstance(node, exp.SetOperation):
        return _branches(node.left) + _branches(node.right)
    if isinstance(node, exp.Subquery):
        return _branches(node.this)
    return [node] if isinstance(node, exp.Select) else []


# ---------------------------------------------------------------------------------------
# checks


def _touches_protected(lineage: _Lineage, scope: Scope) -> bool:
    for source in scope.sources.values():
        if isinstance(source, exp.Table) and lineage.ref(source).protected:
            return True
        if isinstance(source, Scope) and any(_touches_protected(lineage, s) for s in _scope_and_children(source)):
            return True
    return False


def _scope_and_children(scope: Scope) -> list[Scope]:
    out = [scope]
    for child in scope.set_operation_scopes + scope.cte_scopes + scope.derived_table_scopes + scope.subquery_scopes:
        out.extend(_scope_and_children(child))
    return out


def _output_scopes(scopes: list[Scope]) -> list[Scope]:
    """The SELECTs whose rows leave: the root, or every branch of a root set operation."""
    root = scopes[-1]
    if isinstance(root.expression, exp.Select):
        return [root]
    by_expr = {id(s.expression): s for s in scopes}
    return [by_expr[id(b)] for b in _branches(root.expression) if id(b) in by_expr]


def _is_aggregating(select: exp.Select) -> bool:
    if select.args.get("group") or select.args.get("distinct"):
        return True
    return any(_aggregates_in(p) for p in select.selects)


def _aggregates_in(node: exp.Expression) -> list[exp.Expression]:
    return [n for n in node.walk() if allowlist.is_aggregate(n)]


def _predicate_parts(select: exp.Select) -> list[exp.Expression]:
    parts: list[exp.Expression] = []
    for key in ("where", "having", "qualify"):
        if select.args.get(key):
            parts.append(select.args[key])
    for join in select.args.get("joins") or []:
        if join.args.get("on"):
            parts.append(join.args["on"])
    for node in select.find_all(exp.Filter):
        parts.append(node.expression)
    for node in select.find_all(exp.Case):
        parts.extend(w.this for w in node.args.get("ifs") or [])
    for node in select.find_all(exp.If):
        parts.append(node.this)
    return parts


def _check_scopes(a: _Analysis, scopes: list[Scope], lineage: _Lineage) -> None:
    outputs = {id(s.expression) for s in _output_scopes(scopes)}
    for scope in scopes:
        select = scope.expression
        if not isinstance(select, exp.Select):
            continue
        if not _touches_protected(lineage, scope):
            continue
        if scope.is_subquery:
            a.refuse("subqueries in expressions (WHERE x IN (SELECT ...), scalar subqueries) may not read "
                     "others' data; join or use a CTE instead")
            continue
        _check_predicates(a, scope, select, lineage)
        if id(select) in outputs:
            _check_output(a, scope, select, lineage)
        elif _is_aggregating(select):
            _check_inner_aggregation(a, scope, select, lineage)


def _check_predicates(a: _Analysis, scope: Scope, select: exp.Select, lineage: _Lineage) -> None:
    """Identifying columns may only be compared with other columns, never probed with values."""
    for part in _predicate_parts(select):
        for col in part.find_all(exp.Column):
            names = lineage.identifying(lineage.column(scope, col))
            if not names:
                continue
            parent = col.parent
            while isinstance(parent, exp.Paren):
                parent = parent.parent
            if isinstance(parent, exp.EQ) and all(isinstance(x, exp.Column) for x in (parent.this, parent.expression)):
                continue
            if isinstance(parent, exp.Is) or (isinstance(parent, exp.Not) and isinstance(parent.this, exp.Is)):
                continue
            a.refuse(
                f"identifiers: {names[0]} is identifying and may only be compared with another column "
                f"(a join) or tested IS NULL, not used in {_short(parent or col)}"
            )


def _check_output(a: _Analysis, scope: Scope, select: exp.Select, lineage: _Lineage) -> None:
    if not _is_aggregating(select) or (select.args.get("distinct") and not select.args.get("group")):
        a.refuse(
            "aggregate only: the result must aggregate others' data (COUNT, SUM, AVG, ...) with GROUP BY "
            "over permitted dimensions; row-level output is not allowed"
        )
        return
    group = select.args.get("group")
    if group and (group.args.get("all") or group.args.get("cube") or group.args.get("rollup") or group.args.get("grouping_sets")):
        a.refuse("GROUP BY ALL / CUBE / ROLLUP / GROUPING SETS are not supported on others' data; list the dimensions")
    for key in group.expressions if group else []:
        names = lineage.identifying(lineage.expression(scope, key))
        if names:
            a.refuse(f"identifiers: cannot GROUP BY {names[0]} (identifying; it would single out people); "
                     "group by a permitted dimension instead")
    for projection in select.selects:
        _check_output_expression(a, scope, projection, lineage)
    for order in (select.args.get("order").expressions if select.args.get("order") else []):
        names = lineage.identifying(lineage.expression(scope, order))
        if names and not _aggregates_in(order):
            a.refuse(f"identifiers: cannot ORDER BY {names[0]}")


def _check_output_expression(a: _Analysis, scope: Scope, projection: exp.Expression, lineage: _Lineage) -> None:
    aggregates = _aggregates_in(projection)
    inside = {id(n) for agg in aggregates for n in agg.walk()}
    for col in projection.find_all(exp.Column):
        if id(col) in inside:
            continue
        names = lineage.identifying(lineage.column(scope, col))
        if names:
            a.refuse(f"identifiers: {names[0]} cannot be output; it is identifying (COUNT(DISTINCT ...) of it is allowed)")
    for agg in aggregates:
        origins = lineage.expression(scope, agg)
        kind = type(agg).__name__
        protected = any(lineage._by_id(o[0]).protected for o in origins)
        label = allowlist.function_name(agg).upper()
        if (kind in allowlist.ROW_AGGREGATES or label == "LIST") and protected:
            a.refuse(f"aggregates: {label} returns row values of others' data; use COUNT, SUM, AVG, MIN/MAX of non-identifying columns")
            continue
        names = lineage.identifying(origins)
        if not names:
            continue
        if kind == "Count" or kind == "ApproxDistinct":
            continue
        if kind in allowlist.PICKING_AGGREGATES:
            a.refuse(f"aggregates: {label} of {names[0]} would return an identifying value; COUNT(DISTINCT {names[0].rsplit('.', 1)[1]}) is allowed")
        else:
            a.refuse(f"aggregates: {label} over identifying {names[0]} is not allowed; only COUNT of it is")


def _check_inner_aggregation(a: _Analysis, scope: Scope, select: exp.Select, lineage: _Lineage) -> None:
    """An inner aggregate must keep one row per subject, so subjects can still be counted above it."""
    group = select.args.get("group")
    keys = group.expressions if group else []
    if select.args.get("distinct"):
        keys = list(select.selects)
    key_origins = [lineage.expression(scope, k) for k in keys if isinstance(k.unalias(), exp.Column)]
    for pu_ref in _protected_refs_below(lineage, scope):
        subject = pu_ref.table.schema.subject_column
        if frozenset({(pu_ref.id, subject)}) not in key_origins:
            a.refuse(
                f"inner aggregation: a subquery or CTE that aggregates {pu_ref.table.key} must GROUP BY its "
                f"subject column ({subject}) so people can still be counted; aggregate in the outer query instead"
            )


def _protected_refs_below(lineage: _Lineage, scope: Scope) -> list[_Ref]:
    found: dict[int, _Ref] = {}
    for s in _scope_and_children(scope):
        for source in s.sources.values():
            if isinstance(source, exp.Table) and id(source) in lineage.a.refs and lineage.ref(source).protected:
                found[lineage.ref(source).id] = lineage.ref(source)
    return list(found.values())


def _check_joins(a: _Analysis, scopes: list[Scope], lineage: _Lineage) -> dict[tuple[str, str], tuple[Transform, str]]:
    """Joins touching others' data are equalities on permitted keys. Returns what the querier's
    own join columns must be transformed by so they match the other side's pseudonyms."""
    own_transforms: dict[tuple[str, str], tuple[Transform, str]] = {}
    for scope in scopes:
        select = scope.expression
        if not isinstance(select, exp.Select) or not _touches_protected(lineage, scope):
            continue
        joins = select.args.get("joins") or []
        for join in joins:
            on = join.args.get("on")
            kind = (join.args.get("kind") or "").upper()
            if on is None or kind == "CROSS":
                a.refuse("joins: others' data may only be joined with JOIN ... ON equality of permitted join keys (no CROSS or comma joins)")
                continue
            for condition in _conjuncts(on):
                _check_join_condition(a, scope, condition, lineage, own_transforms)
    return own_transforms


def _conjuncts(node: exp.Expression) -> list[exp.Expression]:
    node = node.unnest() if isinstance(node, exp.Paren) else node
    if isinstance(node, exp.And):
        return _conjuncts(node.this) + _conjuncts(node.expression)
    return [node]


def _check_join_condition(a, scope, condition, lineage: _Lineage, own_transforms) -> None:
    if not (isinstance(condition, exp.EQ) and isinstance(condition.this, exp.Column) and isinstance(condition.expression, exp.Column)):
        a.refuse(f"joins: only equality of columns is allowed in a join condition, not {_short(condition)}")
        return
    sides = [lineage.column(scope, c) for c in (condition.this, condition.expression)]
    foreign_keys: list[tuple[_Ref, str]] = []
    own_cols: list[tuple[_Ref, str]] = []
    for origins in sides:
        if len(origins) != 1:
            a.refuse(f"joins: join columns must be plain columns, not computed ones ({_short(condition)})")
            return
        (ref_id, column), = origins
        ref = lineage._by_id(ref_id)
        (foreign_keys if ref.protected else own_cols).append((ref, column))
    for ref, column in foreign_keys:
        assert ref.agreement is not None
        if column not in ref.agreement.terms.join_keys:
            allowed = ", ".join(ref.agreement.terms.join_keys) or "none"
            a.refuse(f"joins: {ref.table.key}.{column} is not a permitted join key (permitted: {allowed})")
            return
    if foreign_keys and own_cols:
        fref, fcol = foreign_keys[0]
        grant = fref.agreement.terms.grant_for(fref.table.key)  # type: ignore[union-attr]
        transform = grant.fields[fcol]
        for oref, ocol in own_cols:
            key = (oref.table.key, ocol)
            wanted = (transform, fref.agreement.id)  # type: ignore[union-attr]
            if own_transforms.setdefault(key, wanted) != wanted:
                a.refuse(f"joins: your column {oref.table.key}.{ocol} is joined to keys of different agreements; split the query")


def _short(node: exp.Expression) -> str:
    text = node.sql(DIALECT)
    return text if len(text) <= 80 else text[:77] + "..."


# ---------------------------------------------------------------------------------------
# rewrite


def _rewrite(a: _Analysis, scopes: list[Scope], lineage: _Lineage, own_transforms) -> Plan:
    refs = {r.id: r for r in a.refs.values()}
    keys: dict[str, bytes] = {}
    views: dict[str, RelationView] = {}
    for ref in refs.values():
        if ref.table.key in views:
            continue
        views[ref.table.key] = _view(ref, own_transforms, keys)
    pus = _propagate_privacy_units(a, scopes, lineage)
    k = max(r.agreement.terms.min_group_size for r in refs.values() if r.agreement)
    output_scopes = _output_scopes(scopes)
    root = a.tree
    # Output names: what the user wrote, made unique.
    columns = _unique([s.alias_or_name for s in root.selects])
    groups: list[GroupQuery] = []
    outputs: list[exp.Select] = []
    for i, scope in enumerate(output_scopes):
        select: exp.Select = scope.expression
        inner = select.copy()
        for arg in ("order", "limit", "offset"):
            inner.set(arg, None)
        inner.set("expressions", [exp.alias_(p.unalias(), c, quoted=True) for p, c in zip(inner.selects, columns)])
        units = pus[id(select)]
        fast = None
        if units and all(m is not None for _, m in units):
            fast = _with_threshold(inner, units, k, exact=False).sql(DIALECT)
        exact = _with_threshold(inner, units, k, exact=True).sql(DIALECT)
        groups.append(GroupQuery(fast, exact))
        outputs.append(
            exp.select(*[exp.column(c, quoted=True) for c in columns]).from_(f"__cg_groups_{i}").where(exp.column("__cg_ok"))
        )
    final: exp.Query = outputs[0]
    if isinstance(root, exp.SetOperation):
        final = _rebuild_set_operation(root, outputs)
    _carry_order_and_limit(root, final, columns)
    fields = sorted({
        f"{ref.table.key}.{col}"
        for scope in scopes for col in scope.columns
        for (rid, col) in lineage.column(scope, col) for ref in [refs[rid]]
    })
    return Plan(
        views=tuple(views.values()),
        pseudonym_keys=keys,
        columns=tuple(columns),
        sql=final.sql(DIALECT),
        groups=tuple(groups),
        min_group_size=k,
        agreements=tuple(sorted({r.agreement.id for r in refs.values() if r.agreement})),
        datasets=tuple(sorted(views)),
        fields=tuple(fields),
    )


def _view(ref: _Ref, own_transforms, keys: dict[str, bytes]) -> RelationView:
    projections = []
    if ref.agreement is not None:
        for col, transform in _visible_columns(ref).items():
            projections.append(exp.alias_(transforms.apply(transform, exp.column(col, quoted=True), ref.agreement.id), col, quoted=True))
            if transform.kind is TransformKind.HASH:
                keys[transforms.pseudonym_function(ref.agreement.id)] = ref.agreement.hash_key
        subject = ref.table.schema.subject_column
        projections.append(exp.alias_(exp.column(subject, quoted=True), PRIVACY_UNIT, quoted=True))
    else:
        for col in ref.table.schema.names:
            transform, agreement_id = own_transforms.get((ref.table.key, col), (Transform(TransformKind.RAW), ""))
            # A hashed own key uses the agreement's function, which the foreign side registered.
            projections.append(exp.alias_(transforms.apply(transform, exp.column(col, quoted=True), agreement_id), col, quoted=True))
    return RelationView(ref.table.key, exp.select(*projections).from_("cg_source").sql(DIALECT))


PrivacyUnits = list[tuple[exp.Expression, int | None]]  # (expression in this scope, multiplicity bound)


def _propagate_privacy_units(a: _Analysis, scopes: list[Scope], lineage: _Lineage) -> dict[int, PrivacyUnits]:
    """Carry each protected reference's subject column up through derived tables and CTEs.

    Returns, for every SELECT, the privacy-unit expressions available in it and a bound on
    how many rows one subject can have there (None when no bound is known).
    """
    exported: dict[int, list[tuple[str, int | None]]] = {}  # scope expression -> [(column, bound)]
    available: dict[int, PrivacyUnits] = {}
    for scope in scopes:
        node = scope.expression
        if isinstance(node, exp.SetOperation):
            branch_exports = [exported.get(id(b), []) for b in _branches(node)]
            names = [n for n, _ in branch_exports[0]] if branch_exports else []
            if any([n for n, _ in e] != names for e in branch_exports):
                raise Refused(["set operations: every branch of a UNION/INTERSECT/EXCEPT over others' data "
                               "must read the same datasets in the same order"])
            bounds = [max((e[i][1] for e in branch_exports), default=None) if all(e[i][1] is not None for e in branch_exports) else None
                      for i in range(len(names))]
            exported[id(node)] = list(zip(names, bounds))
            continue
        if not isinstance(node, exp.Select):
            continue
        units = _units_in_select(a, scope, node, lineage, exported)
        available[id(node)] = units
        if scope.is_root or scope.is_subquery:
            continue
        grouped = _is_aggregating(node)
        names = []
        for n, (expression, bound) in enumerate(units):
            name = f"{PRIVACY_UNIT}_{id(node) % 100000}_{n}"
            if scope.scope_type.name == "SET_OPERATION" or _in_set_operation(node):
                name = f"{PRIVACY_UNIT}_{n}"
            node.select(exp.alias_(expression.copy(), name, quoted=True), copy=False)
            if grouped:
                if node.args.get("distinct"):
                    pass  # DISTINCT already keys on every column, the unit included
                else:
                    node.group_by(expression.copy(), copy=False)
                bound = 1
            names.append((name, bound))
        exported[id(node)] = names
    return available


def _in_set_operation(node: exp.Expression) -> bool:
    parent = node.parent
    while isinstance(parent, exp.Subquery):
        parent = parent.parent
    return isinstance(parent, exp.SetOperation)


def _units_in_select(a, scope: Scope, select: exp.Select, lineage: _Lineage, exported) -> PrivacyUnits:
    units: PrivacyUnits = []
    fan = _join_fan_out(a, scope, select, lineage)
    for alias, source in scope.selected_sources.items():
        source_node = source[1] if isinstance(source, tuple) else source
        if isinstance(source_node, exp.Table) and id(source_node) in a.refs:
            ref = a.refs[id(source_node)]
            if ref.protected:
                bound = ref.table.max_rows_per_subject
                units.append((exp.column(PRIVACY_UNIT, table=alias, quoted=True), _times(bound, fan.get(alias, 1))))
        elif isinstance(source_node, Scope):
            for name, bound in exported.get(id(source_node.expression), []):
                units.append((exp.column(name, table=alias, quoted=True), _times(bound, fan.get(alias, 1))))
    return units


def _times(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a * b


def _join_fan_out(a, scope: Scope, select: exp.Select, lineage: _Lineage) -> dict[str, int | None]:
    """For each source, how many rows of the other sources one of its rows can meet.

    A join on another table's subject column meets at most that table's rows-per-subject;
    anything else is unbounded (None), which sends the query to exact counting.
    """
    aliases = list(scope.selected_sources)
    if len(aliases) <= 1:
        return {}
    bound_per_alias: dict[str, int | None] = {}
    for alias, source in scope.selected_sources.items():
        node = source[1] if isinstance(source, tuple) else source
        bound_per_alias[alias] = None
        if isinstance(node, exp.Table) and id(node) in a.refs:
            ref = a.refs[id(node)]
            subject = ref.table.schema.subject_column
            if subject and _joined_on(select, alias, subject):
                bound_per_alias[alias] = ref.table.max_rows_per_subject
    fan: dict[str, int | None] = {}
    for alias in aliases:
        total: int | None = 1
        for other in aliases:
            if other != alias:
                total = _times(total, bound_per_alias[other])
        fan[alias] = total
    return fan


def _joined_on(select: exp.Select, alias: str, column: str) -> bool:
    for join in select.args.get("joins") or []:
        on = join.args.get("on")
        for condition in _conjuncts(on) if on is not None else []:
            if isinstance(condition, exp.EQ):
                for side in (condition.this, condition.expression):
                    if isinstance(side, exp.Column) and side.table == alias and side.name == column:
                        return True
    return False


def _with_threshold(select: exp.Select, units: PrivacyUnits, k: int, exact: bool) -> exp.Select:
    out = select.copy()
    if not units:
        raise Refused(["internal: no privacy unit found for a query over others' data"])
    if exact:
        ok = exp.and_(*[exp.GTE(this=exp.Count(this=exp.Distinct(expressions=[u.copy()])), expression=exp.Literal.number(k)) for u, _ in units])
        unsure = exp.false()
    else:
        ok = exp.and_(*[exp.GTE(this=exp.Count(this=u.copy()), expression=exp.Literal.number(k * (m or 1))) for u, m in units])
        possible = exp.and_(*[exp.GTE(this=exp.Count(this=u.copy()), expression=exp.Literal.number(k)) for u, _ in units])
        unsure = exp.and_(exp.not_(ok.copy()), possible)
    out.select(exp.alias_(ok, "__cg_ok", quoted=True), exp.alias_(unsure, "__cg_unsure", quoted=True), copy=False)
    return out


def _rebuild_set_operation(root: exp.SetOperation, outputs: list[exp.Select]) -> exp.Query:
    it = iter(outputs)

    def build(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.SetOperation):
            return type(node)(this=build(node.this), expression=build(node.expression), distinct=node.args.get("distinct"))
        if isinstance(node, exp.Subquery):
            return build(node.this)
        return next(it)

    return build(root)  # type: ignore[return-value]


def _carry_order_and_limit(root: exp.Query, final: exp.Query, columns: list[str]) -> None:
    """ORDER BY / LIMIT apply after small groups are removed, over output columns only."""
    order = root.args.get("order")
    if order:
        items = []
        names = [s.alias_or_name for s in root.selects]
        for ordered in order.expressions:
            target = ordered.this
            name = None
            if isinstance(target, exp.Column) and target.name in names and not target.table:
                name = columns[names.index(target.name)]
            else:
                for s, c in zip(root.selects, columns):
                    if s.unalias() == target:
                        name = c
            if name is None:
                raise Refused([f"ORDER BY: order by an output column (by name or position), not {_short(target)}"])
            items.append(exp.Ordered(this=exp.column(name, quoted=True), desc=ordered.args.get("desc"), nulls_first=ordered.args.get("nulls_first")))
        final.set("order", exp.Order(expressions=items))
    for arg in ("limit", "offset"):
        if root.args.get(arg):
            final.set(arg, root.args[arg].copy())


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        if n in seen:
            seen[n] += 1
            out.append(f"{n}_{seen[n]}")
        else:
            seen[n] = 0
            out.append(n)
    return out
