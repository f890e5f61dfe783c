"""The clean-room query governor: SQL + catalog + agreements in force -> a Plan or a refusal.

Pure: no I/O, no clock. The pipeline is parse -> screen -> resolve tables -> qualify ->
check (`checks`) -> rewrite (`rewrite`). Checks collect every reason before refusing, so one
refusal tells the querier all that is wrong. Enforcement is by rewriting: the threshold on
distinct subjects is added to the query, never trusted to it.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp
from sqlglot.errors import OptimizeError, ParseError
from sqlglot.optimizer.qualify import qualify
from sqlglot.optimizer.scope import traverse_scope

from ..domain.agreements import AccessMode, AgreementState
from ..domain.errors import BadInput, NotFound, Refused
from . import allowlist, checks, dp
from .analysis import DIALECT, Analysis, Lineage, Ref, branches
from .context import Plan, QueryContext, RelationView
from .rewrite import consent_source, rewrite

RESERVED_PREFIX = "__cg"
MAX_SQL_LENGTH = 100_000


def govern(sql: str, ctx: QueryContext) -> Plan:
    tree = _parse(sql)
    _screen(tree)
    analysis = Analysis(ctx, tree)
    foreign = _resolve_tables(analysis)
    if not foreign:
        _no_epsilon(analysis)
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
        raise Refused([f"read-only: exactly one statement is allowed, found {len(statements)}; send one SELECT"])
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        raise Refused([f"read-only: only SELECT queries are allowed, not {_statement_kind(tree)}"])
    return tree


def _statement_kind(tree: exp.Expression) -> str:
    """What the user wrote: sqlglot parses what it does not model (LOAD, CALL) as a Command."""
    if isinstance(tree, exp.Command):
        return str(tree.this).upper()
    return type(tree).__name__.upper()


def _screen(tree: exp.Query) -> None:
    """Refuse constructs that are never allowed, before looking at any table."""
    reasons: list[str] = []
    for node in tree.walk():
        if isinstance(node, exp.Identifier) and str(node.this).lower().startswith(RESERVED_PREFIX):
            reasons.append(f"reserved names: names starting with {RESERVED_PREFIX} are the store's own "
                           f"({node.this}); rename it")
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
            reasons.append(f"tables: tables are named owner.dataset; {node.sql(DIALECT)} has too many parts")
    if reasons:
        raise Refused(list(dict.fromkeys(reasons)))


def _resolve_tables(a: Analysis) -> list[Ref]:
    """Bind every table reference to a dataset and, for others' datasets, an agreement."""
    foreign: list[Ref] = []
    for node in a.tree.find_all(exp.Table):
        if not node.db:
            if _names_visible_cte(node):
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
                raise Refused([f"agreement: no agreement in force grants you {key} for purpose {a.ctx.purpose}; "
                               "use a purpose your agreement lists, or propose one that covers it"])
        ref = Ref(len(a.refs), table, agreement)
        a.refs[id(node)] = ref
        if ref.protected:
            foreign.append(ref)
    return foreign


def _names_visible_cte(table: exp.Table) -> bool:
    """Whether an unqualified name refers to a CTE visible where it is used. DuckDB looks any
    other name up in its catalog, where the engine keeps the raw sources, so a CTE defined
    elsewhere (or later in the same WITH) must not count."""
    child: exp.Expression = table
    node = table.parent
    while node is not None:
        if isinstance(node, exp.With):
            ctes = list(node.expressions)
            index = ctes.index(child) if child in ctes else len(ctes)
            visible = ctes[: index + 1] if node.args.get("recursive") else ctes[:index]
            if any(cte.alias_or_name == table.name for cte in visible):
                return True
        elif isinstance(node, exp.Query) and child is not node.args.get("with_"):
            with_ = node.args.get("with_")
            if with_ is not None and any(cte.alias_or_name == table.name for cte in with_.expressions):
                return True
        child, node = node, node.parent
    return False


def _agreement_for(ctx: QueryContext, dataset: str) -> AgreementState | None:
    """The newest agreement in force that grants this dataset for this purpose, preferring one
    whose access mode fits the computation (offer agreements for offers, others but code for queries),
    so a mismatch is refused by the access-mode check with a reason that says so."""
    candidates = [a for a in sorted(ctx.agreements, key=lambda s: s.id, reverse=True)
                  if ctx.party in a.terms.recipients and ctx.purpose in a.terms.purposes and a.terms.grant_for(dataset)]
    fitting = [a for a in candidates
               if (a.terms.mode is AccessMode.OFFER) == ctx.per_subject and a.terms.mode is not AccessMode.CODE]
    return (fitting or candidates or [None])[0]


# ---------------------------------------------------------------------------------------
# the querier's own data


def _own_plan(a: Analysis) -> Plan:
    views = {}
    for ref in a.refs.values():
        subject = ref.table.schema.subject_column
        consent = ref.table.consent if subject else None
        select = exp.select(*[exp.column(c, quoted=True) for c in ref.table.schema.names]).from_(consent_source(consent))
        views[ref.table.key] = RelationView(ref.table.key, select.sql(DIALECT), consent, subject if consent else None)
    return Plan(
        views=tuple(views.values()),
        pseudonym_keys={},
        columns=tuple(s.alias_or_name for s in a.tree.selects),
        sql=a.tree.sql(DIALECT),
        datasets=tuple(sorted(views)),
        fields=_own_fields(a),
    )


