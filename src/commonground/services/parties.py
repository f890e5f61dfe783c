"""Parties and their API tokens."""

from __future__ import annotations

import datetime as dt

from ..domain.errors import BadInput, Conflict, Forbidden, NotFound, Unauthenticated
from ..domain.names import check_name
from ..domain.records import Party, PartyKind, TokenRecord, TokenScope
from .deps import Deps
from .tokens import token_digest


def add_party(deps: Deps, name: str, kind: str = "organization") -> Party:
    check_party_name(name)
    try:
        kind = PartyKind(kind).value
    except ValueError:
        raise BadInput(f"unknown party kind {kind!r} (use organization or individual)") from None
    with deps.store.transaction() as conn:
        if deps.store.party_by_name(conn, name):
            raise Conflict(f"party {name!r} already exists")
        return new_party(deps, conn, name, kind)


def check_party_name(name: str) -> None:
    check_name("party", name)


def new_party(deps: Deps, conn, name: str, kind: str) -> Party:
    """Insert a party and its ledger entry inside the caller's transaction."""
    party = Party(deps.new_id(), name, kind, deps.now())
    deps.store.insert_party(conn, party)
    deps.store.append_entry(conn, {"event": "party.added", "party": ledger_name(party), "kind": kind,
                                   "at": party.created_at})
    return party


def ledger_name(party: Party) -> str:
    """How ledger entries name a party. Every party may read every entry (docs/threat-model.md), so
    a person appears as `person:<party id>`, an opaque id, never by the name they chose, which is
    personal data; organisations appear by name. A person's own pages resolve the id for them."""
    return f"person:{party.id}" if party.kind == PartyKind.INDIVIDUAL.value else party.name


def ledger_name_of(deps: Deps, conn, name: str) -> str:
    """`ledger_name` of the party called `name` (BadInput if there is none)."""
    return ledger_name(require_party(deps, conn, name))


def list_parties(deps: Deps) -> list[Party]:
    with deps.store.read() as conn:
        return deps.store.parties(conn)


def require_party(deps: Deps, conn, name: str) -> Party:
    party = deps.store.party_by_name(conn, name)
    if party is None:
        raise BadInput(f"unknown party {name!r}")
    return party


def create_token(deps: Deps, party_name: str, ttl_days: int | None = None,
                 scope: str = TokenScope.ADMIN.value) -> tuple[TokenRecord, str]:
    """A new bearer token: 256 random bits, shown once, stored only as its SHA-256."""
    if ttl_days is not None and ttl_days <= 0:
        raise BadInput("--ttl-days must be positive")
    try:
        token_scope = TokenScope(scope)
    except ValueError:
        raise BadInput(f"unknown token scope {scope!r} (use read, query or admin)") from None
    secret = deps.new_secret()
    with deps.store.transaction() as conn:
        record = issue_token(deps, conn, require_party(deps, conn, party_name), secret, ttl_days, token_scope)
    return record, secret


def issue_token(deps: Deps, conn, party: Party, secret: str, ttl_days: int | None,
                scope: TokenScope = TokenScope.ADMIN) -> TokenRecord:
    now = deps.now()
    expires = now + dt.timedelta(days=ttl_days) if ttl_days else None
    record = TokenRecord(deps.new_id(), party.id, now, expires, scope=scope)
    deps.store.insert_token(conn, record, token_digest(secret))
    deps.store.append_entry(conn, {"event": "token.created", "party": ledger_name(party), "token_id": record.id,
                                   "scope": scope.value, "expires_at": expires, "at": now})
    return record


def revoke_token(deps: Deps, party_name: str, token_id: str) -> None:
    now = deps.now()
    with deps.store.transaction() as conn:
        party = require_party(deps, conn, party_name)
        if not deps.store.revoke_token(conn, token_id, party.id, now):
            raise NotFound(f"no active token {token_id} for {party_name}")
        deps.store.append_entry(conn, {"event": "token.revoked", "party": ledger_name(party), "token_id": token_id,
                                       "at": now})


def list_tokens(deps: Deps, party_name: str) -> list[TokenRecord]:
    with deps.store.read() as conn:
        party = require_party(deps, conn, party_name)
        return deps.store.tokens_of(conn, party.id)


def authenticate(deps: Deps, secret: str | None, needs: TokenScope = TokenScope.READ) -> Party:
    """The party behind a bearer token; the same error whatever is wrong with it. A valid
    token whose scope does not cover `needs` is Forbidden (it is not a sign-in failure)."""
    if not secret:
        raise Unauthenticated("missing bearer token")
    with deps.store.read() as conn:
        found = deps.store.token_by_digest(conn, token_digest(secret))
        if found is None or not found[0].usable(deps.now()):
            raise Unauthenticated("invalid, expired or revoked token")
        party = deps.store.party_by_name(conn, found[1])
    assert party is not None
    if not found[0].scope.allows(needs):
        raise Forbidden(f"this token has scope {found[0].scope.value}; this call needs {needs.value} "
                        "(create one with `token create --scope`)")
    return party
