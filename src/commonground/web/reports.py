"""Activity, the data balance sheet, and the ledger, as pages with server-drawn SVG charts.

A party only ever sees its own activity and the balance sheets it is one side of. The
ledger page shows the public facts (tree size, signed root, verification) for everyone but
lists only the entries that concern the viewing party.
"""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ..domain.errors import NotFound
from ..domain.records import PartyKind
from ..services import audit as audit_svc
from ..services import parties as party_svc
from ..services import reports as report_svc
from .context import Viewer, Web

LEDGER_WINDOW = 1000  # how far back the ledger page looks for the viewer's entries
LEDGER_SHOWN = 50

BALANCE_METRICS = [("fields_shared", "Fields shared"), ("subjects_covered", "People covered"),
                   ("queries_run", "Queries run"), ("rows_returned", "Result rows returned")]


def _partners(web: Web, me: str) -> list[str]:
    return [p.name for p in party_svc.list_parties(web.deps) if p.name != me and p.kind == PartyKind.ORGANIZATION.value]


def _concerns(entry: dict[str, Any], me: str) -> bool:
    return entry.get("party") == me or me in (entry.get("parties") or [])


def _entry_line(entry: dict[str, Any]) -> str:
    """A one-line summary of a ledger entry, from the fields entries commonly have."""
    keys = ("dataset", "agreement", "name", "version", "purpose", "allowed", "rows", "status")
    return ", ".join(f"{k} {entry[k]}" for k in keys if k in entry)


def router(web: Web) -> APIRouter:
    r = APIRouter()

    @r.get("/activity")
    def activity(request: Request, partner: str = "", viewer: Viewer = Depends(web.viewer)) -> Response:
        me = viewer.name
        partners = _partners(web, me)
        if partner and partner not in partners:
            raise NotFound(f"no partner {partner!r}")
        partner = partner or (partners[0] if partners else "")
        act = report_svc.activity(web.deps, me)
        balance = report_svc.balance(web.deps, me, partner) if partner else None
        metrics = []
        if balance:
            give, get = balance["directions"]
            for key, label in BALANCE_METRICS:
                metrics.append((label, [(f"{me} → {partner}", give[key]), (f"{partner} → {me}", get[key])]))
        return web.render(request, "activity.html", viewer, activity=act, partners=partners, partner=partner,
                          balance=balance, metrics=metrics,
                          events=sorted(act["events"].items(), key=lambda kv: -kv[1]))

    @r.get("/ledger")
    def ledger(request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        head = audit_svc.signed_head(web.deps)
        report = audit_svc.verify(web.deps)
        start = max(0, head.tree_size - LEDGER_WINDOW)
        mine = [e for e in audit_svc.log(web.deps, start, LEDGER_WINDOW) if _concerns(e, party_svc.ledger_name(viewer.party))]
        entries = [{"index": e.get("index"), "event": e.get("event", ""), "at": e.get("at", ""),
                    "summary": _entry_line(e)} for e in reversed(mine)][:LEDGER_SHOWN]
        return web.render(request, "ledger.html", viewer, head=head, report=report, entries=entries,
                          root_hex=head.root_hash.hex(), root_b64=base64.b64encode(head.root_hash).decode(),
                          window=LEDGER_WINDOW)

    return r
