"""`commonground.Client`: the HTTP API from Python, with the ledger witness built in.

Every response carries the store's latest signed tree head. The client pins the store's public
key on first use, checks each head's signature, and asks for a consistency proof from the last
head it saw to the new one: if the operator rewrote history, `LedgerRewritten` is raised.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any, Optional

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from .domain.merkle import ProofError
from .services.audit import TREE_HEAD_HEADER, TreeHead, check_witness


class ApiError(Exception):
    def __init__(self, status: int, body: Any):
        self.status = status
        self.body = body
        reasons = body.get("reasons") if isinstance(body, dict) else None
        super().__init__(f"HTTP {status}: {reasons or (body.get('message') if isinstance(body, dict) else body)}")


class LedgerRewritten(Exception):
    """The store showed a tree head that does not extend the one this client saw before."""


class Client:
    def __init__(self, base_url: str = "http://127.0.0.1:8000", token: Optional[str] = None,
                 http: Optional[httpx.Client] = None, public_key_pem: Optional[bytes] = None):
        self.http = http or httpx.Client(base_url=base_url, timeout=300)
        self.token = token
        self._public_key = load_pem_public_key(public_key_pem) if public_key_pem else None
        self.last_head: Optional[dict[str, Any]] = None

    # -- plumbing -------------------------------------------------------------------------
    def _request(self, method: str, path: str, **kwargs: Any) -> Any:
        headers = kwargs.pop("headers", {})
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        response = self.http.request(method, path, headers=headers, **kwargs)
        if TREE_HEAD_HEADER in response.headers and not path.startswith("/v1/audit/"):
            self._witness(json.loads(response.headers[TREE_HEAD_HEADER]))
        try:
            body = response.json()
        except ValueError:
            body = response.text
        if response.status_code >= 400:
            raise ApiError(response.status_code, body)
        return body

    def _key(self):
        if self._public_key is None:
            pem = self.http.get("/v1/audit/public-key").json()["public_key"].encode()
            self._public_key = load_pem_public_key(pem)
        return self._public_key

    def _signed(self, head: dict[str, Any]) -> TreeHead:
        parsed = TreeHead.from_dict(head)
        try:
            self._key().verify(parsed.signature, parsed.signed_bytes())
        except InvalidSignature:
            raise LedgerRewritten("tree head signature does not verify with the pinned public key") from None
        return parsed

    def _witness(self, head: dict[str, Any]) -> None:
        new = self._signed(head)
        old = self.last_head
        if old is not None and old["tree_size"] > 0:
            proof = self.http.get("/v1/audit/consistency", params={"old_size": old["tree_size"]}).json()
            if new.tree_size >= old["tree_size"] and proof["tree_head"]["tree_size"] != new.tree_size:
                head = proof["tree_head"]  # the log grew between the two calls; check against the newer head
                new = self._signed(head)
            try:
                check_witness(TreeHead.from_dict(old), new, [base64.b64decode(p) for p in proof["proof"]])
            except ProofError as e:
                raise LedgerRewritten(f"the log is not an extension of the one seen before: {e}") from None
        self.last_head = head

    # -- the API --------------------------------------------------------------------------
    def me(self) -> dict[str, Any]:
        return self._request("GET", "/v1/me")

    def datasets(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/datasets")

    def dataset(self, owner: str, name: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/datasets/{owner}/{name}")

    def upload(self, name: str, path: Path | str, schema: Optional[dict[str, Any]] = None) -> dict[str, Any]:
        path = Path(path)
        with open(path, "rb") as f:
            data = {"schema": json.dumps(schema)} if schema else None
            return self._request("POST", f"/v1/datasets/{name}", files={"file": (path.name, f)}, data=data)

    def purge(self, name: str) -> dict[str, Any]:
        """Delete the data files of your dataset's superseded versions (after an erasure); the latest stays."""
        return self._request("POST", f"/v1/datasets/{name}/purge")

    def agreements(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/agreements")

    def agreement(self, agreement_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/agreements/{agreement_id}")

    def propose(self, document: Optional[dict[str, Any]] = None, *, template: Optional[str] = None,
                params: Optional[dict[str, str]] = None) -> dict[str, Any]:
        body: dict[str, Any] = {"template": template, "params": params or {}} if template else {"document": document}
        return self._request("POST", "/v1/agreements", json=body)

    def budget(self, agreement_id: str) -> dict[str, Any]:
        """A dp agreement's privacy budget: epsilon and delta spent and left per recipient."""
        return self._request("GET", f"/v1/agreements/{agreement_id}/budget")

    def accept(self, agreement_id: str) -> dict[str, Any]:
        return self._request("POST", f"/v1/agreements/{agreement_id}/accept")

    def revoke(self, agreement_id: str) -> dict[str, Any]:
        return self._request("POST", f"/v1/agreements/{agreement_id}/revoke")

    def query(self, sql: str, purpose: str, explain: bool = False, epsilon: Optional[float] = None) -> dict[str, Any]:
        """`epsilon`: under access mode dp, what this query spends (default: the agreement's per query)."""
        body: dict[str, Any] = {"sql": sql, "purpose": purpose, "explain": explain}
        if epsilon is not None:
            body["epsilon"] = epsilon
        return self._request("POST", "/v1/query", json=body)

    def proof(self, index: int) -> dict[str, Any]:
        return self._request("GET", f"/v1/audit/proof/{index}")

    def head(self) -> dict[str, Any]:
        """The latest signed tree head (checked against the pinned key like every other)."""
        head = self._request("GET", "/v1/audit/head")
        self._signed(head)
        return head

    def public_key(self) -> str:
        return self._request("GET", "/v1/audit/public-key")["public_key"]

    def consistency(self, old_size: int) -> dict[str, Any]:
        return self._request("GET", "/v1/audit/consistency", params={"old_size": old_size})

    # -- curated exports (rows mode) ----------------------------------------------------------
    def export(self, dataset: str, purpose: str, fmt: str = "parquet") -> dict[str, Any]:
        """Make your curated copy of a dataset shared under a rows agreement; returns its report."""
        return self._request("POST", "/v1/exports", json={"dataset": dataset, "purpose": purpose, "format": fmt})

    def exports(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/exports")

    def download_export(self, export_id: str, dest: Path | str) -> Path:
        """Save an export's file, checking it against the SHA-256 the store put on the ledger."""
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        response = self.http.get(f"/v1/exports/{export_id}/file", headers=headers)
        if response.status_code >= 400:
            raise ApiError(response.status_code, response.json())
        digest = hashlib.sha256(response.content).hexdigest()
        if digest != response.headers.get("X-Content-SHA256"):
            raise ApiError(response.status_code, {"message": "the file does not match its recorded SHA-256"})
        Path(dest).write_bytes(response.content)
        return Path(dest)

    # -- code-to-data (docs/code-to-data.md) -------------------------------------------------------
    def submit_code(self, source: str, purpose: str, agreements: list[str], title: str,
                    previous: Optional[str] = None) -> dict[str, Any]:
        """Submit an analysis (a module defining analysis(tables) and GROUP_BY) for the providers' review."""
        return self._request("POST", "/v1/code", json={"source": source, "purpose": purpose, "agreements": agreements,
                                                       "title": title, "previous": previous})

    def code(self, item_id: str) -> dict[str, Any]:
        """A submission, or a run with its result once you may read it."""
        return self._request("GET", f"/v1/code/{item_id}")

    def review_code(self, submission_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/code/{submission_id}/review")

    def approve_code(self, submission_id: str, reason: str) -> dict[str, Any]:
        return self._request("POST", f"/v1/code/{submission_id}/approve", json={"reason": reason})

    def reject_code(self, submission_id: str, reason: str) -> dict[str, Any]:
        return self._request("POST", f"/v1/code/{submission_id}/reject", json={"reason": reason})

    def run_code(self, submission_id: str) -> dict[str, Any]:
        return self._request("POST", f"/v1/code/{submission_id}/run")

    def release_code(self, run_id: str) -> dict[str, Any]:
        return self._request("POST", f"/v1/code/{run_id}/release")

    # -- rights pre-vetting and data products (docs/data-products.md) ----------------------------
    def declare_rights(self, dataset: str, legal_basis: str, purposes: list[str],
                       columns: Optional[dict[str, dict[str, Any]]] = None,
                       attested_by: Optional[str] = None) -> dict[str, Any]:
        """Declare the next version of your dataset's (`owner.name`) rights; answers which agreements it suspended."""
        owner, _, name = dataset.partition(".")
        body = {"legal_basis": legal_basis, "purposes": purposes, "columns": columns or {}, "attested_by": attested_by}
        return self._request("PUT", f"/v1/datasets/{owner}/{name}/rights", json=body)

    def rights(self, dataset: str) -> list[dict[str, Any]]:
        owner, _, name = dataset.partition(".")
        return self._request("GET", f"/v1/datasets/{owner}/{name}/rights")

    def notices(self, limit: int = 100) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/notices", params={"limit": limit})

    def publish_listing(self, document: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", "/v1/listings", json={"document": document})

    def catalogue(self, search: Optional[str] = None, limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit, "offset": offset, **({"q": search} if search else {})}
        return self._request("GET", "/v1/listings", params=params)

    def my_listings(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/listings/mine")

    def listing(self, listing_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/listings/{listing_id}")

    def withdraw_listing(self, listing_id: str) -> dict[str, Any]:
        return self._request("POST", f"/v1/listings/{listing_id}/withdraw")

    def request_listing(self, listing_id: str, purpose: str) -> dict[str, Any]:
        """Ask for a listing for a purpose: `status` is active (agreement made) or pending (owner reviews)."""
        return self._request("POST", f"/v1/listings/{listing_id}/requests", json={"purpose": purpose})

    def listing_requests(self) -> dict[str, list[dict[str, Any]]]:
        return self._request("GET", "/v1/listing-requests")

    def decide_listing_request(self, request_id: str, approve: bool, note: str = "") -> dict[str, Any]:
        return self._request("POST", f"/v1/listing-requests/{request_id}/decision", json={"approve": approve, "note": note})

    # -- individuals ------------------------------------------------------------------------
    def invite(self, subject: str, ttl_days: int = 30) -> dict[str, Any]:
        """(Organisation) a one-time claim code for one of your subject ids."""
        return self._request("POST", "/v1/subjects/invite", json={"subject": subject, "ttl_days": ttl_days})

    def sign_up(self, code: str, name: str) -> dict[str, Any]:
        """(Individual) sign up with a claim code; the client uses the new token from then on."""
        made = self._request("POST", "/v1/claims", json={"code": code, "name": name})
        self.token = made["token"]
        return made

    def claim(self, code: str) -> dict[str, Any]:
        return self._request("POST", "/v1/me/claims", json={"code": code})

    def my_links(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/me/links")

    def my_data(self) -> dict[str, Any]:
        """Subject access export: every row about you, consents, receipts, requests."""
        return self._request("GET", "/v1/me/export")

    def my_consents(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/me/consents")

    def set_consent(self, dataset: str, purpose: str, granted: bool) -> list[dict[str, Any]]:
        return self._request("PUT", "/v1/me/consents", json={
            "dataset": dataset, "purpose": purpose, "status": "granted" if granted else "withdrawn"})

    def receipts(self, before: Optional[str] = None, limit: int = 100) -> list[dict[str, Any]]:
        params: dict[str, Any] = {"limit": limit}
        if before:
            params["before"] = before
        return self._request("GET", "/v1/me/receipts", params=params)

    def request_erasure(self, controller: str, reason: str = "") -> dict[str, Any]:
        return self._request("POST", "/v1/me/erasure", json={"controller": controller, "reason": reason})

    def request_correction(self, dataset: str, column: str, value: str, comment: str = "") -> dict[str, Any]:
        return self._request("POST", "/v1/me/corrections", json={
            "dataset": dataset, "column": column, "value": value, "comment": comment})

    def requests(self, open_only: bool = False) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/requests", params={"open_only": open_only})

    def request(self, request_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/requests/{request_id}")

    def answer_request(self, request_id: str, accept: bool, message: str) -> dict[str, Any]:
        return self._request("POST", f"/v1/requests/{request_id}/answer", json={"accept": accept, "message": message})

    # -- offers -----------------------------------------------------------------------------
    def submit_offer(self, sql: str, purpose: str, title: str, needs_consent: tuple[str, ...] = ()) -> dict[str, Any]:
        return self._request("POST", "/v1/offers", json={"sql": sql, "purpose": purpose, "title": title,
                                                          "needs_consent": list(needs_consent)})

    def offers(self) -> list[dict[str, Any]]:
        """An individual's inbox, or an organisation's offer batches."""
        return self._request("GET", "/v1/offers")

    def offer(self, offer_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/offers/{offer_id}")

    def decide_offer(self, offer_id: str, accept: bool, release: tuple[str, ...] = ()) -> dict[str, Any]:
        return self._request("POST", f"/v1/offers/{offer_id}/decision", json={"accept": accept, "release": list(release)})

    def offer_decisions(self, batch_id: str) -> list[dict[str, Any]]:
        return self._request("GET", f"/v1/offer-batches/{batch_id}")

    # -- conversations: surveys and threads (docs/conversations.md) -------------------------
    def create_survey(self, document: dict[str, Any]) -> dict[str, Any]:
        return self._request("POST", "/v1/surveys", json={"document": document})

    def surveys(self) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/surveys")

    def survey(self, survey_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/surveys/{survey_id}")

    def answer_survey(self, survey_id: str, answers: dict[str, Any],
                      share: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
        """Answer; `share` is the (party, purpose) pairs that may use the answer (none: nobody)."""
        body = {"answers": answers, "share": [{"party": p, "purpose": u} for p, u in share]}
        return self._request("POST", f"/v1/surveys/{survey_id}/answer", json=body)

    def share_answer(self, survey_id: str, share: tuple[tuple[str, str], ...]) -> dict[str, Any]:
        body = {"share": [{"party": p, "purpose": u} for p, u in share]}
        return self._request("PUT", f"/v1/surveys/{survey_id}/sharing", json=body)

    def survey_results(self, survey_id: str, purpose: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/surveys/{survey_id}/results", params={"purpose": purpose})

    def open_thread(self, about: str, ref: str, message: str, kind: str = "comment") -> dict[str, Any]:
        """`about`: receipt (`ref` = its ledger index) or offer (`ref` = its id)."""
        body = {"about": about, "ref": str(ref), "kind": kind, "message": message}
        return self._request("POST", "/v1/threads", json=body)

    def threads(self, open_only: bool = False) -> list[dict[str, Any]]:
        return self._request("GET", "/v1/threads", params={"open_only": open_only})

    def thread(self, thread_id: str) -> dict[str, Any]:
        return self._request("GET", f"/v1/threads/{thread_id}")

    def reply_thread(self, thread_id: str, message: str) -> dict[str, Any]:
        return self._request("POST", f"/v1/threads/{thread_id}/messages", json={"message": message})

    def close_thread(self, thread_id: str) -> dict[str, Any]:
        return self._request("POST", f"/v1/threads/{thread_id}/close")

    # -- sealing (offline: no request is made; the collaboration secret never leaves this process)
    @staticmethod
    def seal(source: Path | str, dest: Path | str, schema: Any, secret: bytes | str | None = None, *,
             secret_file: Path | str | None = None, collaboration: Optional[str] = None,
             progress: Any = None) -> dict[str, Any]:
        """Seal a file at your site before `upload` (docs/sealing.md): `schema` is the dataset
        schema (a dict as from YAML) with `seal:` per column; the secret is given, read from
        `secret_file`, or else from $COMMONGROUND_SEAL_SECRET. Returns what was sealed."""
        from . import sealing
        from .domain.schema import parse_schema
        parsed = parse_schema(schema) if isinstance(schema, dict) else schema
        key = sealing.check_secret(secret) if secret is not None else sealing.load_secret(secret_file)
        return sealing.seal_file(source, dest, parsed, key, collaboration, progress).to_dict()

    @staticmethod
    def unseal(result: Any, schema: Any, secret: bytes | str | None = None, *, dest: Path | str | None = None,
               secret_file: Path | str | None = None, collaboration: Optional[str] = None,
               columns: Optional[dict[str, str]] = None) -> Any:
        """Open the sealed columns of a result you were allowed to see: a `query` answer
        ({"columns", "rows"}; a copy with the rows opened is returned) or a CSV/Parquet file
        (written to `dest`). `columns` maps renamed result columns to the schema's."""
        from . import sealing
        from .domain.schema import parse_schema
        parsed = parse_schema(schema) if isinstance(schema, dict) else schema
        key = sealing.check_secret(secret) if secret is not None else sealing.load_secret(secret_file)
        if isinstance(result, dict):
            return {**result, "rows": sealing.unseal_rows(result["columns"], result["rows"], parsed, key,
                                                          collaboration, columns)}
        if dest is None:
            raise ValueError("unseal of a file needs dest")
        return sealing.unseal_file(result, dest, parsed, key, collaboration, columns).to_dict()
