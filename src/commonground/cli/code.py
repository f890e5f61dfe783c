"""`commonground code ...`: code-to-data submissions, reviews, confined runs and releases."""

from __future__ import annotations

from pathlib import Path
from typing import Any, List, Optional

import typer

from ..domain.errors import BadInput
from ..services import code as code_svc
from .main import AsOpt, JsonOpt, _deps, app, command
from .output import emit, out, table

code_app = typer.Typer(help="Code-to-data: submitted analyses run on the data; only approved results leave.",
                       no_args_is_help=True)
app.add_typer(code_app, name="code")
ReasonOpt = typer.Option(..., "--reason", help="Why: it is on the ledger and shown to the submitter.")


def _show(item: dict[str, Any], json_out: bool) -> None:
    def human() -> None:
        if item["kind"] == "submission":
            out.print(f"submission {item['id']} ({item['title']}): {item['status']}; sha256 {item['sha256']}; "
                      f"reviewers {', '.join(item['reviewers'])}", markup=False, highlight=False)
            for r in item["reviews"]:
                out.print(f"  {r['party']} {r['decision']}: {r['reason']}", markup=False, highlight=False)
            for r in item["runs"]:
                out.print(f"  run {r['id']}: {r['status']}", markup=False, highlight=False)
            return
        out.print(f"run {item['id']} of {item['submission']}: {item['status']}", markup=False, highlight=False)
        for reason in item["checks"]["reasons"]:
            out.print(f"  - {reason}", markup=False, highlight=False)
        if item["waiting_for"]:
            out.print(f"  waiting for {', '.join(item['waiting_for'])} to release it", markup=False, highlight=False)
        if "result" in item:
            table(f"result ({item['rows']} rows, sha256 {item['output_sha256'][:16]})", item["result"]["columns"],
                  item["result"]["rows"])
    emit(item, json_out, human)


@command(code_app, "submit")
def code_submit(file: Path, party: str = AsOpt, purpose: str = typer.Option(..., "--purpose"),
                agreement: List[str] = typer.Option(..., "--agreement", help="A code agreement it reads (repeatable)."),
                title: str = typer.Option(..., "--title", help="What the analysis does, for its reviewers."),
                previous: Optional[str] = typer.Option(None, "--previous", help="The submission this is a new version of."),
                json_out: bool = JsonOpt) -> None:
    """Submit an analysis (a Python module defining analysis(tables) and GROUP_BY) for review."""
    try:
        source = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"cannot read {file}: {getattr(e, 'strerror', None) or e}") from None
    _show(code_svc.submit(_deps(), party, purpose, tuple(agreement), source, title, previous), json_out)


@command(code_app, "review")
def code_review(submission: str, party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Show a submission as its reviewers see it: the code, its diff, what it reads and declares."""
    shown = code_svc.review(_deps(), party, submission)
    emit(shown, json_out, lambda: (
        out.print(f"submission {shown['id']} by {shown['submitter']} ({shown['title']}), {shown['status']}\n"
                  f"sha256 {shown['sha256']}\nreads: " + "; ".join(f"{r['dataset']} ({', '.join(r['columns'])})"
                                                               for r in shown["reads"])
                  + f"\nGROUP_BY {shown['group_by']}, COUNT {shown['count']}\n\n"
                  + (shown["diff"] or shown["source"]), markup=False, highlight=False)))


@command(code_app, "approve")
def code_approve(submission: str, party: str = AsOpt, reason: str = ReasonOpt, json_out: bool = JsonOpt) -> None:
    """Approve a submission that reads your data (never your own)."""
    _show(code_svc.decide(_deps(), party, submission, True, reason), json_out)


@command(code_app, "reject")
def code_reject(submission: str, party: str = AsOpt, reason: str = ReasonOpt, json_out: bool = JsonOpt) -> None:
    """Reject a submission that reads your data, saying why."""
    _show(code_svc.decide(_deps(), party, submission, False, reason), json_out)


# A run is recorded whatever its outcome, so it is always shown; the exit code says whether a
# result is on its way: 0 held or released, 3 refused by the disclosure checks, 1 failed in the
# sandbox. Scripts that chain `code run` and `code release` must not carry on after a failure.
RUN_EXIT_CODES = {"failed": 1, "refused": 3}


@command(code_app, "run")
def code_run(submission: str, party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Run your approved analysis in the sandbox; its result is checked, then held for release.

    Exits 0 when the result is held (or released), 3 when the disclosure checks refused it and 1
    when the analysis failed in the sandbox; the run and its reasons are shown either way."""
    ran = code_svc.run(_deps(), party, submission)
    _show(ran, json_out)
    if ran["status"] in RUN_EXIT_CODES:
        raise typer.Exit(RUN_EXIT_CODES[ran["status"]])


@command(code_app, "release")
def code_release(run: str, party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Release a held result of an analysis of your data to its submitter."""
    _show(code_svc.release(_deps(), party, run), json_out)


@command(code_app, "get")
def code_get(item: str, party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """A submission, or a run with its result once you may read it."""
    _show(code_svc.get(_deps(), party, item), json_out)
