"""`commonground dataset scan FILE`: find personal data in a file before (or without) uploading it.

Registered on the `dataset` group by cli/main.py. Needs no store: it reads only the file.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional

import typer
import yaml
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from ..adapters.pii_scan import SAMPLE_ROWS, scan_file
from ..domain.schema import Role
from .main import JsonOpt, command, dataset_app
from .output import emit, out, table


@command(dataset_app, "scan")
def dataset_scan(file: Path,
                 write_schema: Optional[Path] = typer.Option(None, "--write-schema", help="Write a suggested schema YAML here."),
                 sample_rows: int = typer.Option(SAMPLE_ROWS, "--sample-rows", help="Rows read for detection."),
                 full: bool = typer.Option(True, "--full/--sample-only", help="Count flagged columns over the whole file."),
                 max_validate: Optional[int] = typer.Option(None, "--max-validate",
                                                            help="Distinct values validated per flagged column in the full pass (default: all, exact)."),
                 region: str = typer.Option("US", "--region", help="Phone numbers without +country are read as this region's."),
                 json_out: bool = JsonOpt) -> None:
    """Detect emails, phones, payment cards, IBANs, national ids, IPs and dates of birth; propose roles
    (quasi-identifiers and sensitive columns such as age, zip code or income by their names)."""
    show_bar = sys.stderr.isatty() and not json_out
    with Progress(TextColumn("[bold]scan"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                  transient=True, disable=not show_bar) as progress:
        task = progress.add_task("scan", total=100)
        report = scan_file(file, sample_rows=sample_rows, full=full, validate_limit=max_validate, region=region or None,
                           progress=lambda pct: progress.update(task, completed=pct))
    data = report.to_dict()
    if write_schema is not None:
        write_schema.write_text(yaml.safe_dump(report.suggested_schema(), sort_keys=False))
        data["schema_written"] = str(write_schema)

    def human() -> None:
        total = f", {report.total_rows:,} rows in the file" if report.total_rows is not None else ""
        out.print(f"{file.name}: {report.sampled_rows:,} rows sampled{total}, {report.seconds:.2f}s")
        rows = []
        for c in report.columns:
            proposal = c.proposal()
            if proposal is None:
                continue
            detected = c.detected
            by_name = (f"by name: {c.primary.value}" if c.primary else "by name: person id"
                       if proposal[0] is Role.SUBJECT_ID else "by name")
            kinds = ", ".join(s.kind.value + (" (in text)" if s.free_text else "") for s in detected) or by_name
            rate = f"{detected[0].rate:.0%}" if detected else "-"
            full_rows = (f"{detected[0].full_rows:,}" + ("" if detected[0].exact else " (est.)")
                         if detected and detected[0].full_rows is not None else "-")
            example = next((s.example for s in detected if s.example), "") or ""
            rows.append([c.column, kinds, rate, full_rows, proposal[0].value, proposal[1], example])
        if rows:
            table("personal data", ["column", "found", "sample", "rows", "role", "category", "example (masked)"], rows)
        if not report.flagged:
            out.print("no direct identifiers found" if rows else "no personal data found")
        if report.subject is None:
            out.print("no column looks like a person id: agreements count people by the subject_id, so add one "
                      "(one value per person) before sharing this file")
        if write_schema is not None:
            out.print(f"suggested schema written to {write_schema} (review it, then `dataset add --schema`)")
    emit(data, json_out, human)
