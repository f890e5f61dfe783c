"""Shared helpers for the benchmark scripts (not a product module).

Each measured step runs in a child process (the script re-invoked with `--child STEP`), so
its peak RSS can be read exactly from `os.wait4` and no step inherits another's caches.
The child prints one JSON object as its last stdout line.
"""

from __future__ import annotations

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
    """Like run_process, but reaps the child with os.wait4 to read its exact peak RSS."""
    started = time.perf_counter()
    out_path = data_dir() / f".child-{os.getpid()}-{time.monotonic_ns()}.out"
    err_path = out_path.with_suffix(".err")
    with open(out_path, "w") as out_f, open(err_path, "w") as err_f:
        proc = subprocess.Popen(list(cmd), stdout=out_f, stderr=err_f, env=env)
        deadline = None if timeout is None else started + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if deadline is not None and time.perf_counter() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                raise RuntimeError(f"{' '.join(map(str, cmd[:6]))} timed out after {timeout} s")
            time.sleep(0.01)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    out = out_path.read_text()
    err = err_path.read_text()
    out_path.unlink(missing_ok=True)
    err_path.unlink(missing_ok=True)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, cmd[:6]))} failed with exit code {proc.returncode}:\n{err[-4000:]}")
    # ru_maxrss is in KiB on Linux: the peak resident set of that child (and its waited-for children).
    result: dict[str, Any] = {"wall_s": wall, "max_rss": usage.ru_maxrss * 1024, "stdout": out, "stderr": err}
    if parse_json:
        lines = [line for line in out.splitlines() if line.strip()]
        result.update(json.loads(lines[-1]))
    return result


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
            "duckdb": duckdb.__version__}


def machine_line() -> str:
    m = machine()
    return (f"machine: {m['nproc']} CPUs ({m['cpu']}), {fmt_bytes(m['mem_total'])} RAM, "
            f"Python {m['python']}, DuckDB {m['duckdb']}")


def warm_file(path: Path) -> None:
    """Read a file once so every contender starts from the same (warm) page cache."""
    with open(path, "rb") as f:
        while f.read(8 << 20):
            pass


def write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=2, default=str))
