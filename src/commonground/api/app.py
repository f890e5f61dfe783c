"""The HTTP API. A factory, not a module global: `create_app(deps)` per process or test.

Routes are thin: authenticate, call a service, shape the answer. Authorisation lives in the
services, so the CLI and the API cannot disagree. Anything a party may not see is a 404.
Every response carries the latest signed tree head, so clients can witness the ledger.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

from fastapi import Depends, FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from ..domain.errors import BadInput, CommongroundError, Refused, Throttled, Unauthenticated
from ..domain.records import Party
from ..services import agreements as agreement_svc
from ..services import privacy as privacy_svc
from ..services import audit as audit_svc
from ..services import datasets as dataset_svc
from ..services import parties as party_svc
from ..services import queries as query_svc
from ..services.audit import TREE_HEAD_HEADER
from ..services.deps import Deps
from .code import code_routes
from .exports import export_routes
from .conversations import conversation_routes
from .delta_sharing import delta_sharing_routes
from .individuals import individual_routes
from .listings import listing_routes
from .security import DOCS_PATHS, SECURITY_HEADERS, SignInThrottle, required_scope

_bearer = HTTPBearer(auto_error=False)


class QueryRequest(BaseModel):
    sql: str = Field(..., max_length=100_000)
    purpose: str = Field(..., min_length=1, max_length=200)
    explain: bool = False
    epsilon: Optional[float] = Field(None, gt=0, description="dp only: the epsilon to spend (default: the agreement's per query)")


class AgreementRequest(BaseModel):
    document: Optional[dict[str, Any]] = None
    yaml: Optional[str] = Field(None, max_length=200_000)
    template: Optional[str] = None
    params: dict[str, str] = {}


class ErrorBody(BaseModel):
    """Every error answer: `error` is the code (as in the CLI's JSON); refusals carry reasons."""

    error: str
    message: Optional[str] = None
    reasons: Optional[list[str]] = None


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text} for status, text in (
        (400, "Bad input; nothing changed"), (401, "Missing, invalid, expired or revoked token"),
        (403, "Refused by policy (with reasons), or the token's scope does not allow this call"),
        (404, "Not found, or not yours to see (never told apart)"), (409, "Conflict with the current state"),
        (422, "Request does not match the schema"), (429, "Too many failed sign-ins; retry later"))}


