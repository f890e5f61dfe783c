"""The released-groups history reads only candidates (adapters/privacy_records.py, migration
0012): groups whose row count falls in a window, and every group of unknown bound; on SQLite
and PostgreSQL."""

from __future__ import annotations

import datetime as dt

from commonground.adapters import tables as t
from commonground.adapters.store import Store

NOW = dt.datetime(2026, 11, 23, tzinfo=dt.timezone.utc)


def test_candidates_are_the_groups_in_the_windows_and_those_of_unknown_bound(tmp_path, database_url):
    store = Store(database_url or f"sqlite:///{tmp_path / 'm.db'}")
    try:
        store.migrate()
        with store.transaction() as conn:
            conn.execute(t.parties.insert().values(id="p1", name="retailer", kind="organisation", created_at=NOW))
            conn.execute(t.agreements.insert().values(id="a1", name="x", version=1, provider_id="p1", terms_json="{}",
                                                      status="active", hash_key=b"k" * 32, created_at=NOW))
            groups = [(bytes([rows % 256]), rows, 3) for rows in (10, 50, 55, 60, 200)] + [(b"u", 999, None)]
            store.insert_released_sketches(conn, ["a1"], "brand", groups, 7, NOW)
            store.insert_released_sketches(conn, ["a1"], "other", [(b"o", 55, 9)], 8, NOW)
        with store.read() as conn:
            assert store.released_bound(conn, ["a1"], "brand") == 3
            assert store.released_bound(conn, ["a1"], "nobody") is None
            found = store.released_sketches(conn, ["a1"], "brand", [(48, 56), (54, 61), (190, 199)])
            assert sorted(s for _, s, _ in found) == [bytes([50]), bytes([55]), bytes([60]), b"u"]
            assert {(i, b) for i, _, b in found} == {(7, 3), (7, None)}
            assert len(store.released_sketches(conn, ["a1"], "brand")) == 6  # no windows: everything
    finally:
        store.dispose()
