"""Run an analysis in its own confined process and take back only a size-checked Arrow file.

The child is `python -I adapters/sandbox_child.py` (isolated mode: no environment variables,
no user site, no current directory on the path) with an empty environment, started through
util-linux `unshare` (exec'd, no fork: its exit status is the child's) in new user, network and
IPC namespaces: it has no network interface but a down loopback. Landlock's scopes (ABI 6) keep
it from signalling processes outside the sandbox, and seccomp from tracing them. Inside, before any analysis
code runs, it sets rlimits, Landlock and seccomp (see the child's docstring). The host kills the
whole process group at the wall-time limit and never reads anything from the child but its exit
status, a built-in exception class name, and `out/result.arrow` (an Arrow IPC file), whose
size is checked before it is opened and which the host then validates in full. docs/code-to-data.md says what this does and does not protect against.
"""

from __future__ import annotations

import builtins
import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import time
from dataclasses import dataclass
from pathlib import Path

from ..domain.code import CodeTerms

CHILD = Path(__file__).with_name("sandbox_child.py")
# Address space the interpreter, Arrow and their libraries reserve before any data is read: the
# analysis's own `memory_mb` comes on top of it.
RUNTIME_MB = 1536
_BUILTIN_ERRORS = {n for n, v in vars(builtins).items() if isinstance(v, type) and issubclass(v, BaseException)}


@dataclass(frozen=True)
class SandboxOutcome:
    """`output` is set only when the child exited cleanly with a file within the size limit;
    otherwise `failure` says why, in words that quote nothing the analysis wrote."""

    output: Path | None
    failure: str | None
    seconds: float


def namespaces_available() -> bool:
    """Whether this machine lets an unprivileged process make the sandbox's namespaces."""
    tool = shutil.which("unshare")
    if tool is None:
        return False
    probe = subprocess.run([tool, "--user", "--map-root-user", "--net", "--ipc", "true"],
                           capture_output=True, timeout=10, env={})
    return probe.returncode == 0


def _reads() -> list[str]:
    """What the child may read besides its inputs: the interpreter's files and shared libraries."""
    paths = {sysconfig.get_path(k) for k in ("stdlib", "platstdlib", "purelib", "platlib")}
    paths |= {sys.base_prefix + "/lib", os.path.dirname(os.path.realpath(sys.executable)),
              "/usr/lib", "/lib", "/lib64", "/usr/lib64", "/usr/share/zoneinfo", "/etc/ld.so.cache"}
    return sorted(p for p in paths if p and os.path.exists(p))


def run_analysis(source: str, inputs: dict[str, Path], scratch: Path, terms: CodeTerms) -> SandboxOutcome:
    """Run `source`'s `analysis(tables)` over the Arrow IPC `inputs`, confined, within `terms`' limits."""
    tool = shutil.which("unshare")
    if tool is None:
        return SandboxOutcome(None, "the sandbox cannot start: util-linux `unshare` is not installed", 0.0)
    out_dir = scratch / "out"
    out_dir.mkdir(parents=True, exist_ok=True)
    code_file = scratch / "analysis.py"
    code_file.write_text(source)
    job = {"inputs": {k: str(p.resolve()) for k, p in inputs.items()}, "source": str(code_file.resolve()),
           "output_dir": str(out_dir.resolve()), "reads": _reads(), "cpu_seconds": terms.cpu_seconds,
           "memory_mb": terms.memory_mb, "runtime_mb": RUNTIME_MB, "max_output_bytes": terms.max_output_bytes}
    job_file = scratch / "job.json"
    job_file.write_text(json.dumps(job))
    command = [tool, "--user", "--map-root-user", "--net", "--ipc",
               sys.executable, "-I", str(CHILD), str(job_file)]
    started = time.perf_counter()
    # stderr goes to a file (bounded by the child's RLIMIT_FSIZE), never into the host's memory
    with open(scratch / "stderr", "wb") as stderr:
        proc = subprocess.Popen(command, cwd=out_dir, env={"LANG": "C.UTF-8", "OMP_NUM_THREADS": "1",
                                                           "MALLOC_ARENA_MAX": "2"},
                                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=stderr,
                                start_new_session=True)
    try:
        proc.wait(timeout=terms.wall_seconds)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return SandboxOutcome(None, f"the analysis ran past the wall-time limit of {terms.wall_seconds} s and was "
                                    "killed", time.perf_counter() - started)
    seconds = time.perf_counter() - started
    if proc.returncode and (scratch / "stderr").stat().st_size >= terms.max_output_bytes:
        return SandboxOutcome(None, f"the analysis wrote {terms.max_output_bytes:,} bytes of error output, its file size "
                                    "limit, and was stopped", seconds)
    failure = _failure(proc.returncode, _tail(scratch / "stderr"), terms)
    if failure:
        return SandboxOutcome(None, failure, seconds)
    result = out_dir / "result.arrow"
    if not result.is_file() or result.is_symlink():
        return SandboxOutcome(None, "the analysis wrote no result", seconds)
    if result.stat().st_size > terms.max_output_bytes:
        return SandboxOutcome(None, f"the result is larger than {terms.max_output_bytes:,} bytes", seconds)
    return SandboxOutcome(result, None, seconds)


def _tail(path: Path, size: int = 4096) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - size))
        return f.read().decode("utf-8", "replace")


def _failure(code: int, stderr: str, terms: CodeTerms) -> str | None:
    """Why the child failed, from its exit status; the analysis's own words never pass."""
    if code == 0:
        return None
    last = stderr.strip().splitlines()[-1] if stderr.strip() else ""
    if code == 10:
        name = last.removeprefix("cg-error: ").strip() if last.startswith("cg-error: ") else ""
        if name == "MemoryError":
            return f"the analysis ran out of memory (limit {terms.memory_mb} MB)"
        return f"the analysis raised {name if name in _BUILTIN_ERRORS else 'an exception'} (its message is withheld)"
    if code == 11:
        return "the analysis returned something other than a pyarrow.Table"
    if code == 12 or last.startswith("unshare:"):
        return "the sandbox could not confine the analysis, so it did not run"
    if code == -signal.SIGXCPU:
        return f"the analysis used more than its CPU limit of {terms.cpu_seconds} s and was killed"
    if code < 0:
        return f"the analysis was killed by signal {signal.Signals(-code).name}"
    return f"the analysis process failed (exit status {code})"
