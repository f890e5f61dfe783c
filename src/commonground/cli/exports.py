"""`commonground export ...`: curated row-level copies under `rows` agreements, and tracing leaks."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Optional

import typer

from ..domain.errors import BadInput
from ..services import exports as export_svc
from .main import AsOpt, JsonOpt, _deps, app, command
from .output import emit, out, table

export_app = typer.Typer(help="Curated exports (rows mode): k-anonymous, watermarked, on the ledger.", no_args_is_help=True)
app.add_typer(export_app, name="export")


@command(export_app, "run")
def export_run(recipient: str = AsOpt, dataset: str = typer.Option(..., "--dataset", help="owner.name"),
               purpose: str = typer.Option(..., "--purpose"),
               fmt: str = typer.Option("parquet", "--format", help="parquet | csv"),
               out_file: Optional[Path] = typer.Option(None, "--out", help="Also copy the file here."),
               json_out: bool = JsonOpt) -> None:
    """Make your curated copy of a dataset shared with you under a rows agreement."""
    made = export_svc.export(_deps(), recipient, dataset, purpose, fmt)
    if out_file is not None:
        path, _ = export_svc.download(_deps(), recipient, made["id"])
        try:
            shutil.copyfile(path, out_file)
        except OSError as e:
            raise BadInput(f"cannot write {out_file}: {e.strerror}") from None
        made["file"] = str(out_file)
    levels = ", ".join(f"{q}: {level}" for q, level in made["quasi_identifiers"].items()) or "none"
    emit(made, json_out, lambda: out.print(
        f"export {made['id']}: {made['rows_out']:,} of {made['rows_in']:,} rows ({made['suppressed_rows']:,} suppressed, "
        f"{made['suppression_rate']:.2%}); smallest class {made['smallest_class']} people (k = {made['k']})\n"
        + (f"least diverse class: {made['least_diversity']} values of {', '.join(made['sensitive'])} "
           f"(l = {made['l_diversity']})\n" if "l_diversity" in made else "")
        + f"quasi-identifiers: {levels}\nsha256 {made['sha256']}" + (f"\nwritten to {out_file}" if out_file else "")))


@command(export_app, "list")
def export_list(party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Your exports, and the exports made from your datasets."""
    rows = export_svc.list_exports(_deps(), party)
    emit(rows, json_out, lambda: table("exports", ["id", "recipient", "dataset", "version", "rows", "sha256", "at"],
                                       [[r["id"], r["recipient"], r["dataset"], r["version"], r["rows"], r["sha256"][:16],
                                         r["created_at"]] for r in rows]))


@command(export_app, "trace")
def export_trace(file: Path, provider: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Which recipient's copy a leaked file is (by its keyed pseudonyms and metadata)."""
    found = export_svc.trace(_deps(), provider, file)
    emit(found, json_out, lambda: table(f"trace of {file.name}", ["recipient", "export", "matched", "of rows", "column", "metadata"],
                                        [[f["recipient"], f["export"], f["matched"], f["rows"], f["column"],
                                          "yes" if f["export_in_metadata"] else ""] for f in found]))
