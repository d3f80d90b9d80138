"""A bubblewrap sandbox around every student kernel.

``BubblewrapLauncher`` implements the ``KernelLauncher`` seam of ``autograder.execute``. The
kernel command is ``prlimit ... bwrap ... python -m ipykernel_launcher -f {connection_file}``
(as root: ``prlimit ... bwrap ... setpriv --reuid U ... bwrap --unshare-user ... python ...``):

* **namespaces**: no network (its own empty loopback), its own PIDs, IPC and hostname, a user
  namespace in which no further user namespace can be created (``--disable-userns``).
* **file system, whitelisted**: the root is an empty tmpfs, read-only once built. Bound into
  it, read-only: the system (``/usr``, ``/etc``, the ``/bin``/``/lib`` links), the Python
  installation and the virtualenv, the student distribution (``dlcourse``, what notebooks
  import) and the data home; the grader package itself is hidden even when it is installed
  inside the virtualenv. Read-write: the submission's own work
  folder, nothing else. ``/tmp`` and ``/dev/shm`` are small private tmpfs. So the course tree
  (``source/``, the checkers), the gradebook, other students' folders and the grader's home
  simply do not exist inside.
* **a user of its own**: when the grader runs as root, bwrap builds the sandbox with root's
  rights (it must read the bind sources), then the kernel runs as an unprivileged uid
  (``setpriv``), so it holds no capability, cannot read root-only files, and ``RLIMIT_NPROC``
  (which never applies to root) counts only its own processes.
* **limits** (``prlimit``, inherited by every process inside): address space, processes, file
  size, CPU seconds, open files, no core dumps. A watchdog thread in the grader adds what
  rlimits cannot do: the total resident memory of the whole sandbox and the disk used in the
  work folder (``disk_mb``, ``max_files``); on a breach it kills the sandbox and says why.
* **a clean environment** (``kernel_environment`` plus a fixed ``PATH``), ``JPY_PARENT_PID``
  unset (the grader is invisible from the kernel's PID namespace).
* **the whole tree dies with it**: ``--die-with-parent``, and on shutdown or wall-clock timeout
  the PID namespace's init is killed, which kills every process inside (cgroup-free).
* **transport**: ZeroMQ ``ipc`` sockets in a folder bound into the sandbox (the work folder's
  ``.ipc``, or a short private folder when socket paths would exceed the Unix 108-byte limit).

``choose_launcher(course, allow_unsandboxed)`` picks the sandbox, or refuses to grade without it
unless the instructor explicitly allows it (then with a loud warning). See ``docs/sandbox.md``.
"""

from __future__ import annotations

