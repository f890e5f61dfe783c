"""The Delta Sharing REST protocol under `/delta-sharing` (docs/sharing.md).

Thin, like the rest of the API: authenticate, call `services.sharing`, shape the answer in the
protocol's form (JSON lists, `application/x-ndjson` for metadata and query, errors as
`{"errorCode", "message"}`). Every call is a read for a bearer token of any scope, with the
API's sign-in throttle; the files go out only through the signed URLs a query returns.
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional

from fastapi import APIRouter, Body, Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel

from ..domain.errors import BadInput, CommongroundError, Forbidden, NotFound, Refused, Throttled, Unauthenticated
from ..domain.records import Party, TokenScope
from ..services import parties as party_svc
from ..services import sharing as sharing_svc
from ..services.deps import Deps
from .security import SECURITY_HEADERS, SignInThrottle

PREFIX = "/delta-sharing"
VERSION_HEADER = "delta-table-version"
CAPABILITIES_HEADER = "delta-sharing-capabilities"
NDJSON = "application/x-ndjson; charset=utf-8"

_bearer = HTTPBearer(auto_error=False)


class SharingError(BaseModel):
    """Every error answer under /delta-sharing, in the protocol's shape."""

    errorCode: str
    message: str


_ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": SharingError, "description": text} for status, text in (
        (400, "Bad input: malformed request, unsupported option (history, change feed)"),
        (401, "Missing, invalid, expired or revoked token"),
        (403, "Refused by policy, or an invalid or expired signed URL"),
        (404, "Not found, or not yours to see (never told apart)"), (409, "Conflict with the current state"),
        (429, "Too many failed sign-ins; retry later"))}
_NDJSON_200: dict[int | str, dict[str, Any]] = {200: {
    "description": "Newline-delimited JSON: the protocol, the metadata, then one line per file",
    "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}}
_VERSION_200: dict[int | str, dict[str, Any]] = {200: {
    "description": "The table's version, in the delta-table-version header; the body is empty",
    "content": {"text/plain": {"schema": {"type": "string"}}}}}
_CODES: list[tuple[type, str]] = [
    (Throttled, "TOO_MANY_REQUESTS"), (Unauthenticated, "UNAUTHENTICATED"), (Forbidden, "PERMISSION_DENIED"),
    (Refused, "PERMISSION_DENIED"), (NotFound, "RESOURCE_DOES_NOT_EXIST"), (BadInput, "INVALID_PARAMETER_VALUE")]


def error_response(exc: CommongroundError) -> JSONResponse:
    code = next((c for kind, c in _CODES if isinstance(exc, kind)), "INTERNAL_ERROR")
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthenticated) else None
    if isinstance(exc, Throttled):
        headers = {"Retry-After": str(exc.retry_after_s)}
    return JSONResponse({"errorCode": code, "message": str(exc)}, status_code=exc.http_status, headers=headers)


class _SharingRoute(APIRoute):
    """Errors in the protocol's shape, raised by the route or by its dependencies (sign-in)."""

    def get_route_handler(self) -> Callable:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                response = await handler(request)
            except CommongroundError as exc:
                response = error_response(exc)
            except RequestValidationError as exc:
                first = exc.errors()[0] if exc.errors() else {}
                where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("body", "query", "path"))
                response = JSONResponse({"errorCode": "INVALID_PARAMETER_VALUE",
                                         "message": f"{where}: {first.get('msg', 'invalid request')}"}, status_code=400)
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
            return response
        return run


def _page(items: list[dict[str, Any]], max_results: Optional[int], page_token: Optional[str]) -> dict[str, Any]:
    """The protocol's pagination: the token is the offset of the next page."""
    if max_results is not None and max_results < 0:
        raise BadInput("maxResults must be non-negative")
    try:
        start = int(page_token) if page_token else 0
    except ValueError:
        raise BadInput("pageToken: not a token this server gave") from None
    if start < 0:
        raise BadInput("pageToken: not a token this server gave")
    end = len(items) if max_results is None else start + max_results
    out: dict[str, Any] = {"items": items[start:end]}
    if end < len(items):
        out["nextPageToken"] = str(end)
    return out


def _ndjson(version: int, metadata: dict[str, Any], files: list[dict[str, Any]]) -> Response:
    """Parquet-format responses: the protocol line, the metadata line, one line per file. (The
    server answers in this format whatever the client offers; it says so in the capabilities
    header, which the official clients read to pick their reader.)"""
    lines = [{"protocol": {"minReaderVersion": 1}}, {"metaData": metadata}] + [{"file": f} for f in files]
    body = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
    return Response(body, media_type=NDJSON, headers={VERSION_HEADER: str(version),
                                                      CAPABILITIES_HEADER: "responseformat=parquet"})