def create_app(deps: Deps, throttle: SignInThrottle | None = None, head_interval_s: float = 0.0) -> FastAPI:
    """`head_interval_s`: the tree head on responses may lag the log by up to this long (the
    server uses 1 s: one signature per second under load instead of one per response)."""
    app = FastAPI(title="Commonground", version="0.1.0", responses=_ERRORS,
                  description="A neutral data-sharing escrow: clean-room SQL under signed agreements.")
    throttle = throttle or SignInThrottle()

    @app.exception_handler(CommongroundError)
    async def _error(_request: Request, exc: CommongroundError) -> JSONResponse:
        if isinstance(exc, Refused):
            body: dict[str, Any] = {"error": "refused", "reasons": exc.reasons}
        else:
            body = {"error": exc.code, "message": str(exc)}
        headers = {"WWW-Authenticate": "Bearer"} if exc.http_status == 401 else None
        if isinstance(exc, Throttled):
            headers = {"Retry-After": str(exc.retry_after_s)}
        return JSONResponse(body, status_code=exc.http_status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
        return JSONResponse({"error": "bad_input", "message": f"{where}: {first.get('msg', 'invalid request')}"},
                            status_code=422)

    @app.middleware("http")
    async def _witness(request: Request, call_next):
        response = await call_next(request)
        try:
            head = audit_svc.signed_head(deps, head_interval_s)
            response.headers[TREE_HEAD_HEADER] = json.dumps(head.to_dict(), separators=(",", ":"))
        except Exception:  # the ledger must not take the API down; verify reports problems
            pass
        if request.url.path.startswith("/v1/") or request.url.path in DOCS_PATHS:
            for name, value in SECURITY_HEADERS.items():
                if name != "Content-Security-Policy" or request.url.path.startswith("/v1/"):
                    response.headers.setdefault(name, value)
        return response

    def caller(request: Request, credentials: Optional[HTTPAuthorizationCredentials] = Depends(_bearer)) -> Party:
        client = request.client.host if request.client else "unknown"
        throttle.check(client)
        try:
            return party_svc.authenticate(deps, credentials.credentials if credentials else None,
                                          required_scope(request.method, request.url.path))
        except Unauthenticated:
            if credentials is not None:  # a wrong token is a failed sign-in; no token at all is not
                throttle.failed(client)
            raise

    @app.get("/v1/me")
    def me(party: Party = Depends(caller)) -> dict[str, Any]:
        return party.to_dict()

    @app.get("/v1/datasets")
    def datasets(party: Party = Depends(caller)) -> list[dict[str, Any]]:
        return [dataset_svc.dataset_summary(v, own=v.owner == party.name) for v in dataset_svc.list_datasets(deps, party.name)]

    @app.get("/v1/datasets/{owner}/{name}")
    def dataset(owner: str, name: str, party: Party = Depends(caller)) -> dict[str, Any]:
        version, history = dataset_svc.show_dataset(deps, party.name, f"{owner}.{name}")
        return dataset_svc.dataset_summary(version, history, own=owner == party.name)

    @app.post("/v1/datasets/{name}", status_code=201)
    async def upload(name: str, file: UploadFile = File(...), schema_yaml: Optional[str] = Form(None, alias="schema"),
                     party: Party = Depends(caller)) -> dict[str, Any]:
        schema_doc = agreement_svc.load_yaml(schema_yaml, "schema") if schema_yaml else None
        suffix = Path(file.filename or "upload.csv").suffix.lower() or ".csv"
        limit = deps.ingest.max_bytes  # type: ignore[attr-defined]
        tmp_dir = deps.home / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(suffix=suffix, dir=tmp_dir)
        try:
            size = 0
            with os.fdopen(fd, "wb") as f:
                while chunk := await file.read(1 << 20):
                    size += len(chunk)
                    if size > limit:
                        raise BadInput(f"upload is over the limit of {limit:,} bytes")
                    f.write(chunk)
            version, warnings = dataset_svc.add_dataset(deps, party.name, name, Path(tmp_name), schema_doc)
        finally:
            Path(tmp_name).unlink(missing_ok=True)
        return {**dataset_svc.dataset_summary(version), "warnings": list(warnings)}

    @app.post("/v1/datasets/{name}/purge")
    def purge(name: str, party: Party = Depends(caller)) -> dict[str, Any]:
        """Delete the data files of your dataset's superseded versions; the latest stays (docs/individuals.md)."""
        return dataset_svc.purge(deps, party.name, name)

    @app.get("/v1/agreements")
    def agreements(party: Party = Depends(caller)) -> list[dict[str, Any]]:
        return [agreement_svc.agreement_summary(a, deps.now()) for a in agreement_svc.list_agreements(deps, party.name)]

    @app.get("/v1/agreements/{agreement_id}")
    def agreement(agreement_id: str, party: Party = Depends(caller)) -> dict[str, Any]:
        return agreement_svc.agreement_summary(agreement_svc.show(deps, party.name, agreement_id), deps.now())

    @app.post("/v1/agreements", status_code=201)
    def propose(body: AgreementRequest, party: Party = Depends(caller)) -> dict[str, Any]:
        if body.template:
            state = agreement_svc.propose_from_template(deps, party.name, body.template, body.params)
        elif body.document is not None:
            state = agreement_svc.propose(deps, party.name, body.document)
        elif body.yaml is not None:
            state = agreement_svc.propose(deps, party.name, agreement_svc.load_yaml(body.yaml, "agreement"))
        else:
            raise BadInput("give document, yaml or template")
        return agreement_svc.proposal_summary(deps, state)

    @app.get("/v1/agreements/{agreement_id}/budget")
    def agreement_budget(agreement_id: str, party: Party = Depends(caller)) -> dict[str, Any]:
        """A dp agreement's privacy budget: total, spent and left per recipient (docs/privacy.md)."""
        return privacy_svc.budget(deps, party.name, agreement_id)

    @app.post("/v1/agreements/{agreement_id}/accept")
    def accept(agreement_id: str, party: Party = Depends(caller)) -> dict[str, Any]:
        return agreement_svc.agreement_summary(agreement_svc.accept(deps, party.name, agreement_id), deps.now())

    @app.post("/v1/agreements/{agreement_id}/revoke")
    def revoke(agreement_id: str, party: Party = Depends(caller)) -> dict[str, Any]:
        return agreement_svc.agreement_summary(agreement_svc.revoke(deps, party.name, agreement_id), deps.now())

    @app.post("/v1/query")
    def query(body: QueryRequest, party: Party = Depends(caller)) -> dict[str, Any]:
        if body.explain:
            plan = query_svc.explain_query(deps, party.name, body.purpose, body.sql, body.epsilon)
            return {"governed": plan.governed, "min_group_size": plan.min_group_size, "sql": plan.explain()}
        result, plan = query_svc.run_query(deps, party.name, body.purpose, body.sql, body.epsilon)
        return query_svc.result_json(result, plan)

    app.include_router(individual_routes(deps, caller))
    app.include_router(delta_sharing_routes(deps, throttle))
    app.include_router(export_routes(deps, caller))
    app.include_router(code_routes(deps, caller))
    app.include_router(listing_routes(deps, caller))
    app.include_router(conversation_routes(deps, caller))

    @app.get("/v1/audit/head")
    def head() -> dict[str, Any]:
        return audit_svc.signed_head(deps).to_dict()

    @app.get("/v1/audit/public-key")
    def public_key() -> dict[str, str]:
        return {"public_key": deps.signer.public_key_pem().decode()}

    @app.get("/v1/audit/proof/{index}")
    def proof(index: int, party: Party = Depends(caller)) -> dict[str, Any]:
        return audit_svc.inclusion(deps, index)

    @app.get("/v1/audit/consistency")
    def consistency(old_size: int) -> dict[str, Any]:
        if old_size < 0:
            raise BadInput("old_size must be >= 0")
        return audit_svc.consistency(deps, old_size)

    return app
