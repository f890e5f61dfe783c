"""The concrete metadata store: transactions and ledger (SqlStore) plus records (Repository,
SubjectRecords)."""

from __future__ import annotations

from .repository import Repository
from .sql_store import SqlStore
from .subject_records import SubjectRecords


class Store(SqlStore, Repository, SubjectRecords):
    pass
