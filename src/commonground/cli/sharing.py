"""`commonground share ...`: Delta Sharing profiles and the shares a party can read (docs/sharing.md)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import typer

from ..domain.errors import BadInput
from ..services import sharing as sharing_svc
from .main import AsOpt, JsonOpt, _deps, app, command
from .output import emit, out, table

share_app = typer.Typer(help="Delta Sharing: your curated copies for pandas, Spark and any Delta Sharing client.",
                        no_args_is_help=True)
app.add_typer(share_app, name="share")


@command(share_app, "profile")
def share_profile(party: str = AsOpt,
                  endpoint: str = typer.Option(..., "--endpoint", help="The server's sharing prefix, e.g. "
                                               "https://HOST/delta-sharing"),
                  ttl_days: int = typer.Option(sharing_svc.PROFILE_TTL_DAYS, "--ttl-days",
                                               help="Days the profile's token lives."),
                  out_file: Optional[Path] = typer.Option(None, "--out", help="Write the profile here (mode 0600) "
                                                          "instead of printing it."),
                  json_out: bool = JsonOpt) -> None:
    """A profile file for a Delta Sharing client, with a fresh read-only token (shown once)."""
    profile, token_id = sharing_svc.make_profile(_deps(), party, endpoint, ttl_days)
    text = json.dumps(profile, indent=2) + "\n"
    if out_file is not None:
        try:
            fd = os.open(out_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as f:
                f.write(text)
        except OSError as e:
            raise BadInput(f"cannot write {out_file}: {e.strerror}") from None
    data = {"token_id": token_id, "expires_at": profile.get("expirationTime"), "endpoint": profile["endpoint"],
            "file": str(out_file) if out_file else None}
    if out_file is None:
        data["profile"] = profile
    if json_out:
        emit(data, True)
    elif out_file is None:
        typer.echo(text, nl=False)  # the profile itself, so `> brand.share` works
    else:
        out.print(f"profile for {party} written to {out_file} (token {token_id}, read scope, "
                  f"expires {profile.get('expirationTime') or 'never'}); revoke with `token revoke {token_id}`")


@command(share_app, "list")
def share_list(party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """The shares and tables you can read: load one with `<profile>#share.schema.table`."""
    rows = sharing_svc.overview(_deps(), party)
    emit(rows, json_out, lambda: table("shares", ["share.schema.table", "version", "purpose", "k"],
                                       [[r["url"], r["version"], r["purpose"], r["k"]] for r in rows]))
