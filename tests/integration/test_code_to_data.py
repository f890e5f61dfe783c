"""Code-to-data end to end through the CLI: submit -> review -> approve -> run -> release -> get,
and a suite of hostile analyses, each contained by the sandbox or refused by the disclosure
checks, with its output withheld (nobody can read a result of a failed or refused run)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pytest

from commonground.adapters.sandbox import namespaces_available

from tests.conftest import Cli, store_database_url
from .data import write_yaml

pytestmark = pytest.mark.skipif(not namespaces_available(), reason="unprivileged user namespaces are not available")

SCHEMA = {"columns": {
    "member_id": {"type": "integer", "role": "subject_id", "category": "user.unique_id"},
    "email": {"type": "string", "role": "identifier", "category": "user.contact.email"},
    "region": {"type": "string", "role": "quasi_identifier", "category": "user.contact.address.state"},
    "segment": {"type": "string", "role": "attribute", "category": "user.behavior"},
    "spend": {"type": "double", "role": "sensitive", "category": "user.financial"},
}}
PURPOSE = "analytics.reporting"

HAPPY = '''
import pyarrow as pa

GROUP_BY = ["segment"]
COUNT = "people"

def analysis(tables):
    t = tables["retailer.members"]
    out = t.group_by("segment").aggregate([("spend", "sum"), ("member_id", "count_distinct")])
    return pa.table({"segment": out["segment"], "people": out["member_id_count_distinct"],
                     "total_spend": out["spend_sum"]})
'''


def _write_members(folder: Path, consent: str | None = None) -> tuple[Path, Path]:
    """60 members in three segments and three regions of 20, and one member alone in region 'solo'."""
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["member_id,email,region,segment,spend"]
    for i in range(60):
        for j in range(2):
            lines.append(f"{100_000 + i},m{i}@example.org,r{i % 3},{'abc'[i % 3]},{(i * 7 + j) % 50}.5")
    lines.append("100999,solo@example.org,solo,a,12.5")
    data = folder / "members.csv"
    data.write_text("\n".join(lines) + "\n")
    return data, write_yaml(folder / "members.yaml", {**SCHEMA, **({"consent": consent} if consent else {})})


def _agreement(**code_terms) -> dict:
    return {"name": "member-models", "provider": "retailer", "recipients": ["brand"], "purposes": [PURPOSE],
            "valid_until": "2099-12-31",
            "datasets": {"retailer.members": {"fields": {"member_id": "raw", "email": "hash", "region": "raw",
                                                          "segment": "raw", "spend": "raw"}}},
            "access": {"mode": "code", "min_group_size": 5, **code_terms}}


def _setup(cli: Cli, folder: Path, consent: str | None = None, **code_terms) -> str:
    for name in ("retailer", "brand", "outsider"):
        cli("party", "add", name)
    data, schema = _write_members(folder / "in", consent)
    cli("dataset", "add", "--as", "retailer", "members", data, "--schema", schema)
    made = cli("agreement", "propose", "--as", "retailer",
               write_yaml(folder / "code.yaml", _agreement(**code_terms)), "--json")[1]
    cli("agreement", "accept", "--as", "brand", made["id"])
    return made["id"]


def _submit(cli: Cli, folder: Path, agreement: str, source: str, name: str = "analysis", *extra: str, expect: int = 0):
    path = folder / f"{name}.py"
    path.write_text(source)
    return cli("code", "submit", path, "--as", "brand", "--purpose", PURPOSE, "--agreement", agreement,
               "--title", name, *extra, "--json", expect=expect)[1]


def test_submit_review_approve_run_release_get(cli, tmp_path):
    agreement = _setup(cli, tmp_path)
    made = _submit(cli, tmp_path, agreement, HAPPY)
    assert made["status"] == "pending" and made["reviewers"] == ["retailer"] and made["group_by"] == ["segment"]
    assert made["sha256"] == hashlib.sha256(HAPPY.encode()).hexdigest()
    sid = made["id"]
    # A code agreement is not a clean-room SQL agreement: the brand's queries are refused.
    refused = cli("query", "--as", "brand", "--purpose", PURPOSE, "--json",
                  "SELECT segment, COUNT(*) AS n FROM retailer.members GROUP BY segment", expect=3)[1]
    assert any("grants code access only" in r for r in refused["reasons"]), refused

    assert cli("code", "run", sid, "--as", "brand", "--json", expect=3)[1]["reasons"][0].endswith(
        "waiting for retailer to review it")
    assert "own code" in cli("code", "approve", sid, "--as", "brand", "--reason", "mine", "--json", expect=3)[1]["reasons"][0]
    for party in ("outsider",):  # strangers learn nothing, not even that it exists
        cli("code", "get", sid, "--as", party, "--json", expect=4)
        cli("code", "review", sid, "--as", party, "--json", expect=4)
        cli("code", "approve", sid, "--as", party, "--reason", "x", "--json", expect=4)
    shown = cli("code", "review", sid, "--as", "retailer", "--json")[1]
    assert shown["source"] == HAPPY and shown["diff"] is None
    assert shown["reads"] == [{"dataset": "retailer.members", "columns": ["member_id", "email", "region", "segment", "spend"],
                               "identifying": ["member_id", "email"]}]
    assert {"retailer.members", "segment", "spend", "member_id"} <= set(shown["mentions"])
    cli("code", "approve", sid, "--as", "retailer", "--reason", "aggregates only", "--json")
    cli("code", "approve", sid, "--as", "retailer", "--reason", "again", "--json", expect=3)

    ran = cli("code", "run", sid, "--as", "brand", "--json")[1]
    assert ran["status"] == "held" and ran["checks"]["passed"] and ran["waiting_for"] == ["retailer"], ran["checks"]
    assert "result" not in ran  # the submitter sees nothing until the providers release it
    assert "facts" not in ran["checks"]  # group sizes and matches are the providers' to read
    seen = cli("code", "get", ran["id"], "--as", "retailer", "--json")[1]  # the provider reads what would leave
    assert seen["checks"]["facts"]["smallest_group"] == 20
    assert seen["result"]["columns"] == ["segment", "people", "total_spend"]
    stranger = cli("code", "get", ran["id"], "--as", "outsider", "--json", expect=4)[1]
    missing = cli("code", "get", "0" * 32, "--as", "outsider", "--json", expect=4)[1]
    assert stranger["message"].replace(ran["id"], "ID") == missing["message"].replace("0" * 32, "ID")
    cli("code", "release", ran["id"], "--as", "brand", "--json", expect=3)
    released = cli("code", "release", ran["id"], "--as", "retailer", "--json")[1]
    assert released["status"] == "released"
    got = cli("code", "get", ran["id"], "--as", "brand", "--json")[1]
    expected = duckdb.connect().execute(
        f"SELECT segment, count(DISTINCT member_id), sum(spend) FROM read_csv('{tmp_path / 'in' / 'members.csv'}') "
        "GROUP BY segment ORDER BY segment").fetchall()
    assert sorted(tuple(r) for r in got["result"]["rows"]) == [tuple(r) for r in expected]

    entries = cli("audit", "log", "--limit", "500", "--json")[1]
    events = [e.get("event") for e in entries]
    for event in ("code.submitted", "code.run_refused", "code.approved", "code.run", "code.released", "code.result_read"):
        assert event in events, event
    logged = json.dumps(entries)
    assert not [row for row in got["result"]["rows"] if str(row[2]) in logged]  # hashes and counts, never the output
    cli("audit", "verify")


def test_reject_with_reason_stops_the_run_and_new_version_carries_a_diff(cli, tmp_path):
    agreement = _setup(cli, tmp_path)
    sid = _submit(cli, tmp_path, agreement, HAPPY)["id"]
    cli("code", "reject", sid, "--as", "retailer", "--reason", "", "--json", expect=2)
    rejected = cli("code", "reject", sid, "--as", "retailer", "--reason", "spend by segment is too fine", "--json")[1]
    assert rejected["status"] == "rejected" and rejected["reviews"][0]["reason"] == "spend by segment is too fine"
    assert "is rejected" in cli("code", "run", sid, "--as", "brand", "--json", expect=3)[1]["reasons"][0]
    v2 = _submit(cli, tmp_path, agreement, HAPPY.replace('("spend", "sum")', '("spend", "mean")'), "v2", "--previous", sid)
    assert v2["previous"] == sid and v2["status"] == "pending"
    diff = cli("code", "review", v2["id"], "--as", "retailer", "--json")[1]["diff"]
    assert '-    out = t.group_by("segment").aggregate([("spend", "sum")' in diff
    assert '+    out = t.group_by("segment").aggregate([("spend", "mean")' in diff
    _submit(cli, tmp_path, agreement, HAPPY, "v3", "--previous", "nope", expect=4)


def test_auto_approve_same_hash_and_auto_release(cli, tmp_path):
    agreement = _setup(cli, tmp_path, auto_approve=["same_code_hash"], auto_release=["checks_passed"])
    first = _submit(cli, tmp_path, agreement, HAPPY)
    assert first["status"] == "pending"  # nothing approved it before
    cli("code", "approve", first["id"], "--as", "retailer", "--reason", "fine", "--json")
    again = _submit(cli, tmp_path, agreement, HAPPY, "again")
    assert again["status"] == "approved" and again["reviews"][0]["rule"] == "same_code_hash"
    changed = _submit(cli, tmp_path, agreement, HAPPY + "\n# changed\n", "changed")
    assert changed["status"] == "pending"
    ran = cli("code", "run", again["id"], "--as", "brand", "--json")[1]
    assert ran["status"] == "released" and ran["released_by"][0]["rule"] == "checks_passed" and "result" in ran


def test_code_terms_and_declarations_are_validated(cli, tmp_path):
    agreement = _setup(cli, tmp_path)
    doc = _agreement(memory_mb=0)
    cli("agreement", "propose", "--as", "retailer", write_yaml(tmp_path / "bad.yaml", doc), "--json", expect=2)
    doc = {**_agreement(), "access": {"mode": "aggregate", "min_group_size": 5, "cpu_seconds": 5}}
    cli("agreement", "propose", "--as", "retailer", write_yaml(tmp_path / "bad2.yaml", doc), "--json", expect=2)
    _submit(cli, tmp_path, agreement, "def analysis(tables):\n    return None\n", "nogroups", expect=2)
    _submit(cli, tmp_path, agreement, "GROUP_BY = []\n", "noentry", expect=2)
    refused = _submit(cli, tmp_path, agreement, "GROUP_BY = ['nope']\ndef analysis(t):\n    pass\n", "badgroup", expect=3)
    assert "one input holds together" in refused["reasons"][0]


# -- the hostile suite: every one contained, its output withheld ------------------------------

HOSTILE = {
    "opens_a_socket": ('''
GROUP_BY = []
def analysis(tables):
    import socket
    socket.create_connection(("127.0.0.1", 5432), timeout=1)
''', "sandbox: the analysis raised PermissionError"),
    "reads_etc_passwd": ('''
GROUP_BY = []
def analysis(tables):
    import pyarrow as pa
    return pa.table({"x": [open("/etc/passwd").read()]})
''', "sandbox: the analysis raised PermissionError"),
    "reads_the_store": ('''
GROUP_BY = []
def analysis(tables):
    with open("{store}", "rb") as f:  # the dataset's own file, transforms not applied
        f.read(1)
''', "sandbox: the analysis raised PermissionError"),
    "forks": ('''
GROUP_BY = []
def analysis(tables):
    import os
    os.fork()
''', "sandbox: the analysis raised PermissionError"),
    "runs_a_subprocess": ('''
GROUP_BY = []
def analysis(tables):
    import subprocess
    subprocess.run(["cat", "/etc/hostname"])
''', "sandbox: the analysis raised PermissionError"),
    "signals_the_host": ('''
GROUP_BY = []
def analysis(tables):
    import os
    os.kill(os.getppid(), 0)  # only asks whether it may signal the store's process
''', "sandbox: the analysis raised PermissionError"),
    "writes_outside_its_scratch": ('''
GROUP_BY = []
def analysis(tables):
    with open("/tmp/cg-code-escape", "w") as f:
        f.write("x")
''', "sandbox: the analysis raised PermissionError"),
    "floods_its_error_output": ('''
GROUP_BY = []
def analysis(tables):
    import sys
    while True:
        sys.stderr.write("x" * 65536)
''', "sandbox: the analysis wrote 16,777,216 bytes of error output"),
    "allocates_past_the_limit": ('''
GROUP_BY = []
def analysis(tables):
    hoard = bytearray(3 * 1024 * 1024 * 1024)  # past memory_mb (256) + the runtime allowance (1536)
''', "sandbox: the analysis ran out of memory"),
    "loops_forever": ('''
GROUP_BY = []
def analysis(tables):
    while True:
        pass
''', "sandbox: the analysis used more than its CPU limit of 2 s"),
    "sleeps_forever": ('''
GROUP_BY = []
def analysis(tables):
    import time
    time.sleep(3600)
''', "sandbox: the analysis ran past the wall-time limit of 4 s"),
    "returns_raw_rows": ('''
GROUP_BY = ["segment"]
def analysis(tables):
    return tables["retailer.members"].select(["segment", "spend"]).slice(0, 30)
''', "groups: 27 output rows repeat another row's GROUP_BY values"),
    "returns_subject_ids": ('''
GROUP_BY = ["member_id"]
def analysis(tables):
    t = tables["retailer.members"]
    return t.group_by("member_id").aggregate([("spend", "sum")])
''', "identifiers: output column(s) member_id are named like an identifying column"),
    "returns_a_group_of_one": ('''
GROUP_BY = ["region"]
COUNT = "n"
def analysis(tables):
    t = tables["retailer.members"]
    return t.group_by("region").aggregate([("member_id", "count_distinct")]).rename_columns(["region", "n"])
''', "groups: an output row's group has fewer than 5 people in the inputs"),
    "lies_about_its_counts": ('''
GROUP_BY = ["segment"]
COUNT = "n"
def analysis(tables):
    import pyarrow as pa
    return pa.table({"segment": ["a", "b", "c"], "n": [500, 500, 500]})
''', "groups: 3 rows declare more people in n than the group has"),
    "hides_identifiers_in_a_float_column": ('''
import pyarrow as pa
import pyarrow.compute as pc
GROUP_BY = ["segment"]
def analysis(tables):
    out = tables["retailer.members"].group_by("segment").aggregate([("member_id", "min")])
    return pa.table({"segment": out["segment"], "score": pc.cast(out["member_id_min"], "float64")})
''', "identifiers: output column score holds 3 value(s) equal to subject ids"),
    "hides_identifiers_in_a_list_column": ('''
import pyarrow as pa
GROUP_BY = ["segment"]
def analysis(tables):
    out = tables["retailer.members"].group_by("segment").aggregate([("member_id", "list")])
    return pa.table({"segment": out["segment"], "members": out["member_id_list"]})
''', "shape: output column members is BIGINT[]"),
    "leaks_emails_under_another_name": ('''
import pyarrow as pa
GROUP_BY = ["segment"]
def analysis(tables):
    return pa.table({"segment": ["a", "b", "c"], "contact": ["m0@example.org", "m1@example.org", "m2@example.org"]})
''', "personal data: output column contact holds values that look like email"),
    "returns_too_many_rows": ('''
import pyarrow as pa
GROUP_BY = []
def analysis(tables):
    return pa.table({"x": list(range(50))})
''', "size: the output has 50 rows; the agreement allows at most 40"),
}


@pytest.fixture(scope="module")
def hostile_store(tmp_path_factory):
    folder = tmp_path_factory.mktemp("code-hostile")
    with pytest.MonkeyPatch.context() as mp:
        home = folder / "home"
        url = store_database_url(home)
        url = url if url.startswith("postgresql") else None
        c = Cli(home, url, mp)
        c("init")
        agreement = _setup(c, folder, cpu_seconds=2, wall_seconds=4, memory_mb=256, max_output_rows=40)
        store_file = next((home / "data").rglob("*.parquet"))
        yield c, folder, agreement, store_file, url


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_analysis_is_contained_and_its_output_withheld(hostile_store, name, monkeypatch):
    cli, folder, agreement, store_file, url = hostile_store
    monkeypatch.setenv("COMMONGROUND_HOME", str(cli.home))
    if url:  # the module's store, not the per-test database PostgreSQL-everywhere mode would point at
        monkeypatch.setenv("COMMONGROUND_DATABASE_URL", url)
    else:
        monkeypatch.delenv("COMMONGROUND_DATABASE_URL", raising=False)
    source, reason = HOSTILE[name]
    sid = _submit(cli, folder, agreement, source.replace("{store}", str(store_file)), name)["id"]
    cli("code", "approve", sid, "--as", "retailer", "--reason", "testing containment", "--json")
    code, ran, _ = cli("code", "run", sid, "--as", "brand", "--json", expect=None)
    assert ran["status"] in ("failed", "refused") and not ran["checks"]["passed"]
    assert code == {"failed": 1, "refused": 3}[ran["status"]]  # scripts stop here; the run is still shown
    assert any(r.startswith(reason) for r in ran["checks"]["reasons"]), ran["checks"]["reasons"]
    assert ran["output_sha256"] is None and "result" not in ran
    for party in ("retailer", "brand"):
        assert "result" not in cli("code", "get", ran["id"], "--as", party, "--json")[1]
    cli("code", "release", ran["id"], "--as", "retailer", "--json", expect=2)  # nothing held, nothing to release
    assert not (cli.home / "tmp" / f"code-{ran['id']}").exists()  # the scratch directory is gone


def test_the_sdk_and_api_run_the_same_journey(make_deps, tmp_path):
    """The HTTP API through the SDK: the same services, the same 404s and refusals."""
    from fastapi.testclient import TestClient

    from commonground.api.app import create_app
    from commonground.client import ApiError, Client
    from commonground.services import agreements as agreement_svc
    from commonground.services import datasets as dataset_svc
    from commonground.services import parties as party_svc

    deps = make_deps()
    for name in ("retailer", "brand", "outsider"):
        party_svc.add_party(deps, name)
    data, _ = _write_members(tmp_path / "in")
    dataset_svc.add_dataset(deps, "retailer", "members", data, SCHEMA)
    made = agreement_svc.propose(deps, "retailer", _agreement())
    agreement_svc.accept(deps, "brand", made.id)
    app = create_app(deps)
    retailer, brand, outsider = (Client(token=party_svc.create_token(deps, n)[1], http=TestClient(app))
                                 for n in ("retailer", "brand", "outsider"))
    submitted = brand.submit_code(HAPPY, PURPOSE, [made.id], "spend by segment")
    assert submitted["status"] == "pending"
    with pytest.raises(ApiError) as refused:
        brand.run_code(submitted["id"])
    assert refused.value.status == 403 and "waiting for retailer" in refused.value.body["reasons"][0]
    with pytest.raises(ApiError) as missing:
        outsider.review_code(submitted["id"])
    assert missing.value.status == 404
    assert retailer.review_code(submitted["id"])["source"] == HAPPY
    retailer.approve_code(submitted["id"], "aggregates only")
    ran = brand.run_code(submitted["id"])
    assert ran["status"] == "held" and "result" not in brand.code(ran["id"])
    assert retailer.release_code(ran["id"])["status"] == "released"
    assert len(brand.code(ran["id"])["result"]["rows"]) == 3
    second = brand.submit_code(HAPPY + "#\n", PURPOSE, [made.id], "again", previous=submitted["id"])
    assert retailer.reject_code(second["id"], "no more")["status"] == "rejected"


def test_every_provider_of_the_data_read_reviews_and_releases(cli, tmp_path):
    retailer_agreement = _setup(cli, tmp_path)
    cli("party", "add", "insurer")
    data, schema = _write_members(tmp_path / "insurer")
    cli("dataset", "add", "--as", "insurer", "holders", data, "--schema", schema)
    doc = _agreement()
    doc.update(name="holder-models", provider="insurer",
               datasets={"insurer.holders": doc["datasets"]["retailer.members"]})
    insurer_agreement = cli("agreement", "propose", "--as", "insurer", write_yaml(tmp_path / "i.yaml", doc), "--json")[1]["id"]
    cli("agreement", "accept", "--as", "brand", insurer_agreement)
    both = HAPPY.replace('t = tables["retailer.members"]',
                         't = tables["retailer.members"]\n    assert tables["insurer.holders"].num_rows == 121')
    path = tmp_path / "both.py"
    path.write_text(both)
    sid = cli("code", "submit", path, "--as", "brand", "--purpose", PURPOSE, "--agreement", retailer_agreement,
              "--agreement", insurer_agreement, "--title", "both", "--json")[1]["id"]
    assert cli("code", "approve", sid, "--as", "retailer", "--reason", "ok", "--json")[1]["status"] == "pending"
    assert cli("code", "approve", sid, "--as", "insurer", "--reason", "ok", "--json")[1]["status"] == "approved"
    ran = cli("code", "run", sid, "--as", "brand", "--json")[1]
    assert ran["status"] == "held" and ran["waiting_for"] == ["insurer", "retailer"], ran["checks"]
    assert cli("code", "release", ran["id"], "--as", "retailer", "--json")[1]["status"] == "held"
    assert "result" not in cli("code", "get", ran["id"], "--as", "brand", "--json")[1]
    cli("code", "release", ran["id"], "--as", "retailer", "--json", expect=2)  # once each
    assert cli("code", "release", ran["id"], "--as", "insurer", "--json")[1]["status"] == "released"
    assert len(cli("code", "get", ran["id"], "--as", "brand", "--json")[1]["result"]["rows"]) == 3


def test_the_analysis_sees_the_consent_gated_view(cli, tmp_path):
    agreement = _setup(cli, tmp_path, consent="opt_out", auto_release=["checks_passed"])
    for member in (100_000, 100_003):  # both in segment a
        cli("consent", "withdraw", "--as", "retailer", "--dataset", "retailer.members", "--subject", str(member),
            "--purpose", PURPOSE)
    sid = _submit(cli, tmp_path, agreement, HAPPY)["id"]
    cli("code", "approve", sid, "--as", "retailer", "--reason", "ok")
    ran = cli("code", "run", sid, "--as", "brand", "--json")[1]
    people = {row[0]: row[1] for row in ran["result"]["rows"]}
    assert people == {"a": 19, "b": 20, "c": 20}  # 21 in segment a, less the two who withdrew
