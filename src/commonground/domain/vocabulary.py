"""Purposes, data categories and subject kinds: the Fideslang taxonomy plus a store's own entries.

Names are checked everywhere a person types one (schemas, agreements, queries) so a typo is
caught with a suggestion instead of silently matching nothing.
"""

from __future__ import annotations

import difflib
import functools
from dataclasses import dataclass
from enum import Enum
from typing import Iterable

from .errors import BadInput


class Kind(str, Enum):
    PURPOSE = "purpose"
    CATEGORY = "category"
    SUBJECT = "subject"


@dataclass(frozen=True)
class Vocabulary:
    purposes: frozenset[str]
    categories: frozenset[str]
    subjects: frozenset[str]

    def names(self, kind: Kind) -> frozenset[str]:
        return {Kind.PURPOSE: self.purposes, Kind.CATEGORY: self.categories, Kind.SUBJECT: self.subjects}[kind]

    def with_entries(self, entries: Iterable[tuple[str, str]]) -> "Vocabulary":
        extra: dict[Kind, set[str]] = {k: set() for k in Kind}
        for kind, name in entries:
            extra[Kind(kind)].add(name)
        return Vocabulary(self.purposes | extra[Kind.PURPOSE], self.categories | extra[Kind.CATEGORY],
                          self.subjects | extra[Kind.SUBJECT])

    def check(self, kind: Kind, name: str) -> str:
        known = self.names(kind)
        if name in known:
            return name
        close = difflib.get_close_matches(name, sorted(known), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; see `commonground vocabulary list --kind {kind.value}`"
        raise BadInput(f"unknown {kind.value} {name!r}{hint}")


@functools.lru_cache(maxsize=1)
def fideslang_vocabulary() -> Vocabulary:
    """Fideslang's default taxonomy, from its names vendored in `fideslang_taxonomy` (importing
    fideslang itself cost a CLI command ~0.26 s)."""
    from . import fideslang_taxonomy as taxonomy
    return Vocabulary(taxonomy.DATA_USES, taxonomy.DATA_CATEGORIES, taxonomy.DATA_SUBJECTS)
