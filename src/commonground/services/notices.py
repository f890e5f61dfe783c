"""Notices: what a party is told when something it is part of changes without its doing.

A notice is written in the same transaction as the change and its ledger entry, and points at
that entry, so what a party was told can be checked against the log. Only the party it is
addressed to reads it.
"""

from __future__ import annotations

from typing import Any, Iterable

from .deps import Deps
from .parties import require_party

MAX_NOTICES = 500


def notify(deps: Deps, conn: Any, parties: Iterable[str], kind: str, subject: str, message: str,
           ledger_index: int) -> None:
    """Tell each party (once) about `subject` (an agreement or request id), inside the caller's transaction."""
    for party in sorted(set(parties)):
        deps.store.insert_notice(conn, deps.new_id(), party, kind, subject, message, ledger_index, deps.now())


def list_notices(deps: Deps, party: str, limit: int = 100) -> list[dict[str, Any]]:
    """The party's own notices, newest first."""
    with deps.store.read() as conn:
        require_party(deps, conn, party)
        return deps.store.notices(conn, party, max(1, min(limit, MAX_NOTICES)))
