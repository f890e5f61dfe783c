"""Reads and writes of released-group sketches and privacy-budget spending, in the caller's
transaction (which, being a write transaction, holds the ledger lock: check-then-spend is atomic)."""

from __future__ import annotations

import datetime as dt
from typing import Sequence

import sqlalchemy as sa

from . import tables as t

MICRO = 1_000_000
PICO = 1_000_000_000_000


class PrivacyRecords:
    def released_sketches(self, conn: sa.Connection, agreement_ids: Sequence[str], recipient: str
                          ) -> list[tuple[int, bytes]]:
        """(ledger index, sketch) of every group released to `recipient` under these agreements."""
        g = t.released_groups
        rows = conn.execute(sa.select(g.c.ledger_index, g.c.sketch)
                            .where(g.c.agreement_id.in_(list(agreement_ids)), g.c.recipient == recipient)
                            .order_by(g.c.id))
        return [(int(i), bytes(s)) for i, s in rows]

    def insert_released_sketches(self, conn: sa.Connection, agreement_ids: Sequence[str], recipient: str,
                                 sketches: Sequence[bytes], ledger_index: int, at: dt.datetime) -> None:
        rows = [{"agreement_id": a, "recipient": recipient, "ledger_index": ledger_index, "sketch": s, "at": at}
                for a in agreement_ids for s in sketches]
        if rows:
            conn.execute(t.released_groups.insert(), rows)

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
