"""Rewrite a checked query so the threshold is enforced by the query itself, never trusted to it.

Each protected dataset is exposed as a view of its transformed columns plus its raw subject
column as the privacy unit `__cg_pu`. The unit is carried up through CTEs and derived tables
to every output SELECT, which is computed into a group table with `__cg_ok` (every protected
dataset has >= k distinct subjects in the row) before anything leaves.
"""

from __future__ import annotations

import functools

from sqlglot import exp
from sqlglot.optimizer.scope import Scope

from ..domain.agreements import Transform, TransformKind
from ..domain.errors import Refused
from ..domain.schema import PERSON_NUMBER_COLUMN, UNIT_HASH_COLUMN
from . import differencing, noise, transforms
from .analysis import (DIALECT, INJECTIVE, PRIVACY_UNIT, Analysis, Lineage, Ref, branches, conjuncts,
                       is_aggregating, output_scopes, short)
from .context import GroupQuery, Plan, RelationView

PrivacyUnits = list[tuple[exp.Expression, int | None]]  # (expression in a scope, bound on rows per subject)
# The column through which a derived table carries how many base rows each of its rows stands
# for (after an inner aggregation), so the differencing sketch counts base rows (docs/privacy.md §2).
WEIGHT = "__cg_w"


def rewrite(a: Analysis, scopes: list[Scope], lineage: Lineage) -> Plan:
    refs = {r.id: r for r in a.refs.values()}
    keys: dict[str, bytes] = {}
    views: dict[str, RelationView] = {}
    elide = _elidable_hash(refs.values())
    for ref in refs.values():
        if ref.table.key not in views:
            views[ref.table.key] = dataset_view(ref, a.own_transforms, keys, elide)
    errors_without_values(a.tree)
    pus, weights = _propagate_privacy_units(a, scopes, lineage)
    k = max(r.agreement.terms.min_group_size for r in refs.values() if r.agreement)
    root = a.tree
    columns = _unique([s.alias_or_name for s in root.selects])
    groups: list[GroupQuery] = []
    outputs: list[exp.Select] = []
    noises: list[noise.BlockNoise] = []
    for i, scope in enumerate(output_scopes(scopes)):
        hidden: list[exp.Expression] = []
        if noise.has_noise(a):
            block, hidden = noise.block_noise(a, scope, columns)
            noises.append(block)
        groups.append(_group_query(scope.expression, pus[id(scope.expression)], weights.get(id(scope.expression)),
                                   columns, k, hidden))
        outputs.append(
            exp.select(*[exp.column(c, quoted=True) for c in columns])
            .from_(exp.Table(this=exp.to_identifier(f"__cg_groups_{i}"))).where(exp.column("__cg_ok"))
        )
    refs_by_agreement = sorted((r for r in refs.values() if r.agreement), key=lambda r: r.agreement.id)  # type: ignore[union-attr]
    final: exp.Query = _rebuild_set_operation(root, outputs) if isinstance(root, exp.SetOperation) else outputs[0]
    _carry_order_and_limit(root, final, columns)
    fields = sorted({
        f"{refs[rid].table.key}.{col}"
        for scope in scopes for column in scope.columns
        for (rid, col) in lineage.column(scope, column)
    })
    return Plan(
        views=tuple(views.values()),
        pseudonym_keys=keys,
        columns=tuple(columns),
        sql=final.sql(DIALECT, copy=False),
        groups=tuple(groups),
        min_group_size=k,
        agreements=tuple(sorted({r.agreement.id for r in refs.values() if r.agreement})),
        datasets=tuple(sorted(views)),
        fields=tuple(fields),
        sketch_salt=refs_by_agreement[0].agreement.hash_key,  # type: ignore[union-attr]
        noise=tuple(noises),
        repeatable=not noises and a.tree.find(*_CLOCKS) is None,
    )


# Functions whose value depends on when the query runs, not on its inputs.
_CLOCKS = (exp.CurrentDate, exp.CurrentTimestamp, exp.CurrentTime)


_THRESHOLD = "__cg_threshold"  # a placeholder no query can contain: `__cg` names are refused


