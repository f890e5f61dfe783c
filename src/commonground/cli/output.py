"""How the CLI speaks: JSON for machines, Rich tables for people, exit codes per the error tree."""

from __future__ import annotations

import json
import sys
from typing import Any, Callable

from rich.console import Console
from rich.table import Table

from ..domain.errors import CommongroundError, Refused

out = Console(soft_wrap=True)
err = Console(stderr=True, soft_wrap=True)


def emit(data: Any, as_json: bool, human: Callable[[], None] | None = None) -> None:
    if as_json or human is None:
        sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    else:
        human()


def table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    t = Table(title=title)
    for c in columns:
        t.add_column(str(c))
    for r in rows:
        t.add_row(*["" if v is None else str(v) for v in r])
    out.print(t)


def fail(error: CommongroundError, as_json: bool) -> int:
    if isinstance(error, Refused):
        payload = {"error": "refused", "reasons": error.reasons}
        if as_json:
            sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        else:
            err.print("[bold red]refused[/]")
            for reason in error.reasons:
                err.print(f"  - {reason}", markup=False, highlight=False)
    else:
        if as_json:
            sys.stdout.write(json.dumps({"error": error.code, "message": str(error)}) + "\n")
        err.print(f"error: {error}", markup=False, highlight=False)
    return error.exit_code
