"""Privacy checks that need the store: the differencing history of released groups, and the
differential-privacy budget. Each runs inside the caller's write transaction (which holds the
ledger lock), so checking and recording cannot race another query of the same recipient."""

from __future__ import annotations

import hashlib
import json
from typing import Any, Mapping

from ..domain.errors import BadInput
from ..domain.records import DatasetVersion
from ..policy.context import Plan
from ..policy.differencing import Released, Sketch, candidate_window, differencing_reasons, released_groups
from ..ports import ConsentGate, QueryResult
from .agreements import show
from .deps import Deps

NO_SKETCHES = ("differencing: this query engine does not compute the sketches the differencing check needs, "
               "so results over others' data cannot be released on it; run it on the DuckDB engine")


def differencing_refusal(deps: Deps, conn: Any, party: str, plan: Plan, result: QueryResult) -> list[str]:
    """Why releasing this result would let a recipient subtract groups down to fewer than k
    people, given every group released to it under the same agreements; [] when it would not."""
    if not plan.groups:
        return []
    if result.sketches is None:
        return [NO_SKETCHES]
    new = _released(plan, result)
    history_bound = deps.store.released_bound(conn, plan.agreements, party)
    windows = [candidate_window(group, history_bound, plan.min_group_size) for group in new]
    earlier = [Released(Sketch.from_bytes(data), f"your query at ledger entry {index}", bound)
               for index, data, bound in deps.store.released_sketches(
                   conn, plan.agreements, party, None if None in windows else windows)]  # type: ignore[arg-type]
    return differencing_reasons(new, earlier, plan.min_group_size)


def remember_release(deps: Deps, conn: Any, party: str, plan: Plan, result: QueryResult, ledger_index: int,
                     fingerprint: str | None) -> None:
    if plan.groups and result.sketches is not None:
        deps.store.insert_released_sketches(conn, plan.agreements, party,
                                            [(r.sketch.to_bytes(), r.rows, r.row_bound) for r in _released(plan, result)],
                                            ledger_index, deps.now())
        if fingerprint is not None:
            deps.store.insert_released_result(conn, party, fingerprint, ledger_index, deps.now())


def release_fingerprint(plan: Plan, versions: Mapping[str, DatasetVersion], consent: Mapping[str, ConsentGate]) -> str | None:
    """What identifies a release: the plan (every SQL the engine runs, the agreements, k), the
    bytes of each input version and each consent gate's state. Two releases with the same
    fingerprint release the same groups, so the second reveals nothing the first did not and
    its sketches equal the first's; the first was checked against everything released before
    it, and everything released since was checked against it (the check is symmetric). So a
    repeat needs no sketches and no check. None for plans that release no groups or whose
    result depends on more than the inputs (Plan.repeatable)."""
    if not plan.groups or not plan.repeatable:
        return None
    document = {
        "sql": plan.sql, "views": [v.select_sql for v in plan.views], "agreements": list(plan.agreements),
        "k": plan.min_group_size,
        "groups": [[g.fast_sql, g.exact_sql, g.sketch_sql, g.fast_sketched_sql, g.exact_sketched_sql] for g in plan.groups],
        "inputs": {key: versions[key].sha256 for key in plan.datasets},
        "consent": {key: [g.mode, g.purpose, g.source_sha256, g.base_seq, sorted(g.changes.items())]
                    for key, g in sorted(consent.items())},
    }
    return hashlib.sha256(json.dumps(document, sort_keys=True).encode()).hexdigest()


def _released(plan: Plan, result: QueryResult) -> list[Released]:
    return released_groups(result.sketches, [group.sketch_row_bound for group in plan.groups])


def budget(deps: Deps, party: str, agreement_id: str) -> dict[str, Any]:
    """A dp agreement's budget as its recipient (or provider) sees it."""
    state = show(deps, party, agreement_id)
    dp = state.terms.privacy.dp
    if dp is None:
        raise BadInput(f"agreement {agreement_id} is not a dp agreement (access mode {state.terms.mode.value}); "
                       "it has no privacy budget")
    with deps.store.read() as conn:
        recipients = state.terms.recipients if party == state.terms.provider else (party,)
        spent = {r: deps.store.privacy_spent(conn, agreement_id, r) for r in recipients}
    return {"agreement": agreement_id, "epsilon": dp.epsilon, "delta": dp.delta,
            "epsilon_per_query": dp.epsilon_per_query,
            "recipients": {r: {"epsilon_spent": round(e, 6), "epsilon_left": round(dp.epsilon - e, 6),
                               "delta_spent": d, "delta_left": dp.delta - d} for r, (e, d) in spent.items()}}


def spend_budget(deps: Deps, party: str, purpose: str, plan: Plan) -> tuple[list[str], dict[str, float]]:
    """Spend a dp query's epsilon and delta before it runs, atomically with its ledger entry, or
    refuse it (recorded) if the recipient's budget under the agreement would be exceeded. No
    refresh: the budget is the agreement's total for its whole life. A query that then fails
    still spent its budget (a failure can depend on the data)."""
    spend = plan.dp
    now = deps.now()
    with deps.store.transaction() as conn:
        [state] = deps.store.agreements(conn, spend.agreement)
        total = state.terms.privacy.dp
        epsilon, delta = deps.store.privacy_spent(conn, spend.agreement, party)
        if epsilon + spend.epsilon > total.epsilon + 1e-9 or delta + spend.delta > total.delta * (1 + 1e-9):
            reasons = [f"budget: this query needs epsilon {spend.epsilon:g} (delta {spend.delta:g}) and your budget under "
                       f"agreement {spend.agreement} has epsilon {max(total.epsilon - epsilon, 0):g} "
                       f"(delta {max(total.delta - delta, 0):g}) left of {total.epsilon:g}; budgets are not refreshed"]
            deps.store.append_entry(conn, {"event": "query", "party": party, "purpose": purpose, "allowed": False,
                                           "reasons": reasons, "at": now})
            return reasons, {}
        index = deps.store.append_entry(conn, {
            "event": "privacy_spend", "party": party, "purpose": purpose, "agreement": spend.agreement,
            "epsilon": spend.epsilon, "delta": spend.delta,
            "epsilon_left": round(total.epsilon - epsilon - spend.epsilon, 6), "at": now})
        deps.store.insert_privacy_spend(conn, spend.agreement, party, spend.epsilon, spend.delta, index, now)
    return [], {"epsilon_left": round(total.epsilon - epsilon - spend.epsilon, 6),
                "delta_left": total.delta - delta - spend.delta, "budget_epsilon": total.epsilon}