def _group_query(select: exp.Select, units: PrivacyUnits, weight: exp.Expression | None, columns: list[str],
                 k: int, hidden: list[exp.Expression]) -> GroupQuery:
    """The group table's SQL, generated once with a placeholder for the threshold columns.
    `hidden`: extra columns the engine needs and the output does not show (AVG's SUM and COUNT
    under seeded noise)."""
    assert units, "checks refuse output that does not read others' data"
    sketch_sql, sketch_keys = differencing.sketch_query(select, units[0][0], weight)
    inner = select.copy()
    for arg in ("order", "limit", "offset"):
        inner.set(arg, None)
    inner.set("expressions", [exp.alias_(p.unalias(), c, quoted=True, copy=False) for p, c in zip(inner.selects, columns)]
              + differencing.group_keys(inner) + hidden + [exp.column(_THRESHOLD, quoted=True)])
    template = inner.sql(DIALECT, copy=False)
    placeholder = exp.column(_THRESHOLD, quoted=True).sql(DIALECT)
    assert template.count(placeholder) == 1
    sketched = differencing.sketched_group(inner, units[0][0], weight)  # takes `inner` over: no copy
    sketched_template = sketched.sql(DIALECT, copy=False) if sketched is not None else None

    rows_are_units = _reads_one_dataset(select)
    thresholds = {exact: ", ".join(e.sql(DIALECT) for e in _threshold(units, k, exact, rows_are_units))
                  for exact in (False, True)}

    def fill(sql: str, exact: bool) -> str:
        return sql.replace(placeholder, thresholds[exact])
    bounded = all(m is not None for _, m in units)
    fast = fill(template, exact=False) if bounded else None
    # Without a weight a sketch row is an output-level row, of which one person has at most the
    # fast path's bound; a weighted row stands for base rows of an inner level, not bounded here.
    return GroupQuery(fast, fill(template, exact=True), sketch_sql, sketch_keys, sketch_weighted=weight is not None,
                      sketch_row_bound=None if weight is not None else units[0][1],
                      fast_sketched_sql=fill(sketched_template, exact=False) if sketched_template and bounded else None,
                      exact_sketched_sql=fill(sketched_template, exact=True) if sketched_template else None)


def errors_without_values(tree: exp.Expression) -> None:
    """A failed conversion's error message quotes the value that failed, which may be anyone's.
    Conversions become their TRY_ forms, which give NULL instead."""
    for node in list(tree.find_all(exp.Cast)):
        if type(node) is exp.Cast:
            node.replace(exp.TryCast(this=node.this, to=node.args["to"]))
    for node in tree.find_all(exp.StrToTime, exp.StrToDate, exp.TsOrDsToDate):
        node.set("safe", True)


def _elidable_hash(refs) -> str | None:
    """The agreement whose keyed hash on identifying columns can be skipped, if any.

    When every protected dataset comes under one agreement, its HMAC is one injective map
    (collisions aside) over every hashed key in the query. The checks let identifying columns
    only be joined by equality, counted, tested IS NULL or passed up to be so used, and each
    of these gives the same answer on raw values as on their pseudonyms, so computing two
    SHA-256s per row on both sides of a join buys nothing. With two agreements the keys
    differ and pseudonyms must not link, so the hash stays.
    """
    ids = {r.agreement.id for r in refs if r.agreement is not None}
    return ids.pop() if len(ids) == 1 else None


# An elided hash still compares as the hash did: on the value's text, so '01' never meets 1.
_AS_TEXT = (Transform(TransformKind.RAW), "=text")


def dataset_view(ref: Ref, own_transforms, keys: dict[str, bytes], elide: str | None,
                 unit_as_id: bool = False, unit_as_number: bool = False) -> RelationView:
    """`unit_as_id`: the privacy unit is the subject id itself (offers address people by it);
    otherwise it is the version's hidden 63-bit hash of the id, which every query only groups,
    counts and sketches, and which is much cheaper to read and hash than the id's text.
    `unit_as_number`: it is the version's person number (PERSON_NUMBER_COLUMN, where the
    version has one), which dp's bounding groups by within this one version."""
    raw = Transform(TransformKind.RAW)
    if ref.agreement is not None:
        agreement_id = ref.agreement.id
        schema = ref.table.schema
        columns = tuple(
            (col, *_AS_TEXT) if _elided(transform, schema.column(col).role.identifying, agreement_id, elide)
            else (col, transform, agreement_id)
            for col, transform in ref.visible().items())
        if any(t.kind is TransformKind.HASH for _, t, _ in columns):
            keys[transforms.pseudonym_function(agreement_id)] = ref.agreement.hash_key
        subject = ref.table.schema.subject_column
        if unit_as_id or subject is None:
            return _relation(ref, _view_sql(columns, subject, *_consent(ref)))
        if unit_as_number and ref.table.person_numbers:
            return _relation(ref, _view_sql(columns, PERSON_NUMBER_COLUMN, *_consent(ref)))
        return _relation(ref, _view_sql(columns, UNIT_HASH_COLUMN, *_consent(ref)), unit_subject=subject)
    # A hashed own key uses the agreement's function, which the foreign side registered.
    # Own columns joined to a hashed key are restricted like identifiers, so the same elision holds.
    columns = tuple(
        (col, *_AS_TEXT) if _elided(t, True, aid, elide) else (col, t, aid)
        for col in ref.table.schema.names for t, aid in [own_transforms.get((ref.table.key, col), (raw, ""))])
    return _relation(ref, _view_sql(columns, None, *_consent(ref)))


