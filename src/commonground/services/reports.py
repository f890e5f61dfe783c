"""Reporting from the ledger and the agreements: what each party did, and the data balance sheet.

The balance sheet answers the question the product exists for: between two partners, who
gives what to whom. Each direction lists the datasets, fields and data categories shared, the
access modes, and how much the recipient actually used them.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from typing import Any

from ..domain.agreements import AgreementStatus
from .deps import Deps
from .parties import ledger_name_of, require_party


def _entries(deps: Deps) -> list[dict[str, Any]]:
    with deps.store.read() as conn:
        return [json.loads(e) for _, _, e in deps.store.entries(conn)]


def _parse_time(value: str) -> dt.datetime:
    moment = dt.datetime.fromisoformat(value)
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


def activity(deps: Deps, party: str, since: dt.datetime | None = None) -> dict[str, Any]:
    """Everything the ledger says a party did (or had done to its agreements) since a moment."""
    with deps.store.read() as conn:
        named = ledger_name_of(deps, conn, party)  # a person is on the ledger by id, not by name
    events = [e for e in _entries(deps) if e.get("party") == named or named in (e.get("parties") or [])]
    if since is not None:
        since = since if since.tzinfo else since.replace(tzinfo=dt.timezone.utc)
        events = [e for e in events if "at" in e and _parse_time(e["at"]) >= since]
    queries = [e for e in events if e.get("event") == "query" and e.get("party") == named]
    return {
        "party": party,
        "since": since.isoformat() if since else None,
        "events": dict(sorted(Counter(e["event"] for e in events).items())),
        "queries": {
            "allowed": sum(1 for q in queries if q.get("allowed")),
            "refused": sum(1 for q in queries if not q.get("allowed")),
            "rows_returned": sum(q.get("rows", 0) for q in queries),
            "groups_suppressed": sum(q.get("suppressed_groups", 0) for q in queries),
            "datasets_read": sorted({d for q in queries for d in q.get("datasets", [])}),
        },
        "entries": [e["index"] for e in events],
    }


def balance(deps: Deps, a: str, b: str) -> dict[str, Any]:
    """The data balance sheet between two parties: one block per direction."""
    with deps.store.read() as conn:
        require_party(deps, conn, a)
        require_party(deps, conn, b)
        agreements = deps.store.agreements(conn)
        versions = {v.key: v for v in deps.store.versions(conn)}
    entries = _entries(deps)
    now = deps.now()

    def direction(provider: str, recipient: str) -> dict[str, Any]:
        shared = [s for s in agreements if s.terms.provider == provider and recipient in s.terms.recipients
                  and s.effective_status(now) in (AgreementStatus.ACTIVE, AgreementStatus.EXPIRED,
                                                   AgreementStatus.REVOKED, AgreementStatus.SUPERSEDED)
                  and s.accepted_by >= set(s.terms.parties)]
        datasets: dict[str, dict[str, Any]] = {}
        for s in shared:
            for grant in s.terms.datasets:
                version = versions.get(grant.dataset)
                block = datasets.setdefault(grant.dataset, {"fields": {}, "categories": set(), "subjects": None})
                for column, transform in grant.visible().items():
                    block["fields"][column] = transform.kind.value
                    if version and column in version.schema.names:
                        block["categories"].add(version.schema.column(column).category)
                if version:
                    block["subjects"] = version.distinct_subjects
        ids = {s.id for s in shared}
        queries = [e for e in entries if e.get("event") == "query" and e.get("party") == recipient and e.get("allowed")
                   and ids.intersection(e.get("agreements", []))]
        return {
            "from": provider, "to": recipient,
            "agreements": [{"id": s.id, "name": s.terms.name, "version": s.version,
                            "status": s.effective_status(now).value} for s in shared],
            "access_modes": sorted({s.terms.mode.value for s in shared}),
            "purposes": sorted({p for s in shared for p in s.terms.purposes}),
            "datasets": {k: {"fields": v["fields"], "categories": sorted(v["categories"]), "subjects": v["subjects"]}
                         for k, v in sorted(datasets.items())},
            "fields_shared": sum(len(v["fields"]) for v in datasets.values()),
            "subjects_covered": sum(v["subjects"] or 0 for v in datasets.values()),
            "queries_run": len(queries),
            "rows_returned": sum(q.get("rows", 0) for q in queries),
            "rows_exported": 0,  # record-level export is not an access mode yet
        }

    return {"parties": [a, b], "directions": [direction(a, b), direction(b, a)]}
