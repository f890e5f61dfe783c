"""Run a query as a party, for a purpose: govern, execute, record. Refusals are recorded too."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

from ..domain.errors import NotFound, Refused
from ..domain.vocabulary import Kind
from ..policy.context import Plan, QueryContext, TableInfo
from ..policy.governor import govern
from ..ports import QueryResult
from . import consent as consent_svc
from .agreements import agreements_in_force
from .datasets import visible_versions
from .deps import Deps
from .parties import require_party
from .vocabulary import vocabulary


def plan_query(deps: Deps, party: str, purpose: str, sql: str) -> tuple[Plan, dict[str, Path], dict[str, list[str]]]:
    """Govern the query against the catalog as it is now; read the consent sets it needs."""
    with deps.store.read() as conn:
        require_party(deps, conn, party)
        vocabulary(deps, conn).check(Kind.PURPOSE, purpose)
        versions = visible_versions(deps, conn, party)
        agreements = tuple(agreements_in_force(deps, conn, party))
        tables = {k: TableInfo(v.owner, v.name, v.schema, v.rows, v.max_rows_per_subject,
                               v.schema.consent.value if consent_svc.applies(v.schema, purpose) else None)
                  for k, v in versions.items()}
        plan = govern(sql, QueryContext(party, purpose, tables, agreements))
        consent = {}
        for view in plan.views:
            if view.consent:
                version = versions[view.dataset]
                dataset_id = deps.store.dataset_id(conn, require_party(deps, conn, version.owner).id, version.name)
                consent[view.dataset] = consent_svc.filter_subjects(deps, conn, dataset_id, version.schema, purpose)
    return plan, {k: deps.home / v.path for k, v in versions.items()}, consent


def run_query(deps: Deps, party: str, purpose: str, sql: str) -> tuple[QueryResult, Plan]:
    try:
        plan, sources, consent = plan_query(deps, party, purpose, sql)
    except (Refused, NotFound) as refusal:
        _record(deps, party, purpose, {"allowed": False, "reasons": getattr(refusal, "reasons", [str(refusal)])})
        raise
    result = deps.engine.run(plan, sources, consent)
    _record(deps, party, purpose, {
        "allowed": True, "agreements": list(plan.agreements), "datasets": list(plan.datasets),
        "fields": list(plan.fields), "rows": len(result.rows), "suppressed_groups": result.suppressed_groups,
        "governed": plan.governed})
    return result, plan


def explain_query(deps: Deps, party: str, purpose: str, sql: str) -> Plan:
    return plan_query(deps, party, purpose, sql)[0]


def _record(deps: Deps, party: str, purpose: str, details: dict[str, Any]) -> None:
    """Every query is on the ledger: who, why, what it read and how much came out; never values."""
    with deps.store.transaction() as conn:
        deps.store.append_entry(conn, {"event": "query", "party": party, "purpose": purpose, **details, "at": deps.now()})


def result_json(result: QueryResult, plan: Plan) -> dict[str, Any]:
    return {"columns": result.columns, "rows": [[_plain(v) for v in row] for row in result.rows],
            "suppressed_groups": result.suppressed_groups, "governed": plan.governed,
            "min_group_size": plan.min_group_size, "agreements": list(plan.agreements),
            "elapsed_ms": round(result.elapsed_ms, 1)}


def _plain(value: Any) -> Any:
    """Result values as JSON has them."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value
