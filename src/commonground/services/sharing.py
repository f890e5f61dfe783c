"""Delta Sharing: a recipient's curated copies, served over the open protocol (docs/sharing.md).

A **share** is one `rows` agreement in force that names the caller as a recipient, a **schema**
is its provider, a **table** one of its datasets. What a table serves is never the provider's
file: it is the caller's own curated export (`services.exports`: transforms and consent
applied, k-anonymous, watermarked, on the ledger), made for the agreement's first purpose and
reused while it is current. The files go out through short-lived URLs to this server, signed
with a key derived from the store's own signing key; each URL's first read is logged on the
ledger as a download of that export, with the file's hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..domain.agreements import AccessMode, AgreementState
from ..domain.errors import BadInput, NotFound, Refused
from ..domain.records import TokenScope
from . import consent as consent_svc
from . import exports as export_svc
from . import parties as party_svc
from .agreements import agreements_in_force
from .datasets import visible_versions
from .deps import Deps
from .parties import require_party

URL_TTL = dt.timedelta(minutes=15)
PROFILE_TTL_DAYS = 30
FILE_ROUTE = "/delta-sharing/files"
_KEY_LABEL = b"commonground-delta-sharing-url-key-v1"
_SERVED = "delta_sharing_served"
_CONSENT_SEQ = "delta_sharing_consent_seq"
_LOCK = threading.Lock()


@dataclass(frozen=True)
class Share:
    name: str
    agreement: AgreementState

    @property
    def id(self) -> str:
        """Stable across the agreement's versions: the provider and the agreement's name."""
        return _uuid(f"share:{self.agreement.terms.provider}/{self.agreement.terms.name}")

    @property
    def provider(self) -> str:
        return self.agreement.terms.provider

    @property
    def purpose(self) -> str:
        return self.agreement.terms.purposes[0]


@dataclass(frozen=True)
class SharedTable:
    share: Share
    dataset: str  # owner.name
    version: int

    @property
    def name(self) -> str:
        return self.dataset.split(".", 1)[1]

    @property
    def id(self) -> str:
        return _uuid(f"table:{self.share.id}/{self.dataset}")

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "schema": self.share.provider, "share": self.share.name,
                "shareId": self.share.id, "id": self.id}


# -- shares, schemas, tables --------------------------------------------------------------

def _uuid(text: str) -> str:
    return str(uuid.UUID(bytes=hashlib.sha256(text.encode()).digest()[:16], version=4))


def _shares(deps: Deps, conn, party: str) -> dict[str, Share]:
    """The caller's shares by name. A name is the agreement's; when two providers' agreements
    share a name, each becomes `name--provider` (and, should that still clash, `name--id`)."""
    rows = sorted((a for a in agreements_in_force(deps, conn, party) if a.terms.mode is AccessMode.ROWS),
                  key=lambda a: (a.terms.name, a.terms.provider, a.id))
    names: dict[str, list[AgreementState]] = {}
    for a in rows:
        names.setdefault(a.terms.name, []).append(a)
    candidates = [(a.terms.name if len(group) == 1 else f"{a.terms.name}--{a.terms.provider}", a)
                  for group in names.values() for a in group]
    counts: dict[str, int] = {}
    for name, _ in candidates:
        counts[name] = counts.get(name, 0) + 1
    shares = [Share(name if counts[name] == 1 else f"{a.terms.name}--{a.id}", a) for name, a in candidates]
    return {s.name: s for s in shares}


def _share(deps: Deps, conn, party: str, share: str) -> Share:
    found = _shares(deps, conn, party).get(share.lower())
    if found is None:
        raise NotFound(f"no share {share} is yours")
    return found


def _tables(deps: Deps, conn, party: str, share: Share) -> list[SharedTable]:
    versions = visible_versions(deps, conn, party)
    return [SharedTable(share, g.dataset, versions[g.dataset].version)
            for g in sorted(share.agreement.terms.datasets, key=lambda g: g.dataset) if g.dataset in versions]


def _table(deps: Deps, conn, party: str, share: str, schema: str, table: str) -> SharedTable:
    found = _share(deps, conn, party, share)
    if schema.lower() != found.provider:
        raise NotFound(f"no schema {schema} in share {share}")
    for t in _tables(deps, conn, party, found):
        if t.name == table.lower():
            return t
    raise NotFound(f"no table {schema}.{table} in share {share}")


def list_shares(deps: Deps, party: str) -> list[dict[str, Any]]:
    with deps.store.read() as conn:
        require_party(deps, conn, party)
        return [{"name": s.name, "id": s.id} for s in sorted(_shares(deps, conn, party).values(), key=lambda s: s.name)]


def get_share(deps: Deps, party: str, share: str) -> dict[str, Any]:
    with deps.store.read() as conn:
        require_party(deps, conn, party)
        found = _share(deps, conn, party, share)
    return {"name": found.name, "id": found.id}


def list_schemas(deps: Deps, party: str, share: str) -> list[dict[str, Any]]:
    with deps.store.read() as conn:
        require_party(deps, conn, party)
        found = _share(deps, conn, party, share)
    return [{"name": found.provider, "share": found.name}]


def list_tables(deps: Deps, party: str, share: str, schema: str | None = None) -> list[dict[str, Any]]:
    with deps.store.read() as conn:
        require_party(deps, conn, party)
        found = _share(deps, conn, party, share)
        if schema is not None and schema.lower() != found.provider:
            raise NotFound(f"no schema {schema} in share {share}")
        return [t.to_dict() for t in _tables(deps, conn, party, found)]


def overview(deps: Deps, party: str) -> list[dict[str, Any]]:
    """Every table the party can read, with the agreement and purpose behind it (`share list`)."""
    with deps.store.read() as conn:
        require_party(deps, conn, party)
        out = []
        for s in sorted(_shares(deps, conn, party).values(), key=lambda s: s.name):
            for t in _tables(deps, conn, party, s):
                out.append({"share": s.name, "schema": s.provider, "table": t.name, "url": f"{s.name}.{s.provider}.{t.name}",
                            "dataset": t.dataset, "version": t.version, "agreement": s.agreement.id,
                            "agreement_name": s.agreement.terms.name, "purpose": s.purpose,
                            "k": s.agreement.terms.min_group_size})
        return out


def table_version(deps: Deps, party: str, share: str, schema: str, table: str) -> int:
    with deps.store.read() as conn:
        require_party(deps, conn, party)
        return _table(deps, conn, party, share, schema, table).version


# -- what a table serves: the caller's curated export ---------------------------------------

def _current_export(deps: Deps, party: str, share: str, schema: str, table: str) -> tuple[SharedTable, dict[str, Any]]:
    """The newest export of the table's current version, made for the share's purpose under a
    rows agreement still in force; made now if there is none. When the dataset's consent gates
    the purpose, a copy is reused only if this process made it and no consent record of the
    dataset and purpose came after the moment it read consent: otherwise a withdrawn person's
    rows could be served again, so it is made anew (the very next read reflects the change)."""
    with deps.store.read() as conn:
        require_party(deps, conn, party)
        found = _table(deps, conn, party, share, schema, table)
        version = visible_versions(deps, conn, party)[found.dataset]
        purpose = found.share.purpose
        gated = consent_svc.applies(version.schema, purpose)
        in_force = {a.id for a in agreements_in_force(deps, conn, party) if a.terms.mode is AccessMode.ROWS}
        reusable = [e for e in deps.store.exports(conn, recipient=party)
                    if e["dataset"] == found.dataset and e["version"] == found.version and e["purpose"] == purpose
                    and e["format"] == "parquet" and e["agreement"] in in_force and (deps.home / e["path"]).is_file()]
        seqs: dict[str, int] = deps.caches.setdefault(_CONSENT_SEQ, {})
        if gated:
            reusable = [e for e in reusable if e["id"] in seqs
                        and not deps.store.consent_since(conn, e["dataset_id"], purpose, seqs[e["id"]], 1)]
        seq = deps.store.consent_settled_seq(conn) if gated else 0
    if reusable:
        return found, reusable[0]  # newest first
    made = export_svc.export(deps, party, found.dataset, purpose, "parquet")
    if gated:
        seqs[made["id"]] = seq  # the export read consent after this seq was settled
    with deps.store.read() as conn:
        return found, deps.store.exports(conn, export_id=made["id"], recipient=party)[0]


def _metadata(deps: Deps, found: SharedTable, record: dict[str, Any]) -> dict[str, Any]:
    agreement = found.share.agreement
    return {"id": found.id, "name": found.name,
            "description": (f"{_possessive(record['recipient'])} curated copy of {found.dataset} v{found.version} "
                            f"under agreement {agreement.terms.name} for {found.share.purpose}: "
                            f"k-anonymous (k = {agreement.terms.min_group_size}), watermarked"),
            "format": {"provider": "parquet"}, "schemaString": spark_schema(deps.home / record["path"]),
            "partitionColumns": [],
            "configuration": {"commonground.agreement": record["agreement"], "commonground.purpose": record["purpose"],
                              "commonground.dataset": found.dataset, "commonground.k": str(agreement.terms.min_group_size),
                              "commonground.export": record["id"], "commonground.sha256": record["sha256"]},
            "size": record["bytes"], "numFiles": 1}


def _possessive(name: str) -> str:
    return f"{name}'" if name.endswith("s") else f"{name}'s"


def table_metadata(deps: Deps, party: str, share: str, schema: str, table: str) -> tuple[int, dict[str, Any]]:
    found, record = _current_export(deps, party, share, schema, table)
    return found.version, _metadata(deps, found, record)


def query_table(deps: Deps, party: str, share: str, schema: str, table: str, base_url: str,
                body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any], list[dict[str, Any]]]:
    """(version, metadata, files): one file, the caller's curated copy, at a signed URL."""
    body = body or {}
    for unsupported in ("timestamp", "startingVersion", "endingVersion"):
        if body.get(unsupported) is not None:
            raise BadInput(f"{unsupported}: only the current version of a table is shared (no history, no change feed)")
    with deps.store.read() as conn:
        require_party(deps, conn, party)
        current = _table(deps, conn, party, share, schema, table).version
    if body.get("version") is not None and body["version"] != current:
        raise BadInput(f"version {body['version']}: only the current version ({current}) of a table is shared")
    found, record = _current_export(deps, party, share, schema, table)
    expires = deps.now() + URL_TTL
    url = signed_url(deps, base_url, record["id"], party, expires)
    files = [{"url": url, "id": record["id"], "partitionValues": {}, "size": record["bytes"],
              "stats": f'{{"numRecords":{int(record["rows"])}}}',
              "expirationTimestamp": int(expires.timestamp() * 1000)}]
    return found.version, _metadata(deps, found, record), files


