"""What every use case is given by the composition root (bootstrap.py)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol

from ..ports import Clock, QueryEngine


class Store(Protocol):
    """The metadata store: transactions, the ledger, and the record reads/writes."""

    def transaction(self) -> Any: ...
    def read(self) -> Any: ...
    def append_entry(self, conn: Any, entry: dict[str, Any]) -> int: ...
    def __getattr__(self, name: str) -> Any: ...


class Ingest(Protocol):
    def ingest(self, source: Path, schema: Any, dest: Path, progress: Callable[[float], None] | None = None) -> Any: ...
    def sweep(self, referenced: set[Path]) -> list[Path]: ...


class SubjectData(Protocol):
    """The store's own reads and rewrites of named subjects' rows (access, offers, erasure)."""

    def rows(self, path: Path, subject_column: str, subjects: list[str], columns: list[str] | None = None,
             limit_per_subject: int = 1000) -> dict[str, list[dict[str, Any]]]: ...
    def holds(self, files: list[tuple[Path, str]], subject: str) -> list[bool]: ...
    def without(self, path: Path, subject_column: str, subject: str, dest: Path, schema: Any) -> Any: ...
    def purge(self, path: Path, subject_column: str | None) -> None: ...


class Signer(Protocol):
    def sign(self, data: bytes) -> bytes: ...
    def public_key_pem(self) -> bytes: ...


@dataclass
class Deps:
    home: Path
    store: Store
    clock: Clock
    ingest: Ingest
    engine: QueryEngine
    subject_data: SubjectData
    signer: Signer
    new_id: Callable[[], str]
    new_secret: Callable[[], str]
    caches: dict[str, Any] = field(default_factory=dict)

    def now(self) -> dt.datetime:
        return self.clock.now()
