"""Code-to-data benchmark: submit -> approve -> run -> release -> get for a small aggregate analysis.

    .venv/bin/python benchmarks/code_to_data.py                  # 1M rows
    .venv/bin/python benchmarks/code_to_data.py --rows 100000    # smoke

Data: one row per purchase of 100k people (member id, segment, region, spend). Each step runs
through the real services (`services.code`): the run materialises the governed view, starts
the sandbox (namespaces, rlimits, Landlock, seccomp), runs the analysis, measures the output
against the inputs and the PII scanner, and records it on the ledger. Baselines in the same
run: the same analysis function called in this process on the same Arrow IPC file the sandbox
reads (what the sandbox's start-up and the checks add), and a sandbox that runs an
analysis doing nothing (the sandbox's fixed cost). Target (issue #8): total < 3 s.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import data_dir, machine_line  # noqa: E402

from commonground import bootstrap  # noqa: E402
from commonground.adapters.sandbox import run_analysis  # noqa: E402
from commonground.domain.code import CodeTerms  # noqa: E402
from commonground.services import agreements as agreement_svc  # noqa: E402
from commonground.services import code as code_svc  # noqa: E402
from commonground.services import datasets as dataset_svc  # noqa: E402
from commonground.services import parties as party_svc  # noqa: E402

SCHEMA = {"columns": {
    "member_id": {"type": "string", "role": "subject_id"},
    "segment": {"type": "string"},
    "region": {"type": "string", "role": "quasi_identifier"},
    "spend": {"type": "double", "role": "sensitive"},
}}
ANALYSIS = '''
import pyarrow as pa

GROUP_BY = ["segment"]
COUNT = "people"

def analysis(tables):
    t = tables["provider.purchases"]
    out = t.group_by("segment").aggregate([("spend", "sum"), ("spend", "mean"), ("member_id", "count_distinct")])
    return pa.table({"segment": out["segment"], "people": out["member_id_count_distinct"],
                     "total": out["spend_sum"], "mean": out["spend_mean"]})
'''
NOTHING = "GROUP_BY = []\ndef analysis(tables):\n    import pyarrow as pa\n    return pa.table({'x': [1]})\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    source = data_dir() / f"code-{args.rows}.parquet"
    if not source.exists():
        duckdb.connect().execute(f"""COPY (SELECT 'M' || lpad(CAST(i % 100000 AS VARCHAR), 6, '0') AS member_id,
                        'seg' || CAST(i % 12 AS VARCHAR) AS segment, 'r' || CAST((i * 7) % 50 AS VARCHAR) AS region,
                        (i % 997) / 7.0 AS spend FROM range({args.rows}) t(i))
                        TO '{source}' (FORMAT parquet, COMPRESSION zstd)""")
    home = Path(tempfile.mkdtemp(prefix="cg-code-")) / "home"
    deps = bootstrap.build(bootstrap.Settings.from_env(home))
    bootstrap.init_store(deps)
    for name in ("provider", "recipient"):
        party_svc.add_party(deps, name)
    dataset_svc.add_dataset(deps, "provider", "purchases", source, SCHEMA)
    made = agreement_svc.propose(deps, "provider", {
        "name": "code", "provider": "provider", "recipients": ["recipient"], "purposes": ["analytics.reporting"],
        "valid_until": "2099-12-31", "datasets": {"provider.purchases": {"fields": {c: "raw" for c in SCHEMA["columns"]}}},
        "access": {"mode": "code", "min_group_size": 10}})
    agreement_svc.accept(deps, "recipient", made.id)

    steps: dict[str, list[float]] = {s: [] for s in ("submit", "approve", "run", "release", "get")}
    inner: dict[str, list[float]] = {}
    for n in range(args.repeat):
        def timed(step, fn):
            started = time.perf_counter()
            out = fn()
            steps[step].append(time.perf_counter() - started)
            return out
        sid = timed("submit", lambda: code_svc.submit(deps, "recipient", "analytics.reporting", (made.id,),
                                                       ANALYSIS + f"\n# run {n}\n", "spend by segment"))["id"]
        timed("approve", lambda: code_svc.decide(deps, "provider", sid, True, "aggregates over segments"))
        ran = timed("run", lambda: code_svc.run(deps, "recipient", sid))
        assert ran["status"] == "held", ran["checks"]
        for k, v in ran["checks"]["timings_s"].items():
            inner.setdefault(k, []).append(v)
        timed("release", lambda: code_svc.release(deps, "provider", ran["id"]))
        got = timed("get", lambda: code_svc.get(deps, "recipient", ran["id"]))
        assert len(got["result"]["rows"]) == 12

    scratch = Path(tempfile.mkdtemp(prefix="cg-code-base-"))
    arrow = scratch / "input.arrow"  # the form the sandbox is given its inputs in
    table = pq.read_table(source)
    with pa.OSFile(str(arrow), "wb") as sink, ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table)
    in_process, sandboxed, empty = [], [], []
    namespace: dict = {}
    exec(compile(ANALYSIS, "analysis.py", "exec"), namespace)
    terms = CodeTerms()
    for n in range(args.repeat):
        started = time.perf_counter()
        namespace["analysis"]({"provider.purchases": ipc.open_file(pa.memory_map(str(arrow))).read_all()})
        in_process.append(time.perf_counter() - started)
        started = time.perf_counter()
        outcome = run_analysis(ANALYSIS, {"provider.purchases": arrow}, scratch / f"a{n}", terms)
        assert outcome.output is not None, outcome.failure
        sandboxed.append(time.perf_counter() - started)
        started = time.perf_counter()
        run_analysis(NOTHING, {}, scratch / f"e{n}", terms)
        empty.append(time.perf_counter() - started)

    med = {k: statistics.median(v) for k, v in steps.items()}
    total = sum(med.values())
    print(f"code-to-data over {args.rows:,} rows (100k people, 12 segments, k = 10), median of {args.repeat}")
    for step, seconds in med.items():
        print(f"  {step:40} {seconds:8.3f} s")
    for step, values in inner.items():
        print(f"    run: {step:34} {statistics.median(values):8.3f} s")
    print(f"  {'total (target < 3 s)':40} {total:8.3f} s  {'MET' if total < 3 else 'NOT MET'}")
    base, box, nothing = (statistics.median(v) for v in (in_process, sandboxed, empty))
    print(f"  {'analysis in-process (map + aggregate)':40} {base:8.3f} s")
    print(f"  {'the same analysis in the sandbox':40} {box:8.3f} s  ratio {box / base:5.2f}x")
    print(f"  {'sandbox start overhead (empty analysis)':40} {nothing:8.3f} s  ratio {nothing / base:5.2f}x of the "
          "in-process run")
    print(f"  {'full run step vs in-process':40} {'':8}    ratio {med['run'] / base:5.2f}x")
    print(machine_line())
    deps.store.dispose()
    shutil.rmtree(home.parent, ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
