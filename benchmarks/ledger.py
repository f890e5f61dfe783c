"""Ledger benchmark: 1M durable appends, inclusion proofs, a full verify, and SHA-256 as the limit.

    .venv/bin/python benchmarks/ledger.py                     # 1M entries
    .venv/bin/python benchmarks/ledger.py --entries 20000     # smoke run

A fresh store (SQLite, WAL, the product's own PRAGMAs: durable, synchronous=FULL) in a
temporary home under benchmarks/.data/. Each phase runs in its own process (peak RSS from
wait4):

  * append:  Store.append_entry(conn, entry) for N query-like entries, --batch per
             `store.transaction()` (one commit, i.e. one fsync, per batch);
  * proof:   services.audit.inclusion(deps, i) for random i (the first call builds the
             in-process Merkle cache: reported separately), MerkleTree.inclusion_proof alone,
             and verify_inclusion of the proof;
  * verify:  services.audit.verify(deps) over all N entries, then its steps one by one;
  * limit:   hashlib SHA-256 over the same entry bytes: N leaf hashes + N-1 node hashes (the
             hashing any full verify must do) and the raw byte rate.

Two reference points, not product code, bound what append could do on this machine: the
same rows inserted with sqlite3 executemany, and a batched variant of append_entry (one
max(idx) per batch, executemany insert) built from the product's own canonical_json and
leaf_hash. Targets (issue #5): >= 20,000 appends/s, inclusion proof < 1 ms, verify of 1M < 10 s.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import random
import shutil
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench as B  # noqa: E402

SCRIPT = str(Path(__file__).resolve())
TARGET_APPENDS = 20_000
TARGET_PROOF_S = 0.001
TARGET_VERIFY_S = 10.0
EPOCH = dt.datetime(2025, 1, 1, tzinfo=dt.timezone.utc)


def entry(i: int) -> dict:
    """A query event like services.queries._record writes (no values, just what was read)."""
    if i % 50 == 0:
        return {"event": "query", "party": "brand", "purpose": "analytics.reporting", "allowed": False,
                "reasons": ["identifiers: retailer.purchases.email cannot be output; it is identifying"],
                "at": EPOCH + dt.timedelta(seconds=i)}
    return {"event": "query", "party": "brand", "purpose": "analytics.reporting", "allowed": True,
            "agreements": [f"ag{(i % 7):030d}"], "datasets": ["brand.customers", "retailer.purchases"],
            "fields": ["brand.customers.customer_id", "brand.customers.segment", "retailer.purchases.customer_id",
                       "retailer.purchases.spend"],
            "rows": i % 97, "suppressed_groups": i % 3, "governed": True, "at": EPOCH + dt.timedelta(seconds=i)}


def deps_for(home: Path):
    from commonground import bootstrap

    return bootstrap.build(bootstrap.Settings.from_env(home))


# ---------------------------------------------------------------------------------------
# children


def child_append(args: dict) -> dict:
    from sqlalchemy import event

    from commonground import bootstrap

    home = Path(args["home"])
    deps = deps_for(home)
    bootstrap.init_store(deps)
    store = deps.store
    n, batch = args["entries"], args["batch"]
    driver = [0.0]
    starts: dict = {}

    @event.listens_for(store.engine, "before_cursor_execute")
    def _before(conn, cursor, statement, parameters, context, executemany):
        starts[id(cursor)] = time.perf_counter()

    @event.listens_for(store.engine, "after_cursor_execute")
    def _after(conn, cursor, statement, parameters, context, executemany):
        driver[0] += time.perf_counter() - starts.pop(id(cursor), time.perf_counter())

    commit_s = 0.0
    seconds = 0.0
    progress_every = max(n // 10, batch)
    for lo in range(0, n, batch):
        batch_entries = [entry(i) for i in range(lo, min(lo + batch, n))]  # the caller's cost: untimed
        t0 = time.perf_counter()
        ctx = store.transaction()
        conn = ctx.__enter__()
        if args.get("api") == "append_entries":
            store.append_entries(conn, batch_entries)
        else:
            for e in batch_entries:
                store.append_entry(conn, e)
        c0 = time.perf_counter()
        ctx.__exit__(None, None, None)
        commit_s += time.perf_counter() - c0
        seconds += time.perf_counter() - t0
        if (lo // batch) % max(progress_every // batch, 1) == 0:
            sys.stderr.write(f"  appended {lo + batch:,} in {seconds:.1f} s\n")
    with store.read() as conn:
        size = store.ledger_size(conn)
    store.dispose()
    db = home / "metadata.db"
    return {"seconds": seconds, "size": size, "driver_s": driver[0], "commit_s": commit_s,
            "db_bytes": db.stat().st_size + sum(p.stat().st_size for p in home.glob("metadata.db-*"))}


def child_append_reference(args: dict) -> dict:
    """Not product code: what the same appends cost without per-entry round trips."""
    import sqlalchemy as sa

    from commonground import bootstrap
    from commonground.adapters import tables as t
    from commonground.adapters.sql_store import canonical_json
    from commonground.domain.merkle import leaf_hash

    n, batch = args["entries"], args["batch"]
    out = {}

    # (a) the shape of a batched append: one max(idx) per batch, one executemany (skipped when
    # the product has its own append_entries, which the append phase measures instead).
    from commonground.adapters.sql_store import SqlStore

    home = Path(args["home"]) / "batched"
    out["batched_append_s"] = None
    if hasattr(SqlStore, "append_entries"):
        n_batched = 0
    else:
        n_batched = n
    deps = deps_for(home)
    bootstrap.init_store(deps)
    store = deps.store
    spent = 0.0
    for lo in range(0, n_batched, batch):
        batch_entries = [entry(i) for i in range(lo, min(lo + batch, n))]
        t0 = time.perf_counter()
        with store.transaction() as conn:
            size = conn.execute(sa.select(sa.func.coalesce(sa.func.max(t.ledger_entries.c.idx) + 1, 0))).scalar_one()
            rows = []
            for j, e in enumerate(batch_entries):
                data = canonical_json({**e, "index": size + j})
                rows.append({"idx": size + j, "leaf_hash": leaf_hash(data), "entry": data.decode()})
            conn.execute(t.ledger_entries.insert(), rows)
        spent += time.perf_counter() - t0
    if n_batched:
        out["batched_append_s"] = spent
    store.dispose()

    # (b) the floor: sqlite3 executemany of the same encoded rows, same PRAGMAs, same batches.
    from commonground.adapters.sql_store import canonical_json as cj

    encoded = []
    for i in range(n):
        data = cj({**entry(i), "index": i})
        encoded.append((i, leaf_hash(data), data.decode()))
    db = Path(args["home"]) / "raw.db"
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("CREATE TABLE ledger_entries (idx BIGINT PRIMARY KEY, leaf_hash BLOB NOT NULL, entry TEXT NOT NULL)")
    t0 = time.perf_counter()
    for lo in range(0, n, batch):
        con.execute("BEGIN IMMEDIATE")
        con.executemany("INSERT INTO ledger_entries VALUES (?, ?, ?)", encoded[lo:lo + batch])
        con.execute("COMMIT")
    out["sqlite_executemany_s"] = time.perf_counter() - t0
    con.close()
    # (c) encoding alone (canonical JSON + leaf hash), per entry.
    entries = [entry(i) for i in range(n)]
    t0 = time.perf_counter()
    for i, e in enumerate(entries):
        leaf_hash(cj({**e, "index": i}))
    out["encode_s"] = time.perf_counter() - t0
    return out


def child_proof(args: dict) -> dict:
    from commonground.domain.merkle import leaf_hash, verify_inclusion
    from commonground.services import audit

    deps = deps_for(Path(args["home"]))
    t0 = time.perf_counter()
    head = audit.signed_head(deps)  # builds the in-process tree from all stored leaf hashes
    build_s = time.perf_counter() - t0
    tree = audit._tree(deps)
    rng = random.Random(42)
    idxs = [rng.randrange(head.tree_size) for _ in range(args["proofs"])]
    svc, pure, check = [], [], []
    import base64

    for i in idxs:
        t0 = time.perf_counter()
        bundle = audit.inclusion(deps, i)
        svc.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        proof = tree.inclusion_proof(i, head.tree_size)
        pure.append(time.perf_counter() - t0)
        assert proof == [base64.b64decode(p) for p in bundle["proof"]]
        t0 = time.perf_counter()
        verify_inclusion(leaf_hash(bundle["entry"].encode()), i, head.tree_size, proof, head.root_hash)
        check.append(time.perf_counter() - t0)
    # the whole offline check, signature included, on a few bundles
    pem = deps.signer.public_key_pem()
    offline = []
    for i in idxs[:50]:
        bundle = audit.inclusion(deps, i)
        t0 = time.perf_counter()
        audit.verify_proof_offline(bundle, pem)
        offline.append(time.perf_counter() - t0)
    from commonground.domain.merkle import MerkleTree

    t0 = time.perf_counter()
    with deps.store.read() as conn:
        if hasattr(deps.store, "leaf_hashes_from"):
            hashes = deps.store.leaf_hashes_from(conn, 0)
        else:
            hashes = deps.store.leaf_hashes(conn)
    MerkleTree(hashes)
    leaf_build_s = time.perf_counter() - t0
    deps.store.dispose()
    return {"tree_build_s": build_s, "leaf_build_s": leaf_build_s, "size": head.tree_size, "service_median": B.median(svc),
            "service_p95": sorted(svc)[int(0.95 * (len(svc) - 1))], "tree_median": B.median(pure),
            "verify_median": B.median(check), "offline_median": B.median(offline), "proofs": len(idxs),
            "proof_len": len(proof)}


def child_verify(args: dict) -> dict:
    from commonground.domain.merkle import leaf_hash
    from commonground.services import audit

    deps = deps_for(Path(args["home"]))
    t0 = time.perf_counter()
    report = audit.verify(deps)
    seconds = time.perf_counter() - t0
    assert report.ok, report
    out = {"seconds": seconds, "entries": report.entries, "root": report.root_hash}
    if args.get("breakdown"):
        # Profile the product's verify itself (so the breakdown follows the code as it is),
        # then time a plain sqlite3 read of the same rows as a reference.
        import cProfile
        import pstats

        prof = cProfile.Profile()
        t0 = time.perf_counter()
        prof.enable()
        audit.verify(deps)
        prof.disable()
        profiled_s = time.perf_counter() - t0
        stats = pstats.Stats(prof)
        top = []
        for (filename, line, name), (cc, nc, tt, ct, callers) in stats.stats.items():  # type: ignore[attr-defined]
            where = filename.split("site-packages/")[-1].split("src/")[-1]
            top.append((f"{name} ({where}:{line})", tt, ct, nc))
        top.sort(key=lambda x: -x[1])
        out["profile"] = {"profiled_s": profiled_s, "top": top[:10]}
        t0 = time.perf_counter()
        with sqlite3.connect(Path(args["home"]) / "metadata.db") as con:
            con.execute("SELECT idx, leaf_hash, entry FROM ledger_entries ORDER BY idx").fetchall()
        out["sqlite_fetch_s"] = time.perf_counter() - t0
        rows = rows_for_reference(Path(args["home"]))
        t0 = time.perf_counter()
        for _, stored, e in rows:
            leaf_hash(e.encode())
        out["leaf_rehash_s"] = time.perf_counter() - t0
        del rows
    deps.store.dispose()
    return out


def rows_for_reference(home: Path):
    with sqlite3.connect(home / "metadata.db") as con:
        return con.execute("SELECT idx, leaf_hash, entry FROM ledger_entries ORDER BY idx").fetchall()


def child_sha(args: dict) -> dict:
    with sqlite3.connect(Path(args["home"]) / "metadata.db") as con:
        entries = [e.encode() for (e,) in con.execute("SELECT entry FROM ledger_entries ORDER BY idx")]
    sha = hashlib.sha256
    total = sum(len(e) for e in entries)
    t0 = time.perf_counter()
    leaves = [sha(b"\x00" + e).digest() for e in entries]
    leaf_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    level = leaves
    while len(level) > 1:
        nxt = [sha(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    node_s = time.perf_counter() - t0
    blob = b"".join(entries)
    t0 = time.perf_counter()
    hashlib.sha256(blob).digest()
    bulk_s = time.perf_counter() - t0
    return {"entries": len(entries), "bytes": total, "leaf_s": leaf_s, "node_s": node_s, "bulk_s": bulk_s,
            "root": level[0].hex() if level else hashlib.sha256(b"").hexdigest()}


CHILDREN = {"append": child_append, "append_reference": child_append_reference, "proof": child_proof,
            "verify": child_verify, "sha": child_sha}


# ---------------------------------------------------------------------------------------
# driver


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--entries", "--rows", dest="entries", type=int, default=1_000_000, help="ledger entries (default 1M)")
    p.add_argument("--batch", type=int, default=1000, help="appends per transaction (commit)")
    p.add_argument("--proofs", type=int, default=1000, help="random inclusion proofs to time")
    p.add_argument("--api", choices=["append_entry", "append_entries", "both"], default="both",
                   help="append_entry per entry, or append_entries per batch (when the store has it)")
    p.add_argument("--verify-repeat", type=int, default=3, help="full verifies (each in its own process); median reported")
    p.add_argument("--no-reference", action="store_true", help="skip the non-product append reference points")
    p.add_argument("--keep", action="store_true", help="keep the temporary home")
    B.add_child_arguments(p)
    a = p.parse_args()
    if B.run_child_if_asked(a, CHILDREN):
        return
    print(B.machine_line(), flush=True)
    home = Path(tempfile.mkdtemp(prefix="ledger-", dir=B.data_dir()))
    print(f"home: {home} (SQLite, WAL, synchronous=FULL; {a.batch} appends per commit)", flush=True)
    try:
        from commonground.adapters.sql_store import SqlStore

        apis = ["append_entry", "append_entries"] if a.api == "both" else [a.api]
        if not hasattr(SqlStore, "append_entries"):
            apis = [x for x in apis if x != "append_entries"]
        appends = {}
        for api in apis:
            target = home if api == apis[-1] else home.parent / (home.name + "-" + api)
            r = B.child(SCRIPT, "append", {"home": str(target), "entries": a.entries, "batch": a.batch, "api": api},
                        timeout=7200)
            assert r["size"] == a.entries, r
            appends[api] = r
            print(f"  {api}: appended {a.entries:,} in {r['seconds']:.1f} s ({a.entries / r['seconds']:,.0f}/s)", flush=True)
            if target != home:
                shutil.rmtree(target, ignore_errors=True)
        app = appends[apis[-1]]
        ref = None
        if not a.no_reference:
            ref = B.child(SCRIPT, "append_reference", {"home": str(home / "ref"), "entries": a.entries, "batch": a.batch},
                          timeout=7200)
            shutil.rmtree(home / "ref", ignore_errors=True)
        prf = B.child(SCRIPT, "proof", {"home": str(home), "proofs": a.proofs}, timeout=3600)
        vers = [B.child(SCRIPT, "verify", {"home": str(home), "breakdown": False}, timeout=3600)
                for _ in range(a.verify_repeat)]
        ver = dict(vers[0])
        ver["runs_s"] = [v["seconds"] for v in vers]
        ver["seconds"] = B.median(ver["runs_s"])
        ver["max_rss"] = max(v["max_rss"] for v in vers)
        # Every CLI command signs a tree head on exit (cli/main.py _sign_head): on a big ledger
        # that is a full read of it. A read-only command shows the cost.
        exe = str(Path(sys.executable).parent / "commonground")
        cli = B.run_measured([exe, "--home", str(home), "party", "list", "--json"], timeout=3600)
        verb = B.child(SCRIPT, "verify", {"home": str(home), "breakdown": True}, timeout=3600)
        sha = B.child(SCRIPT, "sha", {"home": str(home)}, timeout=3600)
        assert sha["root"] == ver["root"], "the hashlib reference root differs from verify's root"
    finally:
        if not a.keep:
            shutil.rmtree(home, ignore_errors=True)

    n = a.entries
    sha_min = sha["leaf_s"] + sha["node_s"]
    labels = {"append_entry": f"append_entry x{a.batch}, 1 commit per batch",
              "append_entries": f"append_entries({a.batch} entries), 1 commit per batch"}
    rows = [
        [labels[api], f"{r['seconds']:.2f} s", f"{n / r['seconds']:,.0f} /s", f">= {TARGET_APPENDS:,}/s",
         B.verdict(n / r["seconds"] >= TARGET_APPENDS), B.fmt_bytes(r["max_rss"])] for api, r in appends.items()
    ] + [
        ["inclusion proof: services.audit.inclusion (median)", B.fmt_s(prf["service_median"]), f"p95 {B.fmt_s(prf['service_p95'])}",
         "< 1 ms", B.verdict(prf["service_median"] < TARGET_PROOF_S), B.fmt_bytes(prf["max_rss"])],
        ["  MerkleTree.inclusion_proof alone (median)", B.fmt_s(prf["tree_median"]), f"{prf['proof_len']} hashes", "", "", ""],
        ["  verify_inclusion of it (median)", B.fmt_s(prf["verify_median"]), "", "", "", ""],
        ["  verify_proof_offline incl. Ed25519 (median)", B.fmt_s(prf["offline_median"]), "", "", "", ""],
        ["  first proof: build Merkle cache from the store", B.fmt_s(prf["tree_build_s"]), "once per process", "", "", ""],
        ["  (reference) same cache from the store's leaf hashes only", B.fmt_s(prf["leaf_build_s"]), "", "", "", ""],
        ["full verify: services.audit.verify", f"{ver['seconds']:.2f} s", f"{n / ver['seconds']:,.0f} entries/s",
         "< 10 s for 1M",
         B.verdict(ver["seconds"] < TARGET_VERIFY_S) if n >= 1_000_000 else "n/a below 1M entries",
         B.fmt_bytes(ver["max_rss"])],
        ["  runs (s)", " / ".join(f"{x:.2f}" for x in ver["runs_s"]), "", "", "", ""],
        ["CLI `party list` on this store (signs a head on exit)", f"{cli['wall_s']:.2f} s", "", "", "", B.fmt_bytes(cli["max_rss"])],
        ["SHA-256 limit: N leaf + N-1 node hashes (hashlib)", f"{sha_min:.2f} s", f"{n / sha_min:,.0f} entries/s",
         "", f"verify = {ver['seconds'] / sha_min:.1f}x this", B.fmt_bytes(sha["max_rss"])],
        ["  SHA-256 raw byte rate over the entries", f"{sha['bulk_s']:.3f} s", f"{sha['bytes'] / sha['bulk_s'] / B.MIB:,.0f} MiB/s",
         f"{sha['bytes'] / n:.0f} B/entry", "", ""],
    ]
    print()
    print(B.table(["measure", "time", "rate", "target", "verdict", "peak RSS"], rows,
                  title=f"Ledger of {n:,} entries (SQLite, WAL, {a.batch} appends/commit; "
                        f"db {B.fmt_bytes(app['db_bytes'])}); {B.load_line()}"))
    print()
    split = []
    for api, r in appends.items():
        other = r["seconds"] - r["driver_s"] - r["commit_s"]
        split += [
            [api, "sqlite3 cursor.execute (SELECT max(idx)+1, INSERT)", f"{r['driver_s']:.2f} s", f"{100 * r['driver_s'] / r['seconds']:.0f}%"],
            [api, "COMMIT (fsync of the WAL), per batch", f"{r['commit_s']:.2f} s", f"{100 * r['commit_s'] / r['seconds']:.0f}%"],
            [api, "Python: SQLAlchemy statement build/compile, JSON, hashing", f"{other:.2f} s", f"{100 * other / r['seconds']:.0f}%"],
        ]
    print(B.table(["API", "append time goes to", "time", "share"], split, title="Where append time goes"))
    if ref:
        slow = appends.get("append_entry", app)["seconds"]
        ref_rows = [
            ["sqlite3 executemany of pre-encoded rows (floor)", f"{ref['sqlite_executemany_s']:.2f} s",
             f"{n / ref['sqlite_executemany_s']:,.0f} /s", f"{slow / ref['sqlite_executemany_s']:.1f}x"],
            ["encoding alone: canonical_json + leaf_hash", f"{ref['encode_s']:.2f} s", f"{n / ref['encode_s']:,.0f} /s", ""],
        ]
        if "append_entries" not in appends:
            ref_rows.insert(0, ["batched: 1 max(idx) + 1 executemany per batch (SQLAlchemy)", f"{ref['batched_append_s']:.2f} s",
                                f"{n / ref['batched_append_s']:,.0f} /s", f"{slow / ref['batched_append_s']:.1f}x"])
        print()
        print(B.table(["reference (not product code)", "time", "rate", "speed-up over append_entry"], ref_rows,
                      title="What append could cost on this machine"))
    print()
    prof = verb["profile"]
    print(B.table(["function (cProfile of services.audit.verify, by own time)", "own time", "incl. callees", "calls"],
                  [[name, f"{tt:.2f} s", f"{ct:.2f} s", f"{nc:,}"] for name, tt, ct, nc in prof["top"]]
                  + [["(verify under the profiler, total)", f"{prof['profiled_s']:.2f} s", "", ""],
                     ["(reference) sqlite3 fetchall of all rows, no SQLAlchemy", f"{verb['sqlite_fetch_s']:.2f} s", "", ""],
                     ["(reference) leaf_hash of every entry alone", f"{verb['leaf_rehash_s']:.2f} s", "", ""]],
                  title="Where verify time goes"))
    B.write_json(B.data_dir() / f"results-ledger-{n}.json",
                 {"machine": B.machine(), "entries": n, "batch": a.batch, "appends": appends, "reference": ref, "proof": prf,
                  "verify": ver, "verify_breakdown": verb, "sha": sha, "cli_party_list": {k: cli[k] for k in ("wall_s", "max_rss", "cpu_s")}, "at": time.strftime("%Y-%m-%d %H:%M:%S")})


if __name__ == "__main__":
    main()
