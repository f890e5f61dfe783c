"""Dataset pages: the datasets a party may name, and each one's schema, transforms and versions.

What is listed comes from `services.datasets` (own datasets and those granted by agreements
in force); a dataset the party may not see raises NotFound there and is a 404 page here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.responses import Response

from ..services import agreements as agreement_svc
from ..services import datasets as dataset_svc
from .context import Viewer, Web


def _transforms(web: Web, party: str, dataset: str) -> list[dict[str, Any]]:
    """For each of the party's live agreements that grants this dataset: its field transforms."""
    now = web.deps.now()
    out = []
    for state in agreement_svc.list_agreements(web.deps, party):
        grant = state.terms.grant_for(dataset)
        status = state.effective_status(now).value
        if grant is None or status not in ("active", "proposed"):
            continue
        out.append({"id": state.id, "name": state.terms.name, "version": state.version, "status": status,
                    "fields": {c: t.to_dict() for c, t in grant.fields.items()}})
    return out


def router(web: Web) -> APIRouter:
    r = APIRouter()

    @r.get("/datasets")
    def datasets(request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        versions = dataset_svc.list_datasets(web.deps, viewer.name)
        rows = sorted(versions, key=lambda v: (v.owner != viewer.name, v.key))
        return web.render(request, "datasets.html", viewer, datasets=rows)

    @r.get("/datasets/{owner}/{name}")
    def dataset(owner: str, name: str, request: Request, viewer: Viewer = Depends(web.viewer)) -> Response:
        version, history = dataset_svc.show_dataset(web.deps, viewer.name, f"{owner}.{name}")
        own = version.owner == viewer.name
        summary = dataset_svc.dataset_summary(version, history, own=own)
        return web.render(request, "dataset.html", viewer, ds=summary, own=own,
                          grants=_transforms(web, viewer.name, version.key),
                          history=sorted(summary["versions"], key=lambda h: -h["version"]))

    return r
