"""`commonground subject ...` and `commonground offer ...`: individuals and the offers made to them.

Registered on the main app by cli/main.py; every command is a thin call into a service.
"""

from __future__ import annotations

import datetime as dt
import json as jsonlib
from pathlib import Path
from typing import Optional

import typer

from ..domain.errors import BadInput
from ..services import offers as offer_svc
from ..services import subjects as subject_svc
from .main import AsOpt, JsonOpt, _deps, app, command
from .output import emit, out, table

subject_app = typer.Typer(help="Individuals: claim codes, my data, my consents, receipts, erasure, corrections.",
                          no_args_is_help=True)
offer_app = typer.Typer(help="Per-subject offers: computed in the store, decided by each person.", no_args_is_help=True)
app.add_typer(subject_app, name="subject")
app.add_typer(offer_app, name="offer")


@command(subject_app, "invite")
def subject_invite(controller: str = AsOpt, subject: str = typer.Option(..., "--subject", help="Your subject id for the person."),
                   ttl_days: int = typer.Option(subject_svc.CLAIM_TTL_DAYS, "--ttl-days"), json_out: bool = JsonOpt) -> None:
    """Issue a one-time claim code for a subject id (give it to the person; it is shown once)."""
    code, expires = subject_svc.invite(_deps(), controller, subject, ttl_days)
    emit({"code": code, "expires_at": expires.isoformat()}, json_out,
         lambda: out.print(f"claim code (shown once, valid until {expires:%Y-%m-%d}): {code}"))