import logging
import os
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

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(__file__).resolve().parent  # .../autograder: never visible to a kernel
STUDENT_PACKAGE = "dlcourse"  # the student distribution: what notebooks import
SYSTEM_DIRS = ("/usr", "/etc", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
IPC_DIRNAME = ".ipc"
MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes; keep a margin for "-<port>"
MB = 1024 * 1024

INSTALL_HINT = (
    "Install bubblewrap (Debian/Ubuntu: `sudo apt-get install bubblewrap`; Fedora/RHEL: "
    "`sudo dnf install bubblewrap`; Arch: `sudo pacman -S bubblewrap`) and make sure "
    "unprivileged user namespaces are enabled (`sysctl kernel.unprivileged_userns_clone=1` on "
    "older Debian kernels). To grade WITHOUT a sandbox anyway (only for notebooks you trust), "
    'pass --allow-unsandboxed or set c.Course.sandbox = {"allow_unsandboxed": True} in '
    "course_config.py."
)


class SandboxUnavailable(RuntimeError):
    """Bubblewrap cannot be used here and running unsandboxed was not explicitly allowed."""


class UnsandboxedWarning(UserWarning):
    """Student code is about to run without a sandbox."""


@dataclass(frozen=True)
class SandboxSettings:
    """``c.Course.sandbox`` in ``course_config.py`` (every key optional)."""

    enabled: bool = True  # False: never sandbox (needs allow_unsandboxed too)
    allow_unsandboxed: bool = False  # grade without bubblewrap when it is missing (warning)
    memory_mb: int = 3072  # resident memory of all the sandbox's processes together
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

    @classmethod
    def from_mapping(
        cls, values: Mapping[str, Any] | None, *, default_cpu: int | None = None
    ) -> SandboxSettings:
        values = dict(values or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"Unknown c.Course.sandbox setting(s): {', '.join(unknown)}. "
                f"Known: {', '.join(sorted(known))}."
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


def _sandbox_uid(settings: SandboxSettings) -> int | None:
    """The uid kernels run as when the grader is root (None: keep the grader's own uid)."""
    if not _is_root():
        return None
    if settings.uid is not None:
        return int(settings.uid)
    # One uid per grader process: parallel workers do not share an RLIMIT_NPROC budget.
    return 200_000 + os.getpid() % 100_000


_PROBES: dict[tuple, str | None] = {}


def bubblewrap_problem(settings: SandboxSettings | None = None) -> str | None:
    """None when the sandbox works here, else what is wrong (a sentence for the instructor)."""
    settings = settings or SandboxSettings()
    if sys.platform != "linux":
        return f"the sandbox needs Linux (this is {sys.platform})"
    bwrap = shutil.which(settings.bwrap)
    if bwrap is None:
        return f"bubblewrap ({settings.bwrap!r}) is not installed"
    for tool in ("prlimit",) + (("setpriv",) if _is_root() else ()):
        if shutil.which(tool) is None:
            return f"{tool} (util-linux) is not installed"
    key = (bwrap, _is_root())
    if key not in _PROBES:
        uid = _sandbox_uid(settings)
        probe = (
            _bwrap_outer(bwrap, uid)
            + ["--ro-bind", "/", "/", "--proc", "/proc", "--"]
            + _bwrap_inner(bwrap, uid)
            + ["true"]
        )
        try:
            done = subprocess.run(probe, capture_output=True, text=True, timeout=30)
            _PROBES[key] = (
                None
                if done.returncode == 0
                else (f"bubblewrap cannot create a sandbox here: {done.stderr.strip()[:300]}")
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            _PROBES[key] = f"bubblewrap cannot create a sandbox here: {exc}"
    return _PROBES[key]


def choose_launcher(course, allow_unsandboxed: bool = False) -> KernelLauncher:
    """The kernel launcher for grading ``course``: the sandbox, or an explicit, loud fallback.

    Raises ``SandboxUnavailable`` (saying how to install bubblewrap) when the sandbox cannot be
    used and neither ``allow_unsandboxed`` nor ``c.Course.sandbox["allow_unsandboxed"]`` is set.
    """
    settings = SandboxSettings.from_course(course)
    problem = (
        bubblewrap_problem(settings)
        if settings.enabled
        else ('the sandbox is disabled in course_config.py (c.Course.sandbox["enabled"] = False)')
    )
    if problem is None:
        return BubblewrapLauncher(settings)
    if not (allow_unsandboxed or settings.allow_unsandboxed):
        raise SandboxUnavailable(
            f"Refusing to grade: {problem}. Student notebooks are untrusted code; without the "
            f"sandbox they run as you, with your files, network and secrets. {INSTALL_HINT}"
        )
    message = (
        f"WARNING: grading WITHOUT a sandbox ({problem}). Student code runs as you, "
        "with access to your files, the gradebook, the checkers and the network. "
        "Do this only with notebooks you trust."
    )
    warnings.warn(message, UnsandboxedWarning, stacklevel=2)
    log.warning(message)
    print(f"\n{'!' * 78}\n{message}\n{'!' * 78}\n", file=sys.stderr)
    return LocalLauncher()


# --- the launcher -----------------------------------------------------------------------------


def student_package_dir() -> Path:
    """Where the student distribution's package is installed (bound read-only into kernels)."""
    import importlib.util

    spec = importlib.util.find_spec(STUDENT_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise SandboxUnavailable(
            f"the student distribution ({STUDENT_PACKAGE}) is not installed: "
            "pip install ./student (the grader depends on it)"
        )
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
        self, workdir: Path, ipc_dir: Path, data_home: str | None, uid: int | None
    ) -> list[str]:
        """The kernel's argv (``{connection_file}`` is filled in by jupyter_client)."""
        s = self.settings
        kernel = [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        return (
            _limits(s)
            + _bwrap_outer(s.bwrap, uid)
            + self.mounts(workdir, ipc_dir, data_home)
            + ([] if uid is not None else ["--chdir", str(workdir)])
            + ["--unsetenv", "JPY_PARENT_PID", "--"]
            + _bwrap_inner(s.bwrap, uid, workdir)
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
            bw += ["--perms", "0555", "--tmpfs", path]
        return bw + ["--remount-ro", "/"]


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


def _bwrap_inner(bwrap: str, uid: int | None, workdir: Path | None = None) -> list[str]:
    """As root: drop to ``uid`` (all capabilities gone), then a second, unprivileged bwrap
    whose user namespace forbids creating more (no private tmpfs, no nested sandboxes). It
    enters the work folder as ``uid``, its owner (root without capabilities may not)."""
    if uid is None:
        return []
    chdir = ["--chdir", str(workdir)] if workdir else []
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
            await super()._async_launch_kernel(kernel_cmd, **kw)
            self.sandbox.started(self.provisioner.process)

        _launch_kernel = _async_launch_kernel

        @property
        def stop_reason(self) -> str | None:
            return self.sandbox.stop_reason()

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
        self.uid = _sandbox_uid(settings)
        self.ipc_dir, self.own_ipc_dir = _ipc_dir(workdir)
        if self.uid is not None:
            _chown_tree(workdir, self.uid)
            os.chown(self.ipc_dir, self.uid, self.uid)
        self.ipc_dir.chmod(0o700)
        launcher = BubblewrapLauncher(settings)
        self.argv = launcher.command(workdir, self.ipc_dir, env.get("COURSE_DATA_HOME"), self.uid)
        self.spec = None
        self.process: subprocess.Popen | None = None
        self._reason: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._log_handle = None
        self._log_path: str | None = None

    # launch ------------------------------------------------------------------------------
    def log_file(self):
        """The kernel's own stdout/stderr: a private file outside the sandbox (capped by
        RLIMIT_FSIZE), so nothing it prints reaches the grader's terminal."""
        fd, self._log_path = tempfile.mkstemp(prefix="agk-log-")
        self._log_handle = os.fdopen(fd, "wb")
        return self._log_handle

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
                table = _process_table()
                tree = _descendants(table, self.process.pid)
                tasks = sum(table[pid][1] for pid in tree if pid in table)
                memory = sum(_memory(pid) for pid in tree)
                used, count = _disk_usage(folders, s.max_files)
            except Exception:  # noqa: BLE001 - a vanishing process or file: look again
                continue
            if memory > s.memory_mb * MB:
                self._kill(
                    f"the notebook used more than {s.memory_mb} MB of memory and was stopped"
                )
            elif tasks >= s.processes:
                self._kill(
                    f"the notebook started more than {s.processes} processes or threads "
                    "(a fork bomb?) and was stopped"
                )
            elif used > s.disk_mb * MB:
                self._kill(f"the notebook wrote more than {s.disk_mb} MB to disk and was stopped")
            elif count > s.max_files:
                self._kill(f"the notebook created more than {s.max_files} files and was stopped")
            if self._reason:
                return

    def _kill(self, reason: str) -> None:
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
        table = _process_table()
        for pid in _children(table, process.pid):  # the namespace's PID 1
            _sigkill(pid)
        deadline = time.monotonic() + 2
        while process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if process.poll() is None:
            for pid in [process.pid, *_descendants(_process_table(), process.pid)]:
                _sigkill(pid)

    # results -----------------------------------------------------------------------------
    def stop_reason(self) -> str | None:
        """Why the sandbox stopped, when it was not the notebook's normal end."""
        if self._reason:
            return self._reason
        code = self.process.poll() if self.process is not None else None
        if code is None:
            return None
        # bwrap exits with the kernel's status; a signal becomes 128 + its number
        sig = -code if code < 0 else (code - 128 if code > 128 else None)
        if sig == signal.SIGXCPU:
            return (
                f"the notebook used more than {self.settings.cpu_seconds} s of CPU time "
                "and was stopped"
            )
        if sig == signal.SIGSEGV:
            return "the Python kernel crashed (segmentation fault)"
        if sig == signal.SIGXFSZ:
            return (
                f"the notebook wrote a file larger than {self.settings.file_size_mb} MB "
                "and was stopped"
            )
        if sig:
            try:
                name = signal.Signals(sig).name
            except ValueError:
                name = str(sig)
            return f"the Python kernel was killed (signal {name})"
        problems = [line for line in self._log_tail().splitlines() if line.startswith("bwrap:")]
        if problems:
            return f"the sandbox could not start the kernel ({problems[-1][:200]})"
        return f"the Python kernel exited (status {code}) before the notebook finished"

    def _log_tail(self) -> str:
        try:
            with open(self._log_path or "", "rb") as handle:
                handle.seek(max(0, os.path.getsize(self._log_path) - 2000))
                return handle.read().decode("utf-8", "replace").strip()
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
        if self._log_handle is not None:
            self._log_handle.close()
        if self._log_path:
            for line in self._log_tail().splitlines():
                if line.startswith("bwrap:"):
                    log.warning("sandbox: %s", line[:500])
            Path(self._log_path).unlink(missing_ok=True)
        shutil.rmtree(self.ipc_dir, ignore_errors=True)
        sanitize_workdir(self.workdir)


PLACEHOLDER = b"removed by the grader: this was a symbolic link or a special file, not plain data\n"


def sanitize_workdir(workdir: Path) -> list[str]:
    """Remove what the grader must never follow or open: symbolic links, FIFOs, sockets and
    device nodes the kernel left in its work folder. Inside ``artifacts/`` each is replaced by
    a small plain file that the artifact reader rejects, so the student is told that what was
    captured could not be read. Returns the removed paths (relative)."""
    from autograder.execute import ARTIFACTS_DIRNAME

    artifacts = os.path.join(workdir, ARTIFACTS_DIRNAME)
    removed = []
    for root, dirs, files in os.walk(workdir, followlinks=False):
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


def _process_table() -> dict[int, tuple[int, int]]:
    """``{pid: (parent pid, number of threads)}`` of every process on the machine."""
    table = {}
    for entry in os.scandir("/proc"):
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


def _descendants(table: dict[int, tuple[int, int]], pid: int) -> list[int]:
    kids: dict[int, list[int]] = {}
    for child, (parent, _) in table.items():
        kids.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        for child in kids.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _sigkill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _memory(pid: int) -> int:
    """Proportional set size (shared pages split between their users), else the RSS."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/statm", "rb") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
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
    "SandboxSettings",
    "SandboxUnavailable",
    "UnsandboxedWarning",
    "bubblewrap_problem",
    "choose_launcher",
    "sanitize_workdir",
]