def _own_fields(a: Analysis) -> tuple[str, ...]:
    """The owner's columns its query reads (`owner.dataset.column`), so the receipts of the people
    in its rows say which of their data was used. Resolved on a qualified copy of the query; when it
    cannot be resolved column by column, every column of the datasets read is named: a receipt may
    over-state what was read, never under-state it."""
    schema: dict[str, dict[str, dict[str, str]]] = {}
    for ref in a.refs.values():
        schema.setdefault(ref.table.owner, {})[ref.table.name] = {
            c: ref.table.schema.column(c).type.sql for c in ref.table.schema.names}
    keys = {(owner, name) for owner, tables in schema.items() for name in tables}
    try:
        tree = qualify(a.tree.copy(), schema=schema, dialect=DIALECT, validate_qualify_columns=True,
                       quote_identifiers=True, identify=True)
        read = {f"{source.db}.{source.name}.{column.name}"
                for scope in traverse_scope(tree) for column in scope.columns
                if isinstance(source := scope.sources.get(column.table), exp.Table) and (source.db, source.name) in keys}
    except OptimizeError:
        read = {f"{owner}.{name}.{c}" for owner, tables in schema.items() for name, cols in tables.items() for c in cols}
    return tuple(sorted(read))


# ---------------------------------------------------------------------------------------
# queries that touch others' data


def _governed_plan(a: Analysis) -> Plan:
    refs = list(a.refs.values())
    checks.check_access_mode(a)
    if a.tree.find(exp.Window):
        a.refuse("window functions: not allowed on others' data (they compute per row); use GROUP BY aggregates")
    if any(w.args.get("recursive") for w in a.tree.find_all(exp.With)):
        a.refuse("recursive CTEs: WITH RECURSIVE is not allowed with others' data; use plain CTEs")
    _check_table_aliases(a)
    a.check()
    schema: dict[str, dict[str, dict[str, str]]] = {}
    for ref in refs:
        cols = {c: ref.table.schema.column(c).type.sql for c in ref.visible()}
        schema.setdefault(ref.table.owner, {})[ref.table.name] = cols
    _name_outputs(a.tree)
    # Qualify rebuilds tables; remember references by position in a walk.
    order = [a.refs[id(t)] for t in a.tree.find_all(exp.Table) if id(t) in a.refs]
    try:
        tree = qualify(a.tree, schema=schema, dialect=DIALECT, validate_qualify_columns=True,
                       quote_identifiers=True, identify=True)
    except OptimizeError as e:
        raise Refused([f"columns: {_column_error(e, refs)}"]) from None
    tables = [t for t in tree.find_all(exp.Table) if t.db]
    assert len(tables) == len(order), "qualify changed the table references"
    a.refs = {id(t): r for t, r in zip(tables, order)}
    a.tree = tree
    scopes = traverse_scope(tree)
    lineage = Lineage(a, scopes)
    checks.check_joins(a, scopes, lineage)
    checks.check_scopes(a, scopes, lineage)
    a.check()
    if dp.is_dp(a):
        return dp.dp_plan(a, scopes, lineage)
    _no_epsilon(a)
    return rewrite(a, scopes, lineage)


def _no_epsilon(a: Analysis) -> None:
    """An epsilon is a dp query's spending; anywhere else it would promise noise that is not there."""
    if a.ctx.epsilon is not None:
        raise Refused(["epsilon: only a query under access mode dp spends an epsilon; this one reads no dp-shared data"])


def _check_table_aliases(a: Analysis) -> None:
    """`FROM owner.dataset AS t(a, b)` renames columns by position, which would let an
    identifier pass under the name of a dimension."""
    for node in a.tree.find_all(exp.Table):
        alias = node.args.get("alias")
        if id(node) in a.refs and alias is not None and alias.columns:
            a.refuse(f"tables: column aliases on a dataset ({node.sql(DIALECT)}) are not allowed with others' "
                     "data; alias the columns in the SELECT list instead")


def _name_outputs(tree: exp.Query) -> None:
    """Give unnamed output expressions the name the user would expect (`sum(spend)`)."""
    for branch in branches(tree)[:1]:
        for projection in list(branch.selects):
            if not isinstance(projection, (exp.Alias, exp.Column, exp.Star)):
                # Wrap the node itself, not a copy: tables inside it are bound by identity.
                alias = exp.Alias(alias=exp.to_identifier(projection.sql(DIALECT).lower(), quoted=True))
                projection.replace(alias)
                alias.set("this", projection)


def _column_error(e: OptimizeError, refs: list[Ref]) -> str:
    message = str(e).split(". Line:")[0]
    visible = "; ".join(
        f"{r.table.key}: {', '.join(r.visible()) or '(none)'}" for r in {r.table.key: r for r in refs}.values()
    )
    return f"{message} (dropped, not granted or unknown). Columns you may use: {visible}"
