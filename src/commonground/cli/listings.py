"""`commonground listing ...`: data products offered on standard terms, the catalogue, requests
and the owner's review of them."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ..services import listings as listing_svc
from .main import AsOpt, JsonOpt, _deps, _read_yaml, app, command
from .output import emit, out, table

listing_app = typer.Typer(help="Data products: publish listings, browse the catalogue, request, review.",
                          no_args_is_help=True)
app.add_typer(listing_app, name="listing")


def _purposes_used(usage: dict[str, Any]) -> str:
    return ", ".join(f"{p} ({n})" for p, n in usage["purposes"].items()) or "-"


def _listings_table(title: str, rows: list[dict[str, Any]]) -> None:
    table(title, ["id", "listing", "owner", "title", "mode", "k", "purposes", "partners", "used for", "status"],
          [[r["id"], r["name"], r["owner"], r["title"], r["access"]["mode"], r["access"]["min_group_size"],
            ", ".join(r["purposes"]), r["usage"]["partners"], _purposes_used(r["usage"]), r["status"]] for r in rows])


def _request_out(made: dict[str, Any], json_out: bool) -> None:
    emit(made, json_out, lambda: out.print(
        f"request {made['id']} for {made['owner']}'s listing {made['listing']} ({made['purpose']}): {made['status']}"
        + (f", agreement {made['agreement_id']}" if made["agreement_id"] else ""), markup=False))


@command(listing_app, "publish")
def listing_publish(file: Path = typer.Argument(..., help="Listing YAML (docs/data-products.md)."), party: str = AsOpt,
                    json_out: bool = JsonOpt) -> None:
    """Publish a listing; its datasets need declared rights that cover it."""
    made = listing_svc.publish(_deps(), party, _read_yaml(file, "listing"))
    emit(made, json_out, lambda: out.print(f"published listing {made['name']} ({made['id']})", markup=False))


@command(listing_app, "list")
def listing_list(party: str = AsOpt, search: Optional[str] = typer.Option(None, "--search", help="Part of a name or title."),
                 limit: int = typer.Option(50, "--limit", min=1, max=200), offset: int = typer.Option(0, "--offset", min=0),
                 json_out: bool = JsonOpt) -> None:
    """The catalogue: listings you may see, with how many partners use each and for what."""
    rows = listing_svc.catalogue(_deps(), party, search, limit, offset)
    emit(rows, json_out, lambda: _listings_table("catalogue", rows))


@command(listing_app, "mine")
def listing_mine(party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Your own listings, published or withdrawn."""
    rows = listing_svc.listings_of(_deps(), party)
    emit(rows, json_out, lambda: _listings_table("your listings", rows))


@command(listing_app, "show")
def listing_show(listing_id: str, party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """One listing: its terms, the legal basis of its datasets, and its usage."""
    found = listing_svc.show(_deps(), party, listing_id)

    def human() -> None:
        _listings_table(found["title"], [found])
        for dataset, grant in found["datasets"].items():
            basis = found["rights"].get(dataset, {}).get("legal_basis", "undeclared")
            out.print(f"{dataset} ({basis}): " + ", ".join(f"{c} {t['transform']}" for c, t in grant["fields"].items()),
                      markup=False)
    emit(found, json_out, human)


@command(listing_app, "withdraw")
def listing_withdraw(listing_id: str, party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Take your listing out of the catalogue (agreements made from it stand)."""
    found = listing_svc.withdraw(_deps(), party, listing_id)
    emit(found, json_out, lambda: out.print(f"withdrew listing {found['name']}", markup=False))


@command(listing_app, "request")
def listing_request(listing_id: str, party: str = AsOpt, purpose: str = typer.Option(..., "--purpose"),
                    json_out: bool = JsonOpt) -> None:
    """Request a listing for a purpose: active at once if the listing grants it, else the owner reviews."""
    _request_out(listing_svc.request(_deps(), party, listing_id, purpose), json_out)


@command(listing_app, "requests")
def listing_requests(party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Your requests, and the requests on your listings waiting for your review."""
    found = listing_svc.requests(_deps(), party)

    def rows(key: str) -> list[list[Any]]:
        return [[r["id"], r["listing"], r["requester"], r["purpose"], r["status"], r["agreement_id"] or ""]
                for r in found[key]]
    columns = ["id", "listing", "requester", "purpose", "status", "agreement"]
    emit(found, json_out, lambda: (table("your requests", columns, rows("mine")),
                                   table("to review", columns, rows("to_review"))))


@command(listing_app, "approve")
def listing_approve(request_id: str, party: str = AsOpt, note: str = typer.Option("", "--note"),
                    json_out: bool = JsonOpt) -> None:
    """Approve a request on your listing: an active agreement is made if the rights still cover it."""
    _request_out(listing_svc.decide(_deps(), party, request_id, True, note), json_out)


@command(listing_app, "decline")
def listing_decline(request_id: str, party: str = AsOpt, note: str = typer.Option("", "--note"),
                    json_out: bool = JsonOpt) -> None:
    """Decline a request on your listing; the requester is told, with your note."""
    _request_out(listing_svc.decide(_deps(), party, request_id, False, note), json_out)
