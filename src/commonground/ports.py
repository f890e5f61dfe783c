"""What the services need from the outside world, as Protocols. Adapters implement them."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Protocol, Sequence

from .policy.context import Plan


class Clock(Protocol):
    def now(self) -> dt.datetime: ...


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[list[Any]]
    suppressed_groups: int = 0
    exact_recount: bool = False
    elapsed_ms: float = 0.0


class QueryEngine(Protocol):
    def run(self, plan: Plan, sources: Mapping[str, Path], consent: Mapping[str, Sequence[str]] | None = None) -> QueryResult: ...


@dataclass(frozen=True)
class IngestedFile:
    """A dataset version written to its final place, with what ingest learned about it."""

    path: Path
    sha256: str
    rows: int
    bytes: int
    distinct_subjects: int | None
    max_rows_per_subject: int | None

