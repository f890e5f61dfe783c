"""Receipts select exactly the computations a person's consent let them into (property test).

The reference replays the consent records at each computation's moment: the latest record for
the computation's purpose at or before it decides (opt-in: granted admits; opt-out: withdrawn
excludes; no record: opt-out admits, opt-in does not); purposes the dataset does not gate
always admit. The store's receipt query (consent windows turned into SQL) must agree.
"""

from __future__ import annotations

import datetime as dt
import itertools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from commonground import bootstrap
from commonground.domain.records import Party, ReceiptScope
from commonground.services.subjects import _windows

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc)
PURPOSES = ["p.one", "p.two", "p.three"]
_ids = itertools.count()


@pytest.fixture(scope="module")
def store(tmp_path_factory, store_database):
    home = tmp_path_factory.mktemp("receipts") / "home"
    settings_ = bootstrap.Settings(home, store_database(home))
    deps = bootstrap.build(settings_)
    bootstrap.init_store(deps)
    with deps.store.transaction() as conn:
        deps.store.insert_party(conn, Party("owner", "owner", "organization", T0))
    yield deps.store
    deps.store.dispose()


records = st.lists(st.tuples(st.integers(0, 50), st.sampled_from(PURPOSES), st.sampled_from(["granted", "withdrawn"])),
                   max_size=8)
computations = st.lists(st.tuples(st.integers(0, 52), st.sampled_from(PURPOSES), st.integers(1, 2)), min_size=1, max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=records, computations=computations, opt_in=st.booleans(), gate_all=st.booleans(),
       versions=st.sampled_from([(1,), (2,), (1, 2)]))
def test_receipts_match_a_replay_of_consent(store, records, computations, opt_in, gate_all, versions):
    dataset_id = f"d{next(_ids)}"
    with store.transaction() as conn:
        store.insert_dataset(conn, dataset_id, "owner", dataset_id, T0)
        store.insert_computations(conn, [
            {"ledger_index": i, "kind": "query", "party": "p", "purpose": purpose, "agreements_json": "[]",
             "dataset_id": dataset_id, "version": version, "fields_json": "[]", "at": T0 + dt.timedelta(hours=hour)}
            for i, (hour, purpose, version) in enumerate(computations)])
    # Records in time order (as seq order is), one per moment and purpose.
    history = [{"purpose": p, "status": s, "recorded_at": (T0 + dt.timedelta(hours=h)).isoformat()}
               for h, p, s in sorted(records, key=lambda r: r[0])]
    gated = None if gate_all else ("p.one", "p.two")
    scope = ReceiptScope(dataset_id, "owner.x", versions, gated, tuple(sorted({h["purpose"] for h in history})),
                         tuple(_windows(history, opt_in)), admitted_by_default=not opt_in)
    with store.read() as conn:
        got = sorted(r["ledger_index"] for r in store.receipts(conn, [scope], None, 1000))

    def admitted(hour: int, purpose: str) -> bool:
        if gated is not None and purpose not in gated:
            return True
        latest = None
        for h, p, s in sorted(records, key=lambda r: r[0]):
            if p == purpose and h <= hour:
                latest = s
        if latest is None:
            return not opt_in
        return latest == "granted"

    expected = sorted(i for i, (hour, purpose, version) in enumerate(computations)
                      if version in versions and admitted(hour, purpose))
    assert got == expected
