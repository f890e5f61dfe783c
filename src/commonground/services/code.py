"""Code-to-data: submit an analysis, have every provider review it, run it confined, release results.

1. A recipient of `code` agreements submits a Python module (see domain/code.py). It is pinned by
   its SHA-256; a new version is a new submission carrying a unified diff against the last.
2. Each provider whose data it reads approves or rejects it with a reason; nobody decides on
   their own code. An agreement may auto-approve code whose hash every provider approved before.
3. An approved analysis runs (adapters/code_run.py) on the governed views as they are now, in
   the sandbox (adapters/sandbox.py); its output is measured and checked (policy/code_release.py).
4. A result that passed is held until every provider releases it (or the agreement's
   auto-release rule does); only then may the submitter read it. Providers read it to decide.

Everything is on the ledger: hashes, decisions with their reasons, check outcomes and counts,
releases and reads; never the code's output values nor the data.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
from typing import Any

from ..domain.code import (AutoApprove, AutoRelease, Decision, Declared, check_reviewer, code_hash, inspect_source,
                           run_status, submission_status, unified_diff)
from ..domain.errors import BadInput, Conflict, NotFound, Refused
from ..policy.code_release import CodePlan, declaration_reasons, disclosure_reasons, govern_code
from . import consent as consent_svc
from .agreements import agreements_in_force
from .answers import publish_pending
from .deps import Deps
from .parties import require_party
from .queries import catalog, plain, record_computation

MAX_TITLE = 200
MAX_REASON = 2000


def _plan(deps: Deps, conn, party: str, purpose: str, agreements: tuple[str, ...]):
    versions, context = catalog(deps, conn, party, purpose)
    return versions, govern_code(context, agreements)


def submit(deps: Deps, party: str, purpose: str, agreements: tuple[str, ...], source: str, title: str,
           previous: str | None = None) -> dict[str, Any]:
    title = title.strip()
    if not title or len(title) > MAX_TITLE:
        raise BadInput(f"give the analysis a title of 1 to {MAX_TITLE} characters")
    if not agreements:
        raise BadInput("name the code agreement(s) whose data the analysis reads (--agreement ID)")
    declared = inspect_source(source)
    digest = code_hash(source)
    now = deps.now()
    submission_id = deps.new_id()
    with deps.store.transaction() as conn:
        _, plan = _plan(deps, conn, party, purpose, tuple(dict.fromkeys(agreements)))
        reasons = declaration_reasons(plan, declared)
        if reasons:
            raise Refused(reasons)
        diff = None
        if previous is not None:
            before = deps.store.code_submissions(conn, submission_id=previous, submitter=party)
            if not before:
                raise NotFound(f"no submission {previous} of yours")
            diff = unified_diff(before[0]["source"], source, before[0]["sha256"], digest)
        index = deps.store.append_entry(conn, {
            "event": "code.submitted", "party": party, "submission": submission_id, "purpose": purpose,
            "agreements": list(plan.agreements), "reviewers": list(plan.providers), "sha256": digest,
            "previous": previous, "group_by": list(declared.group_by), "count": declared.count, "at": now})
        deps.store.insert_code_submission(conn, {
            "id": submission_id, "submitter": party, "purpose": purpose, "agreements": list(plan.agreements),
            "reviewers": list(plan.providers), "title": title, "sha256": digest, "source": source,
            "declared": {"group_by": list(declared.group_by), "count": declared.count,
                         "mentions": list(declared.mentions)},
            "previous_id": previous, "diff": diff, "ledger_index": index, "created_at": now})
        if AutoApprove.SAME_CODE_HASH in plan.terms.auto_approve:
            _auto_approve(deps, conn, submission_id, digest, plan, now)
    return get(deps, party, submission_id)


def _auto_approve(deps: Deps, conn, submission_id: str, digest: str, plan: CodePlan, now) -> None:
    """`same_code_hash`: code every provider approved under the same agreements is approved again."""
    earlier = [s for s in deps.store.code_submissions(conn, sha256=digest)
               if s["id"] != submission_id and sorted(s["agreements"]) == sorted(plan.agreements)]
    reviews = deps.store.code_reviews(conn, [s["id"] for s in earlier]) if earlier else []
    for s in earlier:
        decisions = {r["party"]: Decision(r["decision"]) for r in reviews if r["submission_id"] == s["id"]}
        if submission_status(tuple(s["reviewers"]), decisions) == "approved":
            for reviewer in plan.providers:
                _record_review(deps, conn, submission_id, reviewer, Decision.APPROVED,
                               f"same code hash as submission {s['id']}, which every provider approved",
                               AutoApprove.SAME_CODE_HASH.value, now)
            return


def _record_review(deps: Deps, conn, submission_id: str, party: str, decision: Decision, reason: str,
                   rule: str | None, now) -> None:
    index = deps.store.append_entry(conn, {"event": f"code.{decision.value}", "party": party,
                                           "submission": submission_id, "reason": reason, "rule": rule, "at": now})
    deps.store.insert_code_review(conn, {"submission_id": submission_id, "party": party, "decision": decision.value,
                                         "reason": reason, "rule": rule, "ledger_index": index, "at": now})


def _submission(deps: Deps, conn, party: str, submission_id: str) -> dict[str, Any]:
    """A submission its submitter or one of its reviewers may see; anyone else gets a 404."""
    require_party(deps, conn, party)
    found = deps.store.code_submissions(conn, submission_id=submission_id)
    if not found or party not in (found[0]["submitter"], *found[0]["reviewers"]):
        raise _not_found(submission_id)
    return found[0]


def _not_found(item_id: str) -> NotFound:
    """One answer for a missing id and one the caller may not see, whether submission or run."""
    return NotFound(f"no code submission or run {item_id} of yours or for your review")


def _decisions(deps: Deps, conn, submission_id: str) -> tuple[list[dict[str, Any]], dict[str, Decision]]:
    reviews = deps.store.code_reviews(conn, [submission_id])
    return reviews, {r["party"]: Decision(r["decision"]) for r in reviews}


def review(deps: Deps, party: str, submission_id: str) -> dict[str, Any]:
    """What a reviewer decides on: the code, its diff against the last version, what it reads
    (each input's columns as the analysis will see them) and what it declares about its output."""
    with deps.store.read() as conn:
        s = _submission(deps, conn, party, submission_id)
        try:
            _, plan = _plan(deps, conn, s["submitter"], s["purpose"], tuple(s["agreements"]))
            reads = [{"dataset": i.key, "columns": list(i.columns), "identifying": list(i.identifying)}
                     for i in plan.inputs]
        except (NotFound, Refused):
            reads = []  # an agreement no longer in force: the analysis cannot run, and reads nothing
    shown = get(deps, party, submission_id)
    columns = {c for r in reads for c in r["columns"]} | {r["dataset"] for r in reads}
    return {**shown, "source": s["source"], "diff": s["diff"], "reads": reads,
            "mentions": [m for m in s["declared"]["mentions"] if m in columns]}


def decide(deps: Deps, party: str, submission_id: str, approve: bool, reason: str) -> dict[str, Any]:
    reason = reason.strip()
    if not reason or len(reason) > MAX_REASON:
        raise BadInput(f"give a reason of 1 to {MAX_REASON} characters for your decision")
    with deps.store.transaction() as conn:
        s = _submission(deps, conn, party, submission_id)
        _, decisions = _decisions(deps, conn, submission_id)
        check_reviewer(party, s["submitter"], tuple(s["reviewers"]), decisions)
        _record_review(deps, conn, submission_id, party, Decision.APPROVED if approve else Decision.REJECTED, reason,
                       None, deps.now())
    return get(deps, party, submission_id)


def run(deps: Deps, party: str, submission_id: str) -> dict[str, Any]:
    """Run an approved analysis on the data as it is now; the result is checked, then held.
    A refused attempt (not approved, an agreement no longer granting code) is on the ledger too."""
    try:
        s, versions, plan, gates = _prepare_run(deps, party, submission_id)
    except Refused as refusal:
        with deps.store.transaction() as conn:
            deps.store.append_entry(conn, {"event": "code.run_refused", "party": party, "submission": submission_id,
                                           "reasons": refusal.reasons, "at": deps.now()})
        raise
    declared = Declared(tuple(s["declared"]["group_by"]), s["declared"]["count"], ())
    run_id = deps.new_id()
    scratch = deps.home / "tmp" / f"code-{run_id}"
    dest = deps.home / "code-results" / f"{run_id}.parquet"
    try:
        outcome = deps.engine.run_code(plan, {k: deps.home / versions[k].path for k in plan.datasets},  # type: ignore[attr-defined]
                                       gates, s["source"], declared, scratch)
        reasons = [f"sandbox: {outcome.failure}"] if outcome.failure else disclosure_reasons(outcome.facts, declared, plan)
        checks = {"passed": not reasons, "reasons": reasons, "timings_s": {k: round(v, 3) for k, v in outcome.timings.items()},
                  **({"facts": _facts(outcome.facts)} if outcome.facts else {})}
        status = "failed" if outcome.failure else "refused" if reasons else "held"
        digest = size = rows = None
        if status == "held":
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(outcome.output, dest)
            digest, size, rows = _sha256(dest), outcome.facts.bytes, outcome.facts.rows
        _record_run(deps, s, plan, versions, run_id, status, checks, dest if status == "held" else None, digest, size, rows)
    except BaseException:
        dest.unlink(missing_ok=True)
        raise
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return get(deps, party, run_id)


def _prepare_run(deps: Deps, party: str, submission_id: str) -> tuple[dict[str, Any], dict, CodePlan, dict]:
    """The submitter's approved submission, the views it reads as of now, and their consent gates."""
    publish_pending(deps)
    with deps.store.read() as conn:
        s = _submission(deps, conn, party, submission_id)
        if s["submitter"] != party:
            raise _not_found(submission_id)
        _, decisions = _decisions(deps, conn, submission_id)
        status = submission_status(tuple(s["reviewers"]), decisions)
        if status != "approved":
            waiting = [r for r in s["reviewers"] if r not in decisions]
            raise Refused([f"code: submission {submission_id} is {status}" +
                           (f"; waiting for {', '.join(waiting)} to review it" if status == "pending" else "")])
        versions, plan = _plan(deps, conn, party, s["purpose"], tuple(s["agreements"]))
        gates = {}
        for i in plan.inputs:
            if i.view.consent:
                version = versions[i.key]
                dataset_id = deps.store.dataset_id(conn, require_party(deps, conn, version.owner).id, version.name)
                gates[i.key] = consent_svc.gate(deps, conn, dataset_id, version, s["purpose"])
    return s, versions, plan, gates


def _facts(facts) -> dict[str, Any]:
    shown = dataclasses.asdict(facts)
    shown["columns"] = list(facts.columns)
    for key in ("identifier_values", "pii", "unscalar"):
        shown[key] = dict(getattr(facts, key))
    return shown


def _sha256(path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _record_run(deps: Deps, s: dict[str, Any], plan: CodePlan, versions, run_id: str, status: str,
                checks: dict[str, Any], path, digest: str | None, size: int | None, rows: int | None) -> None:
    now = deps.now()
    with deps.store.transaction() as conn:
        in_force = {a.id for a in agreements_in_force(deps, conn, s["submitter"])}
        if not set(plan.agreements) <= in_force:
            raise Conflict("an agreement stopped being in force while the analysis ran; nothing was kept")
        index = deps.store.append_entry(conn, {
            "event": "code.run", "party": s["submitter"], "submission": s["id"], "run": run_id, "sha256": s["sha256"],
            "agreements": list(plan.agreements), "datasets": {k: versions[k].version for k in plan.datasets},
            "status": status, "reasons": checks["reasons"], "output_sha256": digest, "rows": rows, "at": now})
        record_computation(deps, conn, "code", s["submitter"], s["purpose"], plan.agreements, plan.fields,
                           {k: versions[k] for k in plan.datasets}, index, now)
        deps.store.insert_code_run(conn, {
            "id": run_id, "submission_id": s["id"], "status": status,
            "path": str(path.relative_to(deps.home)) if path else None, "sha256": digest, "rows": rows, "bytes": size,
            "checks": checks, "ledger_index": index, "created_at": now})
        if status == "held" and AutoRelease.CHECKS_PASSED in plan.terms.auto_release:
            for provider in plan.providers:
                _record_release(deps, conn, run_id, provider, AutoRelease.CHECKS_PASSED.value, now)
            deps.store.set_code_run_status(conn, run_id, "released")


def _record_release(deps: Deps, conn, run_id: str, party: str, rule: str | None, now) -> None:
    index = deps.store.append_entry(conn, {"event": "code.released", "party": party, "run": run_id, "rule": rule,
                                           "at": now})
    deps.store.insert_code_release(conn, {"run_id": run_id, "party": party, "rule": rule, "ledger_index": index,
                                          "at": now})


def _run(deps: Deps, conn, party: str, run_id: str, for_update: bool = False) -> tuple[dict[str, Any], dict[str, Any]]:
    found = deps.store.code_runs(conn, run_id=run_id, for_update=for_update)
    if not found:
        raise _not_found(run_id)
    try:
        return found[0], _submission(deps, conn, party, found[0]["submission_id"])
    except NotFound:
        raise _not_found(run_id) from None


def release(deps: Deps, party: str, run_id: str) -> dict[str, Any]:
    """A provider lets a held result go to the submitter; once every provider has, it is released."""
    now = deps.now()
    with deps.store.transaction() as conn:
        r, s = _run(deps, conn, party, run_id, for_update=True)  # two providers releasing at once: one waits
        if party not in s["reviewers"]:
            raise Refused(["code: only the providers whose data the analysis read release its result"])
        if r["status"] != "held":
            raise Conflict(f"run {run_id} is {r['status']}; only a held result is released")
        released = {x["party"] for x in deps.store.code_releases(conn, [run_id])}
        if party in released:
            raise Conflict(f"you already released run {run_id}; waiting for the other providers")
        _record_release(deps, conn, run_id, party, None, now)
        if run_status(tuple(s["reviewers"]), frozenset(released | {party})) == "released":
            deps.store.set_code_run_status(conn, run_id, "released")
    return get(deps, party, run_id)


def get(deps: Deps, party: str, item_id: str) -> dict[str, Any]:
    """A submission (status, reviews, runs) or a run (status, checks, releases, and its result to
    the providers while held and to the submitter once released; the submitter's read is logged)."""
    with deps.store.transaction() as conn:
        require_party(deps, conn, party)
        if deps.store.code_runs(conn, run_id=item_id):
            return _shown_run(deps, conn, party, item_id)
        s = _submission(deps, conn, party, item_id)
        reviews, decisions = _decisions(deps, conn, item_id)
        runs = deps.store.code_runs(conn, submission_ids=[item_id])
    return {"id": s["id"], "kind": "submission", "title": s["title"], "submitter": s["submitter"],
            "purpose": s["purpose"], "agreements": s["agreements"], "reviewers": s["reviewers"], "sha256": s["sha256"],
            "previous": s["previous_id"], "group_by": s["declared"]["group_by"], "count": s["declared"]["count"],
            "status": submission_status(tuple(s["reviewers"]), decisions),
            "reviews": [{"party": r["party"], "decision": r["decision"], "reason": r["reason"], "rule": r["rule"],
                         "at": r["at"].isoformat()} for r in reviews],
            "runs": [{"id": r["id"], "status": r["status"], "at": r["created_at"].isoformat()} for r in runs],
            "created_at": s["created_at"].isoformat(), "ledger_index": s["ledger_index"]}


def _shown_run(deps: Deps, conn, party: str, run_id: str) -> dict[str, Any]:
    r, s = _run(deps, conn, party, run_id)
    releases = deps.store.code_releases(conn, [run_id])
    # The measured facts (group sizes, matches) are the providers' to read; the submitter sees the reasons.
    checks = r["checks"] if party in s["reviewers"] else {k: v for k, v in r["checks"].items() if k != "facts"}
    shown = {"id": r["id"], "kind": "run", "submission": s["id"], "status": r["status"], "checks": checks,
             "output_sha256": r["sha256"], "rows": r["rows"], "bytes": r["bytes"],
             "released_by": [{"party": x["party"], "rule": x["rule"], "at": x["at"].isoformat()} for x in releases],
             "waiting_for": [p for p in s["reviewers"] if p not in {x["party"] for x in releases}]
             if r["status"] == "held" else [], "created_at": r["created_at"].isoformat()}
    readable = r["path"] and (r["status"] == "released" or (r["status"] == "held" and party in s["reviewers"]))
    if readable:
        columns, rows = deps.engine.code_result(deps.home / r["path"])  # type: ignore[attr-defined]
        shown["result"] = {"columns": columns, "rows": [[plain(v) for v in row] for row in rows]}
        if party == s["submitter"]:
            deps.store.append_entry(conn, {"event": "code.result_read", "party": party, "run": run_id,
                                           "output_sha256": r["sha256"], "at": deps.now()})
    return shown