def _elided(transform: Transform, identifying: bool, agreement_id: str, elide: str | None) -> bool:
    return transform.kind is TransformKind.HASH and identifying and agreement_id == elide


def _consent(ref: Ref) -> tuple[str | None, str | None]:
    return ref.table.consent, ref.table.schema.subject_column if ref.table.consent else None


def _relation(ref: Ref, select_sql: str, unit_subject: str | None = None) -> RelationView:
    consent, subject = _consent(ref)
    return RelationView(ref.table.key, select_sql, consent if subject else None, subject, unit_subject)


@functools.lru_cache(maxsize=1024)
def _view_sql(columns: tuple[tuple[str, Transform, str], ...], privacy_unit: str | None,
              consent: str | None = None, subject: str | None = None) -> str:
    """The view's SELECT; cached, since the same grants come back query after query."""
    projections = [
        exp.alias_(exp.cast(exp.column(col, quoted=True), "VARCHAR") if (transform, agreement_id) == _AS_TEXT
                   else transforms.apply(transform, exp.column(col, quoted=True), agreement_id), col, quoted=True)
        for col, transform, agreement_id in columns
    ]
    if privacy_unit is not None:
        projections.append(exp.alias_(exp.column(privacy_unit, quoted=True), PRIVACY_UNIT, quoted=True))
    select = exp.select(*projections).from_(consent_source(consent if subject else None))
    return select.sql(DIALECT)


SOURCE = "cg_source"
CONSENTED = "cg_consented"


def consent_source(consent: str | None) -> exp.Table:
    """The relation a view reads: `cg_source`, the version's rows, or for a consent-gated dataset
    `cg_consented`, those of its rows whose subject may be used for the query's purpose (opt_in:
    granted it; opt_out: has not withdrawn it). The engine binds it to the consent state as of
    the query (a derived base plus the records since), so the gate is not a join in the view."""
    return exp.Table(this=exp.to_identifier(SOURCE if consent is None else CONSENTED))


# ---------------------------------------------------------------------------------------
# privacy units


def _propagate_privacy_units(a: Analysis, scopes: list[Scope], lineage: Lineage
                             ) -> tuple[dict[int, PrivacyUnits], dict[int, exp.Expression]]:
    """Carry each protected reference's subject column up through derived tables and CTEs.

    Returns, for every SELECT, the privacy-unit expressions available in it and a bound on
    how many rows one subject can have there (None when no bound is known); and, for every
    SELECT some of whose rows stand for several base rows (an inner aggregation below it), the
    expression of that multiplicity.
    """
    outputs = {id(s.expression) for s in output_scopes(scopes)}
    exported: dict[int, list[tuple[str, int | None]]] = {}  # scope expression -> [(column, bound)]
    weighted: set[int] = set()  # scope expressions that export a WEIGHT column
    available: dict[int, PrivacyUnits] = {}
    weights: dict[int, exp.Expression] = {}
    for index, scope in enumerate(scopes):
        node = scope.expression
        if isinstance(node, exp.SetOperation):
            exported[id(node)] = _set_operation_units(node, exported)
            if any(id(b) in weighted for b in branches(node)):
                weighted.add(id(node))
            continue
        if not isinstance(node, exp.Select):
            continue
        units = _units_in_select(a, scope, lineage, exported)
        available[id(node)] = units
        weight = _weight_in_select(scope, weighted)
        if weight is not None:
            weights[id(node)] = weight
        if id(node) in outputs or scope.is_subquery:
            continue
        exported[id(node)] = _export_units(scope, node, units, lineage, index)
        if units and _export_weight(node, weight):  # no units: nothing of others' data to sketch
            weighted.add(id(node))
    return available, weights


def _weight_in_select(scope: Scope, weighted: set[int]) -> exp.Expression | None:
    """How many base rows a row of this SELECT stands for: the product of its derived sources'
    weights (a source without one, or an outer join's missing side, counts 1); None when no
    source is weighted."""
    factors: list[exp.Expression] = []
    for alias, source in scope.selected_sources.items():
        source_node = source[1] if isinstance(source, tuple) else source
        if isinstance(source_node, Scope) and id(source_node.expression) in weighted:
            factors.append(exp.func("COALESCE", exp.column(WEIGHT, table=alias, quoted=True), exp.Literal.number(1)))
    if not factors:
        return None
    return functools.reduce(lambda x, y: exp.Mul(this=x, expression=y), factors)


