"""Delta Sharing with the real `delta-sharing` client, against a real server on a free port.

The retailer shares purchases with the brand under a `rows` agreement; the brand makes a
profile with `share profile` and reads its share with the official connector. What it gets is
exactly its curated export (k-anonymous, pseudonymised, watermarked), never the retailer's
file; the outsider sees nothing; a revoked agreement disappears; signed URLs expire and cannot
be forged; every served file is on the ledger with its hash.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import socket
import threading
import time
from pathlib import Path
from typing import Any, Iterator

import duckdb
import pytest
import requests

from commonground.services import agreements as agreement_svc
from commonground.services import audit as audit_svc
from commonground.services import consent as consent_svc
from commonground.services import datasets as dataset_svc
from commonground.services import exports as export_svc
from commonground.services import parties as party_svc

from .data import PURCHASES_SCHEMA, agreement, write_purchases

delta_sharing = pytest.importorskip("delta_sharing", reason="the delta-sharing client is not installed")

SHARE = "syrup-rows"
TABLE = f"{SHARE}.retailer.purchases"


class Clock:
    """Real time, plus an offset a test can move forward (URL expiry)."""

    def __init__(self) -> None:
        self.offset = dt.timedelta()

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc) + self.offset


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def shared(make_deps, cli, tmp_path) -> Iterator[dict[str, Any]]:
    """A store with the rows agreement, served by uvicorn in a thread; profiles for brand and outsider."""
    import uvicorn

    from commonground.api.app import create_app

    clock = Clock()
    deps = make_deps(clock=clock)
    for name in ("retailer", "brand", "outsider"):
        party_svc.add_party(deps, name)
    data, _ = write_purchases(tmp_path / "in")
    dataset_svc.add_dataset(deps, "retailer", "purchases", data, {**PURCHASES_SCHEMA, "consent": "opt_out"})
    doc = {**agreement(mode="rows", k=5), "name": SHARE}
    doc["access"] = {"mode": "rows", "min_group_size": 5}
    made = agreement_svc.propose(deps, "retailer", doc)
    agreement_svc.accept(deps, "brand", made.id)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(create_app(deps), host="127.0.0.1", port=port, log_level="warning",
                                           lifespan="off"))
    thread = threading.Thread(target=server.run, name="uvicorn-delta-sharing", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the test server did not start"
        time.sleep(0.05)
    endpoint = f"http://127.0.0.1:{port}/delta-sharing"
    profiles = {}
    for name in ("brand", "outsider"):
        path = tmp_path / f"{name}.share"
        made_profile = cli("share", "profile", "--as", name, "--endpoint", endpoint, "--out", path, "--json")[1]
        assert made_profile["file"] == str(path) and "profile" not in made_profile
        profiles[name] = str(path)
    try:
        yield {"deps": deps, "clock": clock, "endpoint": endpoint, "profiles": profiles, "agreement": made.id,
               "cli": cli, "tmp_path": tmp_path}
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _ledger(deps) -> list[dict[str, Any]]:
    return audit_svc.log(deps, 0, 100_000)


def _downloads(deps) -> list[dict[str, Any]]:
    return [e for e in _ledger(deps) if e.get("event") == "export.downloaded"]


def _bearer(profile: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {json.loads(Path(profile).read_text())['bearerToken']}"}


def _query(shared, profile: str = "brand") -> requests.Response:
    return requests.post(f"{shared['endpoint']}/shares/{SHARE}/schemas/retailer/tables/purchases/query", json={},
                         headers=_bearer(shared["profiles"][profile]), timeout=30)


def test_the_real_client_reads_exactly_the_curated_copy(shared):
    deps, brand = shared["deps"], shared["profiles"]["brand"]
    profile = json.loads(Path(brand).read_text())
    assert profile["shareCredentialsVersion"] == 1 and profile["endpoint"] == shared["endpoint"]
    assert profile["bearerToken"].startswith("cg_") and profile["expirationTime"].endswith("Z")
    assert [t.scope.value for t in party_svc.list_tokens(deps, "brand")] == ["read"]
    client = delta_sharing.SharingClient(brand)
    assert [s.name for s in client.list_shares()] == [SHARE]
    tables = client.list_all_tables()
    assert [(t.share, t.schema, t.name) for t in tables] == [(SHARE, "retailer", "purchases")]
    share = client.list_shares()[0]
    assert [s.name for s in client.list_schemas(share)] == ["retailer"]
    assert [t.name for t in client.list_tables(client.list_schemas(share)[0])] == ["purchases"]
    assert delta_sharing.get_table_version(f"{brand}#{TABLE}") == 1
    meta = delta_sharing.get_table_metadata(f"{brand}#{TABLE}", use_delta_format=False)
    assert meta.configuration["commonground.purpose"] == "analytics.reporting"
    assert meta.configuration["commonground.k"] == "5"

    frame = delta_sharing.load_as_pandas(f"{brand}#{TABLE}")
    exports = export_svc.list_exports(deps, "brand")
    assert len(exports) == 1  # metadata and query served the one copy
    record = exports[0]
    path = deps.home / "exports" / "brand" / f"{record['id']}.parquet"
    con = duckdb.connect()
    expected = con.execute(f"SELECT * FROM read_parquet('{path}')").fetchall()
    columns = [d[0] for d in con.description]
    assert list(frame.columns) == columns == ["customer_id", "zip", "age", "segment", "spend"]  # email dropped
    got = [tuple(None if v != v else v for v in row) for row in frame.itertuples(index=False, name=None)]
    assert sorted(got, key=repr) == sorted(expected, key=repr) and len(got) == record["rows"] > 0
    # k-anonymous over the quasi-identifiers, in people; pseudonyms, never the raw ids
    smallest = con.execute(f"SELECT min(n) FROM (SELECT count(DISTINCT customer_id) n FROM read_parquet('{path}') "
                           "GROUP BY zip, age)").fetchone()[0]
    assert smallest >= 5
    assert not {f"C{i:04d}" for i in range(60)} & set(frame["customer_id"])
    assert set(frame["zip"]) <= {"100", None}  # the agreement's transform, as shared
    # The served file is on the ledger once, with its hash, although the client read it in ranges.
    assert record["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    downloads = _downloads(deps)
    assert [(d["party"], d["export"], d["sha256"]) for d in downloads] == [("brand", record["id"], record["sha256"])]
    # Read again: the same copy, reused (no consent change since); a second URL, a second entry.
    again = delta_sharing.load_as_pandas(f"{brand}#{TABLE}")
    rows = lambda f: sorted(f.itertuples(index=False, name=None), key=repr)  # noqa: E731
    assert rows(again) == rows(frame)
    assert len(export_svc.list_exports(deps, "brand")) == 1 and len(_downloads(deps)) == 2
    assert audit_svc.verify(deps).ok


def test_share_list_and_errors_in_the_protocols_shape(shared):
    cli, endpoint = shared["cli"], shared["endpoint"]
    listed = cli("share", "list", "--as", "brand", "--json")[1]
    assert [(r["url"], r["dataset"], r["version"], r["purpose"], r["k"]) for r in listed] == [
        (TABLE, "retailer.purchases", 1, "analytics.reporting", 5)]
    assert cli("share", "list", "--as", "outsider", "--json")[1] == []
    assert "syrup-rows.retailer.purchases" in cli("share", "list", "--as", "brand")[2]
    printed = cli("share", "profile", "--as", "brand", "--endpoint", endpoint, "--ttl-days", "2")[2]
    assert json.loads(printed)["bearerToken"].startswith("cg_")
    cli("share", "profile", "--as", "brand", "--endpoint", "ftp://x", expect=2)
    anonymous = requests.get(f"{endpoint}/shares", timeout=10)
    assert anonymous.status_code == 401 and anonymous.json()["errorCode"] == "UNAUTHENTICATED"
    bad = requests.get(f"{endpoint}/shares", params={"maxResults": -1}, headers=_bearer(shared["profiles"]["brand"]),
                       timeout=10)
    assert bad.status_code == 400 and bad.json()["errorCode"] == "INVALID_PARAMETER_VALUE"
    missing = requests.get(f"{endpoint}/shares/nope", headers=_bearer(shared["profiles"]["brand"]), timeout=10)
    assert missing.status_code == 404 and missing.json()["errorCode"] == "RESOURCE_DOES_NOT_EXIST"
    old = requests.post(f"{endpoint}/shares/{SHARE}/schemas/retailer/tables/purchases/query", json={"version": 0},
                        headers=_bearer(shared["profiles"]["brand"]), timeout=10)
    assert old.status_code == 400 and "only the current version" in old.json()["message"]
    paged = requests.get(f"{endpoint}/shares", params={"maxResults": 0}, headers=_bearer(shared["profiles"]["brand"]),
                         timeout=10).json()
    assert paged["items"] == [] and paged["nextPageToken"] == "0"


def test_another_recipient_sees_nothing_and_a_revoked_agreement_disappears(shared):
    deps, brand, outsider = shared["deps"], shared["profiles"]["brand"], shared["profiles"]["outsider"]
    assert delta_sharing.SharingClient(outsider).list_shares() == []
    assert delta_sharing.SharingClient(outsider).list_all_tables() == []
    for path in ("", "/schemas", "/all-tables", "/schemas/retailer/tables", "/schemas/retailer/tables/purchases/metadata",
                 "/schemas/retailer/tables/purchases/version"):
        response = requests.get(f"{shared['endpoint']}/shares/{SHARE}{path}", headers=_bearer(outsider), timeout=10)
        assert response.status_code == 404 and response.json()["errorCode"] == "RESOURCE_DOES_NOT_EXIST", path
    assert _query(shared, "outsider").status_code == 404
    provider = {"Authorization": f"Bearer {party_svc.create_token(deps, 'retailer', scope='read')[1]}"}
    assert requests.get(f"{shared['endpoint']}/shares", headers=provider, timeout=10).json() == {"items": []}
    assert requests.post(f"{shared['endpoint']}/shares/{SHARE}/schemas/retailer/tables/purchases/query", json={},
                         headers=provider, timeout=10).status_code == 404  # the provider cannot read the brand's copy
    with pytest.raises(requests.HTTPError, match="404"):
        delta_sharing.load_as_pandas(f"{outsider}#{TABLE}")
    # The brand's signed URL names the brand: the outsider cannot re-sign it for itself.
    url = [json.loads(line) for line in _query(shared).text.splitlines()][2]["file"]["url"]
    assert requests.get(url.replace("party=brand", "party=outsider"), timeout=10).status_code == 403
    before = len(_downloads(deps))
    agreement_svc.revoke(deps, "retailer", shared["agreement"])
    assert delta_sharing.SharingClient(brand).list_shares() == []
    assert requests.get(url, timeout=10).status_code == 404  # an issued URL stops working too
    assert len(_downloads(deps)) == before
    with pytest.raises(requests.HTTPError, match="404"):
        delta_sharing.load_as_pandas(f"{brand}#{TABLE}")


def test_signed_urls_expire_and_cannot_be_forged(shared):
    deps, clock = shared["deps"], shared["clock"]
    lines = [json.loads(line) for line in _query(shared).text.splitlines()]
    assert lines[0] == {"protocol": {"minReaderVersion": 1}} and lines[1]["metaData"]["format"] == {"provider": "parquet"}
    file = lines[2]["file"]
    url = file["url"]
    assert url.startswith(shared["endpoint"] + "/files/") and "sig=" in url
    fields = json.loads(lines[1]["metaData"]["schemaString"])["fields"]
    assert [(f["name"], f["type"]) for f in fields] == [("customer_id", "string"), ("zip", "string"), ("age", "long"),
                                                        ("segment", "string"), ("spend", "double")]
    assert requests.head(url, timeout=10).status_code == 200 and _downloads(deps) == []  # a HEAD serves nothing
    forged = [url[:-4] + ("0000" if not url.endswith("0000") else "1111"), url.replace("expires=", "expires=9"),
              url.split("&sig=")[0], url.replace(file["id"], "0" * 32), url.replace("&n=", "&n=0")]
    for bad in forged:
        response = requests.get(bad, timeout=10)
        assert response.status_code == 403 and response.json()["errorCode"] == "PERMISSION_DENIED", bad
    assert _downloads(deps) == []
    served = requests.get(url, timeout=10)
    assert served.status_code == 200 and int(served.headers["Content-Length"]) == file["size"]
    record = export_svc.list_exports(deps, "brand")[0]
    assert hashlib.sha256(served.content).hexdigest() == record["sha256"] == served.headers["X-Commonground-Sha256"]
    assert requests.get(url, headers={"Range": "bytes=0-3"}, timeout=10).content == b"PAR1"
    assert len(_downloads(deps)) == 1  # the URL's first read is the one logged
    clock.offset = dt.timedelta(minutes=16)
    expired = requests.get(url, timeout=10)
    assert expired.status_code == 403 and "expired" in expired.json()["message"]
    assert len(_downloads(deps)) == 1
    # the signing key never reaches the ledger
    assert "delta-sharing-url-key" not in json.dumps(_ledger(deps))


def test_a_withdrawal_applies_to_the_next_read(shared):
    deps, brand = shared["deps"], shared["profiles"]["brand"]
    first = delta_sharing.load_as_pandas(f"{brand}#{TABLE}")
    consent_svc.record(deps, "retailer", "retailer.purchases", [("C0000", "analytics.reporting", "withdrawn")], "controller")
    second = delta_sharing.load_as_pandas(f"{brand}#{TABLE}")
    assert len(second) == len(first) - 2  # the person's two rows, gone from the very next read
    assert len(export_svc.list_exports(deps, "brand")) == 2
