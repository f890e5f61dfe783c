"""Governed query benchmark: govern() + DuckDBEngine.run versus the same SQL run raw by DuckDB.

    .venv/bin/python benchmarks/governed_query.py                      # 10M provider / 2M recipient rows
    .venv/bin/python benchmarks/governed_query.py --rows 200000 --repeat 1 --policy-calls 20   # smoke

Data (generated once, deterministically, with DuckDB, then ingested with the product's
ParquetIngest so the governor gets the real `max_rows_per_subject`), in two shapes:

  * customer:  retailer.customers (provider, one row per subject, --rows rows) and
               brand.customers (recipient, one row per subject, --recipient-rows rows);
  * purchases: retailer.purchases / brand.purchases, 1..9 rows per subject (mean 5), the
               same row counts.

Half of the recipient's subjects are also the provider's. The agreement is join mode,
k = 10, customer_id hashed (HMAC) and the only join key, zip generalised, age bucketed,
email dropped. Queries, as party `brand`:

  * group-by:  SELECT age, count(*), avg(spend) FROM retailer.<t> GROUP BY age
  * join:      SELECT c.segment, count(*), avg(p.spend) FROM retailer.<t> p
               JOIN brand.<t> c ON p.customer_id = c.customer_id GROUP BY c.segment

governed = govern() + DuckDBEngine(threads=T).run(plan, sources), the whole call;
raw      = a fresh DuckDB connection (same threads and memory limit) with views
           owner.name AS SELECT * FROM read_parquet(<the same ingested file>), running the
           user's SQL exactly as written (no transforms, no threshold) and fetching all rows.
Each contender runs in its own process (peak RSS from wait4), --repeat times; medians are
reported. The policy check is govern() alone, --policy-calls times per query, in-process.

Targets (issue #3): governed/raw <= 1.3 (customer shape), <= 2.0 (purchases shape);
policy check + rewrite < 5 ms median.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench as B  # noqa: E402

SCRIPT = str(Path(__file__).resolve())
TARGETS = {"customer": 1.3, "purchases": 2.0}
TARGET_POLICY_S = 0.005
K = 10
TABLE = {"customer": "customers", "purchases": "purchases"}

PROVIDER_SCHEMA = {"columns": {
    "customer_id": {"type": "string", "role": "subject_id", "category": "user.unique_id"},
    "email": {"type": "string", "role": "identifier", "category": "user.contact.email"},
    "store_zip": {"type": "string", "role": "quasi_identifier"},
    "age": {"type": "integer", "role": "quasi_identifier"},
    "spend": {"type": "double", "role": "sensitive"},
    "ts": {"type": "timestamp"},
}}
RECIPIENT_SCHEMA = {"columns": {
    "customer_id": {"type": "string", "role": "subject_id", "category": "user.unique_id"},
    "segment": {"type": "string"},
    "region": {"type": "string"},
    "points": {"type": "integer"},
}}


def queries(shape: str) -> dict[str, str]:
    t = TABLE[shape]
    return {
        "group-by": f"SELECT age, count(*) AS n, avg(spend) AS avg_spend FROM retailer.{t} GROUP BY age ORDER BY age",
        "join": (f"SELECT c.segment, count(*) AS n, avg(p.spend) AS avg_spend FROM retailer.{t} p "
                 f"JOIN brand.{t} c ON p.customer_id = c.customer_id GROUP BY c.segment ORDER BY c.segment"),
    }


# ---------------------------------------------------------------------------------------
# data


def dataset_dir(shape: str, rows: int, recipient_rows: int) -> Path:
    return B.data_dir() / f"gq-{shape}-{rows}-{recipient_rows}"


def make_data(shape: str, rows: int, recipient_rows: int) -> dict:
    """Source Parquet by DuckDB, then the product's ingest; cached under benchmarks/.data/."""
    d = dataset_dir(shape, rows, recipient_rows)
    meta_path = d / "meta.json"
    if meta_path.exists():
        return json.loads(meta_path.read_text())
    import duckdb

    from commonground.adapters.ingest import ParquetIngest
    from commonground.domain.schema import parse_schema

    d.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    cid = "'C' || lpad(({x})::VARCHAR, 10, '0')"
    if shape == "customer":
        # provider: subjects 0..rows-1, stored in a scrambled order; recipient: half of its
        # subjects are provider subjects spread over the whole range, half are its own.
        half = recipient_rows // 2
        step = max(rows // max(half, 1), 1)
        provider_sql = f"""
            SELECT {cid.format(x='(i * 7919) % ' + str(rows))} AS customer_id,
                   'user' || ((i * 7919) % {rows}) || '@example.com' AS email,
                   lpad((10000 + hash(i) % 90000)::VARCHAR, 5, '0') AS store_zip,
                   18 + (hash(i + 1) % 70)::INTEGER AS age,
                   round((hash(i + 2) % 100000) / 100.0, 2) AS spend,
                   TIMESTAMP '2024-01-01' + to_seconds((hash(i + 3) % 31536000)::BIGINT) AS ts
            FROM range({rows}) t(i)"""
        recipient_sql = f"""
            SELECT {cid.format(x=f'CASE WHEN j < {half} THEN j * {step} ELSE {rows} + j END')} AS customer_id,
                   ['bronze', 'silver', 'gold', 'platinum'][1 + (hash(j) % 4)::INTEGER] AS segment,
                   ['north', 'south', 'east', 'west'][1 + (hash(j + 1) % 4)::INTEGER] AS region,
                   (hash(j + 2) % 10000)::INTEGER AS points
            FROM range({recipient_rows}) t(j)"""
    else:
        # subject s has 1 + s % 9 rows (mean 5, at most 9): rows/5 subjects.
        subjects = max(rows // 5, 1)
        r_subjects = max(recipient_rows // 5, 1)
        half = r_subjects // 2
        step = max(subjects // max(half, 1), 1)
        provider_sql = f"""
            SELECT {cid.format(x='s')} AS customer_id,
                   'user' || s || '@example.com' AS email,
                   lpad((10000 + hash(s) % 90000)::VARCHAR, 5, '0') AS store_zip,
                   18 + (hash(s + 1) % 70)::INTEGER AS age,
                   round((hash(s * 16 + n) % 100000) / 100.0, 2) AS spend,
                   TIMESTAMP '2024-01-01' + to_seconds((hash(s * 16 + n + 1) % 31536000)::BIGINT) AS ts
            FROM range({subjects}) t(s), range(9) u(n) WHERE n < 1 + s % 9"""
        recipient_sql = f"""
            SELECT {cid.format(x=f'CASE WHEN j < {half} THEN j * {step} ELSE {subjects} + j END')} AS customer_id,
                   ['bronze', 'silver', 'gold', 'platinum'][1 + (hash(j) % 4)::INTEGER] AS segment,
                   ['north', 'south', 'east', 'west'][1 + (hash(j * 16 + n) % 4)::INTEGER] AS region,
                   (hash(j * 16 + n + 2) % 10000)::INTEGER AS points
            FROM range({r_subjects}) t(j), range(9) u(n) WHERE n < 1 + j % 9"""
    meta: dict = {"shape": shape}
    ingest = ParquetIngest(d / "home", max_bytes=1 << 50)
    for role, sql, schema in (("provider", provider_sql, PROVIDER_SCHEMA), ("recipient", recipient_sql, RECIPIENT_SCHEMA)):
        src = d / f"{role}-source.parquet"
        con.execute(f"COPY ({sql}) TO '{src}' (FORMAT parquet)")
        dest = d / f"{role}.parquet"
        t0 = time.perf_counter()
        info, _ = ingest.ingest(src, parse_schema(schema), dest)
        meta[role] = {"path": str(dest), "rows": info.rows, "subjects": info.distinct_subjects,
                      "max_rows_per_subject": info.max_rows_per_subject, "bytes": info.bytes,
                      "ingest_s": time.perf_counter() - t0}
        src.unlink()
    overlap = con.execute(
        f"SELECT count(*) FROM (SELECT DISTINCT customer_id FROM read_parquet('{meta['recipient']['path']}')) r "
        f"SEMI JOIN read_parquet('{meta['provider']['path']}') p USING (customer_id)").fetchone()[0]
    meta["overlap_subjects"] = overlap
    con.close()
    meta_path.write_text(json.dumps(meta, indent=2))
    return meta


# ---------------------------------------------------------------------------------------
# the governor's inputs


def context(meta: dict):
    from commonground.domain.agreements import AgreementState, AgreementStatus, parse_agreement
    from commonground.domain.schema import parse_schema
    from commonground.policy.context import QueryContext, TableInfo

    t = TABLE[meta["shape"]]
    terms = parse_agreement({
        "name": "bench-insights", "provider": "retailer", "recipients": ["brand"],
        "purposes": ["analytics.reporting"], "valid_until": "2099-12-31",
        "datasets": {f"retailer.{t}": {"fields": {
            "customer_id": {"transform": "hash"}, "store_zip": {"transform": "generalize", "keep": 3},
            "age": {"transform": "bucket", "width": 10}, "spend": "raw", "ts": {"transform": "generalize", "to": "month"},
            "email": "drop"}}},
        "access": {"mode": "join", "min_group_size": K, "join_keys": ["customer_id"]},
    })
    agreement = AgreementState("agbench1", 1, terms, AgreementStatus.ACTIVE, frozenset({"retailer", "brand"}), b"k" * 32)
    p, r = meta["provider"], meta["recipient"]
    tables = {
        f"retailer.{t}": TableInfo("retailer", t, parse_schema(PROVIDER_SCHEMA), p["rows"], p["max_rows_per_subject"]),
        f"brand.{t}": TableInfo("brand", t, parse_schema(RECIPIENT_SCHEMA), r["rows"], r["max_rows_per_subject"]),
    }
    sources = {f"retailer.{t}": Path(p["path"]), f"brand.{t}": Path(r["path"])}
    return QueryContext("brand", "analytics.reporting", tables, (agreement,)), sources


# ---------------------------------------------------------------------------------------
# children




def _step_label(q: str) -> str:
    if q.startswith("CREATE OR REPLACE TEMP TABLE") and "GROUPING SETS" in q:
        return "group table with sketch cells (one pass)"
    if q.startswith("CREATE OR REPLACE TEMP TABLE") and "EXCLUDE" in q:
        return "groups apart from their cells"
    if q.startswith("CREATE OR REPLACE TEMP TABLE") and "COUNT(DISTINCT" in q:
        return "exact group table (COUNT DISTINCT)"
    if q.startswith("CREATE OR REPLACE TEMP TABLE"):
        return "group table without cells (COUNT bound)"
    if "__cg_cell_row" in q:
        return "released groups' sketches"
    if "WHERE __cg_unsure" in q:
        return "count unsure groups"
    if "WHERE NOT __cg_ok" in q:
        return "count suppressed groups"
    if q.startswith("SELECT") and "__cg_groups_" in q:
        return "final SELECT over group table"
    return "connection setup, macros, views"


def child_run(args: dict) -> dict:
    import duckdb

    meta = json.loads(Path(args["meta"]).read_text())
    ctx, sources = context(meta)
    sql = args["sql"]
    threads = args["threads"]
    times, steps, result = [], [], None
    if args["mode"] == "raw":
        for _ in range(args["repeat"]):
            t0 = time.perf_counter()
            con = duckdb.connect(":memory:", config={"threads": threads, "memory_limit": args["memory"]})
            for key, path in sources.items():
                owner, name = key.split(".")
                con.execute(f'CREATE SCHEMA IF NOT EXISTS "{owner}"')
                con.execute(f"CREATE VIEW \"{owner}\".\"{name}\" AS SELECT * FROM read_parquet('{path}')")
            rows = con.execute(sql).fetchall()
            con.close()
            times.append(time.perf_counter() - t0)
            result = {"groups": len(rows)}
    else:
        import commonground.adapters.duckdb_engine as engine_mod
        from commonground.adapters.duckdb_engine import DuckDBEngine
        from commonground.policy.governor import govern

        ablation = args.get("ablation")
        if ablation == "identity_hash":
            engine_mod.hmac_sql = lambda key, value_sql: f"CAST({value_sql} AS VARCHAR)"
        log: list = []

        class Engine(DuckDBEngine):
            def _connect(self, srcs):
                return B.TimedConnection(super()._connect(srcs), log)

        engine = Engine(memory_limit=args["memory"], threads=threads)
        for _ in range(args["repeat"]):
            t0 = time.perf_counter()
            plan = govern(sql, ctx)
            if ablation == "count_star":
                plan = _count_star(plan)
            r = engine.run(plan, sources)
            times.append(time.perf_counter() - t0)
            result = {"groups": len(r.rows), "suppressed": r.suppressed_groups, "exact_recount": r.exact_recount}
        agg: dict[str, float] = {}
        for q, s in log:
            agg[_step_label(q)] = agg.get(_step_label(q), 0.0) + s
        steps = [(label, total / args["repeat"]) for label, total in agg.items()]  # mean per run
    return {"times": times, "steps": steps, **(result or {})}


def _count_star(plan):
    """Ablation: COUNT(unit) -> COUNT(*) in the fast bound (valid when the unit is non-null)."""
    import dataclasses

    pattern = re.compile(r'COUNT\((?:"[^"]+"\.)?"__cg_pu[^"]*"\)')
    groups = tuple(dataclasses.replace(g, fast_sql=pattern.sub("COUNT(*)", g.fast_sql) if g.fast_sql else None)
                   for g in plan.groups)
    return dataclasses.replace(plan, groups=groups)


def child_policy(args: dict) -> dict:
    from commonground.policy.governor import govern

    meta = json.loads(Path(args["meta"]).read_text())
    ctx, _ = context(meta)
    out = {}
    for name, sql in args["queries"].items():
        for _ in range(5):
            govern(sql, ctx)
        samples = []
        for _ in range(args["calls"]):
            t0 = time.perf_counter()
            govern(sql, ctx)
            samples.append(time.perf_counter() - t0)
        samples.sort()
        out[name] = {"median": B.median(samples), "p95": samples[int(0.95 * (len(samples) - 1))], "calls": len(samples)}
    if args.get("profile"):
        out["_phases"] = _policy_phases(ctx, args["queries"], args["calls"])
    return out


# (module, function, label): wrapped where found; the governor is a moving target, so
# steps that do not exist in this version are simply left out.
POLICY_STEPS = [
    ("commonground.policy.governor", "_parse", "parse (sqlglot)"),
    ("commonground.policy.governor", "_screen", "screen (allow-list walk)"),
    ("commonground.policy.governor", "_resolve_tables", "resolve tables"),
    ("commonground.policy.governor", "qualify", "qualify (sqlglot optimizer)"),
    ("commonground.policy.governor", "traverse_scope", "traverse_scope (sqlglot)"),
    ("commonground.policy.checks", "check_joins", "check joins"),
    ("commonground.policy.checks", "check_scopes", "check scopes"),
    ("commonground.policy.governor", "_check_scopes", "check scopes"),
    ("commonground.policy.governor", "_check_joins", "check joins"),
    ("commonground.policy.governor", "rewrite", "rewrite (all of it)"),
    ("commonground.policy.governor", "_rewrite", "rewrite (all of it)"),
    ("commonground.policy.rewrite", "_view", "  of which: view SQL"),
    ("commonground.policy.rewrite", "_propagate_privacy_units", "  of which: privacy units"),
    ("commonground.policy.rewrite", "_with_threshold", "  of which: threshold (copy + SQL)"),
    ("commonground.policy.rewrite", "_group_query", "  of which: group queries (copy + fast/exact SQL)"),
    ("commonground.policy.rewrite", "_errors_without_values", "  of which: TRY_CAST pass"),
    ("commonground.policy.governor", "_view", "  of which: view SQL"),
    ("commonground.policy.governor", "_with_threshold", "  of which: threshold (copy + SQL)"),
]


def _policy_phases(ctx, qs: dict, calls: int) -> dict:
    """Mean time per govern() call spent in each governor step (module functions wrapped)."""
    import importlib

    from commonground.policy.governor import govern

    found = []
    for module_name, fn_name, label in POLICY_STEPS:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            continue
        if callable(getattr(module, fn_name, None)):
            found.append((module, fn_name, label))
    spent: dict[str, float] = {}

    def wrap(label, fn):
        def timed(*a, **kw):
            t0 = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[label] = spent.get(label, 0.0) + time.perf_counter() - t0
        return timed

    originals = [(module, name, getattr(module, name)) for module, name, _ in found]
    for module, name, label in found:
        setattr(module, name, wrap(label, getattr(module, name)))
    out = {}
    try:
        for qname, sql in qs.items():
            spent.clear()
            t0 = time.perf_counter()
            for _ in range(calls):
                govern(sql, ctx)
            total = time.perf_counter() - t0
            out[qname] = {"total": total / calls, **{label: v / calls for label, v in spent.items()}}
    finally:
        for module, name, fn in originals:
            setattr(module, name, fn)
    return out


CHILDREN = {"run": child_run, "policy": child_policy}


# ---------------------------------------------------------------------------------------
# driver


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--rows", type=int, default=10_000_000, help="provider rows (default 10M)")
    p.add_argument("--recipient-rows", type=int, default=None, help="recipient rows (default rows/5)")
    p.add_argument("--shapes", default="customer,purchases")
    p.add_argument("--repeat", type=int, default=3, help="runs per contender; the median is reported")
    p.add_argument("--policy-calls", type=int, default=200)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--memory", default="4GB", help="DuckDB memory_limit for both (the engine's default)")
    p.add_argument("--no-ablations", action="store_true", help="skip the attribution runs")
    B.add_child_arguments(p)
    a = p.parse_args()
    if B.run_child_if_asked(a, CHILDREN):
        return
    recipient_rows = a.recipient_rows or max(a.rows // 5, 10)
    print(B.machine_line() + f"; threads={a.threads}, memory_limit={a.memory}")
    results = []
    attributions = []
    steps_out = []
    profile_text = None
    for shape in a.shapes.split(","):
        t0 = time.perf_counter()
        meta = make_data(shape, a.rows, recipient_rows)
        meta_path = dataset_dir(shape, a.rows, recipient_rows) / "meta.json"
        pr, rc = meta["provider"], meta["recipient"]
        print(f"data [{shape}]: provider {pr['rows']:,} rows / {pr['subjects']:,} subjects (max {pr['max_rows_per_subject']}/subject), "
              f"recipient {rc['rows']:,} rows / {rc['subjects']:,} subjects (max {rc['max_rows_per_subject']}), "
              f"{meta['overlap_subjects']:,} recipient subjects overlap; ready in {time.perf_counter() - t0:.1f} s", flush=True)
        for path in (pr["path"], rc["path"]):
            B.warm_file(Path(path))
        qs = queries(shape)
        pol = B.child(SCRIPT, "policy", {"meta": str(meta_path), "queries": qs, "calls": a.policy_calls,
                                         "profile": profile_text is None})
        if profile_text is None and pol.get("_phases"):
            profile_text = pol["_phases"]
        for qname, sql in qs.items():
            common = {"meta": str(meta_path), "sql": sql, "threads": a.threads, "memory": a.memory, "repeat": a.repeat}
            raw = B.child(SCRIPT, "run", {**common, "mode": "raw"}, timeout=3600)
            gov = B.child(SCRIPT, "run", {**common, "mode": "governed"}, timeout=3600)
            raw_t, gov_t = B.median(raw["times"]), B.median(gov["times"])
            row = {"shape": shape, "query": qname, "sql": sql, "raw_s": raw_t, "governed_s": gov_t, "ratio": gov_t / raw_t,
                   "target": TARGETS[shape], "policy_median_s": pol[qname]["median"], "policy_p95_s": pol[qname]["p95"],
                   "raw_rss": raw["max_rss"], "governed_rss": gov["max_rss"], "raw_times": raw["times"],
                   "governed_times": gov["times"], "groups_raw": raw["groups"], "groups_governed": gov["groups"],
                   "suppressed": gov["suppressed"], "exact_recount": gov["exact_recount"], "steps": gov["steps"]}
            results.append(row)
            print(f"  {shape:9s} {qname:8s} raw {raw_t:.2f} s, governed {gov_t:.2f} s ({gov_t / raw_t:.2f}x), "
                  f"policy {pol[qname]['median'] * 1000:.2f} ms", flush=True)
            steps_out.append([shape, qname] + [f"{k}: {B.fmt_s(v)}" for k, v in gov["steps"]]
                             + [f"(govern + Python around the SQL: {B.fmt_s(gov_t - sum(v for _, v in gov['steps']))})"])
            if not a.no_ablations:
                for ablation, label in (("identity_hash", "pseudonym HMAC -> identity"),
                                        ("count_star", "COUNT(__cg_pu) -> COUNT(*) in the bound")):
                    ab = B.child(SCRIPT, "run", {**common, "mode": "governed", "ablation": ablation, "repeat": max(1, min(a.repeat, 2))},
                                 timeout=3600)
                    t = B.median(ab["times"])
                    attributions.append({"shape": shape, "query": qname, "ablation": label, "seconds": t,
                                         "ratio_vs_raw": t / raw_t, "saved_s": gov_t - t})

    print()
    print(B.table(
        ["shape", "query", "raw", "governed", "gov/raw", "target", "verdict", "policy med", "policy p95", "RSS raw", "RSS gov", "groups raw/gov", "exact recount"],
        [[r["shape"], r["query"], B.fmt_s(r["raw_s"]), B.fmt_s(r["governed_s"]), f"{r['ratio']:.2f}x", f"<= {r['target']}",
          B.verdict(r["ratio"] <= r["target"]), B.fmt_s(r["policy_median_s"]), B.fmt_s(r["policy_p95_s"]),
          B.fmt_bytes(r["raw_rss"]), B.fmt_bytes(r["governed_rss"]), f"{r['groups_raw']}/{r['groups_governed']}",
          "yes" if r["exact_recount"] else "no"] for r in results],
        title=f"Governed vs raw (median of {a.repeat}; provider {a.rows:,} rows, recipient {recipient_rows:,} rows)"))
    if a.rows < 10_000_000:
        print("note: below full size fixed costs (process start, connection, policy check) dominate; "
              "the targets are stated for the full size")
    worst_policy = max(r["policy_median_s"] for r in results)
    print(f"\ntarget: policy check + rewrite < 5 ms median: worst {worst_policy * 1000:.2f} ms -> {B.verdict(worst_policy < TARGET_POLICY_S)}")
    print("\nGoverned time by engine step (mean per run):")
    for s in steps_out:
        print("  " + " | ".join(s))
    if attributions:
        print()
        print(B.table(["shape", "query", "ablation (not a product mode)", "governed", "vs raw", "time saved"],
                      [[x["shape"], x["query"], x["ablation"], B.fmt_s(x["seconds"]), f"{x['ratio_vs_raw']:.2f}x",
                        B.fmt_s(x["saved_s"])] for x in attributions],
                      title="Attribution: the governed run with one piece changed"))
    if profile_text:
        names = list(profile_text)
        labels = list(dict.fromkeys(label for _, _, label in POLICY_STEPS))
        rows = [[label] + [B.fmt_s(profile_text[q].get(label)) for q in names] for label in labels
                if any(label in profile_text[q] for q in names)]
        rows.append(["govern() total (instrumented)"] + [B.fmt_s(profile_text[q]["total"]) for q in names])
        print()
        print(B.table(["govern() step, mean per call"] + names, rows,
                      title="Where the policy check goes (first shape; the wrappers add a little overhead)"))
    B.write_json(B.data_dir() / f"results-governed-{a.rows}-{recipient_rows}.json",
                 {"machine": B.machine(), "threads": a.threads, "memory": a.memory, "repeat": a.repeat, "rows": a.rows,
                  "recipient_rows": recipient_rows, "results": results, "attributions": attributions,
                  "policy_phases": profile_text,
                  "at": time.strftime("%Y-%m-%d %H:%M:%S")})


if __name__ == "__main__":
    main()
