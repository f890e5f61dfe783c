"""The clean-room query editor: SQL and a purpose in; results, suppressed groups, refusals or
the governed rewrite out. Running goes through `services.queries.run_query`, which governs
and records the query on the ledger whether it is allowed or refused.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ..domain.errors import BadInput, NotFound, Refused
from ..domain.records import TokenScope
from ..services import agreements as agreement_svc
from ..services import queries as query_svc
from ..services import vocabulary as vocabulary_svc
from .context import Viewer, Web, text

EXAMPLE = "SELECT product, COUNT(DISTINCT customer_id) AS people\nFROM retailer.purchases\nGROUP BY product"


def _purpose_groups(web: Web, me: str) -> tuple[list[str], list[str]]:
    """Purposes of the agreements granting the party data first; then every known purpose."""
    now = web.deps.now()
    granted = sorted({p for a in agreement_svc.list_agreements(web.deps, me)
                      if a.in_force(now) and me in a.terms.recipients for p in a.terms.purposes})
    others = [e["name"] for e in vocabulary_svc.entries(web.deps, "purpose") if e["name"] not in granted]
    return granted, others


def router(web: Web) -> APIRouter:
    r = APIRouter()

    def page(request: Request, viewer: Viewer, status: int = 200, **context: Any) -> Response:
        granted, others = _purpose_groups(web, viewer.name)
        context.setdefault("sql", EXAMPLE)
        context.setdefault("purpose", granted[0] if granted else "")
        return web.render(request, "query.html", viewer, status=status, granted=granted, others=others, **context)

    @r.get("/query")
    def editor(request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        return page(request, viewer)

    @r.post("/query")
    async def run(request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        form = await web.form(request, viewer, TokenScope.QUERY)
        sql, purpose, action = text(form, "sql"), text(form, "purpose"), text(form, "action", "run")
        shown = {"sql": sql, "purpose": purpose}
        if not sql:
            return await web.call(page, request, viewer, 400, error="Write a query first.", **shown)
        try:
            if action == "explain":
                plan = await web.call(query_svc.explain_query, web.deps, viewer.name, purpose, sql)
                explained = {"governed": plan.governed, "min_group_size": plan.min_group_size, "sql": plan.explain()}
                return await web.call(page, request, viewer, explain=explained, **shown)
            result, plan = await web.call(query_svc.run_query, web.deps, viewer.name, purpose, sql)
        except Refused as e:
            return await web.call(page, request, viewer, 403, reasons=e.reasons, **shown)
        except (BadInput, NotFound) as e:  # an unknown table is NotFound: shown like a refusal, in the form
            return await web.call(page, request, viewer, e.http_status, error=str(e), **shown)
        return await web.call(page, request, viewer, result=query_svc.result_json(result, plan), **shown)

    return r
