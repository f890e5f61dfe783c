"""`commonground`: every command is a thin call into a service; --json on each for machines."""

from __future__ import annotations

import functools
import json as jsonlib
import os
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
import yaml
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from .. import bootstrap
from ..domain.errors import BadInput, CommongroundError
from ..services import agreements as agreement_svc
from ..services import audit as audit_svc
from ..services import consent as consent_svc
from ..services import datasets as dataset_svc
from ..services import parties as party_svc
from ..services import privacy as privacy_svc
from ..services import reports as report_svc
from ..services import vocabulary as vocabulary_svc
from ..services.deps import Deps
from .output import emit, err, fail, out, table

app = typer.Typer(help="Commonground: a neutral data-sharing escrow owned by neither party.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
party_app = typer.Typer(help="Organisations and individuals.", no_args_is_help=True)
token_app = typer.Typer(help="API tokens (shown once, stored as a hash).", no_args_is_help=True)
dataset_app = typer.Typer(help="Datasets and their immutable versions.", no_args_is_help=True)
agreement_app = typer.Typer(help="Agreements: propose, accept, revoke.", no_args_is_help=True)
template_app = typer.Typer(help="Reusable agreement templates.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident ledger.", no_args_is_help=True)
vocabulary_app = typer.Typer(help="Purposes, data categories and subject kinds (Fideslang + the store's own).", no_args_is_help=True)
consent_app = typer.Typer(help="Consent per subject and purpose, enforced in every query.", no_args_is_help=True)
report_app = typer.Typer(help="Activity and the data balance sheet.", no_args_is_help=True)
app.add_typer(party_app, name="party")
app.add_typer(token_app, name="token")
app.add_typer(dataset_app, name="dataset")
app.add_typer(agreement_app, name="agreement")
agreement_app.add_typer(template_app, name="template")
app.add_typer(audit_app, name="audit")
app.add_typer(report_app, name="report")
app.add_typer(consent_app, name="consent")
app.add_typer(vocabulary_app, name="vocabulary")

JsonOpt = typer.Option(False, "--json", help="Machine-readable output.")
AsOpt = typer.Option(..., "--as", help="The party acting.")


class _State:
    home: Optional[str] = None
    deps: Optional[Deps] = None


state = _State()


@app.callback()
def _main(home: Optional[str] = typer.Option(None, "--home", help="Store directory (default $COMMONGROUND_HOME or ./.commonground).")) -> None:
    state.home = home


def _deps(initialised: bool = True) -> Deps:
    deps = bootstrap.build(bootstrap.Settings.from_env(state.home))
    state.deps = deps
    return bootstrap.open_store(deps) if initialised else deps


def command(parent: typer.Typer, name: str | None = None) -> Callable:
    """Register a command whose CommongroundErrors become exit codes and one-line reasons."""
    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args: Any, **kwargs: Any) -> None:
            state.deps = None
            try:
                fn(*args, **kwargs)
            except CommongroundError as e:
                raise typer.Exit(fail(e, bool(kwargs.get("json_out")))) from None
            finally:
                _sign_head()
        return parent.command(name)(run)
    return wrap


def _sign_head() -> None:
    """Sign a tree head after each command, so a later truncation of the log is detectable."""
    deps = state.deps
    if deps is not None and deps.home.exists() and deps.store.is_initialised():
        audit_svc.signed_head(deps)
        deps.store.dispose()


def _read_yaml(path: Path, what: str) -> Any:
    try:
        text = path.read_text()
    except OSError as e:
        raise BadInput(f"cannot read {what} {path}: {e.strerror}") from None
    return agreement_svc.load_yaml(text, f"{what} {path.name}")


# -- store --------------------------------------------------------------------------------

@command(app, "init")
def init(json_out: bool = JsonOpt) -> None:
    """Create the store (metadata database, data directory, ledger signing key)."""
    deps = _deps(initialised=False)
    bootstrap.init_store(deps)
    emit({"home": str(deps.home), "database": deps.store.url.split("@")[-1]}, json_out,
         lambda: out.print(f"store ready at {deps.home}"))


