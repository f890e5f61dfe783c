"""Threads: a person comments on or disputes one of their receipts or offers; the company that
holds the data answers in the same thread.

A thread is between the person and the controller of the data the receipt or offer was made
from; anyone else gets a 404. The person's receipts are the proof of standing: a thread can be
opened only about a receipt (by its ledger index) or an offer the person actually has. The
ledger records that a thread was opened, written in or closed, by whom; never the text and
never which computation it is about (that would tie the person to it for every ledger reader).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..domain.conversations import ThreadAbout, ThreadKind, ThreadStatus, check_message, status_after_message
from ..domain.errors import BadInput, NotFound
from ..domain.records import Party, PartyKind
from .deps import Deps
from .parties import ledger_name, require_party
from .subjects import receipts, require_individual

_PAGE = 1000


def _receipt(deps: Deps, individual: str, about: ThreadAbout, ref: str) -> dict[str, Any]:
    """The person's receipt behind `ref` (a ledger index, or an offer id), paging back through all of them."""
    before: dt.datetime | None = None
    while True:
        page = receipts(deps, individual, before, _PAGE)
        for r in page:
            if (about is ThreadAbout.OFFER and r.get("offer") == ref) or (
                    about is ThreadAbout.RECEIPT and str(r["ledger_index"]) == ref and "offer" not in r):
                return r
        if len(page) < _PAGE:
            raise NotFound(f"no {about.value} {ref} of yours")
        before = dt.datetime.fromisoformat(page[-1]["at"])


def open_thread(deps: Deps, individual: str, about: str, ref: str, kind: str, message: str) -> dict[str, Any]:
    """Open a comment or dispute about one of the person's receipts or offers, with its first message."""
    try:
        about_kind, thread_kind = ThreadAbout(about), ThreadKind(kind)
    except ValueError:
        raise BadInput("a thread is a comment or a dispute about a receipt or an offer") from None
    body = check_message(message)
    receipt = _receipt(deps, individual, about_kind, ref.strip())
    controller = receipt["dataset"].partition(".")[0]
    now = deps.now()
    thread_id = deps.new_id()
    with deps.store.transaction() as conn:
        party = require_individual(deps, conn, individual)
        addressee = require_party(deps, conn, controller)
        deps.store.insert_thread(conn, {"id": thread_id, "party_id": party.id, "controller_id": addressee.id,
                                        "about": about_kind.value, "ref": ref.strip(), "kind": thread_kind.value,
                                        "status": ThreadStatus.OPEN.value, "created_at": now, "updated_at": now})
        deps.store.add_thread_message(conn, thread_id, individual, body, ThreadStatus.OPEN.value, now)
        deps.store.append_entry(conn, {"event": "thread.opened", "party": ledger_name(party), "thread": thread_id,
                                       "controller": controller, "about": about_kind.value,
                                       "kind": thread_kind.value, "at": now})
    return show_thread(deps, individual, thread_id)


def _thread(deps: Deps, conn, party: Party, thread_id: str) -> dict[str, Any]:
    """The thread, to its person or its controller; 404 to anyone else."""
    found = deps.store.threads(conn, thread_id=thread_id)
    if not found or party.id not in (found[0]["party_id"], found[0]["controller_id"]):
        raise NotFound(f"no thread {thread_id}")
    return found[0]


def reply(deps: Deps, party_name: str, thread_id: str, message: str) -> dict[str, Any]:
    """Write in a thread: the company's message answers it, the person's reopens it."""
    body = check_message(message)
    now = deps.now()
    with deps.store.transaction() as conn:
        party = require_party(deps, conn, party_name)
        thread = _thread(deps, conn, party, thread_id)
        by_person = party.id == thread["party_id"]
        status = status_after_message(ThreadStatus(thread["status"]), by_person)
        deps.store.add_thread_message(conn, thread_id, party_name, body, status.value, now)
        deps.store.append_entry(conn, {"event": "thread.message", "party": ledger_name(party), "thread": thread_id,
                                       "status": status.value, "at": now})
    return show_thread(deps, party_name, thread_id)


def close(deps: Deps, party_name: str, thread_id: str) -> dict[str, Any]:
    """Either side closes a thread; a closed thread takes no more messages."""
    now = deps.now()
    with deps.store.transaction() as conn:
        party = require_party(deps, conn, party_name)
        thread = _thread(deps, conn, party, thread_id)
        if thread["status"] == ThreadStatus.CLOSED.value:
            raise BadInput("this thread is already closed")
        deps.store.set_thread_status(conn, thread_id, ThreadStatus.CLOSED.value, now)
        deps.store.append_entry(conn, {"event": "thread.closed", "party": ledger_name(party), "thread": thread_id, "at": now})
    return show_thread(deps, party_name, thread_id)


def _shown(thread: dict[str, Any], messages: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    out = {k: v for k, v in thread.items() if not k.endswith("_id")}
    out.update(created_at=thread["created_at"].isoformat(), updated_at=thread["updated_at"].isoformat())
    if messages is not None:
        out["messages"] = messages
    return out


def show_thread(deps: Deps, party_name: str, thread_id: str) -> dict[str, Any]:
    with deps.store.read() as conn:
        party = require_party(deps, conn, party_name)
        thread = _thread(deps, conn, party, thread_id)
        return _shown(thread, deps.store.thread_messages(conn, thread_id))


def list_threads(deps: Deps, party_name: str, open_only: bool = False) -> list[dict[str, Any]]:
    """A person's threads, or the threads addressed to an organisation; newest activity first."""
    with deps.store.read() as conn:
        party = require_party(deps, conn, party_name)
        key = "party_id" if party.kind == PartyKind.INDIVIDUAL.value else "controller_id"
        found = deps.store.threads(conn, **{key: party.id})
    return [_shown(t) for t in found if not open_only or t["status"] == ThreadStatus.OPEN.value]
