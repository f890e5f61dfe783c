"""HTTP routes for curated exports (rows mode): make one, list them, download the file."""

from __future__ import annotations

from typing import Any, Callable, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field

from ..domain.records import Party
from ..services import exports as export_svc
from ..services.deps import Deps


class ExportRequest(BaseModel):
    dataset: str = Field(..., min_length=3, max_length=127, description="owner.name")
    purpose: str = Field(..., min_length=1, max_length=200)
    format: Literal["parquet", "csv"] = "parquet"


def export_routes(deps: Deps, caller: Callable[..., Party]) -> APIRouter:
    router = APIRouter(prefix="/v1", tags=["exports"])

    @router.post("/exports", status_code=201)
    def make(body: ExportRequest, party: Party = Depends(caller)) -> dict[str, Any]:
        """Your curated copy of a dataset shared under a rows agreement: k-anonymous, watermarked."""
        return export_svc.export(deps, party.name, body.dataset, body.purpose, body.format)

    @router.get("/exports")
    def exports(party: Party = Depends(caller)) -> list[dict[str, Any]]:
        """Your exports, and those made from your datasets."""
        return export_svc.list_exports(deps, party.name)

    @router.get("/exports/{export_id}/file", response_class=FileResponse,
                responses={200: {"content": {"application/octet-stream": {}}, "description": "The export's file"}})
    def file(export_id: str, party: Party = Depends(caller)) -> FileResponse:
        """The file of one of your exports (the download is logged with its hash)."""
        path, record = export_svc.download(deps, party.name, export_id)
        return FileResponse(path, media_type="application/octet-stream", filename=f"{record['dataset']}-{export_id}{path.suffix}",
                            headers={"X-Content-SHA256": record["sha256"]})

    return router
