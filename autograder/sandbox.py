"""A bubblewrap sandbox around every student kernel.

``BubblewrapLauncher`` implements the ``KernelLauncher`` seam of ``autograder.execute``. The
kernel command is ``sh -c ENTRY ... prlimit ... bwrap ... python -m ipykernel_launcher -f
{connection_file}`` (as root: ``... bwrap ... setpriv --reuid U ... bwrap --unshare-user
--seccomp 3 ... python ...``); the entry shell moves itself into the kernel's memory cgroup and
opens the compiled seccomp filter before it execs the rest:

* **namespaces**: no network (its own empty loopback), its own PIDs, IPC and hostname, a user
  namespace in which no further user namespace can be created (``--disable-userns``).
* **file system, whitelisted**: the root is an empty tmpfs, read-only once built. Bound into
  it, read-only: the system (``/usr``, ``/etc``, the ``/bin``/``/lib`` links), the Python
  installation and the virtualenv, the student distribution (``dlcourse``, what notebooks
  import) and the data home; the grader package itself is hidden even when it is installed
  inside the virtualenv. Read-write: the submission's own work
  folder, nothing else. ``/tmp`` and ``/dev/shm`` are small private tmpfs (``tmp_mb`` each);
  ``/dev`` is read-only. So the course tree
  (``source/``, the checkers), the gradebook, other students' folders and the grader's home
  simply do not exist inside.
* **a user of its own**: when the grader runs as root, bwrap builds the sandbox with root's
  rights (it must read the bind sources), then the kernel runs as an unprivileged uid
  (``setpriv``), so it holds no capability, cannot read root-only files, and ``RLIMIT_NPROC``
  (which never applies to root) counts only its own processes.
* **limits** (``prlimit``, inherited by every process inside): address space, processes, file
  size, CPU seconds, open files, no core dumps. A watchdog thread in the grader adds what
  rlimits cannot do: the processes and threads of the whole sandbox and the disk used in the
  work folder (``disk_mb``, ``max_files``); on a breach it kills the sandbox and says why.
* **memory** (``memory_mb``, ``memory_accounting``): where the grader can make a memory cgroup
  (cgroup v1 ``memory`` or v2 with the controller delegated; as root on most machines), each
  kernel gets one, entered before the kernel allocates anything. The Linux kernel then counts
  everything the sandbox allocates (anonymous memory, page cache, shmem: memfd, tmpfs, SysV
  segments; kernel memory) and OOM-kills inside the cgroup at the limit; the sandbox is then
  stopped with the memory reason and the cgroup removed. Without a cgroup, the watchdog sums
  the PSS and page tables of the sandbox's processes, and a seccomp filter (``bwrap --seccomp``
  in the innermost bwrap, compiled by libseccomp through ``pyseccomp``) refuses with EPERM the
  system calls that hold memory no process maps (``SECCOMP_RULES``: memfd, SysV IPC, splicing
  into pipes, io_uring, TCP/UDP sockets, larger socket buffers). The filter applies with a
  cgroup too (``seccomp_with_cgroup``). ``docs/sandbox.md`` says what each setup guarantees.
* **a clean environment** (``kernel_environment`` plus a fixed ``PATH``), ``JPY_PARENT_PID``
  unset (the grader is invisible from the kernel's PID namespace).
* **the whole tree dies with it**: ``--die-with-parent``, and on shutdown or wall-clock timeout
  the PID namespace's init is killed, which kills every process inside (and, with a cgroup,
  whatever is left in it).
* **transport**: ZeroMQ ``ipc`` sockets in a folder bound into the sandbox (the work folder's
  ``.ipc``, or a short private folder when socket paths would exceed the Unix 108-byte limit).

``choose_launcher(course, allow_unsandboxed)`` picks the sandbox, or refuses to grade without it
unless the instructor explicitly allows it (then with a loud warning). See ``docs/sandbox.md``.
"""

from __future__ import annotations

import atexit
import difflib
import errno
import itertools
import logging
import os
import secrets
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from autograder.execute import KernelLauncher, LocalLauncher
from autograder.results import InvalidSetting, Note, StageError, render_note
from autograder.untrusted import clean_text, remove_tree

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent  # .../autograder: never visible to a kernel
STUDENT_PACKAGE = "dlcourse"  # the student distribution: what notebooks import
SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
IPC_DIRNAME = ".ipc"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes; keep a margin for "-<port>"
MB = 1024 * 1024
MEMORY_ACCOUNTING = ("auto", "cgroup", "seccomp")
CGROUP_PREFIX = "autograder-kernel-"  # + <grader pid>-<n>-<random>: one memory cgroup per kernel
SECCOMP_FD = 3  # the descriptor on which the entry wrapper hands the filter to ``bwrap --seccomp``

# Why the sandbox cannot be used here is a reason as data: ``{"id", "params"}`` of a catalogue
# entry (autograder/messages/sandbox.toml), nested in the message that quotes it and rendered in
# that message's language. A reason given as a plain string (a test's) is shown as it is.
Reason = dict[str, Any]


def reason(message_id: str, **params: Any) -> Reason:
    return {"id": message_id, "params": params}


def reason_text(why: Reason | str | None, language: str = "en") -> str:
    """A reason as text (English for logs and ``str()``): ``results.render_note``."""
    return render_note(why, language, why if isinstance(why, str) else "")


class SandboxUnavailable(StageError):
    """Bubblewrap cannot be used here and running unsandboxed was not explicitly allowed: a
    catalogue message (``sandbox.*``) and its parameters, shown in the reader's language."""


class UnsandboxedWarning(UserWarning):
    """Student code is about to run without a sandbox."""


SANDBOX_SETTING = "c.Course.sandbox"  # how course_config.py spells the section


