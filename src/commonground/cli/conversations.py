"""`commonground survey ...` and `commonground thread ...`: conversations with individuals.

Registered on the main app by cli/main.py; every command is a thin call into a service.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import typer

from ..domain.conversations import parse_choice
from ..domain.errors import BadInput
from ..services import conversations as survey_svc
from ..services import threads as thread_svc
from .main import AsOpt, JsonOpt, _deps, _read_yaml, app, command
from .output import emit, out, table

survey_app = typer.Typer(help="Surveys: ask your customers; answer and choose who may use your answer.",
                         no_args_is_help=True)
thread_app = typer.Typer(help="Threads: comment on or dispute a receipt or offer; the company answers.",
                         no_args_is_help=True)
app.add_typer(survey_app, name="survey")
app.add_typer(thread_app, name="thread")

ShareOpt = typer.Option([], "--share", help="PARTY:PURPOSE that may use your answer (repeat; none: nobody).")


@command(survey_app, "create")
def survey_create(file: Path = typer.Argument(..., help="Survey YAML (name, title, purposes, questions, partners)."),
                  asker: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Ask your linked customers a survey; its answers become consent-gated datasets of yours."""
    survey = survey_svc.create_survey(_deps(), asker, _read_yaml(file, "survey"))
    emit(survey, json_out, lambda: out.print(f"survey {survey['id']} ({survey['name']}) created; answers go to "
                                             + ", ".join(survey["datasets"].values())))


@command(survey_app, "list")
def survey_list(party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Your surveys (organisation) or the surveys asked of you (individual)."""
    rows = survey_svc.list_surveys(_deps(), party)
    emit(rows, json_out, lambda: table("surveys", ["id", "from", "title", "purposes", "answers / answered"],
                                       [[r["id"], r["asker"], r["title"], ", ".join(r["purposes"]),
                                         r.get("answers", "yes" if r.get("answered") else "no")] for r in rows]))


@command(survey_app, "show")
def survey_show(survey_id: str, party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """One survey: its questions, and your answer and sharing choices if you answered."""
    survey = survey_svc.show_survey(_deps(), party, survey_id)

    def human() -> None:
        out.print(f"{survey['title']} (from {survey['asker']}, for {', '.join(survey['purposes'])})", markup=False)
        for q in survey["questions"]:
            options = f" [{' / '.join(q['options'])}]" if q.get("options") else ""
            mine = f" -> {survey['your_answer'].get(q['id'])}" if survey.get("answered") else ""
            out.print(f"  {q['id']} ({q['type']}): {q['text']}{options}{mine}", markup=False, highlight=False)
    emit(survey, json_out, human)


def _answers(values: list[str]) -> dict[str, Any]:
    answers = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise BadInput(f"--set takes QUESTION=ANSWER, not {item!r}")
        answers[key.strip()] = value
    return answers


@command(survey_app, "answer")
def survey_answer(survey_id: str, individual: str = AsOpt,
                  values: list[str] = typer.Option([], "--set", help="QUESTION=ANSWER (repeat)."),
                  share: list[str] = ShareOpt, json_out: bool = JsonOpt) -> None:
    """Answer a survey and choose which parties may use your answer, for which purposes."""
    shown = survey_svc.answer(_deps(), individual, survey_id, _answers(values), [parse_choice(s) for s in share])
    emit(shown, json_out, lambda: out.print(f"answered; shared with {len(shown['sharing'])} party/purpose choice(s)"))


@command(survey_app, "share")
def survey_share(survey_id: str, individual: str = AsOpt, share: list[str] = ShareOpt, json_out: bool = JsonOpt) -> None:
    """Change who may use your answer: what you leave out is withdrawn from the next computation."""
    shown = survey_svc.share(_deps(), individual, survey_id, [parse_choice(s) for s in share])
    emit(shown, json_out, lambda: out.print(f"now shared with {len(shown['sharing'])} party/purpose choice(s)"))


@command(survey_app, "results")
def survey_results(survey_id: str, asker: str = AsOpt, purpose: str = typer.Option(..., "--purpose"),
                   json_out: bool = JsonOpt) -> None:
    """Answer counts per question, from the people who allowed you this purpose, groups of at least k."""
    found = survey_svc.results(_deps(), asker, survey_id, purpose)
    emit(found, json_out, lambda: table(
        f"{found['name']}: {found['answers']} answered (groups under {found['min_group_size']} not shown)",
        ["question", "groups"], [[q["id"], "; ".join(", ".join(f"{k}={v}" for k, v in g.items()) for g in q["groups"])]
                                 for q in found["questions"]]))


@command(thread_app, "open")
def thread_open(individual: str = AsOpt, receipt: Optional[int] = typer.Option(None, "--receipt", help="Ledger index of the receipt."),
                offer: Optional[str] = typer.Option(None, "--offer", help="Offer id."),
                kind: str = typer.Option("comment", "--kind", help="comment or dispute"),
                message: str = typer.Option(..., "--message"), json_out: bool = JsonOpt) -> None:
    """Comment on or dispute one of your receipts or offers; the company holding the data answers."""
    if (receipt is None) == (offer is None):
        raise BadInput("give either --receipt N or --offer ID")
    about, ref = ("receipt", str(receipt)) if receipt is not None else ("offer", str(offer))
    thread = thread_svc.open_thread(_deps(), individual, about, ref, kind, message)
    emit(thread, json_out, lambda: out.print(f"thread {thread['id']} opened with {thread['controller']}"))


@command(thread_app, "reply")
def thread_reply(thread_id: str, party: str = AsOpt, message: str = typer.Option(..., "--message"),
                 json_out: bool = JsonOpt) -> None:
    """Write in a thread (the company's message answers it; the person's reopens it)."""
    thread = thread_svc.reply(_deps(), party, thread_id, message)
    emit(thread, json_out, lambda: out.print(f"thread {thread_id} is {thread['status']}"))


@command(thread_app, "close")
def thread_close(thread_id: str, party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Close a thread."""
    thread = thread_svc.close(_deps(), party, thread_id)
    emit(thread, json_out, lambda: out.print(f"thread {thread_id} closed"))


@command(thread_app, "list")
def thread_list(party: str = AsOpt, open_only: bool = typer.Option(False, "--open", help="Only open threads."),
                json_out: bool = JsonOpt) -> None:
    """Your threads (individual), or those addressed to your organisation."""
    rows = thread_svc.list_threads(_deps(), party, open_only)
    emit(rows, json_out, lambda: table("threads", ["id", "person", "company", "about", "kind", "status", "updated"],
                                       [[r["id"], r["person"], r["controller"], f"{r['about']} {r['ref']}", r["kind"],
                                         r["status"], r["updated_at"]] for r in rows]))


@command(thread_app, "show")
def thread_show(thread_id: str, party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """A thread and its messages."""
    thread = thread_svc.show_thread(_deps(), party, thread_id)

    def human() -> None:
        out.print(f"{thread['kind']} about {thread['about']} {thread['ref']} ({thread['status']})")
        for m in thread["messages"]:
            out.print(f"[{m['at']}] {m['author']}: {m['body']}", markup=False, highlight=False)
    emit(thread, json_out, human)
