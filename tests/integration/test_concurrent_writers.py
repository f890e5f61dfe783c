"""Several worker processes writing to one store at once lose no update.

Each worker builds its own dependencies from the store's settings, as each API worker process
does, and at the same moment (a barrier) starts recording consents, proposing and accepting
agreements, adding parties and signing tree heads. Every worker also races the others to
accept the same contested agreements: exactly one accept each may win. Afterwards the ledger
verifies, holds exactly the entries the workers' successful calls wrote, agreement versions
are distinct and one version of the re-proposed agreement is in force. Runs on SQLite and on
PostgreSQL (the database_url fixture; PostgreSQL only in PostgreSQL-everywhere mode).
"""

from __future__ import annotations

import collections
import multiprocessing
import os
import sys
import traceback
from pathlib import Path

import pytest
import yaml

from .data import PURCHASES_SCHEMA, agreement, write_purchases

WORKERS = 3
ROUNDS = 6
CONTESTED = 4
PURPOSE = "analytics.reporting"


def _settings(home: str, url: str):
    from commonground import bootstrap
    return bootstrap.Settings(Path(home), url)


def _worker(home: str, url: str, worker: int, contested: list[str], barrier, results) -> None:
    """One writer process: its own engine, pool and signer, like one API worker."""
    try:
        from commonground import bootstrap
        from commonground.domain.errors import Conflict
        from commonground.services import agreements as agreement_svc
        from commonground.services import audit as audit_svc
        from commonground.services import consent as consent_svc
        from commonground.services import parties as party_svc
        deps = bootstrap.build(_settings(home, url))
        done: collections.Counter[str] = collections.Counter()
        barrier.wait(timeout=120)
        for i in range(ROUNDS):
            consent_svc.record(deps, "retailer", "purchases",
                               [(f"W{worker}-{i}", PURPOSE, "granted"), (f"C{i:04d}", PURPOSE, "withdrawn")], "controller")
            done["consent"] += 1
            state = agreement_svc.propose(deps, "retailer", {**agreement(), "name": "deal"})
            done["proposed"] += 1
            agreement_svc.accept(deps, "brand", state.id)
            done["accepted"] += 1
            party_svc.add_party(deps, f"w{worker}p{i}")
            done["party"] += 1
            # The contested agreements: every worker tries each; exactly one accept may win.
            if i < len(contested):
                try:
                    agreement_svc.accept(deps, "brand", contested[i])
                    done["contested_won"] += 1
                except Conflict:
                    done["contested_lost"] += 1
            audit_svc.signed_head(deps)  # every API response signs (or reuses) a head
        deps.store.dispose()
        results.put((worker, dict(done), None))
    except BaseException:  # report it to the parent, which fails the test with it
        results.put((worker, None, traceback.format_exc()))


@pytest.fixture
def store(tmp_path, database_url):
    from commonground import bootstrap
    from commonground.services import agreements as agreement_svc
    from commonground.services import datasets as dataset_svc
    from commonground.services import parties as party_svc
    home = tmp_path / "home"
    url = database_url or f"sqlite:///{home / 'metadata.db'}"
    deps = bootstrap.build(_settings(str(home), url))
    bootstrap.init_store(deps)
    for name in ("retailer", "brand"):
        party_svc.add_party(deps, name)
    data, _ = write_purchases(tmp_path / "in")
    dataset_svc.add_dataset(deps, "retailer", "purchases", data,
                            {**PURCHASES_SCHEMA, "consent": "opt_in", "consent_purposes": [PURPOSE]})
    contested = [agreement_svc.propose(deps, "retailer", {**agreement(), "name": f"contested-{n}"}).id
                 for n in range(CONTESTED)]
    yield deps, home, url, contested
    deps.store.dispose()


def test_concurrent_worker_processes_lose_no_update(store):
    from commonground.domain.agreements import AgreementStatus
    from commonground.services import agreements as agreement_svc
    from commonground.services import audit as audit_svc
    from commonground.services import consent as consent_svc
    deps, home, url, contested = store
    with deps.store.read() as conn:
        before = deps.store.ledger_size(conn)
    ctx = multiprocessing.get_context("spawn")
    barrier, results = ctx.Barrier(WORKERS), ctx.Queue()
    env_path = os.pathsep.join(sys.path)
    procs = [ctx.Process(target=_worker, args=(str(home), url, w, contested, barrier, results)) for w in range(WORKERS)]
    old = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = env_path
    try:
        for p in procs:
            p.start()
        outcomes = [results.get(timeout=300) for _ in procs]
    finally:
        if old is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = old
        for p in procs:
            p.join(timeout=60)
    errors = [err for _, _, err in outcomes if err]
    assert not errors, "a worker failed:\n" + "\n".join(errors)
    done = collections.Counter()
    for _, counts, _ in outcomes:
        done.update(counts)
    assert done["consent"] == done["proposed"] == done["accepted"] == done["party"] == WORKERS * ROUNDS
    assert done["contested_won"] == CONTESTED and done["contested_lost"] == CONTESTED * (WORKERS - 1)

    # The ledger verifies and holds exactly what the successful calls wrote, in one contiguous run.
    report = audit_svc.verify(deps)
    assert report.ok, report
    entries = audit_svc.log(deps, start=before, limit=10_000)
    assert [e["index"] for e in entries] == list(range(before, before + len(entries)))
    events = collections.Counter(e["event"] for e in entries)
    assert events["consent.recorded"] == WORKERS * ROUNDS
    assert events["agreement.proposed"] == WORKERS * ROUNDS
    assert events["agreement.accepted"] == WORKERS * ROUNDS + CONTESTED
    assert events["party.added"] == WORKERS * ROUNDS
    # Each acceptance of a "deal" version supersedes the one in force before it, exactly once.
    assert events["agreement.superseded"] == WORKERS * ROUNDS - 1
    assert sum(events.values()) == len(entries)

    # Agreements: distinct versions, exactly one "deal" in force, each contested one active once.
    states = agreement_svc.list_agreements(deps, "retailer")
    deals = [s for s in states if s.terms.name == "deal"]
    assert sorted(s.version for s in deals) == list(range(1, WORKERS * ROUNDS + 1))
    assert [s.status for s in deals].count(AgreementStatus.ACTIVE) == 1
    assert all(s.status in (AgreementStatus.ACTIVE, AgreementStatus.SUPERSEDED) for s in deals)
    for agreement_id in contested:
        state = agreement_svc.show(deps, "retailer", agreement_id)
        assert state.status is AgreementStatus.ACTIVE and state.accepted_by == {"retailer", "brand"}
    accepted = collections.Counter(e["agreement"] for e in entries if e["event"] == "agreement.accepted")
    assert all(accepted[a] == 1 for a in contested)

    # Consents: every record is there, in a strict order of sequence numbers.
    history = consent_svc.history(deps, "retailer", "purchases")
    assert len(history) == 2 * WORKERS * ROUNDS
    mine = {h["subject"] for h in history if h["subject"].startswith("W")}
    assert mine == {f"W{w}-{i}" for w in range(WORKERS) for i in range(ROUNDS)}
    seqs = [h.get("seq") for h in history if h.get("seq") is not None]
    assert len(seqs) == len(set(seqs))


def test_schema_yaml_is_what_the_workers_use():
    """The workers' agreement matches the dataset they ingest (a guard on the fixture itself)."""
    fields = agreement()["datasets"]["retailer.purchases"]["fields"]
    assert set(fields) == set(PURCHASES_SCHEMA["columns"])
    assert yaml.safe_dump(PURCHASES_SCHEMA)
