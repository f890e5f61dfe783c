"""Run a query as a party, for a purpose: govern, execute, record. Refusals are recorded too."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple

from ..domain.errors import NotFound, Refused
from ..domain.records import DatasetVersion
from ..domain.vocabulary import Kind
from ..policy.context import Plan, QueryContext, TableInfo
from ..policy.governor import govern
from ..policy.offers import govern_offer
from ..ports import ConsentGate, QueryResult
from . import consent as consent_svc
from . import privacy
from .agreements import agreements_in_force
from .answers import publish_pending
from .datasets import visible_versions
from .deps import Deps
from .parties import require_party
from .vocabulary import vocabulary


class PlannedQuery(NamedTuple):
    plan: Plan
    sources: dict[str, Path]
    consent: dict[str, ConsentGate]
    versions: dict[str, DatasetVersion]
    fingerprint: str | None  # privacy.release_fingerprint
    repeat_of: int | None  # the ledger index of the earlier release this one repeats, if any


def plan_query(deps: Deps, party: str, purpose: str, sql: str, per_subject: bool = False, epsilon: float | None = None
               ) -> PlannedQuery:
    """Govern the query (or, `per_subject`, the offer computation) against the catalog as it is
    now; read the consent gates it needs (the changes since each gate's base) and whether the
    party was released this very result before, all in this same read transaction."""
    publish_pending(deps)
    with deps.store.read() as conn:
        versions, context = catalog(deps, conn, party, purpose, per_subject)
        context = dataclasses.replace(context, epsilon=epsilon)
        plan = govern_offer(sql, context) if per_subject else govern(sql, context)
        consent = {}
        for view in plan.views:
            if view.consent:
                version = versions[view.dataset]
                dataset_id = deps.store.dataset_id(conn, require_party(deps, conn, version.owner).id, version.name)
                consent[view.dataset] = consent_svc.gate(deps, conn, dataset_id, version, purpose)
        fingerprint = privacy.release_fingerprint(plan, versions, consent)
        repeat_of = deps.store.released_result(conn, party, fingerprint) if fingerprint is not None else None
    return PlannedQuery(plan, {k: deps.home / v.path for k, v in versions.items()}, consent, versions,
                        fingerprint, repeat_of)


def catalog(deps: Deps, conn, party: str, purpose: str, per_subject: bool = False
            ) -> tuple[dict[str, DatasetVersion], QueryContext]:
    """What a computation by `party` for `purpose` may name, as the governor is given it: the
    latest visible versions, the agreements in force, and each dataset's consent gate."""
    require_party(deps, conn, party)
    vocabulary(deps, conn).check(Kind.PURPOSE, purpose)
    versions = visible_versions(deps, conn, party)
    agreements = tuple(agreements_in_force(deps, conn, party))
    tables = {k: TableInfo(v.owner, v.name, v.schema, v.rows, v.max_rows_per_subject,
                           v.schema.consent.value if consent_svc.applies(v.schema, purpose) else None,
                           v.subject_level_columns or frozenset(), v.person_numbers)
              for k, v in versions.items()}
    return versions, QueryContext(party, purpose, tables, agreements, per_subject=per_subject)


def run_query(deps: Deps, party: str, purpose: str, sql: str, epsilon: float | None = None) -> tuple[QueryResult, Plan]:
    """`epsilon`: for a query under access mode dp, what to spend (at most the agreement's
    epsilon_per_query, which is spent when it is None)."""
    try:
        plan, sources, consent, versions, fingerprint, repeat_of = plan_query(deps, party, purpose, sql, epsilon=epsilon)
    except (Refused, NotFound) as refusal:
        _record(deps, party, purpose, {"allowed": False, "reasons": getattr(refusal, "reasons", [str(refusal)])})
        raise
    if plan.dp is not None:
        refused, budget = privacy.spend_budget(deps, party, purpose, plan)
        if refused:
            raise Refused(refused)
    result = deps.engine.run(plan if repeat_of is None else plan.without_sketches(), sources, consent)
    if plan.dp is not None:
        result = dataclasses.replace(result, dp={**result.dp, **budget})
    reasons = _record(deps, party, purpose, {
        "allowed": True, "agreements": list(plan.agreements), "datasets": list(plan.datasets),
        "fields": list(plan.fields), "rows": len(result.rows), "suppressed_groups": result.suppressed_groups,
        "governed": plan.governed, **({"repeat_of": repeat_of} if repeat_of is not None else {})},
        plan, versions, result, fingerprint, repeat_of)
    if reasons:
        raise Refused(reasons)
    return result, plan


def explain_query(deps: Deps, party: str, purpose: str, sql: str, epsilon: float | None = None) -> Plan:
    return plan_query(deps, party, purpose, sql, epsilon=epsilon).plan


def _record(deps: Deps, party: str, purpose: str, details: dict[str, Any], plan: Plan | None = None,
            versions: dict[str, DatasetVersion] | None = None, result: QueryResult | None = None,
            fingerprint: str | None = None, repeat_of: int | None = None) -> list[str]:
    """Every query is on the ledger: who, why, what it read and how much came out; never values.
    A query that ran is also a computation over each dataset version it read: receipts come from these.
    A result is released only if it passes the differencing check against the recipient's history,
    in this same transaction; otherwise the refusal is recorded instead and its reasons returned.
    A repeat of an earlier release (`repeat_of`, privacy.release_fingerprint) is released as it was."""
    now = deps.now()
    with deps.store.transaction() as conn:
        reasons = (privacy.differencing_refusal(deps, conn, party, plan, result)
                   if plan and result and repeat_of is None else [])
        if reasons:
            deps.store.append_entry(conn, {"event": "query", "party": party, "purpose": purpose, "allowed": False,
                                           "reasons": reasons, "at": now})
            return reasons
        index = deps.store.append_entry(conn, {"event": "query", "party": party, "purpose": purpose, **details, "at": now})
        if plan is not None and result is not None and repeat_of is None:
            privacy.remember_release(deps, conn, party, plan, result, index, fingerprint)
        if plan is not None and versions is not None:
            record_computation(deps, conn, "query", party, purpose, plan.agreements, plan.fields,
                               {key: versions[key] for key in plan.datasets}, index, now)
    return []


def record_computation(deps: Deps, conn, kind: str, party: str, purpose: str, agreements: tuple[str, ...],
                       fields: tuple[str, ...], versions: dict[str, DatasetVersion], ledger_index: int, at) -> None:
    """One row per dataset version read (`versions`: only those), with the fields read from it."""
    rows = []
    for key, version in versions.items():
        owner = require_party(deps, conn, version.owner)
        rows.append({"ledger_index": ledger_index, "kind": kind, "party": party, "purpose": purpose,
                     "agreements_json": json.dumps(list(agreements)),
                     "dataset_id": deps.store.dataset_id(conn, owner.id, version.name), "version": version.version,
                     "fields_json": json.dumps([f.split(".", 2)[2] for f in fields if f.startswith(key + ".")]),
                     "at": at})
    deps.store.insert_computations(conn, rows)


def result_json(result: QueryResult, plan: Plan) -> dict[str, Any]:
    return {"columns": result.columns, "rows": [[plain(v) for v in row] for row in result.rows],
            "suppressed_groups": result.suppressed_groups, "governed": plan.governed,
            "min_group_size": plan.min_group_size, "agreements": list(plan.agreements),
            "elapsed_ms": round(result.elapsed_ms, 1), **({"dp": result.dp} if result.dp else {}),
            **({"noise": result.noise} if result.noise else {})}


def plain(value: Any) -> Any:
    """Result values as JSON has them."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value
