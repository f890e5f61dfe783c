"""Tampering with the stored ledger rows is detected, on SQLite and PostgreSQL; crashes leave nothing."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import sqlalchemy as sa

from commonground import bootstrap
from commonground.adapters import tables as t
from commonground.domain.merkle import leaf_hash
from commonground.services import audit as audit_svc
from commonground.services import parties as party_svc


@pytest.fixture
def ledger(make_deps):
    deps = make_deps()
    for i in range(12):
        party_svc.add_party(deps, f"party{i}")
        audit_svc.signed_head(deps)  # heads are signed as the log grows (the API does it per response)
    assert audit_svc.verify(deps).ok
    return deps


def _fresh(deps):
    """A verifier with no in-process memory of the log: what `audit verify` in a new process sees."""
    deps.caches.clear()
    return audit_svc.verify(deps)


def _set_entry(deps, idx: int, entry: str, fix_hash: bool) -> None:
    values = {"entry": entry}
    if fix_hash:
        values["leaf_hash"] = leaf_hash(entry.encode())
    with deps.store.engine.begin() as conn:
        conn.execute(t.ledger_entries.update().where(t.ledger_entries.c.idx == idx).values(**values))


def _entry(deps, idx: int) -> str:
    with deps.store.engine.connect() as conn:
        return conn.execute(sa.select(t.ledger_entries.c.entry).where(t.ledger_entries.c.idx == idx)).scalar_one()


def test_modified_entry(ledger):
    _set_entry(ledger, 4, _entry(ledger, 4).replace("party4", "partyX"), fix_hash=False)
    report = _fresh(ledger)
    assert not report.ok and report.first_bad_index == 4 and "modified" in report.problem


def test_modified_entry_with_recomputed_hash(ledger):
    _set_entry(ledger, 4, _entry(ledger, 4).replace("party4", "partyX"), fix_hash=True)
    report = _fresh(ledger)
    assert not report.ok and "signed tree head" in report.problem
    assert report.first_bad_index is not None and report.first_bad_index <= 4


def test_deleted_entry(ledger):
    with ledger.store.engine.begin() as conn:
        conn.execute(t.ledger_entries.delete().where(t.ledger_entries.c.idx == 6))
    report = _fresh(ledger)
    assert not report.ok and report.first_bad_index == 6


def test_inserted_entry(ledger):
    with ledger.store.engine.begin() as conn:
        rows = conn.execute(sa.select(t.ledger_entries).where(t.ledger_entries.c.idx >= 5).order_by(t.ledger_entries.c.idx.desc())).all()
        for r in rows:  # shift the tail up by one, rewriting each entry's own index consistently
            entry = r.entry.replace(f'"index":{r.idx}', f'"index":{r.idx + 1}')
            conn.execute(t.ledger_entries.update().where(t.ledger_entries.c.idx == r.idx)
                         .values(idx=r.idx + 1, entry=entry, leaf_hash=leaf_hash(entry.encode())))
        forged = '{"at":"2026-01-01","event":"party.added","index":5,"kind":"organization","party":"ghost"}'
        conn.execute(t.ledger_entries.insert().values(idx=5, entry=forged, leaf_hash=leaf_hash(forged.encode())))
    report = _fresh(ledger)
    assert not report.ok and "signed tree head" in report.problem


def test_reordered_entries(ledger):
    a, b = _entry(ledger, 3), _entry(ledger, 7)
    _set_entry(ledger, 3, b, fix_hash=True)
    _set_entry(ledger, 7, a, fix_hash=True)
    report = _fresh(ledger)
    assert not report.ok and report.first_bad_index == 3 and "reordered" in report.problem


def test_truncated_log(ledger):
    with ledger.store.engine.begin() as conn:
        conn.execute(t.ledger_entries.delete().where(t.ledger_entries.c.idx >= 10))
    report = _fresh(ledger)
    assert not report.ok and "truncated" in report.problem


def test_forged_tree_head_signature(ledger):
    with ledger.store.engine.begin() as conn:
        conn.execute(t.tree_heads.update().where(t.tree_heads.c.tree_size == 5).values(signature=b"\x00" * 64))
    report = _fresh(ledger)
    assert not report.ok and "bad signature" in report.problem


def test_offline_proof_roundtrip_and_rejection(ledger):
    bundle = audit_svc.inclusion(ledger, 3)
    key = ledger.signer.public_key_pem()
    audit_svc.verify_proof_offline(bundle, key)
    with pytest.raises(ValueError):
        audit_svc.verify_proof_offline({**bundle, "entry": bundle["entry"].replace("party3", "partyZ")}, key)


def test_crash_between_change_and_commit_leaves_neither(tmp_path):
    """A process killed inside the unit of work leaves no party and no ledger entry."""
    home = tmp_path / "home"
    deps = bootstrap.build(bootstrap.Settings.from_env(home))
    bootstrap.init_store(deps)
    script = textwrap.dedent(f"""
        import os
        from commonground import bootstrap
        from commonground.domain.records import Party
        deps = bootstrap.build(bootstrap.Settings.from_env({str(home)!r}))
        with deps.store.transaction() as conn:
            party = Party("p1", "doomed", "organization", deps.now())
            deps.store.insert_party(conn, party)
            deps.store.append_entry(conn, {{"event": "party.added", "party": "doomed"}})
            os._exit(9)  # killed before commit
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert result.returncode == 9
    assert party_svc.list_parties(deps) == []
    assert audit_svc.log(deps) == []
    assert audit_svc.verify(deps).ok


def test_tampered_entry_no_longer_proves_against_the_signed_head(ledger):
    """Heads grow from the stored frontier, so a rewritten entry fails its inclusion proof."""
    _set_entry(ledger, 4, _entry(ledger, 4).replace("party4", "partyX"), fix_hash=True)
    party_svc.add_party(ledger, "later")
    ledger.caches.clear()
    bundle = audit_svc.inclusion(ledger, 4)
    with pytest.raises(ValueError):
        audit_svc.verify_proof_offline(bundle, ledger.signer.public_key_pem())


def test_signing_a_head_reads_only_new_entries(ledger, monkeypatch):
    seen = []
    original = ledger.store.leaf_hashes_from
    monkeypatch.setattr(ledger.store, "leaf_hashes_from", lambda conn, start: seen.append(start) or original(conn, start))
    party_svc.add_party(ledger, "newcomer")
    ledger.caches.clear()
    head = audit_svc.signed_head(ledger)
    assert seen == [12] and head.tree_size == 13
    assert audit_svc.verify(ledger).ok
