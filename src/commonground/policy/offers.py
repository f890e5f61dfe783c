"""Offers: a recipient's computation evaluated once per subject, whose results go to the subjects.

The usage-based insurance case: an insurer may not see anyone's driving data, but it may
write `SELECT 400 + 20 * AVG(hard_brakes) AS premium FROM telematics.trips`, and each driver
is offered the premium computed from their own trips. The recipient never sees the terms;
it sees each subject's decision and whatever the subject chooses to release.

So the query is refused unless it is clearly "one row per subject": one SELECT over one
dataset shared under an `offer` agreement, no GROUP BY of its own (the store groups by the
privacy unit), every output an aggregate over the subject's rows or a constant, and no
selection of people by identifier. The plan groups by the hidden privacy unit `__cg_pu` and
names it `__cg_subject`; the service routes each row to its subject.
"""

from __future__ import annotations

from sqlglot import exp
from sqlglot.errors import OptimizeError
from sqlglot.optimizer.qualify import qualify

from ..domain.agreements import AccessMode
from ..domain.errors import NotFound, Refused
from . import allowlist
from .analysis import DIALECT, PRIVACY_UNIT, Analysis, short
from .context import Plan, QueryContext
from .governor import _check_table_aliases, _column_error, _name_outputs, _parse, _resolve_tables, _screen
from .rewrite import dataset_view, errors_without_values

SUBJECT = "__cg_subject"
EVIDENCE_ROWS = 200  # rows shown to each subject as the basis of their offer
_CLAUSES = {"group": "GROUP BY", "having": "HAVING", "order": "ORDER BY", "limit": "LIMIT", "offset": "OFFSET",
            "distinct": "DISTINCT", "with_": "WITH", "joins": "JOIN", "qualify": "QUALIFY"}


def govern_offer(sql: str, ctx: QueryContext) -> Plan:
    """An offer computation -> a per-subject Plan, or a refusal listing every reason."""
    if not ctx.per_subject:
        raise ValueError("govern_offer needs a per-subject context")
    tree = _parse(sql)
    _screen(tree)
    a = Analysis(ctx, tree)
    foreign = _resolve_tables(a)
    if not isinstance(tree, exp.Select):
        raise Refused(["offer: write one SELECT (no UNION, INTERSECT or EXCEPT)"])
    for arg, label in _CLAUSES.items():
        if tree.args.get(arg):
            a.refuse(f"offer: {label} is not allowed; the store evaluates the SELECT once per subject "
                     "(it groups by subject itself)")
    tables = list(tree.find_all(exp.Table))
    if len(tables) != 1 or len(foreign) != 1:
        raise Refused(a.reasons + ["offer: read exactly one dataset shared with you under an offer agreement"])
    ref = foreign[0]
    assert ref.agreement is not None
    if ref.agreement.terms.mode is not AccessMode.OFFER:
        a.refuse(f"offer: your agreement for {ref.table.key} grants {ref.agreement.terms.mode.value} access, not "
                 "offers; ask the provider for an agreement with access mode offer")
    if ref.table.schema.subject_column is None:
        raise NotFound(f"{ref.table.key} has no subject column, so there is no one to make offers to")
    if any(isinstance(n, (exp.Subquery, exp.Window)) for n in tree.walk()) or len(list(tree.find_all(exp.Select))) > 1:
        a.refuse("offer: subqueries and window functions are not allowed in an offer")
    _check_table_aliases(a)
    a.check()
    for projection in tree.selects:
        for column in projection.find_all(exp.Column):
            if not _inside_aggregate(column, projection):
                a.refuse(f"offer: {short(projection)} uses {column.name} outside an aggregate; each output must be "
                         "an aggregate over the subject's rows (AVG, SUM, COUNT, MIN, MAX, ...) or a constant")
        if isinstance(projection, exp.Star):
            a.refuse("offer: SELECT * is not allowed; name each output")
    where = tree.args.get("where")
    schema = ref.table.schema
    if where is not None:
        for column in where.find_all(exp.Column):
            if column.name in schema.names and schema.column(column.name).role.identifying:
                a.refuse(f"offer: the WHERE clause may not select people by an identifying column ({column.name}); "
                         "offers go to everyone the filter on other columns admits")
    a.check()
    _name_outputs(tree)
    visible = {c: schema.column(c).type.sql for c in ref.visible()}
    try:
        tree = qualify(tree, schema={ref.table.owner: {ref.table.name: visible}}, dialect=DIALECT,
                       validate_qualify_columns=True, quote_identifiers=True, identify=True)
    except OptimizeError as e:
        raise Refused([f"columns: {_column_error(e, [ref])}"]) from None
    fields = sorted({f"{ref.table.key}.{c.name}" for c in tree.find_all(exp.Column)})
    columns = [s.alias_or_name for s in tree.selects]
    if len(set(columns)) != len(columns):
        raise Refused(["offer: output names must be unique; alias each output"])
    keys: dict[str, bytes] = {}
    view = dataset_view(ref, {}, keys, None, unit_as_id=True)  # the offer is addressed to each person by id
    errors_without_values(tree)
    unit = exp.column(PRIVACY_UNIT, quoted=True)
    used = sorted({c.name for c in tree.find_all(exp.Column)})
    evidence = _evidence(tree, unit, used)
    tree.set("expressions", [exp.alias_(unit.copy(), SUBJECT, quoted=True), *tree.expressions])
    tree.set("group", exp.Group(expressions=[unit]))
    return Plan(
        views=(view,),
        pseudonym_keys=keys,
        columns=(SUBJECT, *columns),
        sql=tree.sql(DIALECT),
        min_group_size=ref.agreement.terms.min_group_size,
        agreements=(ref.agreement.id,),
        datasets=(ref.table.key,),
        fields=tuple(fields),
        per_subject=True,
        evidence_sql=evidence,
        evidence_columns=(SUBJECT, *used),
    )


def _evidence(tree: exp.Select, unit: exp.Column, used: list[str]) -> str:
    """The rows each subject's result is computed from, with the used columns as the
    computation saw them (after transforms): the exact answer to "why was I offered this"."""
    source = next(tree.find_all(exp.Table))
    alias = source.alias_or_name
    select = exp.select(exp.alias_(unit.copy(), SUBJECT, quoted=True),
                        *[exp.column(c, table=alias, quoted=True) for c in used]).from_(source.copy())
    where = tree.args.get("where")
    if where is not None:
        select.set("where", where.copy())
    ordinal = exp.Window(this=exp.RowNumber(), partition_by=[unit.copy()])
    select.set("qualify", exp.Qualify(this=exp.LTE(this=ordinal, expression=exp.Literal.number(EVIDENCE_ROWS))))
    return select.sql(DIALECT)


def _inside_aggregate(node: exp.Expression, top: exp.Expression) -> bool:
    parent = node.parent
    while parent is not None and parent is not top.parent:
        if allowlist.is_aggregate(parent):
            return True
        parent = parent.parent
    return False
