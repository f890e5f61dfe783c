"""HTTP routes for code-to-data: submit, review, approve/reject, run, release, get.

One id space: `{item_id}` is a submission (review, approve, reject, run) or a run (release);
`GET /v1/code/{item_id}` shows either. Anyone but the submitter and the reviewing providers
gets a 404, as in the services.
"""

from __future__ import annotations

from typing import Any, Callable, Optional

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from ..domain.code import MAX_SOURCE_BYTES
from ..domain.records import Party
from ..services import code as code_svc
from ..services.deps import Deps


class Submission(BaseModel):
    purpose: str = Field(..., min_length=1, max_length=200)
    agreements: list[str] = Field(..., min_length=1, max_length=20, description="code agreements the analysis reads")
    source: str = Field(..., min_length=1, max_length=MAX_SOURCE_BYTES,
                        description="a Python module defining analysis(tables) and GROUP_BY")
    title: str = Field(..., min_length=1, max_length=code_svc.MAX_TITLE)
    previous: Optional[str] = Field(None, max_length=64, description="the submission this is a new version of")


class Reason(BaseModel):
    reason: str = Field(..., min_length=1, max_length=code_svc.MAX_REASON)


def code_routes(deps: Deps, caller: Callable[..., Party]) -> APIRouter:
    router = APIRouter(prefix="/v1/code", tags=["code"])

    @router.post("", status_code=201)
    def submit(body: Submission, party: Party = Depends(caller)) -> dict[str, Any]:
        """Submit an analysis for review by every provider whose data it reads."""
        return code_svc.submit(deps, party.name, body.purpose, tuple(body.agreements), body.source, body.title,
                               body.previous)

    @router.get("/{item_id}")
    def get(item_id: str, party: Party = Depends(caller)) -> dict[str, Any]:
        """A submission, or a run with its result once you may read it."""
        return code_svc.get(deps, party.name, item_id)

    @router.get("/{item_id}/review")
    def review(item_id: str, party: Party = Depends(caller)) -> dict[str, Any]:
        """The code, its diff against the last version, what it reads and declares."""
        return code_svc.review(deps, party.name, item_id)

    @router.post("/{item_id}/approve")
    def approve(item_id: str, body: Reason, party: Party = Depends(caller)) -> dict[str, Any]:
        return code_svc.decide(deps, party.name, item_id, True, body.reason)

    @router.post("/{item_id}/reject")
    def reject(item_id: str, body: Reason, party: Party = Depends(caller)) -> dict[str, Any]:
        return code_svc.decide(deps, party.name, item_id, False, body.reason)

    @router.post("/{item_id}/run")
    def run(item_id: str, party: Party = Depends(caller)) -> dict[str, Any]:
        """Run your approved analysis in the sandbox; the checked result is held for release."""
        return code_svc.run(deps, party.name, item_id)

    @router.post("/{item_id}/release")
    def release(item_id: str, party: Party = Depends(caller)) -> dict[str, Any]:
        """Release a held result of an analysis of your data."""
        return code_svc.release(deps, party.name, item_id)

    return router
