"""The sandbox's child: confine this process, then load the inputs and run the analysis.

Run by `adapters/sandbox.py` as `python -I sandbox_child.py JOB.json` inside fresh user, network
and IPC namespaces. It imports nothing of commonground: the analysis must not reach the
store's code or settings. Confinement comes first, while this is the only thread (Landlock and
seccomp bind the calling thread and those it later creates; Arrow's thread pool is created
afterwards, so it inherits both):

1. rlimits: CPU seconds, address space, file size, open files, no core dumps;
2. Landlock: reads only under the Python installation, shared libraries, the time zone data
   and the job's inputs; writes only in the job's output directory;
3. seccomp (libseccomp through pyseccomp): no fork/vfork/exec, no clone without CLONE_THREAD,
   no sockets, no ptrace or cross-process memory access, no new namespaces or mounts, signals
   only to itself (Landlock ABI 6 scopes signals too, where the kernel has it).

Exit codes the host reads: 0 output written; 10 the analysis raised (the exception's class name
on the last stderr line, never its message); 11 it returned something other than a table;
12 the confinement could not be set up (the analysis did not run).
"""

import ctypes
import errno
import json
import os
import resource
import sys

_LANDLOCK_CREATE_RULESET, _LANDLOCK_ADD_RULE, _LANDLOCK_RESTRICT_SELF = 444, 445, 446
_READ = (1 << 0) | (1 << 2) | (1 << 3)  # execute (mmap of libraries), read file, read directory
_FS_ALL_V3 = (1 << 15) - 1  # every filesystem right up to ABI 3 (truncate)
_WRITE = _FS_ALL_V3 & ~((1 << 6) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12))  # no devices, sockets, fifos, links
_NET_ALL = 3  # ABI 4: bind and connect TCP
_SCOPE_ALL = 3  # ABI 6: abstract unix sockets and signals stay inside the sandbox


class _Ruleset(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _landlock(reads, writes):
    """Landlock through its three system calls (the PyPI bindings are pre-release; this is the
    whole API we need). The ruleset handles every right the running kernel's ABI knows."""
    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(1))
    if abi < 3:
        raise OSError(ctypes.get_errno(), "Landlock ABI 3 or later is needed")
    attr = _Ruleset(_FS_ALL_V3 | ((1 << 15) if abi >= 5 else 0), _NET_ALL if abi >= 4 else 0,
                    _SCOPE_ALL if abi >= 6 else 0)
    size = ctypes.sizeof(_Ruleset) if abi >= 6 else (16 if abi >= 4 else 8)
    ruleset = libc.syscall(_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise OSError(ctypes.get_errno(), "landlock_create_ruleset failed")
    for rights, paths in ((_READ, reads), (_WRITE, writes)):
        for path in paths:
            if not os.path.exists(path):
                continue
            fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            try:
                allowed = rights if os.path.isdir(path) else rights & ((1 << 0) | (1 << 1) | (1 << 2) | (1 << 14))
                rule = _PathBeneath(allowed, fd)
                if libc.syscall(_LANDLOCK_ADD_RULE, ruleset, 1, ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
                    raise OSError(ctypes.get_errno(), f"landlock_add_rule failed for {path}")
            finally:
                os.close(fd)
    if libc.prctl(38, 1, 0, 0, 0) != 0:  # PR_SET_NO_NEW_PRIVS
        raise OSError(ctypes.get_errno(), "no_new_privs failed")
    if libc.syscall(_LANDLOCK_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)) != 0:
        raise OSError(ctypes.get_errno(), "landlock_restrict_self failed")
    os.close(ruleset)


def _seccomp():
    import pyseccomp as sc
    deny = sc.ERRNO(errno.EPERM)
    f = sc.SyscallFilter(defaction=sc.ALLOW)
    for name in ("fork", "vfork", "execve", "execveat", "socket", "socketpair", "ptrace", "process_vm_readv",
                 "process_vm_writev", "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "kexec_load",
                 "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "keyctl", "add_key", "request_key"):
        f.add_rule(deny, name)
    for name in ("kill", "tgkill", "rt_sigqueueinfo", "rt_tgsigqueueinfo"):  # signals: to itself only
        f.add_rule(deny, name, sc.Arg(0, sc.NE, os.getpid()))
    for name in ("tkill", "pidfd_open", "pidfd_getfd"):
        f.add_rule(deny, name)
    f.add_rule(deny, "clone", sc.Arg(0, sc.MASKED_EQ, 0x00010000, 0))  # clone without CLONE_THREAD: a new process
    f.add_rule(sc.ERRNO(errno.ENOSYS), "clone3")  # its flags are in memory seccomp cannot read; libc falls back to clone
    f.load()


def _limits(job):
    mib = 1024 * 1024
    resource.setrlimit(resource.RLIMIT_CPU, (job["cpu_seconds"], job["cpu_seconds"] + 1))
    address_space = (job["memory_mb"] + job["runtime_mb"]) * mib
    resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    resource.setrlimit(resource.RLIMIT_FSIZE, (job["max_output_bytes"], job["max_output_bytes"]))
    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def main():
    with open(sys.argv[1]) as f:
        job = json.load(f)
    try:
        import pyseccomp  # noqa: F401  (loads libseccomp, which runs ldconfig: before exec is denied)
        _limits(job)
        _landlock(job["reads"] + list(job["inputs"].values()) + [job["source"]], [job["output_dir"]])
        _seccomp()
    except Exception as e:  # noqa: BLE001 - any failure means the analysis must not run
        sys.stderr.write(f"\ncg-confinement: {type(e).__name__}: {e}\n")
        sys.exit(12)
    import pyarrow as pa  # pyarrow.compute and the rest the analysis imports itself (they are slow to load)
    import pyarrow.ipc as ipc
    tables = {key: ipc.open_file(pa.memory_map(path)).read_all() for key, path in job["inputs"].items()}
    with open(job["source"]) as f:
        code = compile(f.read(), "analysis.py", "exec")
    namespace = {"__name__": "analysis"}
    try:
        exec(code, namespace)
        result = namespace["analysis"](tables)
    except BaseException as e:  # noqa: BLE001 - only the class name leaves: messages can quote data
        sys.stderr.write(f"\ncg-error: {type(e).__name__}\n")
        sys.exit(10)
    if isinstance(result, pa.RecordBatch):
        result = pa.Table.from_batches([result])
    if not isinstance(result, pa.Table):
        sys.exit(11)
    with pa.OSFile(os.path.join(job["output_dir"], "result.arrow"), "wb") as sink, \
            ipc.new_file(sink, result.schema) as writer:
        writer.write_table(result)


if __name__ == "__main__":
    main()
