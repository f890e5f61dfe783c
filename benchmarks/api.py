"""API benchmark: a bounded load generator on loopback against `commonground serve`.

    .venv/bin/python benchmarks/api.py                        # 600 requests per workload, 8 clients
    .venv/bin/python benchmarks/api.py --requests 100          # smoke

The store is the demo (`commonground demo`): 3,000 customers, ~13,500 purchases. Two
workloads, each bounded in count (--requests) and time (--max-seconds):

- governed query: the brand's join of its loyalty tiers with the retailer's purchases
  (POST /v1/query, the demo query: governed, k = 10);
- consent toggle: Alice withdraws and grants a purpose on the retailer's purchases
  (PUT /v1/me/consents), a write with its ledger entry.

Baseline, in the same run: the same work done in-process by the services (no HTTP, no
server), sequentially. Printed: requests/s and p50/p99 latency over HTTP with N concurrent
clients, the in-process figures, and the ratios. Every status is counted: any 5xx fails the run.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _bench import machine_line  # noqa: E402

from commonground import bootstrap  # noqa: E402
from commonground.demo import DEMO_QUERY, OFFER_PURPOSE, build_demo  # noqa: E402
from commonground.services import queries as query_svc  # noqa: E402
from commonground.services import subjects as subject_svc  # noqa: E402

BIN = Path(sys.executable).parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(xs: list[float], q: float) -> float:
    ordered = sorted(xs)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _load(base: str, n: int, clients: int, max_s: float, make_request) -> dict:
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    deadline = time.perf_counter() + max_s
    counter = iter(range(n))

    def worker() -> None:
        with httpx.Client(base_url=base, timeout=60) as http:
            while time.perf_counter() < deadline:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                started = time.perf_counter()
                response = make_request(http, i)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    statuses[response.status_code] = statuses.get(response.status_code, 0) + 1

    started = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        for _ in range(clients):
            pool.submit(worker)
    wall = time.perf_counter() - started
    return {"n": len(latencies), "rps": len(latencies) / wall, "p50": _pct(latencies, 0.5), "p99": _pct(latencies, 0.99),
            "statuses": statuses}


def _in_process(n: int, op) -> dict:
    latencies = []
    started = time.perf_counter()
    for i in range(n):
        t0 = time.perf_counter()
        op(i)
        latencies.append((time.perf_counter() - t0) * 1000)
    wall = time.perf_counter() - started
    return {"n": n, "rps": n / wall, "p50": _pct(latencies, 0.5), "p99": _pct(latencies, 0.99)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=600)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--max-seconds", type=float, default=120)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="cg-api-")) / "home"
    deps = bootstrap.build(bootstrap.Settings.from_env(home))
    report = build_demo(deps)
    tokens = report["tokens"]
    port = _free_port()
    env = {**os.environ, "COMMONGROUND_HOME": str(home)}
    server = subprocess.Popen([str(BIN / "commonground"), "serve", "--port", str(port)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                if httpx.get(f"{base}/v1/audit/head", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.1)
        query_body = {"sql": DEMO_QUERY, "purpose": "analytics.reporting"}
        brand = {"Authorization": f"Bearer {tokens['brand']}"}
        alice = {"Authorization": f"Bearer {tokens['alice']}"}

        def toggle_body(i: int) -> dict:
            return {"dataset": "retailer.purchases", "purpose": OFFER_PURPOSE, "status": "withdrawn" if i % 2 == 0 else "granted"}

        rows = {"query": _load(base, args.requests, args.clients, args.max_seconds,
                               lambda http, i: http.post("/v1/query", json=query_body, headers=brand)),
                "toggle": _load(base, args.requests, args.clients, args.max_seconds,
                                lambda http, i: http.put("/v1/me/consents", json=toggle_body(i), headers=alice))}
    finally:
        server.terminate()
        server.wait(timeout=30)
    baseline = {"query": _in_process(min(args.requests, 200), lambda i: query_svc.run_query(
                    deps, "brand", "analytics.reporting", DEMO_QUERY)),
                "toggle": _in_process(min(args.requests, 200), lambda i: subject_svc.set_consent(
                    deps, "alice", "retailer.purchases", OFFER_PURPOSE, toggle_body(i)["status"]))}
    print(f"API on loopback, {args.clients} concurrent clients, up to {args.requests} requests per workload "
          f"(demo store, {report['result']['rows'].__len__()} result rows per query)")
    print(f"{'workload':16} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} | {'in-process/s':>12} {'p50 ms':>8} {'p99 ms':>8} | "
          f"{'p50 ratio':>9} {'5xx':>4}")
    server_errors = 0
    for name in ("query", "toggle"):
        api, local = rows[name], baseline[name]
        errors = sum(c for s, c in api["statuses"].items() if s >= 500)
        server_errors += errors
        print(f"{name:16} {api['rps']:8.1f} {api['p50']:8.1f} {api['p99']:8.1f} | {local['rps']:12.1f} {local['p50']:8.1f} "
              f"{local['p99']:8.1f} | {api['p50'] / local['p50']:8.2f}x {errors:4d}   statuses {api['statuses']}")
    print(machine_line())
    deps.store.dispose()
    if server_errors:
        sys.exit(f"{server_errors} responses were 5xx")


if __name__ == "__main__":
    main()
