"""`commonground seal`, `unseal` and `seal-secret`: run at a party's own site, never against a store.

Registered on the main app by cli/main.py. None of these commands opens a store, reads
$COMMONGROUND_HOME or talks to a server: the collaboration secret stays with the parties.
See docs/sealing.md.
"""

from __future__ import annotations

import json as jsonlib
import os
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ..domain.errors import BadInput
from ..domain.schema import SEAL_SECRET_ENV, parse_schema
from .main import JsonOpt, _read_yaml, app, command
from .output import emit, out

SecretFileOpt = typer.Option(None, "--secret-file",
                             help=f"File holding the collaboration secret (else ${SEAL_SECRET_ENV}). Never sent to the store.")
SchemaOpt = typer.Option(..., "--schema", help="The dataset schema YAML with seal: per column and collaboration: at the top.")


def _progress(label: str, json_out: bool) -> Progress:
    return Progress(TextColumn(f"[bold]{label}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                    transient=True, disable=not sys.stderr.isatty() or json_out)


@command(app, "seal")
def seal(source: Path = typer.Argument(..., help="CSV or Parquet file with the plaintext."),
         dest: Path = typer.Argument(..., help="Where to write the sealed file (.csv or .parquet)."),
         collaboration: Optional[str] = typer.Option(None, "--collaboration",
                                                     help="The collaboration id (must match the schema's)."),
         schema: Path = SchemaOpt, secret_file: Optional[Path] = SecretFileOpt, json_out: bool = JsonOpt) -> None:
    """Seal a file before upload: fingerprint columns become keyed HMACs, sealed columns AES-GCM ciphertext."""
    parsed = parse_schema(_read_yaml(schema, "schema"))
    from .. import sealing  # Arrow and numpy: loaded by the commands that seal, not by every command
    secret = sealing.load_secret(secret_file)
    with _progress("seal", json_out) as progress:
        task = progress.add_task("seal", total=100)
        report = sealing.seal_file(source, dest, parsed, secret, collaboration,
                                   lambda pct: progress.update(task, completed=pct))
    for w in report.warnings:
        typer.echo(f"warning: {w}", err=True)
    emit(report.to_dict(), json_out, lambda: out.print(
        f"sealed {report.rows:,} rows into {dest}: fingerprint {', '.join(report.fingerprint) or '-'}; "
        f"sealed {', '.join(report.sealed) or '-'}; cleartext {', '.join(report.cleartext) or '-'}"))


@command(app, "unseal")
def unseal(source: Path = typer.Argument(..., help="A result: CSV, Parquet, or the JSON of `query --json`."),
           dest: Path = typer.Argument(..., help="Where to write the opened result (same format)."),
           collaboration: Optional[str] = typer.Option(None, "--collaboration", help="The collaboration id."),
           schema: Path = SchemaOpt, secret_file: Optional[Path] = SecretFileOpt,
           columns: list[str] = typer.Option([], "--column", help="RESULT_COLUMN=SCHEMA_COLUMN for a renamed sealed column."),
           json_out: bool = JsonOpt) -> None:
    """Open the sealed columns of a result you were allowed to see, with the collaboration secret."""
    parsed = parse_schema(_read_yaml(schema, "schema"))
    from .. import sealing  # Arrow and numpy: loaded by the commands that seal, not by every command
    secret = sealing.load_secret(secret_file)
    mapping = {}
    for c in columns:
        result_col, sep, schema_col = c.partition("=")
        if not sep or not result_col or not schema_col:
            raise BadInput(f"--column takes RESULT_COLUMN=SCHEMA_COLUMN, not {c!r}")
        mapping[result_col] = schema_col
    if source.suffix.lower() == ".json":
        try:
            doc = jsonlib.loads(source.read_text())
        except (OSError, ValueError) as e:
            raise BadInput(f"cannot read {source} as a JSON result: {e}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("columns"), list) or not isinstance(doc.get("rows"), list):
            raise BadInput(f"{source.name}: expected the JSON of `query --json` ({{columns: [...], rows: [...]}})")
        doc["rows"] = sealing.unseal_rows(doc["columns"], doc["rows"], parsed, secret, collaboration, mapping)
        dest.write_text(jsonlib.dumps(doc, indent=2, default=str) + "\n")
        report = {"source": str(source), "output": str(dest), "rows": len(doc["rows"])}
    else:
        with _progress("unseal", json_out) as progress:
            task = progress.add_task("unseal", total=100)
            report = sealing.unseal_file(source, dest, parsed, secret, collaboration, mapping,
                                         lambda pct: progress.update(task, completed=pct)).to_dict()
    emit(report, json_out, lambda: out.print(f"opened {report['rows']:,} rows into {dest}"))


@command(app, "seal-secret")
def seal_secret(dest: Path = typer.Argument(..., help="File to create (readable by you only)."), json_out: bool = JsonOpt) -> None:
    """Make a collaboration secret (256 bits) to share with the other parties, never with the store."""
    from .. import sealing  # Arrow and numpy: loaded by the commands that seal, not by every command
    try:
        fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise BadInput(f"{dest} exists; a collaboration secret is never overwritten") from None
    except OSError as e:
        raise BadInput(f"cannot create {dest}: {e.strerror}") from None
    with os.fdopen(fd, "w") as f:
        f.write(sealing.new_secret() + "\n")
    emit({"secret_file": str(dest)}, json_out,
         lambda: out.print(f"collaboration secret written to {dest}; share it with the other parties over a channel "
                           "the store's operator cannot read"))