def _export_weight(node: exp.Select, weight: exp.Expression | None) -> bool:
    """Add WEIGHT to an inner SELECT's output when its rows stand for more than one base row
    each: an aggregation's row stands for the base rows of its group, so per-person totals
    still show the sketch how many rows each person had (a row filtered out inside the
    aggregation changes the sketch). In a set operation every branch exports it (1 if need
    be), since branches line columns up by position. DISTINCT keeps its rows' weight 1: a
    weight column would keep rows apart that DISTINCT merges."""
    grouped = is_aggregating(node)
    in_set = _in_set_operation(node)
    if node.args.get("distinct") or not (grouped or weight is not None):
        if in_set:
            node.select(exp.alias_(exp.Literal.number(1), WEIGHT, quoted=True), copy=False)
        return False
    if grouped:
        value: exp.Expression = (exp.Count(this=exp.Star()) if weight is None
                                 else exp.Sum(this=weight.copy()))
    else:
        value = weight.copy() if weight is not None else exp.Literal.number(1)
    node.select(exp.alias_(value, WEIGHT, quoted=True, copy=False), copy=False)
    return True


def _set_operation_units(node: exp.SetOperation, exported) -> list[tuple[str, int | None]]:
    """A subject can have rows in every branch, so a bound is the sum of the branches' bounds."""
    branch_exports = [exported.get(id(b), []) for b in branches(node)]
    names = [n for n, _ in branch_exports[0]] if branch_exports else []
    if any([n for n, _ in e] != names for e in branch_exports):
        raise Refused(["set operations: every branch of a UNION/INTERSECT/EXCEPT over others' data must read "
                       "the same datasets in the same order; aggregate each dataset in its own query"])
    out = []
    for i, name in enumerate(names):
        bounds = [e[i][1] for e in branch_exports]
        out.append((name, None if any(b is None for b in bounds) else sum(bounds)))  # type: ignore[arg-type]
    return out


def _export_units(scope: Scope, node: exp.Select, units: PrivacyUnits, lineage: Lineage,
                  index: int) -> list[tuple[str, int | None]]:
    """Add the units to an inner SELECT's output (and its GROUP BY, so grouping keeps people apart)."""
    grouped = is_aggregating(node)
    per_subject = grouped and _grouped_by_subjects_only(scope, node, lineage)
    names = []
    for n, (expression, bound) in enumerate(units):
        # Branches of a set operation line their units up by position, so they share names.
        name = f"{PRIVACY_UNIT}_{n}" if _in_set_operation(node) else f"{PRIVACY_UNIT}_{index}_{n}"
        node.select(exp.alias_(expression.copy(), name, quoted=True, copy=False), copy=False)
        if grouped and not node.args.get("distinct"):
            node.group_by(expression.copy(), copy=False)
        names.append((name, 1 if per_subject else bound))
    return names


def _grouped_by_subjects_only(scope: Scope, node: exp.Select, lineage: Lineage) -> bool:
    """One row per subject only when every grouping key is a subject key; other keys split a
    subject over several rows, and DISTINCT keeps one row per distinct value combination."""
    group = node.args.get("group")
    if node.args.get("distinct") or not group:
        return False
    return all(
        isinstance(key, exp.Column) and all(lineage.is_subject_key(o) for o in lineage.column(scope, key))
        for key in group.expressions
    )


def _in_set_operation(node: exp.Expression) -> bool:
    parent = node.parent
    while isinstance(parent, exp.Subquery):
        parent = parent.parent
    return isinstance(parent, exp.SetOperation)


def _units_in_select(a: Analysis, scope: Scope, lineage: Lineage, exported) -> PrivacyUnits:
    units: PrivacyUnits = []
    fan = _join_fan_out(a, scope, lineage)
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


def _times(x: int | None, y: int | None) -> int | None:
    return None if x is None or y is None else x * y