def spark_schema(path: Path) -> str:
    """The Parquet file's columns as a Spark StructType in JSON (the protocol's schemaString)."""
    import json

    import pyarrow.parquet as pq  # loaded only when a table is read

    fields = [{"name": f.name, "type": _spark_type(f.type), "nullable": True, "metadata": {}}
              for f in pq.read_schema(path)]
    return json.dumps({"type": "struct", "fields": fields}, separators=(",", ":"))


def _spark_type(t: Any) -> str:
    import pyarrow as pa

    simple = [(pa.types.is_boolean, "boolean"), (pa.types.is_int8, "byte"), (pa.types.is_int16, "short"),
              (pa.types.is_int32, "integer"), (pa.types.is_int64, "long"), (pa.types.is_float32, "float"),
              (pa.types.is_float64, "double"), (pa.types.is_date, "date"), (pa.types.is_timestamp, "timestamp"),
              (pa.types.is_binary, "binary"), (pa.types.is_large_binary, "binary")]
    for test, name in simple:
        if test(t):
            return name
    if pa.types.is_decimal(t):
        return f"decimal({t.precision},{t.scale})"
    if pa.types.is_unsigned_integer(t):
        return "long"
    return "string"


# -- signed URLs --------------------------------------------------------------------------

def _key(deps: Deps) -> bytes:
    """Derived from the store's Ed25519 key (signatures are deterministic), so every server
    process over the store agrees, nothing new is stored, and the key is never written."""
    key = deps.caches.get("delta_sharing_key")
    if key is None:
        key = hashlib.sha256(_KEY_LABEL + deps.signer.sign(_KEY_LABEL)).digest()
        deps.caches["delta_sharing_key"] = key
    return key


