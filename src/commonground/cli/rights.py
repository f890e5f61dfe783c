"""`commonground rights ...` and `commonground notices`: declared rights of a dataset, and what a
party has been told (suspended agreements, listing requests to review, decisions)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ..domain.errors import BadInput
from ..services import notices as notice_svc
from ..services import rights as rights_svc
from .main import AsOpt, JsonOpt, _deps, _read_yaml, app, command
from .output import emit, out, table

rights_app = typer.Typer(help="Rights pre-vetting: the legal basis and purposes a dataset may be shared for.",
                         no_args_is_help=True)
app.add_typer(rights_app, name="rights")


@command(rights_app, "declare")
def rights_declare(dataset: str = typer.Argument(..., help="Your dataset (name or owner.name)."),
                   file: Optional[Path] = typer.Argument(None, help="Rights YAML: legal_basis, purposes, columns."),
                   party: str = AsOpt,
                   basis: Optional[str] = typer.Option(None, "--basis", help="GDPR Art. 6 basis (instead of a FILE)."),
                   purposes: list[str] = typer.Option([], "--purpose", help="A purpose it may be shared for (repeat)."),
                   attested_by: Optional[str] = typer.Option(None, "--attested-by", help="Who attests (default: --as)."),
                   json_out: bool = JsonOpt) -> None:
    """Declare the next version of a dataset's rights; agreements it no longer covers are suspended."""
    if (file is None) == (basis is None):
        raise BadInput("give either a rights FILE or --basis with --purpose")
    doc: Any = _read_yaml(file, "rights") if file else {"legal_basis": basis, "purposes": purposes}
    made = rights_svc.declare(_deps(), party, dataset, doc, attested_by)

    def human() -> None:
        out.print(f"{made['dataset']} rights v{made['version']}: {made['legal_basis']}, "
                  f"purposes {', '.join(made['purposes'])} (attested by {made['attested_by']})", markup=False)
        for s in made["suspended"]:
            out.print(f"suspended agreement {s['name']} ({s['agreement']}): {'; '.join(s['gaps'])}", markup=False)
    emit(made, json_out, human)


@command(rights_app, "show")
def rights_show(dataset: str = typer.Argument(..., help="owner.name, or a name of yours."), party: str = AsOpt,
                json_out: bool = JsonOpt) -> None:
    """Every version of a dataset's declared rights."""
    versions = rights_svc.history(_deps(), party, dataset)
    emit(versions, json_out, lambda: table(f"rights of {dataset}", ["version", "legal basis", "purposes", "columns",
                                                                    "attested by", "at"],
                                           [[v["version"], v["legal_basis"], ", ".join(v["purposes"]),
                                             "; ".join(f"{c}: {', '.join(r['purposes']) or 'never'}"
                                                       for c, r in v.get("columns", {}).items()),
                                             v["attested_by"], v["attested_at"]] for v in versions]))


@command(app, "notices")
def notices(party: str = AsOpt, limit: int = typer.Option(100, "--limit", min=1, max=500), json_out: bool = JsonOpt) -> None:
    """What you have been told: suspended agreements, listing requests to review, decisions."""
    found = notice_svc.list_notices(_deps(), party, limit)
    emit(found, json_out, lambda: table("notices", ["at", "kind", "about", "message", "ledger"],
                                        [[n["at"], n["kind"], n["subject"], n["message"], n["ledger_index"]]
                                         for n in found]))