@command(subject_app, "claim")
def subject_claim(code: str, individual: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Redeem a claim code as an individual party."""
    link = subject_svc.claim(_deps(), individual, code)
    emit(link, json_out, lambda: out.print(f"linked to {link['controller']} as subject {link['subject']}"))


@command(subject_app, "links")
def subject_links(individual: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Which organisations hold data linked to you."""
    rows = subject_svc.links(_deps(), individual)
    emit(rows, json_out, lambda: table("your links", ["controller", "subject", "since"],
                                       [[r["controller"], r["subject"], r["linked_at"]] for r in rows]))


@command(subject_app, "export")
def subject_export(individual: str = AsOpt, out_file: Optional[Path] = typer.Option(None, "--out", help="Write the JSON here."),
                   json_out: bool = JsonOpt) -> None:
    """Subject access export: every row about you, your consents, receipts and requests (JSON)."""
    export = subject_svc.access_export(_deps(), individual)
    text = jsonlib.dumps(export, indent=2, default=str)
    if out_file is None:
        out.print(text, markup=False, highlight=False)
        return
    try:
        out_file.write_text(text + "\n")
    except OSError as e:
        raise BadInput(f"cannot write {out_file}: {e.strerror}") from None
    rows = sum(len(d["rows"]) for d in export["data"])
    emit({"file": str(out_file), "datasets": len(export["data"]), "rows": rows}, json_out,
         lambda: out.print(f"{rows} rows from {len(export['data'])} datasets written to {out_file}"))


@command(subject_app, "consents")
def subject_consents(individual: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Your consent per dataset and purpose, and whether your rows are used for it now."""
    rows = subject_svc.consents(_deps(), individual)
    emit(rows, json_out, lambda: table("your consents", ["dataset", "purpose", "mode", "status", "in use"],
                                       [[r["dataset"], r["purpose"], r["mode"], r["status"] or "(no choice yet)",
                                         "yes" if r["in_use"] else "no"] for r in rows]))


def _my_consent(status: str, individual: str, dataset: str, purpose: str, json_out: bool) -> None:
    subject_svc.set_consent(_deps(), individual, dataset, purpose, status)
    emit({"dataset": dataset, "purpose": purpose, "status": status}, json_out,
         lambda: out.print(f"consent {status}: {purpose} on {dataset} (effective from the next computation)"))


@command(subject_app, "grant")
def subject_grant(individual: str = AsOpt, dataset: str = typer.Option(..., "--dataset"),
                  purpose: str = typer.Option(..., "--purpose"), json_out: bool = JsonOpt) -> None:
    """Allow a purpose on a dataset that holds your data."""
    _my_consent("granted", individual, dataset, purpose, json_out)


@command(subject_app, "withdraw")
def subject_withdraw(individual: str = AsOpt, dataset: str = typer.Option(..., "--dataset"),
                     purpose: str = typer.Option(..., "--purpose"), json_out: bool = JsonOpt) -> None:
    """Withdraw a purpose: your rows leave the very next computation for it."""
    _my_consent("withdrawn", individual, dataset, purpose, json_out)


@command(subject_app, "receipts")
def subject_receipts(individual: str = AsOpt, limit: int = typer.Option(100, "--limit"),
                     before: Optional[str] = typer.Option(None, "--before", help="Page: the `at` of the last receipt seen."),
                     json_out: bool = JsonOpt) -> None:
    """Every query, export, code run and offer that included your data: who, why, under which agreement, which fields."""
    moment = _moment(before) if before else None
    rows = subject_svc.receipts(_deps(), individual, moment, limit)
    emit(rows, json_out, lambda: table("your receipts", ["at", "kind", "party", "purpose", "dataset", "fields", "ledger"],
                                       [[r["at"], r["kind"], r["party"], r["purpose"], r["dataset"], ", ".join(r["fields"]),
                                         r["ledger_index"]] for r in rows]))


def _moment(text: str) -> dt.datetime:
    try:
        moment = dt.datetime.fromisoformat(text)
    except ValueError:
        raise BadInput(f"--before must be an ISO time, not {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.timezone.utc)


@command(subject_app, "erase")
def subject_erase(individual: str = AsOpt, controller: str = typer.Option(..., "--controller"),
                  reason: str = typer.Option("", "--reason"), json_out: bool = JsonOpt) -> None:
    """Erase your rows from an organisation's datasets (each gets a new version without them)."""
    request = subject_svc.request_erasure(_deps(), individual, controller, reason)
    made = ", ".join(f"{v['dataset']} v{v['version']} (-{v['rows_removed']} rows)" for v in request["versions"])
    emit(request, json_out, lambda: out.print(f"erased: {made or 'no rows were held'}"))


@command(subject_app, "correct")
def subject_correct(individual: str = AsOpt, dataset: str = typer.Option(..., "--dataset"),
                    column: str = typer.Option(..., "--column"), value: str = typer.Option(..., "--value", help="The right value."),
                    comment: str = typer.Option("", "--comment"), json_out: bool = JsonOpt) -> None:
    """Flag a value about you as wrong; the organisation sees the request and answers."""
    request = subject_svc.request_correction(_deps(), individual, dataset, column, value, comment)
    emit(request, json_out, lambda: out.print(f"correction request {request['id']} sent to {request['controller']}"))


@command(subject_app, "requests")
def subject_requests(party: str = AsOpt, open_only: bool = typer.Option(False, "--open", help="Only unanswered ones."),
                     json_out: bool = JsonOpt) -> None:
    """Erasure and correction requests: those addressed to your organisation, or those you made."""
    deps = _deps()
    try:
        rows = subject_svc.controller_requests(deps, party, open_only)
    except BadInput:
        rows = [r for r in subject_svc.my_requests(deps, party) if not open_only or r["status"] == "open"]
    emit(rows, json_out, lambda: table("requests", ["id", "kind", "controller", "subject", "status", "details", "answer"],
                                       [[r["id"], r["kind"], r["controller"], r["subject"], r["status"],
                                         _details(r), r["answer"]] for r in rows]))


def _details(r: dict) -> str:
    if r["kind"] == "correction":
        return f"{r['dataset']}.{r['column']}: {r['current']} -> {r['proposed']!r} {r['comment']}".strip()
    return ", ".join(f"{v['dataset']} v{v['version']}" for v in r.get("versions", []))


@command(subject_app, "answer")
def subject_answer(request_id: str, controller: str = AsOpt,
                   accept: bool = typer.Option(..., "--accept/--reject", help="Accept or reject the correction."),
                   message: str = typer.Option(..., "--message"), json_out: bool = JsonOpt) -> None:
    """Answer a person's correction request."""
    request = subject_svc.answer(_deps(), controller, request_id, accept, message)
    emit(request, json_out, lambda: out.print(f"request {request_id}: {request['status']}"))


# -- offers -----------------------------------------------------------------------------------

@command(offer_app, "submit")
def offer_submit(sql: str, recipient: str = AsOpt, purpose: str = typer.Option(..., "--purpose"),
                 title: str = typer.Option(..., "--title", help="What the person reads, e.g. 'Your pay-as-you-drive premium'."),
                 needs_consent: list[str] = typer.Option([], "--needs-consent", help="A purpose acceptance grants (repeat)."),
                 json_out: bool = JsonOpt) -> None:
    """Compute a per-subject offer in the store; each person sees theirs and decides."""
    batch = offer_svc.submit(_deps(), recipient, purpose, sql, title, tuple(needs_consent))
    emit(batch, json_out, lambda: out.print(f"{batch['offers']} offers made (batch {batch['batch']}) from "
                                            f"{', '.join(batch['fields'])} of {batch['dataset']}"))


@command(offer_app, "inbox")
def offer_inbox(individual: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Offers made to you."""
    rows = offer_svc.inbox(_deps(), individual)
    emit(rows, json_out, lambda: table("your offers", ["id", "from", "title", "terms", "status"],
                                       [[r["id"], r["from"], r["title"], jsonlib.dumps(r["terms"]), r["status"]] for r in rows]))


@command(offer_app, "show")
def offer_show(offer_id: str, party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """One offer: to its person, why (the computation, fields and your values); to its recipient, the decision."""
    emit(offer_svc.show(_deps(), party, offer_id), True)


@command(offer_app, "accept")
def offer_accept(offer_id: str, individual: str = AsOpt,
                 release: list[str] = typer.Option([], "--release", help="A term or field to release to the recipient (repeat)."),
                 json_out: bool = JsonOpt) -> None:
    """Accept an offer; grants the consents it needs and releases only what you name."""
    offer = offer_svc.decide(_deps(), individual, offer_id, True, tuple(release))
    emit(offer, json_out, lambda: out.print(f"accepted {offer_id}; released: {', '.join(offer['released']) or 'nothing'}"))


@command(offer_app, "decline")
def offer_decline(offer_id: str, individual: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Decline an offer; the recipient learns only that it was declined."""
    offer = offer_svc.decide(_deps(), individual, offer_id, False)
    emit(offer, json_out, lambda: out.print(f"declined {offer_id}"))


@command(offer_app, "batches")
def offer_batches(recipient: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Your offer batches with their decision counts."""
    rows = offer_svc.batches(_deps(), recipient)
    emit(rows, json_out, lambda: table("offer batches", ["batch", "title", "offers", "pending", "accepted", "declined"],
                                       [[r["batch"], r["title"], r["offers"], r["pending"], r["accepted"], r["declined"]]
                                        for r in rows]))


@command(offer_app, "decisions")
def offer_decisions(batch_id: str, recipient: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Each offer of a batch: its decision and what the person released (nothing else)."""
    rows = offer_svc.batch(_deps(), recipient, batch_id)
    emit(rows, json_out, lambda: table(f"batch {batch_id}", ["offer", "status", "released"],
                                       [[r["id"], r["status"], jsonlib.dumps(r["released"])] for r in rows]))
