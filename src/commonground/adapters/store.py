"""The concrete metadata store: transactions and ledger (SqlStore) plus records (Repository)."""

from __future__ import annotations

from .repository import Repository
from .sql_store import SqlStore


class Store(SqlStore, Repository):
    pass
