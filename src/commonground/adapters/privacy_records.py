"""Reads and writes of released-group sketches and privacy-budget spending, in the caller's
transaction (which, being a write transaction, holds the ledger lock: check-then-spend is atomic)."""

from __future__ import annotations

import datetime as dt
from typing import Sequence

import sqlalchemy as sa

from . import tables as t

MICRO = 1_000_000
PICO = 1_000_000_000_000


def _merged(windows: Sequence[tuple[int, int]]) -> list[tuple[int, int]]:
    """Overlapping row-count windows as one range each, so each index range is read once."""
    merged: list[tuple[int, int]] = []
    for lo, hi in sorted(windows):
        if merged and lo <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


class PrivacyRecords:
    def released_bound(self, conn: sa.Connection, agreement_ids: Sequence[str], recipient: str) -> int | None:
        """The largest rows-per-person bound of the groups released to `recipient`: one index seek
        per agreement (ORDER BY ... LIMIT 1 on the index; SQLite scans the range for MAX(...) WHERE)."""
        g = t.released_groups
        bounds = [conn.execute(sa.select(g.c.row_bound).where(
                      g.c.agreement_id == agreement_id, g.c.recipient == recipient, g.c.row_bound.is_not(None))
                  .order_by(g.c.row_bound.desc()).limit(1)).scalar() for agreement_id in agreement_ids]
        return max((int(b) for b in bounds if b is not None), default=None)

    def released_sketches(self, conn: sa.Connection, agreement_ids: Sequence[str], recipient: str,
                          windows: Sequence[tuple[int, int]] | None = None) -> list[tuple[int, bytes, int | None]]:
        """(ledger index, sketch, rows-per-person bound) of the groups released to `recipient` under
        these agreements: all of them when `windows` is None, else those whose row count falls in
        one of the windows (an index range each) and those of unknown bound."""
        g = t.released_groups
        columns = (g.c.id, g.c.ledger_index, g.c.sketch, g.c.row_bound)
        mine = (g.c.agreement_id.in_(list(agreement_ids)), g.c.recipient == recipient)
        if windows is None:
            selects = [sa.select(*columns).where(*mine)]
        else:
            selects = [sa.select(*columns).where(*mine, g.c.row_bound.is_(None))]
            selects += [sa.select(*columns).where(*mine, g.c.sketch_rows.between(lo, hi)) for lo, hi in _merged(windows)]
        seen: dict[int, tuple[int, bytes, int | None]] = {}
        for select in selects:
            for row_id, index, sketch, bound in conn.execute(select):
                seen[int(row_id)] = (int(index), bytes(sketch), None if bound is None else int(bound))
        return [seen[i] for i in sorted(seen)]

    def insert_released_sketches(self, conn: sa.Connection, agreement_ids: Sequence[str], recipient: str,
                                 groups: Sequence[tuple[bytes, int, int | None]], ledger_index: int,
                                 at: dt.datetime) -> None:
        """`groups`: (sketch, rows, rows-per-person bound) per released group."""
        rows = [{"agreement_id": a, "recipient": recipient, "ledger_index": ledger_index, "sketch": s,
                 "sketch_rows": n, "row_bound": b, "at": at}
                for a in agreement_ids for s, n, b in groups]
        if rows:
            conn.execute(t.released_groups.insert(), rows)

    def released_result(self, conn: sa.Connection, recipient: str, fingerprint: str) -> int | None:
        """The ledger index of the first release of this fingerprint to `recipient`, if any."""
        r = t.released_results
        index = conn.execute(sa.select(sa.func.min(r.c.ledger_index)).where(
            r.c.recipient == recipient, r.c.fingerprint == fingerprint)).scalar()
        return None if index is None else int(index)

    def insert_released_result(self, conn: sa.Connection, recipient: str, fingerprint: str, ledger_index: int,
                               at: dt.datetime) -> None:
        conn.execute(t.released_results.insert().values(recipient=recipient, fingerprint=fingerprint,
                                                        ledger_index=ledger_index, at=at))

    def privacy_spent(self, conn: sa.Connection, agreement_id: str, recipient: str) -> tuple[float, float]:
        """(epsilon, delta) spent so far by `recipient` under the agreement."""
        s = t.privacy_spends
        eps, delta = conn.execute(sa.select(sa.func.coalesce(sa.func.sum(s.c.epsilon_micro), 0),
                                            sa.func.coalesce(sa.func.sum(s.c.delta_pico), 0))
                                  .where(s.c.agreement_id == agreement_id, s.c.recipient == recipient)).one()
        return int(eps) / MICRO, int(delta) / PICO

    def insert_privacy_spend(self, conn: sa.Connection, agreement_id: str, recipient: str, epsilon: float,
                             delta: float, ledger_index: int, at: dt.datetime) -> None:
        conn.execute(t.privacy_spends.insert().values(
            agreement_id=agreement_id, recipient=recipient, epsilon_micro=round(epsilon * MICRO),
            delta_pico=round(delta * PICO), ledger_index=ledger_index, at=at))
