"""The concrete metadata store: transactions and ledger (SqlStore) plus records (Repository,
SubjectRecords, MarketRecords, ConversationRecords, CodeRecords)."""

from __future__ import annotations

from .code_records import CodeRecords
from .conversation_records import ConversationRecords
from .market_records import MarketRecords
from .privacy_records import PrivacyRecords
from .repository import Repository
from .sql_store import SqlStore
from .subject_records import SubjectRecords


class Store(SqlStore, Repository, SubjectRecords, MarketRecords, ConversationRecords, CodeRecords,
            PrivacyRecords):
    pass