def _join_fan_out(a: Analysis, scope: Scope, lineage: Lineage) -> dict[str, int | None]:
    """For each source, how many rows of the other sources one of its rows can meet.

    A source joined on its own subject column, kept distinct by its transform, against a column
    of another source meets at most its rows-per-subject; anything else is unbounded (None),
    which sends the query to exact counting.
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
            if subject and _keeps_values_apart(a, ref, subject) and _joined_on(scope.expression, alias, subject):
                bound_per_alias[alias] = ref.table.max_rows_per_subject
    fan: dict[str, int | None] = {}
    for alias in aliases:
        total: int | None = 1
        for other in aliases:
            if other != alias:
                total = _times(total, bound_per_alias[other])
        fan[alias] = total
    return fan


def _keeps_values_apart(a: Analysis, ref: Ref, column: str) -> bool:
    if ref.protected:
        transform = ref.visible().get(column)
        return transform is not None and transform.kind in INJECTIVE
    transform, _ = a.own_transforms.get((ref.table.key, column), (Transform(TransformKind.RAW), ""))
    return transform.kind in INJECTIVE


def _joined_on(select: exp.Expression, alias: str, column: str) -> bool:
    """Whether a join condition equates `alias.column` with a column of another source."""
    for join in select.args.get("joins") or []:
        on = join.args.get("on")
        for condition in conjuncts(on) if on is not None else []:
            if not isinstance(condition, exp.EQ):
                continue
            sides = [condition.this, condition.expression]
            for side, other in (sides, sides[::-1]):
                if (isinstance(side, exp.Column) and side.table == alias and side.name == column
                        and isinstance(other, exp.Column) and other.table != alias):
                    return True
    return False


def _reads_one_dataset(select: exp.Select) -> bool:
    """A SELECT straight from one dataset (`owner.dataset`, not a CTE, which could hold outer-join
    rows without a subject), no joins: every row carries its subject, never null since ingest
    refuses such rows, so COUNT(*) equals COUNT(subject) and the subject column need not be read."""
    source = select.args.get("from_")
    return (not select.args.get("joins") and source is not None and isinstance(source.this, exp.Table)
            and bool(source.this.args.get("db")))


def _threshold(units: PrivacyUnits, k: int, exact: bool, rows_are_units: bool = False) -> list[exp.Expression]:
    """`__cg_ok` (every unit has >= k subjects) and `__cg_unsure` (the row-count bound cannot tell)."""

    def rows(u: exp.Expression) -> exp.Expression:
        return exp.Count(this=exp.Star()) if rows_are_units else exp.Count(this=u.copy())
    if exact:
        ok = exp.and_(*[exp.GTE(this=exp.Count(this=exp.Distinct(expressions=[u.copy()])), expression=exp.Literal.number(k))
                        for u, _ in units], copy=False)
        unsure: exp.Expression = exp.false()
    else:
        ok = exp.and_(*[exp.GTE(this=rows(u), expression=exp.Literal.number(k * (m or 1))) for u, m in units], copy=False)
        possible = exp.and_(*[exp.GTE(this=rows(u), expression=exp.Literal.number(k)) for u, _ in units], copy=False)
        unsure = exp.and_(exp.not_(ok.copy(), copy=False), possible, copy=False)
    return [exp.alias_(ok, "__cg_ok", quoted=True, copy=False), exp.alias_(unsure, "__cg_unsure", quoted=True, copy=False)]


# ---------------------------------------------------------------------------------------
# the final SELECT over the group tables


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
    """ORDER BY / LIMIT apply after small groups are removed, over output columns only.

    The output columns not in the querier's ORDER BY follow as tie-breaks, left to right (all
    of them when there is none), so the same query releases the same rows in the same order
    every time, a repeat included, on either engine; a LIMIT then keeps the same rows too."""
    order = root.args.get("order")
    items = []
    if order:
        names = [s.alias_or_name for s in root.selects]
        for ordered in order.expressions:
            name = _output_name(ordered.this, root, names, columns)
            if name is None:
                raise Refused([f"ORDER BY: {short(ordered.this)} is not an output column; add it to the SELECT "
                               "list and order by its name or position"])
            items.append(exp.Ordered(this=exp.column(name, quoted=True), desc=ordered.args.get("desc"), nulls_first=ordered.args.get("nulls_first")))
    ordered_names = {item.this.name for item in items}
    items += [exp.Ordered(this=exp.column(c, quoted=True), nulls_first=False) for c in columns if c not in ordered_names]
    final.set("order", exp.Order(expressions=items))
    for arg in ("limit", "offset"):
        if root.args.get(arg):
            final.set(arg, root.args[arg].copy())


def _output_name(target: exp.Expression, root: exp.Query, names: list[str], columns: list[str]) -> str | None:
    if isinstance(target, exp.Column) and target.name in names and not target.table:
        return columns[names.index(target.name)]
    for s, c in zip(root.selects, columns):
        if s.unalias() == target:
            return c
    return None


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