@dataclass(frozen=True)
class SandboxSettings:
    """``c.Course.sandbox`` in ``course_config.py`` (every key optional)."""

    enabled: bool = True  # False: never sandbox (needs allow_unsandboxed too)
    allow_unsandboxed: bool = False  # grade without bubblewrap when it is missing (warning)
    memory_mb: int = 3072  # memory of all the sandbox's processes together (see below)
    # How memory_mb is enforced: "cgroup" (a memory cgroup per kernel: the kernel counts
    # everything, refuse to grade without one), "seccomp" (PSS watchdog + a seccomp filter that
    # refuses the system calls holding memory nobody maps), "auto" (cgroup when one can be
    # made here, else seccomp). See docs/sandbox.md.
    memory_accounting: str = "auto"
    seccomp_with_cgroup: bool = True  # apply the seccomp filter even when a cgroup counts memory
    address_space_mb: int = 8192  # virtual memory per process (RLIMIT_AS; TensorFlow maps ~3 GB)
    processes: int = 256  # processes and threads of the sandbox user (RLIMIT_NPROC)
    file_size_mb: int = 64  # largest file a kernel may write (RLIMIT_FSIZE)
    disk_mb: int = 256  # everything the kernel writes in its work folder
    max_files: int = 2000  # files and folders in the work folder
    tmp_mb: int = 64  # private /tmp (and /dev/shm), in memory
    cpu_seconds: int | None = None  # CPU time per process; None: twice the notebook time limit
    open_files: int = 1024
    uid: int | None = None  # kernel uid when grading as root; None: one per grader process
    max_message_mb: int = 16  # largest single message the grader accepts from a kernel
    poll_seconds: float = 0.2  # watchdog period (memory and disk)
    extra_ro_paths: tuple[str, ...] = ()  # more read-only paths visible to the kernel
    bwrap: str = "bwrap"

    def __post_init__(self):
        if self.memory_accounting not in MEMORY_ACCOUNTING:
            raise InvalidSetting(
                "config.one_of",
                where=SANDBOX_SETTING,
                key="memory_accounting",
                choices=[repr(m) for m in MEMORY_ACCOUNTING],
                value=repr(self.memory_accounting),
            )
        if not isinstance(self.seccomp_with_cgroup, bool):
            raise InvalidSetting(
                "config.wrong_type",
                where=f"{SANDBOX_SETTING}['seccomp_with_cgroup']",
                expected="bool",
                got=type(self.seccomp_with_cgroup).__name__,
                shown=repr(self.seccomp_with_cgroup)[:60],
            )

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any] | None, *, default_cpu: int | None = None
    ) -> SandboxSettings:
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            near = difflib.get_close_matches(unknown[0], sorted(known), n=1)
            raise InvalidSetting(
                "config.unknown_key",
                where=SANDBOX_SETTING,
                key=unknown[0],
                what="key",
                near=near[0] if near else None,
                known=sorted(known),
            )
        if "extra_ro_paths" in values:
            values["extra_ro_paths"] = tuple(str(p) for p in values["extra_ro_paths"])
        settings = cls(**values)
        if settings.cpu_seconds is None and default_cpu:
            settings = replace(settings, cpu_seconds=int(default_cpu))
        return settings

    @classmethod
    def from_course(cls, course) -> SandboxSettings:
        timeouts = [course.notebook_timeout, *(a.timeout for a in course.assignments.values())]
        raw = course.nbgrader_config.Course.get("sandbox", {})
        return cls.from_mapping(dict(raw) if raw else {}, default_cpu=int(2 * max(timeouts)) + 30)


# --- availability -----------------------------------------------------------------------------


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def _sandbox_uid(settings: SandboxSettings, kernel: int = 0) -> int | None:
    """The uid kernels run as when the grader is root (None: keep the grader's own uid).

    Two uids per grader process, alternating from one kernel to the next (``kernel``): parallel
    workers do not share an RLIMIT_NPROC budget, and neither do a process's running kernel and
    the one prestarted beside it for the next student (``autograder.prestart``)."""
    if not _is_root():
        return None
    if settings.uid is not None:
        return int(settings.uid)
    return 200_000 + (os.getpid() % 50_000) * 2 + kernel % 2


_KERNELS = itertools.count()  # kernels started by this process: which of its two uids


_PROBES: dict[tuple, Reason | None] = {}


