"""Shared helpers for the benchmark scripts (not a product module).

Each measured step runs in a child process (the script re-invoked with `--child STEP`), so
its peak RSS can be read exactly from `os.wait4` and no step inherits another's caches.
The child prints one JSON object as its last stdout line.
"""

from __future__ import annotations

import argparse

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Sequence

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "benchmarks" / ".data"
GIB = 1024**3
MIB = 1024**2


def data_dir() -> Path:
    DATA.mkdir(parents=True, exist_ok=True)
    return DATA


def run_measured(cmd: Sequence[str], timeout: float | None = None, env: dict[str, str] | None = None,
                 parse_json: bool = False) -> dict[str, Any]:
    """Run a command; returns wall_s, its exact peak RSS (max_rss, bytes), cpu_s and its output.

    The command is started by a small launcher process (this file, `--launch`) that reaps it
    with os.wait4. Going through the launcher matters: Linux carries the RSS high-water mark
    of the forking process into the child's ru_maxrss across exec, so a child forked straight
    from a driver that has itself used a lot of memory would report the driver's peak.
    """
    started = time.perf_counter()
    stamp = f"{os.getpid()}-{time.monotonic_ns()}"
    out_path = data_dir() / f".child-{stamp}.out"
    err_path = data_dir() / f".child-{stamp}.err"
    usage_path = data_dir() / f".child-{stamp}.usage"
    launcher = [sys.executable, "-S", str(Path(__file__).resolve()), "--launch", str(usage_path), "--", *map(str, cmd)]
    try:
        with open(out_path, "w") as out_f, open(err_path, "w") as err_f:
            proc = subprocess.Popen(launcher, stdout=out_f, stderr=err_f, env=env)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                raise RuntimeError(f"{' '.join(map(str, cmd[:6]))} timed out after {timeout} s") from None
        wall = time.perf_counter() - started
        out = out_path.read_text()
        err = err_path.read_text()
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(map(str, cmd[:6]))} failed with exit code {proc.returncode}:\n{err[-4000:]}")
        usage = json.loads(usage_path.read_text())
    finally:
        for path in (out_path, err_path, usage_path):
            path.unlink(missing_ok=True)
    result: dict[str, Any] = {"wall_s": wall, "max_rss": usage["max_rss"], "cpu_s": usage["cpu_s"],
                              "stdout": out, "stderr": err}
    if parse_json:
        lines = [line for line in out.splitlines() if line.strip()]
        result.update(json.loads(lines[-1]))
    return result


def _launch(argv: list[str]) -> int:
    """`_bench.py --launch USAGE_FILE -- CMD...`: run CMD, write its rusage, exit with its code."""
    usage_path, cmd = argv[0], argv[2:]
    proc = subprocess.Popen(cmd)
    _, status, usage = os.wait4(proc.pid, 0)
    with open(usage_path, "w") as f:
        # ru_maxrss is in KiB on Linux.
        json.dump({"max_rss": usage.ru_maxrss * 1024, "cpu_s": usage.ru_utime + usage.ru_stime}, f)
    return os.waitstatus_to_exitcode(status)


def child(script: str, step: str, args: dict[str, Any], timeout: float | None = None) -> dict[str, Any]:
    cmd = [sys.executable, script, "--child", step, "--child-args", json.dumps(args)]
    return run_measured(cmd, timeout=timeout, parse_json=True)


def emit_child_result(obj: dict[str, Any]) -> None:
    sys.stdout.write("\n" + json.dumps(obj) + "\n")
    sys.stdout.flush()


def median(xs: Sequence[float]) -> float:
    return statistics.median(xs)


def fmt_s(x: float | None) -> str:
    if x is None:
        return "-"
    if x < 0.001:
        return f"{x * 1e6:.0f} us"
    if x < 1:
        return f"{x * 1000:.1f} ms"
    return f"{x:.2f} s"


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    if n >= GIB:
        return f"{n / GIB:.2f} GiB"
    return f"{n / MIB:.0f} MiB"


def fmt_rate(x: float) -> str:
    if x >= 1e6:
        return f"{x / 1e6:.2f} M/s"
    if x >= 1e3:
        return f"{x / 1e3:.1f} k/s"
    return f"{x:.0f} /s"


def table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> str:
    cells = [[str(c) for c in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = []
    if title:
        lines.append(title)
    lines.append("  ".join(h.ljust(w) for h, w in zip(cells[0], widths)))
    lines.append("  ".join("-" * w for w in widths))
    for r in cells[1:]:
        lines.append("  ".join(c.rjust(w) if _numeric(c) else c.ljust(w) for c, w in zip(r, widths)))
    return "\n".join(lines)


def _numeric(s: str) -> bool:
    return bool(s) and (s[0].isdigit() or s[0] in "-.") and s != "-"


def verdict(ok: bool) -> str:
    return "MET" if ok else "NOT MET"


def machine() -> dict[str, Any]:
    import duckdb

    mem = None
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    mem = int(line.split()[1]) * 1024
    except OSError:
        pass
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "mem_total": mem, "cpu": cpu, "python": platform.python_version(),
            "duckdb": duckdb.__version__, "product_source": product_fingerprint(), "load": os.getloadavg()}


def product_fingerprint() -> str:
    """A short hash of the product source measured (others edit it while benchmarks run)."""
    import hashlib

    h = hashlib.sha256()
    for path in sorted((ROOT / "src" / "commonground").rglob("*.py")):
        h.update(str(path.relative_to(ROOT)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()[:12]


def machine_line() -> str:
    m = machine()
    return (f"machine: {m['nproc']} CPUs ({m['cpu']}), {fmt_bytes(m['mem_total'])} RAM, "
            f"Python {m['python']}, DuckDB {m['duckdb']}; product source {m['product_source']}; {load_line()}")


def load_line() -> str:
    """Other work on the machine skews wall times; say how busy it was."""
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def warm_file(path: Path) -> None:
    """Read a file once so every contender starts from the same (warm) page cache."""
    with open(path, "rb") as f:
        while f.read(8 << 20):
            pass


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=str))


if __name__ == "__main__" and len(sys.argv) > 2 and sys.argv[1] == "--launch":
    sys.exit(_launch(sys.argv[2:]))


class TimedConnection:
    """Wraps a DuckDB connection and records how long each execute() takes, by statement."""

    def __init__(self, con, log: list):
        self._con = con
        self._log = log

    def execute(self, query, *params):
        t0 = time.perf_counter()
        try:
            return self._con.execute(query, *params)
        finally:
            self._log.append((" ".join(str(query).split()), time.perf_counter() - t0))

    def __getattr__(self, name):
        return getattr(self._con, name)


def add_child_arguments(parser) -> None:
    """The hidden flags a script uses to run one measured step in a child process."""
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--child-args", help=argparse.SUPPRESS)


def run_child_if_asked(args, children: dict) -> bool:
    if not args.child:
        return False
    emit_child_result(children[args.child](json.loads(args.child_args)))
    return True
