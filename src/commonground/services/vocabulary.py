"""The store's vocabulary: Fideslang's, extended with entries the store's parties add."""

from __future__ import annotations

import re

from ..domain.errors import BadInput, Conflict
from ..domain.vocabulary import Kind, Vocabulary, fideslang_vocabulary
from .deps import Deps

_NAME = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)*$")


def vocabulary(deps: Deps, conn=None) -> Vocabulary:
    if conn is None:
        with deps.store.read() as conn:
            return vocabulary(deps, conn)
    return fideslang_vocabulary().with_entries((k, n) for k, n, _ in deps.store.vocabulary_entries(conn))


def add_entry(deps: Deps, actor: str, kind: str, name: str, description: str = "") -> None:
    try:
        parsed = Kind(kind)
    except ValueError:
        raise BadInput(f"unknown vocabulary kind {kind!r} (use purpose, category or subject)") from None
    if not _NAME.match(name):
        raise BadInput(f"{kind} names are dotted lower-case paths like analytics.reporting, not {name!r}")
    with deps.store.transaction() as conn:
        if name in vocabulary(deps, conn).names(parsed):
            raise Conflict(f"{kind} {name!r} is already in the vocabulary")
        deps.store.insert_vocabulary_entry(conn, parsed.value, name, description, deps.now())
        deps.store.append_entry(conn, {"event": "vocabulary.added", "party": actor, "kind": parsed.value,
                                       "name": name, "at": deps.now()})


def entries(deps: Deps, kind: str | None = None) -> list[dict[str, str]]:
    vocab = vocabulary(deps)
    with deps.store.read() as conn:
        own = {(k, n) for k, n, _ in deps.store.vocabulary_entries(conn)}
    kinds = [Kind(kind)] if kind else list(Kind)
    return [{"kind": k.value, "name": n, "source": "store" if (k.value, n) in own else "fideslang"}
            for k in kinds for n in sorted(vocab.names(k))]