# -- parties and tokens -------------------------------------------------------------------

@command(party_app, "add")
def party_add(name: str, kind: str = typer.Option("organization", "--kind", help="organization | individual"),
              json_out: bool = JsonOpt) -> None:
    """Add a party."""
    p = party_svc.add_party(_deps(), name, kind)
    emit(p.to_dict(), json_out, lambda: out.print(f"party {p.name} ({p.kind}) id {p.id}"))


@command(party_app, "list")
def party_list(json_out: bool = JsonOpt) -> None:
    """List parties."""
    parties = party_svc.list_parties(_deps())
    emit([p.to_dict() for p in parties], json_out,
         lambda: table("parties", ["name", "kind", "id"], [[p.name, p.kind, p.id] for p in parties]))


@command(token_app, "create")
def token_create(party: str = AsOpt, ttl_days: Optional[int] = typer.Option(None, "--ttl-days"),
                 scope: str = typer.Option("admin", "--scope", help="read (GET only) | query (and run queries, "
                                           "offers) | admin (and change things)"), json_out: bool = JsonOpt) -> None:
    """Create an API token for a party. The secret is printed once and never stored."""
    record, secret = party_svc.create_token(_deps(), party, ttl_days, scope)
    emit({"id": record.id, "party": party, "token": secret, "scope": record.scope.value,
          "expires_at": record.expires_at.isoformat() if record.expires_at else None}, json_out,
         lambda: out.print(f"token {record.id} for {party} (scope {record.scope.value}):\n{secret}\n"
                           "(shown once; store it safely)"))