def _signature(deps: Deps, export_id: str, party: str, expires: int, nonce: str) -> str:
    message = f"{export_id}\n{party}\n{expires}\n{nonce}".encode()
    return hmac.new(_key(deps), message, hashlib.sha256).hexdigest()


def signed_url(deps: Deps, base_url: str, export_id: str, party: str, expires: dt.datetime) -> str:
    """Each URL is distinct (a random nonce), so each one's first read is its own ledger entry."""
    stamp = int(expires.timestamp())
    nonce = secrets.token_hex(8)
    return (f"{base_url.rstrip('/')}{FILE_ROUTE}/{export_id}?party={party}&expires={stamp}&n={nonce}"
            f"&sig={_signature(deps, export_id, party, stamp, nonce)}")


def signed_file(deps: Deps, export_id: str, party: str, expires: str, nonce: str, sig: str,
                serve: bool) -> tuple[Path, dict[str, Any]]:
    """The file behind a signed URL, if the signature is ours, the URL has not expired, the
    agreement is still in force and the copy is of the dataset's current version. `serve`: the
    bytes go out (GET); a URL's first GET is logged as a download of the export."""
    try:
        stamp = int(expires)
    except ValueError:
        raise Refused(["signed URL: invalid or expired"]) from None
    if not hmac.compare_digest(_signature(deps, export_id, party, stamp, nonce), sig or ""):
        raise Refused(["signed URL: invalid or expired"])
    if deps.now().timestamp() > stamp:
        raise Refused(["signed URL: invalid or expired; query the table again for a fresh one"])
    with deps.store.read() as conn:
        found = deps.store.exports(conn, export_id=export_id, recipient=party)
        if not found:
            raise NotFound(f"no export {export_id}")
        record = found[0]
        in_force = {a.id for a in agreements_in_force(deps, conn, party) if a.terms.mode is AccessMode.ROWS}
        current = visible_versions(deps, conn, party).get(record["dataset"])
    if record["agreement"] not in in_force or current is None or current.version != record["version"]:
        raise NotFound(f"export {export_id} is no longer shared with you (agreement ended or a newer version exists)")
    if not serve:
        path = deps.home / record["path"]
        if not path.is_file():
            raise NotFound(f"the file of export {export_id} is no longer kept")
        return path, record
    with _LOCK:
        served: dict[str, int] = deps.caches.setdefault(_SERVED, {})
        now = deps.now().timestamp()
        for s in [s for s, until in served.items() if until < now]:
            del served[s]
        first = sig not in served
        served[sig] = stamp
    if not first:
        path = deps.home / record["path"]
        if not path.is_file():
            raise NotFound(f"the file of export {export_id} is no longer kept")
        return path, record
    try:
        path, _ = export_svc.download(deps, party, export_id)
    except BaseException:
        with _LOCK:
            deps.caches.get(_SERVED, {}).pop(sig, None)
        raise
    return path, record


# -- profiles -----------------------------------------------------------------------------

def make_profile(deps: Deps, party: str, endpoint: str,
                 ttl_days: int | None = PROFILE_TTL_DAYS) -> tuple[dict[str, Any], str]:
    """A Delta Sharing profile for the party: a fresh `read` token (on the ledger like any
    token) and the endpoint. Returns (profile, token id); the secret is only in the profile."""
    if not endpoint.startswith(("http://", "https://")):
        raise BadInput(f"--endpoint must be an http(s) URL ending in the sharing prefix, e.g. "
                       f"https://HOST/delta-sharing, not {endpoint!r}")
    record, secret = party_svc.create_token(deps, party, ttl_days, TokenScope.READ.value)
    profile: dict[str, Any] = {"shareCredentialsVersion": 1, "endpoint": endpoint.rstrip("/"), "bearerToken": secret}
    if record.expires_at is not None:
        profile["expirationTime"] = record.expires_at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    return profile, record.id