def bubblewrap_problem(settings: SandboxSettings | None = None) -> Reason | None:
    """None when the sandbox works here, else what is wrong (a ``Reason``: ``reason_text``)."""
    settings = settings or SandboxSettings()
    if sys.platform != "linux":
        return reason("sandbox.why.not_linux", platform=sys.platform)
    bwrap = shutil.which(settings.bwrap)
    if bwrap is None:
        return reason("sandbox.why.no_bwrap", bwrap=repr(settings.bwrap))
    for tool in ("prlimit",) + (("setpriv",) if _is_root() else ()):
        if shutil.which(tool) is None:
            return reason("sandbox.why.no_tool", tool=tool)
    plan = memory_plan(settings)
    if plan.problem:
        return plan.problem
    key = (bwrap, _is_root(), plan.seccomp)
    if key not in _PROBES:
        uid = _sandbox_uid(settings)
        seccomp = ["--seccomp", str(SECCOMP_FD)] if plan.seccomp else []
        probe = (
            _bwrap_outer(bwrap, uid)
            + (seccomp if uid is None else [])
            + ["--ro-bind", "/", "/", "--proc", "/proc", "--"]
            + _bwrap_inner(bwrap, uid, extra=seccomp)
            + ["true"]
        )
        bpf = _write_filter() if plan.seccomp else None
        try:
            done = subprocess.run(
                _entry(None, bpf) + probe, capture_output=True, text=True, timeout=30
            )
            _PROBES[key] = (
                None
                if done.returncode == 0
                else reason("sandbox.why.bwrap_fails", detail=done.stderr.strip()[:300])
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            _PROBES[key] = reason("sandbox.why.bwrap_fails", detail=str(exc)[:300])
        finally:
            if bpf is not None:
                bpf.unlink(missing_ok=True)
    return _PROBES[key]


# --- memory accounting: a memory cgroup, else a seccomp filter --------------------------------


@dataclass(frozen=True)
class CgroupBase:
    """Where the kernels' memory cgroups are made: a cgroup this process may create children in."""

    version: int  # 1 (the v1 ``memory`` hierarchy) or 2 (the unified hierarchy)
    path: Path


@dataclass(frozen=True)
class MemoryPlan:
    """How ``memory_mb`` is enforced for the kernels this process starts."""

    cgroup: CgroupBase | None  # a memory cgroup per kernel (None: the PSS watchdog counts)
    seccomp: bool  # the seccomp filter refuses the system calls of SECCOMP_RULES
    problem: Reason | None = None  # set: grading must be refused, for this reason
    note: Reason | None = None  # why no cgroup ("auto" without one), why no filter

    def describe(self) -> str:
        """How memory is counted, in English (the grader's log)."""
        if self.problem:
            return f"unusable: {reason_text(self.problem)}"
        if self.cgroup is not None:
            how = (
                f"a memory cgroup per kernel (cgroup v{self.cgroup.version}, in {self.cgroup.path})"
            )
        else:
            how = "the PSS watchdog"
        return how + (" and the seccomp filter" if self.seccomp else "")


def memory_plan(settings: SandboxSettings | None = None) -> MemoryPlan:
    """How this process can enforce ``settings.memory_mb`` (see ``memory_accounting``)."""
    settings = settings or SandboxSettings()
    mode = settings.memory_accounting
    base, cgroup_problem = _memory_cgroup() if mode != "seccomp" else (None, None)
    seccomp_problem = _seccomp_problem()
    if mode == "cgroup" and base is None:
        return MemoryPlan(
            None, False, problem=reason("sandbox.why.cgroup_required", cgroup=cgroup_problem)
        )
    if base is not None:
        if settings.seccomp_with_cgroup and seccomp_problem:
            return MemoryPlan(
                base, False, note=reason("sandbox.why.no_filter", why=seccomp_problem)
            )
        return MemoryPlan(base, settings.seccomp_with_cgroup)
    if seccomp_problem:
        return MemoryPlan(
            None,
            False,
            problem=reason(
                "sandbox.why.unenforceable", cgroup=cgroup_problem, seccomp=seccomp_problem
            ),
        )
    return MemoryPlan(
        None,
        True,
        note=reason("sandbox.why.no_cgroup", why=cgroup_problem) if cgroup_problem else None,
    )


# The seccomp filter: system calls refused with EPERM inside the sandbox. Each lets a process
# hold memory that no process maps, which a sum of PSS cannot see (a memory cgroup counts most
# of them anyway). Honest kernels do not need them: TensorFlow, Keras, numpy, pandas,
# matplotlib, ipykernel and ZeroMQ (ipc transport) run unchanged; shutil.copyfile falls back
# from sendfile to read/write. Syscall arguments: (index, value) pairs that must all match.
SECCOMP_RULES: tuple[tuple[str, tuple[tuple[int, int], ...], str], ...] = (
    ("memfd_create", (), "an anonymous file keeps its pages while a descriptor is open"),
    ("memfd_secret", (), "the same, for secret memory"),
    ("shmget", (), "a SysV shared memory segment lives on without being attached"),
    ("msgget", (), "SysV message queues hold their messages in the kernel"),
    ("semget", (), "SysV semaphore arrays are kernel memory (32000 x 32000 semaphores)"),
    ("vmsplice", (), "pages spliced into a pipe stay held after munmap (even a huge page)"),
    ("splice", (), "the same for file pages, even of a deleted file"),
    ("tee", (), "duplicates what a pipe holds"),
    ("sendfile", (), "into a pipe, sendfile is a splice"),
    ("io_uring_setup", (), "registered buffers and files are held by the ring, not mapped"),
    ("io_uring_enter", (), "the same"),
    ("io_uring_register", (), "the same"),
    # No network inside; TCP/UDP over the sandbox's own loopback would autotune buffers up to
    # tcp_rmem/tcp_wmem (tens of MB per connection), charged to no process.
    ("socket", ((0, 2),), "AF_INET"),
    ("socket", ((0, 10),), "AF_INET6"),
    # A Unix socket queues up to its send buffer: 208 KB by default, 2 x net.core.wmem_max
    # (often 8 MB) when raised. The default stays; raising (or forcing) it is refused.
    ("setsockopt", ((1, 1), (2, 7)), "SOL_SOCKET, SO_SNDBUF"),
    ("setsockopt", ((1, 1), (2, 8)), "SOL_SOCKET, SO_RCVBUF"),
    ("setsockopt", ((1, 1), (2, 32)), "SOL_SOCKET, SO_SNDBUFFORCE"),
    ("setsockopt", ((1, 1), (2, 33)), "SOL_SOCKET, SO_RCVBUFFORCE"),
)

_SECCOMP: dict[str, bytes | str] = {}


def seccomp_program() -> bytes:
    """The filter, compiled to a BPF program by libseccomp (through ``pyseccomp``) for this
    machine's architecture. A system call of another ABI (32-bit ``int 0x80``, x32) fails with
    EPERM as a whole, so the rules cannot be stepped around through another syscall table."""
    if "program" not in _SECCOMP:
        try:
            import pyseccomp as seccomp  # ctypes over libseccomp.so.2; raises without it

            deny = seccomp.ERRNO(errno.EPERM)
            rules = seccomp.SyscallFilter(seccomp.ALLOW)
            rules.set_attr(seccomp.Attr.ACT_BADARCH, deny)
            for name, args, _why in SECCOMP_RULES:
                if seccomp.resolve_syscall(seccomp.Arch.NATIVE, name) < 0:
                    continue  # unknown to this libseccomp: not on this kernel either
                cmp = [seccomp.Arg(i, seccomp.EQ, v) for i, v in args]
                rules.add_rule(deny, name, *cmp)
            with tempfile.TemporaryFile() as handle:
                rules.export_bpf(handle)
                handle.seek(0)
                _SECCOMP["program"] = handle.read()
        except Exception as exc:  # noqa: BLE001 - ImportError, RuntimeError, OSError
            _SECCOMP["problem"] = reason(
                "sandbox.why.no_seccomp", detail=f"{type(exc).__name__}: {str(exc)[:200]}"
            )
            raise SandboxUnavailable("sandbox.refused", why=_SECCOMP["problem"]) from exc
    return _SECCOMP["program"]  # type: ignore[return-value]


def _seccomp_problem() -> Reason | None:
    if "problem" in _SECCOMP:
        return _SECCOMP["problem"]  # type: ignore[return-value]
    try:
        seccomp_program()
    except SandboxUnavailable:
        return _SECCOMP["problem"]  # type: ignore[return-value]
    return None


def _write_filter() -> Path:
    """The compiled filter in a private file, for the entry wrapper to open."""
    fd, path = tempfile.mkstemp(prefix="agk-seccomp-", suffix=".bpf")
    with os.fdopen(fd, "wb") as handle:
        handle.write(seccomp_program())
    return Path(path)


# The first process of every sandbox, a POSIX shell outside it (as the grader): it moves itself
# into the kernel's memory cgroup before anything else runs (so every process of the sandbox is
# born inside and nothing is allocated outside), opens the compiled seccomp filter on
# SECCOMP_FD for ``bwrap --seccomp`` (which closes it), then execs prlimit.
_ENTRY_SCRIPT = (
    'procs=$1 filter=$2; shift 2; if [ "$procs" != - ]; then echo $$ 2>/dev/null >"$procs" || '
    '{ echo "autograder: the kernel could not enter its memory cgroup ($procs)" >&2; exit 125; }; '
    f'fi; if [ "$filter" != - ]; then exec "$@" {SECCOMP_FD}<"$filter"; fi; exec "$@"'
)


def _entry(procs: Path | None, bpf: Path | None) -> list[str]:
    return [
        "/bin/sh",
        "-c",
        _ENTRY_SCRIPT,
        "autograder-sandbox",
        str(procs or "-"),
        str(bpf or "-"),
    ]


_CGROUPS: dict[int, tuple[CgroupBase | None, str | None]] = {}  # per process id (pool workers)
_SEQUENCE = itertools.count(1)
_UNREMOVED: set[Path] = set()  # kernel cgroups whose removal failed: retried later and at exit


def _memory_cgroup() -> tuple[CgroupBase | None, Reason | None]:
    """The cgroup in which this process can make memory-limited children, else why not."""
    pid = os.getpid()
    if pid not in _CGROUPS:
        try:
            with open("/proc/self/cgroup") as handle:
                cgroups = handle.read()
            with open("/proc/self/mountinfo") as handle:
                mounts = handle.read()
        except OSError as exc:
            _CGROUPS[pid] = (None, reason("sandbox.why.cgroups_unreadable", detail=str(exc)))
        else:
            found = locate_memory_cgroup(cgroups, mounts)
            if isinstance(found, str):
                _CGROUPS[pid] = (None, found)
            else:
                _CGROUPS[pid] = _usable_cgroup(*found)
    return _CGROUPS[pid]


def _unescape(field_: str) -> str:
    """mountinfo writes space, tab, newline and backslash as octal escapes."""
    for code in ("\\040", "\\011", "\\012", "\\134"):
        field_ = field_.replace(code, chr(int(code[1:], 8)))
    return field_


def locate_memory_cgroup(cgroups: str, mountinfo: str) -> tuple[int, Path] | str:
    """From ``/proc/self/cgroup`` and ``/proc/self/mountinfo``: the cgroup version and the
    directory of this process's own memory cgroup, or why there is none. cgroup v1's
    ``memory`` hierarchy wins when mounted (the controller cannot be in both)."""
    own: dict[str, str] = {}
    for line in cgroups.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if parts[1] == "":
            own["unified"] = parts[2]
        for controller in parts[1].split(","):
            own[controller] = parts[2]
    mounts: dict[str, tuple[str, str]] = {}  # "memory" (v1) / "unified" -> (root, mount point)
    for line in mountinfo.splitlines():
        left, sep, right = line.partition(" - ")
        fields_, extra = left.split(), right.split()
        if not sep or len(fields_) < 5 or len(extra) < 3:
            continue
        root, point = _unescape(fields_[3]), _unescape(fields_[4])
        if extra[0] == "cgroup" and "memory" in extra[2].split(","):
            mounts.setdefault("memory", (root, point))
        elif extra[0] == "cgroup2":
            mounts.setdefault("unified", (root, point))
    for key, version in (("memory", 1), ("unified", 2)):
        if key not in own or key not in mounts:
            continue
        root, point = mounts[key]
        path = own[key]
        if root != "/" and not (path == root or path.startswith(root.rstrip("/") + "/")):
            return reason("sandbox.why.cgroup_outside", path=path, root=root)
        relative = path[len(root) :] if root != "/" else path
        return version, Path(point) / relative.lstrip("/")
    if "memory" in own:
        return reason("sandbox.why.v1_not_mounted")
    if "unified" in own and "unified" not in mounts:
        return reason("sandbox.why.not_mounted")
    return reason("sandbox.why.no_memory_cgroup")


def _words(path: Path) -> list[str]:
    try:
        return path.read_text().split()
    except OSError:
        return []


def _usable_cgroup(version: int, own: Path) -> tuple[CgroupBase | None, Reason | None]:
    """Check that memory-limited children can really be made (a probe child, removed)."""
    if version == 1:
        base = CgroupBase(1, own)
        if not (own / "memory.limit_in_bytes").exists():
            return None, reason("sandbox.why.v1_no_limit", path=str(own))
    else:
        base_path, problem = _v2_base(own)
        if base_path is None:
            return None, problem
        base = CgroupBase(2, base_path)
    probe = KernelCgroup(base, 64 * MB, name=f"{CGROUP_PREFIX}{os.getpid()}-probe")
    try:
        probe.create()
        entered = subprocess.run(
            _entry(probe.procs, None) + ["true"], capture_output=True, text=True, timeout=30
        )
        if entered.returncode != 0:
            raise OSError(entered.stderr.strip()[:200] or f"status {entered.returncode}")
    except (OSError, subprocess.TimeoutExpired) as exc:
        return None, reason(
            "sandbox.why.cgroup_not_writable", version=version, path=str(base.path), detail=str(exc)
        )
    finally:
        probe.remove()
    return base, None


def _v2_base(own: Path) -> tuple[Path | None, Reason | None]:
    """cgroup v2: the parent for the kernels' cgroups. Our own cgroup when the memory
    controller is (or can be) enabled for its children; else, as v2 forbids that while our
    cgroup holds processes, its parent when it delegates memory to ours and is writable (the
    kernels' cgroups are then siblings of the grader's)."""
    control = own / "cgroup.subtree_control"
    if "memory" in _words(control):
        return own, None
    if "memory" not in _words(own / "cgroup.controllers"):
        return None, reason("sandbox.why.v2_not_delegated", path=str(own))
    try:
        control.write_text("+memory")
        return own, None
    except OSError as exc:
        error = exc
    parent = own.parent
    if (parent / "cgroup.subtree_control").exists() and all(
        os.access(p, os.W_OK) for p in (parent, parent / "cgroup.procs", own / "cgroup.procs")
    ):
        return parent, None
    return None, reason(
        "sandbox.why.v2_not_enabled", path=str(own), detail=str(error), parent=str(parent)
    )


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class KernelCgroup:
    """The memory cgroup of one kernel: made at launch, limited, watched, removed."""

    def __init__(self, base: CgroupBase, limit: int, name: str | None = None):
        self.base = base
        self.limit = limit
        name = name or f"{CGROUP_PREFIX}{os.getpid()}-{next(_SEQUENCE)}-{secrets.token_hex(3)}"
        self.path = base.path / name
        self.procs = self.path / "cgroup.procs"

    def _write(self, name: str, value: str, required: bool = True) -> None:
        """Write one control file; an optional one may be absent (an older kernel, no swap
        accounting) or refuse the value."""
        try:
            (self.path / name).write_text(value)
        except OSError:
            if required:
                raise

    def create(self) -> None:
        sweep_cgroups(self.base)
        os.mkdir(self.path, 0o755)
        try:
            if self.base.version == 1:
                self._write("memory.limit_in_bytes", str(self.limit))
                # memory + swap: no swap either (absent without swap accounting)
                self._write("memory.memsw.limit_in_bytes", str(self.limit), required=False)
                self._write("memory.swappiness", "0", required=False)
                self._write("memory.oom_control", "0", required=False)  # kill, never freeze
            else:
                self._write("memory.max", str(self.limit))
                self._write("memory.swap.max", "0", required=False)
                self._write("memory.zswap.max", "0", required=False)
                self._write("memory.oom.group", "1", required=False)  # OOM kills them all
        except OSError:
            self.remove()
            raise

    def _read_int(self, name: str) -> int | None:
        try:
            return int((self.path / name).read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def _counters(self, name: str) -> dict[str, int]:
        counters = {}
        try:
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if value.strip().isdigit():
                    counters[key] = int(value)
        except OSError:
            pass
        return counters

    def usage(self) -> int | None:
        return self._read_int(
            "memory.usage_in_bytes" if self.base.version == 1 else "memory.current"
        )

    def peak(self) -> int | None:
        return self._read_int(
            "memory.max_usage_in_bytes" if self.base.version == 1 else "memory.peak"
        )

    def oom_kills(self) -> int | None:
        """Processes the kernel's OOM killer killed in this cgroup (None: not reported)."""
        name = "memory.oom_control" if self.base.version == 1 else "memory.events"
        return self._counters(name).get("oom_kill")

    def limit_reached(self) -> bool:
        """The limit was hit and the kernel had to kill (old v1 kernels: the limit was hit)."""
        kills = self.oom_kills()
        if kills is not None:
            return kills > 0
        if self.base.version == 1:
            return (self._read_int("memory.failcnt") or 0) > 0
        return self._counters("memory.events").get("max", 0) > 0

    def pids(self) -> list[int]:
        return [int(p) for p in _words(self.procs) if p.isdigit()]

    def kill_all(self) -> None:
        if self.base.version == 2 and (self.path / "cgroup.kill").exists():
            self._write("cgroup.kill", "1", required=False)
        for pid in self.pids():
            _sigkill(pid)

    def remove(self) -> bool:
        """Kill whatever is left inside, then remove the cgroup (retrying while the killed
        processes exit). False, logged, when it could not be removed within 10 s."""
        deadline = time.monotonic() + 10
        while True:
            if not self.path.exists():
                _UNREMOVED.discard(self.path)
                return True
            self.kill_all()
            try:
                os.rmdir(self.path)
                _UNREMOVED.discard(self.path)
                return True
            except FileNotFoundError:
                _UNREMOVED.discard(self.path)
                return True
            except OSError as exc:
                if time.monotonic() > deadline:
                    log.error("could not remove the kernel's memory cgroup %s: %s", self.path, exc)
                    _UNREMOVED.add(self.path)
                    return False
                time.sleep(0.05)


def kernel_cgroups(base: CgroupBase | None = None) -> list[Path]:
    """The kernels' memory cgroups that exist now under ``base`` (default: this process's)."""
    base = base or _memory_cgroup()[0]
    if base is None:
        return []
    try:
        return sorted(p for p in base.path.iterdir() if p.name.startswith(CGROUP_PREFIX))
    except OSError:
        return []


def sweep_cgroups(base: CgroupBase) -> list[Path]:
    """Remove kernel cgroups left behind: those of grader processes that no longer exist (a
    grader killed with SIGKILL cannot clean up; its kernels died with it, --die-with-parent)
    and this process's own failed removals. Returns what was removed."""
    removed = []
    for path in list(_UNREMOVED):
        if KernelCgroup(base, 0, name=path.name).remove():
            removed.append(path)
    for path in kernel_cgroups(base):
        owner = path.name[len(CGROUP_PREFIX) :].split("-", 1)[0]
        if not owner.isdigit() or int(owner) == os.getpid() or _alive(int(owner)):
            continue
        cgroup = KernelCgroup(base, 0, name=path.name)
        if cgroup.pids():  # processes of a dead grader: kill them (none should survive)
            cgroup.kill_all()
        try:
            os.rmdir(path)
            removed.append(path)
        except OSError:
            pass
    return removed


@atexit.register
def _remove_unremoved() -> None:
    base = _CGROUPS.get(os.getpid(), (None, None))[0]
    if base is not None and _UNREMOVED:
        sweep_cgroups(base)


def choose_launcher(course, allow_unsandboxed: bool = False) -> KernelLauncher:
    """The kernel launcher for grading ``course``: the sandbox, or an explicit, loud fallback.

    Raises ``SandboxUnavailable`` (saying how to install bubblewrap) when the sandbox cannot be
    used and neither ``allow_unsandboxed`` nor ``c.Course.sandbox["allow_unsandboxed"]`` is set.
    """
    settings = SandboxSettings.from_course(course)
    problem = bubblewrap_problem(settings) if settings.enabled else reason("sandbox.why.disabled")
    if problem is None:
        plan = memory_plan(settings)
        log.info("sandbox memory limit (%d MB): %s", settings.memory_mb, plan.describe())
        if plan.note:
            log.info("sandbox: %s", reason_text(plan.note))
        return BubblewrapLauncher(settings)
    if not (allow_unsandboxed or settings.allow_unsandboxed):
        raise SandboxUnavailable("sandbox.refused", why=problem)
    warning = Note("sandbox.unsandboxed", {"why": problem})
    message = warning.text("en")
    warnings.warn(message, UnsandboxedWarning, stacklevel=2)
    log.warning(message)
    shown = warning.text(getattr(course, "language", "en"))
    print(f"\n{'!' * 78}\n{shown}\n{'!' * 78}\n", file=sys.stderr)
    return LocalLauncher()


# --- the launcher -----------------------------------------------------------------------------


def student_package_dir() -> Path:
    """Where the student distribution's package is installed (bound read-only into kernels)."""
    import importlib.util

    spec = importlib.util.find_spec(STUDENT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SandboxUnavailable("sandbox.no_student_package", package=STUDENT_PACKAGE)
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def _inside(path: Path, roots: list[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def _python_roots() -> list[Path]:
    """The interpreter's installation and the virtualenv (whatever is outside /usr)."""
    roots = []
    for prefix in {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}:
        path = Path(prefix).resolve()
        if not any(str(path) == d or str(path).startswith(d + "/") for d in SYSTEM_DIRS):
            roots.append(path)
    return sorted(set(roots))


@dataclass
class BubblewrapLauncher:
    """Start every kernel inside bubblewrap (see the module docstring)."""

    settings: SandboxSettings = field(default_factory=SandboxSettings)
    sandboxed = True

    def kernel_env(self, workdir: Path, base: dict[str, str]) -> dict[str, str]:
        env = dict(base)
        bindirs = [str(Path(sys.prefix) / "bin"), "/usr/local/bin", "/usr/bin", "/bin"]
        env["PATH"] = ":".join(dict.fromkeys(bindirs))
        env["TMPDIR"] = "/tmp"
        env["USER"] = env["LOGNAME"] = "student"  # getpass works for a uid without a name
        env.pop("JPY_PARENT_PID", None)
        return env

    def kernel_manager(self, workdir: Path, env: dict[str, str]):
        return make_kernel_manager(self.settings, Path(workdir).resolve(), env)

    def command(
        self,
        workdir: Path,
        ipc_dir: Path,
        data_home: str | None,
        uid: int | None,
        seccomp_fd: int | None = None,
    ) -> list[str]:
        """The kernel's argv (``{connection_file}`` is filled in by jupyter_client). With
        ``seccomp_fd``, the innermost bwrap (the one that execs the kernel) loads the compiled
        filter from that descriptor."""
        s = self.settings
        kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        seccomp = ["--seccomp", str(seccomp_fd)] if seccomp_fd is not None else []
        return (
            _limits(s)
            + _bwrap_outer(s.bwrap, uid)
            + self.mounts(workdir, ipc_dir, data_home)
            + ([] if uid is not None else ["--chdir", str(workdir), *seccomp])
            + ["--unsetenv", "JPY_PARENT_PID", "--"]
            + _bwrap_inner(s.bwrap, uid, workdir, extra=seccomp)
            + kernel
        )

    def mounts(self, workdir: Path, ipc_dir: Path, data_home: str | None) -> list[str]:
        """The file system inside: a read-only whitelist and one writable work folder."""
        s = self.settings
        system: list[str] = []
        for entry in SYSTEM_DIRS:
            path = Path(entry)
            if path.is_symlink():
                system += ["--symlink", os.readlink(path), entry]
            elif path.is_dir():
                system += ["--ro-bind", entry, entry]
        roots = _python_roots()
        readonly = [str(r) for r in roots]
        student = student_package_dir()
        if not _inside(student, roots):  # an editable install lives outside the venv
            readonly.append(str(student))
        # A regular install puts the grader (checkers, thresholds) inside the bound venv:
        # an empty, read-only folder hides it. (An editable install points outside: absent.)
        hidden = [str(PACKAGE_DIR)] if _inside(PACKAGE_DIR, roots) else []
        for extra in (data_home, *s.extra_ro_paths):
            if extra and Path(extra).exists():
                readonly.append(str(Path(extra).resolve()))
        writable = [str(workdir)] + ([] if workdir in ipc_dir.parents else [str(ipc_dir)])
        tmp = str(s.tmp_mb * MB)
        bw = system + [
            "--proc",
            "/proc",
            "--dev",
            "/dev",
            "--perms",
            "1777",
            "--size",
            tmp,
            "--tmpfs",
            "/tmp",
            "--perms",
            "1777",
            "--size",
            tmp,
            "--tmpfs",
            "/dev/shm",
        ]
        made = {"/", "/tmp", "/dev", "/proc", *SYSTEM_DIRS}
        for flag, paths in (("--ro-bind", readonly), ("--bind", writable)):
            for path in paths:
                for parent in reversed(Path(path).parents):  # bwrap would make them 0700
                    if str(parent) not in made:
                        made.add(str(parent))
                        bw += ["--perms", "0755", "--dir", str(parent)]
                bw += [flag, path, path]
        for path in hidden:
            bw += ["--perms", "0555", "--tmpfs", path, "--remount-ro", path]
        # Read-only too: /dev, a tmpfs without a size that an unprivileged sandbox owns (it
        # could fill it with files counted by no process), and the hidden folders' tmpfs.
        return bw + ["--remount-ro", "/dev", "--remount-ro", "/"]


def _limits(s: SandboxSettings) -> list[str]:
    limits = [
        "prlimit",
        f"--as={s.address_space_mb * MB}",
        f"--nproc={s.processes}",
        f"--fsize={s.file_size_mb * MB}",
        f"--nofile={s.open_files}",
        "--core=0",
    ]
    if s.cpu_seconds:
        # SIGXCPU at the soft limit (the reason can be told), SIGKILL 5 s later if ignored
        limits.append(f"--cpu={int(s.cpu_seconds)}:{int(s.cpu_seconds) + 5}")
    return limits + ["--"]


def _bwrap_outer(bwrap: str, uid: int | None) -> list[str]:
    """The sandbox's namespaces. As root, bwrap runs privileged (it can read every bind
    source) and keeps only the capability to switch to the kernel's uid; unprivileged, it
    runs in a user namespace of its own."""
    common = ["--die-with-parent", "--new-session", "--hostname", "sandbox"]
    exe = shutil.which(bwrap) or bwrap
    if uid is None:
        return [exe, "--unshare-all", "--unshare-user", "--disable-userns", *common]
    return [
        exe,
        "--unshare-ipc",
        "--unshare-pid",
        "--unshare-net",
        "--unshare-uts",
        "--unshare-cgroup-try",
        *common,
        "--cap-drop",
        "ALL",
        "--cap-add",
        "CAP_SETUID",
        "--cap-add",
        "CAP_SETGID",
    ]


def _bwrap_inner(
    bwrap: str, uid: int | None, workdir: Path | None = None, extra: list[str] | None = None
) -> list[str]:
    """As root: drop to ``uid`` (all capabilities gone), then a second, unprivileged bwrap
    whose user namespace forbids creating more (no private tmpfs, no nested sandboxes). It
    enters the work folder as ``uid``, its owner (root without capabilities may not).
    ``extra``: more options for it (``--seccomp FD``)."""
    if uid is None:
        return []
    chdir = ["--chdir", str(workdir)] if workdir else []
    chdir += extra or []
    return [
        "setpriv",
        f"--reuid={uid}",
        f"--regid={uid}",
        "--clear-groups",
        "--",
        shutil.which(bwrap) or bwrap,
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--dev-bind",
        "/",
        "/",
        *chdir,
        "--",
    ]


# --- the kernel manager -----------------------------------------------------------------------


def _chown_tree(path: Path, uid: int) -> None:
    os.chown(path, uid, uid, follow_symlinks=False)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.chown(os.path.join(root, name), uid, uid, follow_symlinks=False)


def _ipc_dir(workdir: Path) -> tuple[Path, bool]:
    """A folder for the sockets and the connection file; True when it must be removed."""
    inside = workdir / IPC_DIRNAME
    if len(str(inside / "k-99999")) <= MAX_SOCKET_PATH:
        inside.mkdir(exist_ok=True)
        return inside, False
    base = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
    return Path(tempfile.mkdtemp(prefix="agk-", dir=base)), True


def make_kernel_manager(settings: SandboxSettings, workdir: Path, env: dict[str, str]):
    from jupyter_client.kernelspec import KernelSpec
    from jupyter_client.manager import AsyncKernelManager

    class SandboxKernelManager(AsyncKernelManager):
        """A kernel manager whose kernel is the sandbox; it watches and kills the sandbox."""

        sandbox: _Sandbox

        @property
        def kernel_spec(self):  # the launch command is the sandbox, not a kernelspec file
            return self.sandbox.spec

        def write_connection_file(self, **kwargs):
            super().write_connection_file(**kwargs)
            if self.sandbox.uid is not None:  # the kernel's user must read it (0600)
                os.chown(self.connection_file, self.sandbox.uid, self.sandbox.uid)

        async def _async_launch_kernel(self, kernel_cmd, **kw):
            kw["stdout"] = kw["stderr"] = self.sandbox.log_file()
            kernel_cmd = self.sandbox.prepare(kernel_cmd)  # the cgroup and the filter
            await super()._async_launch_kernel(kernel_cmd, **kw)
            self.sandbox.started(self.provisioner.process)

        _launch_kernel = _async_launch_kernel

        @property
        def stop_reason(self) -> str | None:
            return self.sandbox.stop_reason()

        @property
        def stop_note(self):
            return self.sandbox.stop_note()

        def finish(self) -> None:
            self.sandbox.finish()

    km_client = _bounded_kernel_client(settings.max_message_mb * MB)
    sandbox = _Sandbox(settings, workdir, env)
    spec = KernelSpec(
        argv=sandbox.argv,
        display_name="Python 3 (sandboxed)",
        language="python",
        interrupt_mode="message",
        env={},
        metadata={},
    )
    sandbox.spec = spec
    km = SandboxKernelManager(
        transport="ipc",
        ip=str(sandbox.ipc_dir / "k"),
        connection_file=str(sandbox.ipc_dir / "kernel.json"),
    )
    km.sandbox = sandbox
    km.client_factory = km_client
    return km


def _bounded_kernel_client(max_bytes: int):
    """The grader's kernel client, refusing any single message larger than ``max_bytes``
    (ZeroMQ drops it before it is read into the grader's memory)."""
    from jupyter_client.asynchronous import AsyncKernelClient

    class BoundedKernelClient(AsyncKernelClient):
        def _create_connected_socket(self, channel, identity=None):
            sock = super()._create_connected_socket(channel, identity=identity)
            sock.maxmsgsize = max_bytes
            return sock

    return BoundedKernelClient


class _Sandbox:
    """One sandboxed kernel: its command, its watchdog and its cleanup."""

    def __init__(self, settings: SandboxSettings, workdir: Path, env: dict[str, str]):
        self.settings = settings
        self.workdir = workdir
        self.uid = _sandbox_uid(settings, next(_KERNELS))
        self.ipc_dir, self.own_ipc_dir = _ipc_dir(workdir)
        if self.uid is not None:
            _chown_tree(workdir, self.uid)
            os.chown(self.ipc_dir, self.uid, self.uid)
        self.ipc_dir.chmod(0o700)
        self.plan = memory_plan(settings)
        if self.plan.problem:
            raise SandboxUnavailable("sandbox.refused", why=self.plan.problem)
        # The cgroup is made (and the filter written) at launch, inside the caller's cleanup.
        self.cgroup = (
            KernelCgroup(self.plan.cgroup, settings.memory_mb * MB) if self.plan.cgroup else None
        )
        self._filter_path: Path | None = None
        launcher = BubblewrapLauncher(settings)
        self.argv = launcher.command(
            workdir,
            self.ipc_dir,
            env.get("COURSE_DATA_HOME"),
            self.uid,
            seccomp_fd=SECCOMP_FD if self.plan.seccomp else None,
        )
        self.spec = None
        self.process: subprocess.Popen | None = None
        self._reason: Note | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._log_handle = None
        self._log_path: str | None = None
        self._kernel_log_offset: int | None = None  # log size when the kernel was running

    # launch ------------------------------------------------------------------------------
    def log_file(self):
        """The kernel's own stdout/stderr: a private file outside the sandbox (capped by
        RLIMIT_FSIZE), so nothing it prints reaches the grader's terminal."""
        fd, self._log_path = tempfile.mkstemp(prefix="agk-log-")
        self._log_handle = os.fdopen(fd, "wb")
        return self._log_handle

    def prepare(self, kernel_cmd: list[str]) -> list[str]:
        """Just before the launch: make the kernel's memory cgroup and write the compiled
        seccomp filter; the command starts with the entry wrapper that uses both."""
        if self.cgroup is not None and not self.cgroup.path.exists():
            self.cgroup.create()
        if self.plan.seccomp and self._filter_path is None:
            self._filter_path = _write_filter()
        procs = self.cgroup.procs if self.cgroup is not None else None
        return _entry(procs, self._filter_path) + list(kernel_cmd)

    def started(self, process) -> None:
        self.process = process
        self._thread = threading.Thread(target=self._watch, name="sandbox-watchdog", daemon=True)
        self._thread.start()

    # watchdog ----------------------------------------------------------------------------
    def _watch(self) -> None:
        s = self.settings
        folders = [self.workdir] + ([self.ipc_dir] if self.own_ipc_dir else [])
        while not self._stop.wait(s.poll_seconds):
            if self.process is None or self.process.poll() is not None:
                return
            try:
                table = process_table()
                tree = descendants(table, self.process.pid)
                tasks = sum(table[pid][1] for pid in tree if pid in table)
                if self._kernel_log_offset is None and any(_is_python(pid) for pid in tree):
                    # from here on the log holds what the *kernel* prints: a "bwrap:" line
                    # after this offset is the student's, never the sandbox's
                    self._kernel_log_offset = _size_of(self._log_path)
                # With a cgroup the kernel enforces the limit itself (an OOM kill inside it):
                # stop the whole sandbox at the first one. Without, sum PSS and page tables.
                over = (
                    self.cgroup.limit_reached()
                    if self.cgroup is not None
                    else sum(process_memory(pid) for pid in tree) > s.memory_mb * MB
                )
                used, count = _disk_usage(folders, s.max_files)
            except Exception:  # noqa: BLE001 - a vanishing process or file: look again
                continue
            if over:
                self._kill(self._memory_reason())
            elif tasks >= s.processes:
                self._kill(Note("run.processes", {"n": s.processes}))
            elif used > s.disk_mb * MB:
                self._kill(Note("run.disk", {"mb": s.disk_mb}))
            elif count > s.max_files:
                self._kill(Note("run.files", {"n": s.max_files}))
            if self._reason:
                return

    def _memory_reason(self) -> Note:
        return Note("run.memory", {"mb": self.settings.memory_mb})

    def _kill(self, reason: Note) -> None:
        if self._reason is None:
            self._reason = reason
        self.kill_tree()

    def kill_tree(self) -> None:
        """SIGKILL the sandbox. Killing its PID 1 makes the kernel kill every process of the
        PID namespace (whatever they did: setsid, double fork); bwrap then exits by itself.
        Should it not, it is killed too, with every descendant still visible."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        table = process_table()
        for pid in _children(table, process.pid):  # the namespace's PID 1
            _sigkill(pid)
        deadline = time.monotonic() + 2
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if process.poll() is None:
            for pid in [process.pid, *descendants(process_table(), process.pid)]:
                _sigkill(pid)
        if self.cgroup is not None:  # anything inside that escaped the tree (nothing should)
            self.cgroup.kill_all()

    # results -----------------------------------------------------------------------------
    def stop_reason(self) -> str | None:
        """``stop_note`` in English (for logs)."""
        note = self.stop_note()
        return note.text("en") if note else None

    def stop_note(self) -> Note | None:
        """Why the sandbox stopped, when it was not the notebook's normal end (as data)."""
        if self._reason:
            return self._reason
        code = self.process.poll() if self.process is not None else None
        if code is None:
            return None
        if self.cgroup is not None and self.cgroup.limit_reached():
            self._reason = self._memory_reason()  # the kernel's OOM killer, inside the cgroup
            return self._reason
        # bwrap exits with the kernel's status; a signal becomes 128 + its number
        sig = -code if code < 0 else (code - 128 if code > 128 else None)
        if sig == signal.SIGXCPU:
            return Note("run.cpu", {"seconds": self.settings.cpu_seconds})
        if sig == signal.SIGSEGV:
            return Note("run.segfault")
        if sig == signal.SIGXFSZ:
            return Note("run.file_size", {"mb": self.settings.file_size_mb})
        if sig:
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = str(sig)
            return Note("run.killed", {"signal": name})
        problems = [
            line
            for line in self._log_tail(self._kernel_log_offset).splitlines()
            if line.startswith(("bwrap:", "autograder:"))
        ]
        if problems:
            return Note("run.sandbox_start", {"detail": clean_text(problems[-1], 200)})
        return Note("run.exited", {"status": code})

    def _log_tail(self, until: int | None = None) -> str:
        """The last 2,000 bytes the sandbox printed before ``until`` (the whole log: None)."""
        try:
            with open(self._log_path or "", "rb") as handle:
                end = os.path.getsize(self._log_path) if until is None else until
                handle.seek(max(0, end - 2000))
                return handle.read(end - handle.tell()).decode("utf-8", "replace").strip()
        except OSError:
            return ""

    # cleanup -----------------------------------------------------------------------------
    def finish(self) -> None:
        """After the kernel: stop the watchdog, kill whatever is left, clean the work folder."""
        self._stop.set()
        self.kill_tree()
        if self.process is not None:
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                log.error("sandbox %s did not exit after SIGKILL", self.process.pid)
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self.cgroup is not None:
            if self.process is not None and self._reason is None and self.cgroup.limit_reached():
                self._reason = self._memory_reason()
            peak = self.cgroup.peak()
            if peak is not None:
                log.debug("sandbox memory peak %.0f MB", peak / MB)
            self.cgroup.remove()  # kills what is left, retries while it exits
        if self._filter_path is not None:
            self._filter_path.unlink(missing_ok=True)
        if self._log_handle is not None:
            self._log_handle.close()
        if self._log_path:
            for line in self._log_tail(self._kernel_log_offset).splitlines():
                if line.startswith("bwrap:"):
                    log.warning("sandbox: %s", clean_text(line, 500, one_line=True))
            Path(self._log_path).unlink(missing_ok=True)
        shutil.rmtree(self.ipc_dir, ignore_errors=True)
        sanitize_workdir(self.workdir)


MAX_WORKDIR_DEPTH = 12  # 12 names of 255 bytes stay under PATH_MAX
PLACEHOLDER = b"removed by the grader: this was a symbolic link or a special file, not plain data\n"


def sanitize_workdir(workdir: Path) -> list[str]:
    """Remove what the grader must never follow or open: symbolic links, FIFOs, sockets and
    device nodes the kernel left in its work folder. Inside ``artifacts/`` each is replaced by
    a small plain file that the artifact reader rejects, so the student is told that what was
    captured could not be read. Returns the removed paths (relative)."""
    from autograder.execute import ARTIFACTS_DIRNAME

    artifacts = os.path.join(workdir, ARTIFACTS_DIRNAME)
    removed = []
    top = str(workdir).rstrip(os.sep).count(os.sep)
    for root, dirs, files in os.walk(workdir, followlinks=False):
        if root.count(os.sep) - top >= MAX_WORKDIR_DEPTH:
            # nothing any stage reads lies this deep; walking on would recurse past Python's
            # limit and paths past PATH_MAX (a kernel made 1,100 nested folders): cut it off
            for name in dirs:
                remove_tree(os.path.join(root, name))
                removed.append(os.path.relpath(os.path.join(root, name), workdir))
            dirs[:] = []
        for name in dirs + files:
            path = os.path.join(root, name)
            try:
                mode = os.lstat(path).st_mode
            except OSError:
                continue
            if stat.S_ISDIR(mode) or stat.S_ISREG(mode):
                continue
            try:
                os.unlink(path)
                removed.append(os.path.relpath(path, workdir))
                if root == artifacts or root.startswith(artifacts + os.sep):
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
                    with os.fdopen(fd, "wb") as handle:
                        handle.write(PLACEHOLDER)
            except OSError:
                log.warning("could not remove %s from the work folder", path)
        dirs[:] = [
            d
            for d in dirs
            if not os.path.islink(os.path.join(root, d)) and os.path.isdir(os.path.join(root, d))
        ]
    if removed:
        log.info("removed %d links or special files from %s", len(removed), workdir)
    return removed


# --- /proc helpers ----------------------------------------------------------------------------


def process_table() -> dict[int, tuple[int, int]]:
    """``{pid: (parent pid, number of threads)}`` of every process on the machine (empty
    without ``/proc``)."""
    table: dict[int, tuple[int, int]] = {}
    try:
        entries = list(os.scandir("/proc"))
    except OSError:
        return table
    for entry in entries:
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", "rb") as handle:
                data = handle.read()
            fields_ = data[data.rfind(b")") + 2 :].split()
            table[int(entry.name)] = (int(fields_[1]), int(fields_[17]))
        except (OSError, ValueError, IndexError):
            continue
    return table


def _children(table: dict[int, tuple[int, int]], pid: int) -> list[int]:
    return [child for child, (parent, _) in table.items() if parent == pid]


def descendants(table: dict[int, tuple[int, int]], pid: int) -> list[int]:
    """Every process below ``pid`` in ``table`` (``process_table()``), children first."""
    kids: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        kids.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in kids.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _is_python(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/comm", "rb") as handle:
            return handle.read().startswith(b"python")
    except OSError:
        return False


def _size_of(path: str | None) -> int | None:
    try:
        return os.path.getsize(path) if path else None
    except OSError:
        return None


def _sigkill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def process_memory(pid: int) -> int:
    """Proportional set size (shared pages split between their users), else the RSS; plus
    the process's page tables (mapping one page at many addresses costs page tables, which
    PSS does not count)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024 + _page_tables(pid)
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0


def _page_tables(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as handle:
            for line in handle:
                if line.startswith(b"VmPTE:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _disk_usage(folders: list[Path], max_entries: int) -> tuple[int, int]:
    """Bytes on disk and number of entries under ``folders`` (stops counting past the max)."""
    used = count = 0
    todo = [str(f) for f in folders]
    while todo:
        try:
            with os.scandir(todo.pop()) as entries:
                for entry in entries:
                    count += 1
                    if count > max_entries:
                        return used, count
                    try:
                        info = entry.stat(follow_symlinks=False)
                    except OSError:
                        continue
                    used += info.st_blocks * 512
                    if entry.is_dir(follow_symlinks=False):
                        todo.append(entry.path)
        except OSError:
            continue
    return used, count


__all__ = [
    "BubblewrapLauncher",
    "CgroupBase",
    "KernelCgroup",
    "MemoryPlan",
    "SECCOMP_RULES",
    "SandboxSettings",
    "SandboxUnavailable",
    "UnsandboxedWarning",
    "bubblewrap_problem",
    "choose_launcher",
    "kernel_cgroups",
    "locate_memory_cgroup",
    "memory_plan",
    "sanitize_workdir",
    "seccomp_program",
    "sweep_cgroups",
]