@command(token_app, "revoke")
def token_revoke(token_id: str, party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Revoke a token."""
    party_svc.revoke_token(_deps(), party, token_id)
    emit({"id": token_id, "revoked": True}, json_out, lambda: out.print(f"token {token_id} revoked"))


@command(token_app, "list")
def token_list(party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """List a party's tokens (never their secrets)."""
    tokens = party_svc.list_tokens(_deps(), party)
    rows = [{"id": t.id, "scope": t.scope.value, "created_at": t.created_at, "expires_at": t.expires_at,
             "revoked_at": t.revoked_at} for t in tokens]
    emit(rows, json_out, lambda: table("tokens", ["id", "scope", "created", "expires", "revoked"],
                                       [[r["id"], r["scope"], r["created_at"], r["expires_at"], r["revoked_at"]] for r in rows]))


# -- datasets -----------------------------------------------------------------------------

@command(dataset_app, "add")
def dataset_add(name: str, file: Path, owner: str = AsOpt,
                schema: Optional[Path] = typer.Option(None, "--schema", help="Schema YAML (types, roles, categories)."),
                json_out: bool = JsonOpt) -> None:
    """Upload a CSV, Parquet or JSON Lines file as a new immutable version."""
    deps = _deps()
    schema_doc = _read_yaml(schema, "schema") if schema else None
    show_bar = sys.stderr.isatty() and not json_out
    with Progress(TextColumn("[bold]ingest"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"), TimeElapsedColumn(),
                  transient=True, disable=not show_bar) as progress:
        task = progress.add_task("ingest", total=100)
        version, warnings = dataset_svc.add_dataset(deps, owner, name, file, schema_doc,
                                                    lambda pct: progress.update(task, completed=pct))
    for w in warnings:
        typer.echo(f"warning: {w}", err=True)
    summary = dataset_svc.dataset_summary(version)
    summary["warnings"] = list(warnings)
    emit(summary, json_out, lambda: out.print(
        f"{version.key} version {version.version}: {version.rows:,} rows, sha256 {version.sha256}, id {version.id}"))


@command(dataset_app, "list")
def dataset_list(party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Datasets the party owns or has an agreement for."""
    versions = dataset_svc.list_datasets(_deps(), party)
    data = [dataset_svc.dataset_summary(v, own=v.owner == party) for v in versions]
    emit(data, json_out, lambda: table("datasets", ["dataset", "version", "rows", "columns", "sha256"],
                                       [[v.key, v.version, f"{v.rows:,}", len(v.schema.columns), v.sha256[:16]] for v in versions]))


@command(dataset_app, "purge")
def dataset_purge(name: str, party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Delete the files of your dataset's superseded versions (e.g. after an erasure); the latest stays.

    Each purged version keeps its hash on the ledger and its subject ids only, for people's receipts."""
    data = dataset_svc.purge(_deps(), party, name)
    emit(data, json_out, lambda: out.print(
        f"{data['dataset']}: purged version(s) {', '.join(map(str, data['purged']))} ({data['bytes_freed']:,} bytes); "
        f"version {data['kept']} stays" if data["purged"] else
        f"{data['dataset']}: nothing to purge; version {data['kept']} is the only one with a data file",
        markup=False, highlight=False))


@command(dataset_app, "show")
def dataset_show(ref: str, party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Schema, roles, versions and commitments of one dataset."""
    version, history = dataset_svc.show_dataset(_deps(), party, ref)
    data = dataset_svc.dataset_summary(version, history, own=version.owner == party)
    if version.owner == party and state.deps is not None:
        if curation := dataset_svc.curation_report(state.deps, version):
            data["curation"] = curation

    def human() -> None:
        out.print(f"[bold]{version.key}[/] version {version.version}, {version.rows:,} rows")
        if data.get("subjects") is not None:  # what ingest measured; shown to the owner only
            level = (", ".join(data["subject_level_columns"]) or "none" if "subject_level_columns" in data
                     else "not recorded (stored before the store measured it)")
            out.print(f"{data['subjects']:,} subjects, at most {data['max_rows_per_subject']:,} rows each; "
                      f"one value per subject: {level}")
        table("columns", ["name", "type", "role", "category", "seal"],
              [[c["name"], c["type"], c["role"], c["category"], c.get("seal", "")] for c in data["columns"]])
        table("versions", ["version", "rows", "sha256", "created"],
              [[h["version"], h["rows"], h["sha256"], h["created_at"]] for h in data["versions"]])
        if data.get("curation"):
            table("curation", ["column", "step", "mapped rows", "unmapped rows", "unmapped distinct", "on unmapped"],
                  [[k, c["step"], c["mapped_rows"], c["unmapped_rows"], c["unmapped_distinct"], c["on_unmapped"]]
                   for k, c in data["curation"].items()])
    emit(data, json_out, human)


# -- agreements ---------------------------------------------------------------------------

def _agreement_out(deps: Deps, state, json_out: bool, verb: str) -> None:
    data = agreement_svc.agreement_summary(state, deps.now())
    emit(data, json_out, lambda: out.print(f"agreement {data['name']} v{data['version']} {verb}: id {data['id']}, status {data['status']}"))


@command(agreement_app, "propose")
def agreement_propose(file: Optional[Path] = typer.Argument(None, help="Agreement YAML."), party: str = AsOpt,
                      template: Optional[str] = typer.Option(None, "--template", help="Template name."),
                      params: list[str] = typer.Option([], "--set", help="Template parameter NAME=VALUE."),
                      json_out: bool = JsonOpt) -> None:
    """Propose an agreement from a YAML file or a template; the provider's proposal is its signature."""
    deps = _deps()
    if (file is None) == (template is None):
        raise BadInput("give either an agreement FILE or --template NAME")
    if template:
        values = {}
        for p in params:
            key, sep, value = p.partition("=")
            if not sep or not key:
                raise BadInput(f"--set takes NAME=VALUE, not {p!r}")
            values[key] = value
        state = agreement_svc.propose_from_template(deps, party, template, values)
    else:
        state = agreement_svc.propose(deps, party, _read_yaml(file, "agreement"))  # type: ignore[arg-type]
    data = agreement_svc.proposal_summary(deps, state)

    def human() -> None:
        out.print(f"agreement {data['name']} v{data['version']} proposed: id {data['id']}, status {data['status']}")
        for dataset in data["unvetted"]:
            err.print(f"warning: {dataset} declares no rights, so these terms were not checked against a legal basis "
                      "(declare them: commonground rights declare NAME --basis BASIS --purpose PURPOSE)", markup=False, highlight=False)
        for dataset, columns in data["ungeneralised"].items():
            err.print(f"warning: exports of {dataset} will release {', '.join(columns)} as they are: named like "
                      "quasi-identifiers, but neither the agreement (access.quasi_identifiers) nor the schema lists "
                      "them, so k-anonymity is not counted over them", markup=False, highlight=False)
    emit(data, json_out, human)


@command(agreement_app, "accept")
def agreement_accept(agreement_id: str, party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Accept (sign) an agreement; it is active once every party has."""
    deps = _deps()
    _agreement_out(deps, agreement_svc.accept(deps, party, agreement_id), json_out, "accepted")


@command(agreement_app, "revoke")
def agreement_revoke(agreement_id: str, party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Revoke an agreement, with immediate effect."""
    deps = _deps()
    _agreement_out(deps, agreement_svc.revoke(deps, party, agreement_id), json_out, "revoked")


@command(agreement_app, "list")
def agreement_list(party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Agreements the party is in."""
    deps = _deps()
    data = [agreement_svc.agreement_summary(a, deps.now()) for a in agreement_svc.list_agreements(deps, party)]
    emit(data, json_out, lambda: table("agreements", ["id", "name", "v", "status", "provider", "recipients", "purposes"],
                                       [[a["id"], a["name"], a["version"], a["status"], a["provider"],
                                         ",".join(a["recipients"]), ",".join(a["purposes"])] for a in data]))


@command(agreement_app, "show")
def agreement_show(agreement_id: str, party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """One agreement, its terms and signatures."""
    deps = _deps()
    data = agreement_svc.agreement_summary(agreement_svc.show(deps, party, agreement_id), deps.now())
    emit(data, json_out, lambda: out.print(yaml.safe_dump(data, sort_keys=False)))


@command(agreement_app, "budget")
def agreement_budget(agreement_id: str, party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """A dp agreement's privacy budget: epsilon and delta spent and left, per recipient."""
    data = privacy_svc.budget(_deps(), party, agreement_id)
    emit(data, json_out, lambda: table(f"budget of {agreement_id} (epsilon {data['epsilon']:g}, delta {data['delta']:g})",
                                       ["recipient", "epsilon spent", "epsilon left", "delta spent"],
                                       [[r, v["epsilon_spent"], v["epsilon_left"], v["delta_spent"]]
                                        for r, v in data["recipients"].items()]))


@command(template_app, "add")
def template_add(name: str, file: Path, party: str = AsOpt, json_out: bool = JsonOpt) -> None:
    """Store an agreement template with ${parameters}."""
    try:
        text = file.read_text()
    except OSError as e:
        raise BadInput(f"cannot read template {file}: {e.strerror}") from None
    template_id = agreement_svc.add_template(_deps(), party, name, text)
    emit({"id": template_id, "name": name}, json_out, lambda: out.print(f"template {name} id {template_id}"))


@command(template_app, "list")
def template_list(json_out: bool = JsonOpt) -> None:
    """Templates in the store."""
    data = agreement_svc.list_templates(_deps())
    emit(data, json_out, lambda: table("templates", ["name", "owner", "id"], [[t["name"], t["owner"], t["id"]] for t in data]))


# -- queries ------------------------------------------------------------------------------

@command(app, "query")
def query(sql: str, party: str = AsOpt, purpose: str = typer.Option(..., "--purpose", help="Why (e.g. analytics.reporting)."),
          explain: bool = typer.Option(False, "--explain", help="Show the governed SQL instead of running it."),
          epsilon: Optional[float] = typer.Option(None, "--epsilon", min=0.0,
                                                  help="dp only: epsilon to spend (default and most: the agreement's per query)."),
          json_out: bool = JsonOpt) -> None:
    """Run clean-room SQL over tables named owner.dataset, as a party, for a purpose."""
    from ..services import queries as query_svc  # the governor (SQLGlot) loads only for queries

    deps = _deps()
    if explain:
        plan = query_svc.explain_query(deps, party, purpose, sql, epsilon)
        emit({"governed": plan.governed, "min_group_size": plan.min_group_size, "sql": plan.explain()}, json_out,
             lambda: out.print(plan.explain(), markup=False, highlight=False))
        return
    result, plan = query_svc.run_query(deps, party, purpose, sql, epsilon)
    data = query_svc.result_json(result, plan)

    def human() -> None:
        table("result", data["columns"], data["rows"])
        if "dp" in data:  # noisy answers: say how noisy, and what the query cost
            dp = data["dp"]
            bars = ", ".join(f"{c} ± {w:g}" for c, w in dp["ci95_half_width"].items())
            out.print(f"differentially private: epsilon {dp['epsilon_spent']:g} spent, {dp['epsilon_left']:g} of "
                      f"{dp['budget_epsilon']:g} left; 95% interval {bars}", markup=False)
            for name, note in dp.get("quantiles", {}).items():
                out.print(f"  {name}: one of {note['candidates']} grid points {note['grid_step']:g} apart, over "
                          f"{note['of']}; no closed-form interval", markup=False)
        elif plan.governed:
            out.print(f"k = {plan.min_group_size}; groups suppressed below k: {result.suppressed_groups}")
            if "noise" in data:  # seeded noise (threshold modes): say which values and how much
                scales = ", ".join(f"{c} ({', '.join(f'{k} {v:g}' for k, v in s.items())})"
                                   for c, s in data["noise"]["scales"].items())
                out.print(f"{data['noise']['mechanism']}, Laplace scale: {scales}", markup=False)
    emit(data, json_out, human)


# -- audit --------------------------------------------------------------------------------

@command(audit_app, "verify")
def audit_verify(json_out: bool = JsonOpt) -> None:
    """Recompute the Merkle tree from storage and check it entry by entry."""
    report = audit_svc.verify(_deps())
    data = {"ok": report.ok, "entries": report.entries, "first_bad_index": report.first_bad_index,
            "problem": report.problem, "root_hash": report.root_hash}
    emit(data, json_out, lambda: out.print(
        f"ledger ok: {report.entries} entries, root {report.root_hash}" if report.ok
        else f"ledger TAMPERED at index {report.first_bad_index}: {report.problem}"))
    if not report.ok:
        raise typer.Exit(1)


@command(audit_app, "log")
def audit_log(start: int = typer.Option(0, "--start"), limit: int = typer.Option(50, "--limit"), json_out: bool = JsonOpt) -> None:
    """Ledger entries (never secrets or data values)."""
    entries = audit_svc.log(_deps(), start, limit)
    emit(entries, json_out, lambda: table("ledger", ["index", "event", "party", "at"],
                                          [[e.get("index"), e.get("event"), e.get("party"), e.get("at")] for e in entries]))


@command(audit_app, "proof")
def audit_proof(index: int, json_out: bool = JsonOpt) -> None:
    """An entry with its inclusion proof, signed tree head and public key, for offline checking."""
    emit(audit_svc.inclusion(_deps(), index), True)


@command(audit_app, "head")
def audit_head(json_out: bool = JsonOpt) -> None:
    """The latest signed tree head."""
    emit(audit_svc.signed_head(_deps()).to_dict(), True)


@command(audit_app, "public-key")
def audit_public_key(json_out: bool = JsonOpt) -> None:
    """The ledger's Ed25519 public key (PEM), to verify tree heads offline."""
    sys.stdout.write(_deps().signer.public_key_pem().decode())


@command(audit_app, "verify-proof")
def audit_verify_proof(bundle: Path, public_key: Path = typer.Option(..., "--public-key"), json_out: bool = JsonOpt) -> None:
    """Check a proof bundle (from `audit proof`) offline, with only the public key."""
    try:
        data = jsonlib.loads(bundle.read_text())
        key = public_key.read_bytes()
    except (OSError, ValueError) as e:
        raise BadInput(f"cannot read proof bundle or key: {e}") from None
    try:
        audit_svc.verify_proof_offline(data, key)
    except (ValueError, KeyError, TypeError) as e:
        problem = str(e)
        emit({"ok": False, "problem": problem}, json_out, lambda: out.print(f"proof does NOT verify: {problem}"))
        raise typer.Exit(1) from None
    emit({"ok": True}, json_out, lambda: out.print("proof verifies"))


# -- consent ------------------------------------------------------------------------------

def _consent_change(status: str, controller: str, dataset: str, subject: str, purpose: str, json_out: bool) -> None:
    consent_svc.record(_deps(), controller, dataset, [(subject, purpose, status)], "controller")
    emit({"dataset": dataset, "subject": subject, "purpose": purpose, "status": status}, json_out,
         lambda: out.print(f"consent {status}: {subject} / {purpose} on {dataset}"))


@command(consent_app, "grant")
def consent_grant(controller: str = AsOpt, dataset: str = typer.Option(..., "--dataset"), subject: str = typer.Option(..., "--subject"),
                  purpose: str = typer.Option(..., "--purpose"), json_out: bool = JsonOpt) -> None:
    """Record that a subject granted a purpose."""
    _consent_change("granted", controller, dataset, subject, purpose, json_out)


@command(consent_app, "withdraw")
def consent_withdraw(controller: str = AsOpt, dataset: str = typer.Option(..., "--dataset"), subject: str = typer.Option(..., "--subject"),
                     purpose: str = typer.Option(..., "--purpose"), json_out: bool = JsonOpt) -> None:
    """Record that a subject withdrew a purpose; the next query already excludes them."""
    _consent_change("withdrawn", controller, dataset, subject, purpose, json_out)


@command(consent_app, "import")
def consent_import(file: Path, controller: str = AsOpt, dataset: str = typer.Option(..., "--dataset"), json_out: bool = JsonOpt) -> None:
    """Import existing consent records from CSV (subject_id,purpose,status): all or nothing."""
    count = consent_svc.import_csv(_deps(), controller, dataset, file)
    emit({"dataset": dataset, "records": count}, json_out, lambda: out.print(f"{count:,} consent records imported into {dataset}"))


@command(consent_app, "show")
def consent_show(controller: str = AsOpt, dataset: str = typer.Option(..., "--dataset"),
                 subject: Optional[str] = typer.Option(None, "--subject"), json_out: bool = JsonOpt) -> None:
    """The consent history of a dataset (or of one subject in it)."""
    rows = consent_svc.history(_deps(), controller, dataset, subject)
    emit(rows, json_out, lambda: table(f"consent on {dataset}", ["subject", "purpose", "status", "source", "at"],
                                       [[r["subject"], r["purpose"], r["status"], r["source"], r["recorded_at"]] for r in rows]))


# -- vocabulary ---------------------------------------------------------------------------

@command(vocabulary_app, "list")
def vocabulary_list(kind: Optional[str] = typer.Option(None, "--kind", help="purpose | category | subject"), json_out: bool = JsonOpt) -> None:
    """Names you can use for purposes, data categories and subject kinds."""
    if kind not in (None, "purpose", "category", "subject"):
        raise BadInput(f"unknown vocabulary kind {kind!r} (use purpose, category or subject)")
    data = vocabulary_svc.entries(_deps(), kind)
    emit(data, json_out, lambda: table("vocabulary", ["kind", "name", "source"], [[e["kind"], e["name"], e["source"]] for e in data]))


@command(vocabulary_app, "add")
def vocabulary_add(name: str, party: str = AsOpt, kind: str = typer.Option(..., "--kind", help="purpose | category | subject"),
                   description: str = typer.Option("", "--description"), json_out: bool = JsonOpt) -> None:
    """Add the store's own purpose, data category or subject kind."""
    vocabulary_svc.add_entry(_deps(), party, kind, name, description)
    emit({"kind": kind, "name": name}, json_out, lambda: out.print(f"{kind} {name} added"))


# -- reports ------------------------------------------------------------------------------

@command(report_app, "activity")
def report_activity(party: str = typer.Option(..., "--party"), since: Optional[str] = typer.Option(None, "--since", help="ISO date or time."),
                    json_out: bool = JsonOpt) -> None:
    """What the ledger says a party did."""
    import datetime as dt
    try:
        moment = dt.datetime.fromisoformat(since) if since else None
    except ValueError:
        raise BadInput(f"--since {since!r} is not an ISO date or time") from None
    data = report_svc.activity(_deps(), party, moment)

    def human() -> None:
        table(f"activity of {party}", ["event", "count"], [[k, v] for k, v in data["events"].items()])
        q = data["queries"]
        out.print(f"queries: {q['allowed']} allowed, {q['refused']} refused, {q['rows_returned']} rows returned, "
                  f"{q['groups_suppressed']} groups suppressed")
    emit(data, json_out, human)


@command(report_app, "balance")
def report_balance(a: str, b: str, json_out: bool = JsonOpt) -> None:
    """The data balance sheet between two parties: who shares what with whom, and how much is used."""
    data = report_svc.balance(_deps(), a, b)

    def human() -> None:
        table(f"data balance {a} <-> {b}", ["direction", "datasets", "fields", "categories", "modes", "queries", "rows out", "subjects"],
              [[f"{d['from']} -> {d['to']}", ", ".join(d["datasets"]) or "-", d["fields_shared"],
                len({c for v in d["datasets"].values() for c in v["categories"]}), ", ".join(d["access_modes"]) or "-",
                d["queries_run"], d["rows_returned"], d["subjects_covered"]] for d in data["directions"]])
    emit(data, json_out, human)


# -- serve and demo -----------------------------------------------------------------------

# Responses carry a signed tree head at most this old: one signature a second under load.
HEAD_INTERVAL_S = 1.0


@command(app, "serve")
def serve(host: str = typer.Option("127.0.0.1", "--host"), port: int = typer.Option(8000, "--port"), json_out: bool = JsonOpt) -> None:
    """Start the HTTP API (OpenAPI docs at /docs) and the web pages (at /web)."""
    import uvicorn

    from ..api.app import create_app
    from ..web.app import mount_web
    deps = _deps()
    bootstrap.warm_up(deps)
    uvicorn.run(mount_web(create_app(deps, head_interval_s=HEAD_INTERVAL_S), deps), host=host, port=port, log_level="info")


@command(app, "demo")
def demo(reset: bool = typer.Option(False, "--reset", help="Start from an empty store."), json_out: bool = JsonOpt) -> None:
    """Build the retailer / brand / shared-customers scenario and run a governed query."""
    from ..demo import build_demo
    deps = _deps(initialised=False)
    report = build_demo(deps, reset=reset)
    emit(report, json_out, lambda: out.print(report["summary"], markup=False, highlight=False, soft_wrap=True))


# Commands for individuals and offers live in their own module; importing it registers them.
from . import exports, individuals, sharing  # noqa: E402,F401
from . import sealing  # noqa: E402,F401
from . import curation  # noqa: E402,F401
from . import listings, rights  # noqa: E402,F401
from . import conversations  # noqa: E402,F401
from . import code  # noqa: E402,F401


def main() -> None:
    os.environ.setdefault("PYTHONIOENCODING", "utf-8")
    app()


if __name__ == "__main__":
    # Run as `python -m commonground.cli.main`: use the package's copy of this module, on which
    # cli/individuals.py registered its commands, not this __main__ copy.
    from commonground.cli.main import main as package_main
    package_main()