def delta_sharing_routes(deps: Deps, throttle: SignInThrottle) -> APIRouter:
    router = APIRouter(prefix=PREFIX, route_class=_SharingRoute, tags=["delta-sharing"], responses=_ERRORS)

    def recipient(request: Request, credentials: Optional[HTTPAuthorizationCredentials] = Depends(_bearer)) -> Party:
        """As the API's sign-in (same throttle), but every call here is a read: the query is a
        POST only because the protocol says so."""
        client = request.client.host if request.client else "unknown"
        throttle.check(client)
        try:
            return party_svc.authenticate(deps, credentials.credentials if credentials else None, TokenScope.READ)
        except Unauthenticated:
            if credentials is not None:
                throttle.failed(client)
            raise

    @router.get("/shares")
    def shares(max_results: Optional[int] = Query(None, alias="maxResults"),
               page_token: Optional[str] = Query(None, alias="pageToken"),
               party: Party = Depends(recipient)) -> dict[str, Any]:
        return _page(sharing_svc.list_shares(deps, party.name), max_results, page_token)

    @router.get("/shares/{share}")
    def share(share: str, party: Party = Depends(recipient)) -> dict[str, Any]:
        return {"share": sharing_svc.get_share(deps, party.name, share)}

    @router.get("/shares/{share}/schemas")
    def schemas(share: str, max_results: Optional[int] = Query(None, alias="maxResults"),
                page_token: Optional[str] = Query(None, alias="pageToken"),
                party: Party = Depends(recipient)) -> dict[str, Any]:
        return _page(sharing_svc.list_schemas(deps, party.name, share), max_results, page_token)

    @router.get("/shares/{share}/schemas/{schema}/tables")
    def tables(share: str, schema: str, max_results: Optional[int] = Query(None, alias="maxResults"),
               page_token: Optional[str] = Query(None, alias="pageToken"),
               party: Party = Depends(recipient)) -> dict[str, Any]:
        return _page(sharing_svc.list_tables(deps, party.name, share, schema), max_results, page_token)

    @router.get("/shares/{share}/all-tables")
    def all_tables(share: str, max_results: Optional[int] = Query(None, alias="maxResults"),
                   page_token: Optional[str] = Query(None, alias="pageToken"),
                   party: Party = Depends(recipient)) -> dict[str, Any]:
        return _page(sharing_svc.list_tables(deps, party.name, share), max_results, page_token)

    def version(share: str, schema: str, table: str,
                starting_timestamp: Optional[str] = Query(None, alias="startingTimestamp"),
                party: Party = Depends(recipient)) -> Response:
        if starting_timestamp is not None:
            raise BadInput("startingTimestamp: only the current version of a table is shared")
        number = sharing_svc.table_version(deps, party.name, share, schema, table)
        return Response(status_code=200, media_type="text/plain", headers={VERSION_HEADER: str(number)})

    for method in ("GET", "HEAD"):
        router.add_api_route("/shares/{share}/schemas/{schema}/tables/{table}/version", version, methods=[method],
                             response_class=Response, responses=_VERSION_200,
                             operation_id=f"delta_sharing_table_version_{method.lower()}")

    @router.get("/shares/{share}/schemas/{schema}/tables/{table}/metadata", response_class=Response,
                responses=_NDJSON_200)
    def metadata(share: str, schema: str, table: str, party: Party = Depends(recipient)) -> Response:
        number, meta = sharing_svc.table_metadata(deps, party.name, share, schema, table)
        return _ndjson(number, meta, [])

    @router.post("/shares/{share}/schemas/{schema}/tables/{table}/query", response_class=Response,
                 responses=_NDJSON_200)
    def query(share: str, schema: str, table: str, request: Request,
              body: Optional[dict[str, Any]] = Body(None), party: Party = Depends(recipient)) -> Response:
        number, meta, files = sharing_svc.query_table(deps, party.name, share, schema, table, str(request.base_url), body)
        return _ndjson(number, meta, files)

    def file(export_id: str, request: Request, party: str = Query(""), expires: str = Query(""),
             n: str = Query(""), sig: str = Query("")) -> Response:
        """A presigned URL: the signature is the credential (no bearer token), as with cloud storage."""
        path, record = sharing_svc.signed_file(deps, export_id, party, expires, n, sig, serve=request.method == "GET")
        return FileResponse(path, media_type="application/vnd.apache.parquet",
                            headers={"ETag": f'"{record["sha256"]}"', "X-Commonground-Sha256": record["sha256"]})

    for method in ("GET", "HEAD"):
        router.add_api_route("/files/{export_id}", file, methods=[method], include_in_schema=False,
                             operation_id=f"delta_sharing_file_{method.lower()}")

    return router
