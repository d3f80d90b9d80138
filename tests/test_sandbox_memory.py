"""Memory limits a kernel cannot step around (``autograder.sandbox``: memory accounting).

Summing the PSS of the sandbox's processes misses memory the kernel holds for a process without
any mapping: memfd files written then unmapped, /dev/shm and /tmp files, SysV segments. Each
attack below tries to hold four times the limit that way, in a real sandboxed kernel:

* with a memory cgroup (``memory_accounting="cgroup"``, the seccomp filter off so that the cgroup
  alone is tested) the kernel's OOM killer stops it inside the cgroup, and the student reads the
  memory reason; no cgroup is left behind;
* with the seccomp filter (``memory_accounting="seccomp"``) the system call is refused with EPERM
  (or the bounded tmpfs is full: ENOSPC), and the notebook goes on.

An honest TensorFlow notebook passes under both. The cgroup cases skip where no memory cgroup
can be made (not root, no delegation); everything skips without bubblewrap.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import os
import subprocess
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from autograder import sandbox
from autograder.execute import RunSettings, run_notebook
from autograder.sandbox import (
    CGROUP_PREFIX,
    BubblewrapLauncher,
    KernelCgroup,
    SandboxSettings,
    SandboxUnavailable,
    bubblewrap_problem,
    choose_launcher,
    kernel_cgroups,
    locate_memory_cgroup,
    memory_plan,
    reason_text,
    seccomp_program,
    sweep_cgroups,
)

LIMIT_MB = 256
HOLD = 4 * LIMIT_MB  # what each attack tries to hold, in MB
BASE = SandboxSettings(
    memory_mb=LIMIT_MB,
    address_space_mb=4096,
    processes=64,
    file_size_mb=2048,  # larger than the attacks: memory accounting must stop them, not FSIZE
    disk_mb=128,
    max_files=500,
    tmp_mb=16,
    cpu_seconds=60,
    poll_seconds=0.1,
)
# The cgroup alone (no filter); /tmp and /dev/shm larger than the limit, so the cgroup is
# what stops their fill.
CGROUP = dataclasses.replace(
    BASE, memory_accounting="cgroup", seccomp_with_cgroup=False, tmp_mb=2 * HOLD
)
SECCOMP = dataclasses.replace(BASE, memory_accounting="seccomp")

needs_bwrap = pytest.mark.skipif(
    bubblewrap_problem(SECCOMP) is not None,
    reason=f"bubblewrap sandbox unavailable: {reason_text(bubblewrap_problem(SECCOMP))} "
    "(apt-get install bubblewrap; CI installs it)",
)
needs_cgroup = pytest.mark.skipif(
    memory_plan(CGROUP).problem is not None,
    reason=f"no memory cgroup can be delegated here: {reason_text(memory_plan(CGROUP).problem)}",
)
MEMORY_REASON = f"the notebook used more than {LIMIT_MB} MB of memory and was stopped"
RUN = RunSettings(cell_timeout=60, notebook_timeout=90)

# --- the attacks: each holds HOLD MB that no process maps, or records why it could not ------

PRELUDE = f"""
import ctypes, errno, json, mmap, os
CHUNK = b"x" * (4 << 20)
HOLD = {HOLD} << 20
held = []
def record(outcome):
    json.dump(outcome, open("outcome.json", "w"))
"""

ATTACKS = {
    "memfd_many_small": """
for _ in range(HOLD // len(CHUNK)):  # 256 descriptors of 4 MB
    fd = os.memfd_create("hold")
    os.write(fd, CHUNK)
    held.append(fd)
""",
    "memfd_one_big": """
fd = os.memfd_create("hold")
for _ in range(HOLD // len(CHUNK)):
    os.write(fd, CHUNK)
held.append(fd)
""",
    "memfd_mmap_then_munmap": """
for _ in range(HOLD // (64 << 20)):
    fd = os.memfd_create("hold")
    os.ftruncate(fd, 64 << 20)
    view = mmap.mmap(fd, 64 << 20)
    for _ in range(16):
        view.write(CHUNK)
    view.close()  # munmap: the pages stay in the file
    held.append(fd)
""",
    "dev_shm_files": """
for i in range(HOLD // len(CHUNK)):
    with open(f"/dev/shm/hold-{i}", "wb") as handle:  # what shm_open makes
        handle.write(CHUNK)
""",
    "tmp_files": """
for i in range(HOLD // len(CHUNK)):
    with open(f"/tmp/hold-{i}", "wb") as handle:
        handle.write(CHUNK)
""",
    "sysv_shm_detached": """
libc = ctypes.CDLL(None, use_errno=True)
libc.shmget.argtypes = [ctypes.c_int, ctypes.c_size_t, ctypes.c_int]
libc.shmat.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_int]
libc.shmat.restype = ctypes.c_void_p
libc.shmdt.argtypes = [ctypes.c_void_p]
for _ in range(HOLD // (64 << 20)):
    segment = libc.shmget(0, 64 << 20, 0o1600)  # IPC_PRIVATE, never removed
    if segment < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    address = libc.shmat(segment, None, 0)
    ctypes.memset(address, 1, 64 << 20)
    libc.shmdt(address)  # detached: nothing maps it any more
""",
}
# Without a cgroup: the filter refuses the system call, or the bounded tmpfs is full.
REFUSED_WITH = {
    "memfd_many_small": errno.EPERM,
    "memfd_one_big": errno.EPERM,
    "memfd_mmap_then_munmap": errno.EPERM,
    "dev_shm_files": errno.ENOSPC,
    "tmp_files": errno.ENOSPC,
    "sysv_shm_detached": errno.EPERM,
}


def _attack_notebook(name: str):
    body = "try:\n" + "".join(f"    {line}\n" for line in ATTACKS[name].strip("\n").splitlines())
    body += (
        "    record({'survived': True})\n"
        "except OSError as exc:\n"
        "    record({'refused': exc.errno, 'error': str(exc)})\n"
    )
    return new_notebook(
        cells=[
            new_code_cell(PRELUDE + body),
            new_code_cell("open('after.txt', 'w').write('the kernel went on')"),
        ]
    )


def _rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _run(nb, workdir: Path, settings: SandboxSettings, data_home: Path):
    """Run ``nb`` sandboxed; check the grader's memory stayed bounded and (with a cgroup) that
    the kernel's cgroup was removed. Returns the record and the attack's outcome, if any."""
    before = kernel_cgroups()
    rss = _rss_mb()
    record = run_notebook(
        nb,
        workdir,
        dataclasses.replace(RUN, data_home=str(data_home)),
        BubblewrapLauncher(settings),
    )
    assert _rss_mb() - rss < 100, "the grader's own memory grew with the kernel's"
    assert kernel_cgroups() == before, "a kernel's memory cgroup was left behind"
    outcome = workdir / "outcome.json"
    return record, (json.loads(outcome.read_text()) if outcome.exists() else None)


@pytest.fixture(scope="module", autouse=True)
def no_cgroup_left_behind():
    """Across the whole module: the grader's memory cgroup has the same children after."""
    base = memory_plan(CGROUP).cgroup
    before = sorted(p.name for p in base.path.iterdir() if p.is_dir()) if base else []
    yield
    if base is not None:
        after = sorted(p.name for p in base.path.iterdir() if p.is_dir())
        assert after == before
        assert not [name for name in after if name.startswith(f"{CGROUP_PREFIX}{os.getpid()}-")]


# --- under a memory cgroup -----------------------------------------------------------------


@pytest.mark.slow
@needs_bwrap
@needs_cgroup
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_cgroup_stops_memory_nobody_maps(attack, tmp_path, data_home):
    record, outcome = _run(_attack_notebook(attack), tmp_path, CGROUP, data_home)
    assert record.status == "kernel_died", (record, outcome)
    assert record.reason.text("en") == MEMORY_REASON
    assert outcome is None and not (tmp_path / "after.txt").exists()


@pytest.mark.slow
@needs_bwrap
@needs_cgroup
def test_cgroup_with_the_filter_refuses_memfd(tmp_path, data_home):
    """The default with a cgroup: the filter applies too (defence in depth)."""
    settings = dataclasses.replace(CGROUP, seccomp_with_cgroup=True)
    assert memory_plan(settings).seccomp
    record, outcome = _run(_attack_notebook("memfd_many_small"), tmp_path, settings, data_home)
    assert record.status == "completed", record
    assert outcome["refused"] == errno.EPERM


@pytest.mark.slow
@needs_bwrap
@needs_cgroup
def test_cgroup_stops_an_ordinary_memory_bomb(tmp_path, data_home):
    nb = new_notebook(
        cells=[new_code_cell("hold = []\nwhile True:\n    hold.append(b'x' * 2**24)")]
    )
    record, _ = _run(nb, tmp_path, CGROUP, data_home)
    assert record.status == "kernel_died" and record.reason.text("en") == MEMORY_REASON


# --- under the seccomp filter --------------------------------------------------------------


@pytest.mark.slow
@needs_bwrap
@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_seccomp_refuses_memory_nobody_maps(attack, tmp_path, data_home):
    record, outcome = _run(_attack_notebook(attack), tmp_path, SECCOMP, data_home)
    assert record.status == "completed", (record, outcome)
    assert outcome is not None and outcome.get("refused") == REFUSED_WITH[attack], outcome
    assert (tmp_path / "after.txt").exists()  # only that cell failed


REFUSALS = r"""
import ctypes, errno, json, mmap, os, socket, tempfile
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
facts = {}
def attempt(name, action):
    ctypes.set_errno(0)
    try:
        value = action()
        err = ctypes.get_errno() if isinstance(value, int) and value < 0 else 0
        facts[name] = err
    except OSError as exc:
        facts[name] = exc.errno
data = tempfile.NamedTemporaryFile(dir=".", delete=False)
data.write(b"0123456789" * 100)
data.flush()
r, w = os.pipe()
r2, w2 = os.pipe()
buf = ctypes.create_string_buffer(b"x" * 4096)
iov = (ctypes.c_void_p * 2)(ctypes.cast(buf, ctypes.c_void_p), 4096)
params = ctypes.create_string_buffer(120)
attempt("memfd_create", lambda: os.memfd_create("x"))
attempt("memfd_secret", lambda: libc.syscall(447, 0))
attempt("shmget", lambda: libc.shmget(0, 1 << 20, 0o1600))
attempt("msgget", lambda: libc.msgget(0, 0o1600))
attempt("semget", lambda: libc.semget(0, 1, 0o1600))
attempt("vmsplice", lambda: libc.vmsplice(w, iov, 1, 0))
attempt("splice", lambda: os.splice(data.fileno(), w, 10, offset_src=0))
attempt("tee", lambda: libc.tee(r, w2, 10, 0))
attempt("sendfile_to_pipe", lambda: os.sendfile(w, data.fileno(), 0, 10))
attempt("io_uring_setup", lambda: libc.syscall(425, 8, params))
attempt("socket_inet", lambda: socket.socket(socket.AF_INET, socket.SOCK_STREAM))
attempt("socket_inet6", lambda: socket.socket(socket.AF_INET6, socket.SOCK_DGRAM))
a, b = socket.socketpair()
attempt("sndbuf", lambda: a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 26))
attempt("rcvbuf", lambda: a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 26))
# what honest code needs still works
allowed = {}
def works(name, action):
    try:
        action()
        allowed[name] = True
    except OSError as exc:
        allowed[name] = str(exc)
works("unix_socketpair", lambda: socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM))
works("unix_socket_option", lambda: a.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1))
works("pipe_write", lambda: os.write(w2, b"hello"))
works("anonymous_shared_mmap", lambda: mmap.mmap(-1, 1 << 20).write(b"x" * 100))
works("netlink", lambda: socket.if_nameindex())
works("copyfile", lambda: __import__("shutil").copyfile(data.name, "copy.bin"))
works("posix_shm", lambda: open("/dev/shm/sem.x", "wb").write(b"x"))
json.dump({"refused": facts, "allowed": allowed}, open("facts.json", "w"))
"""


@pytest.mark.slow
@needs_bwrap
def test_seccomp_filter_refuses_with_eperm_and_honest_calls_work(tmp_path, data_home):
    record, _ = _run(new_notebook(cells=[new_code_cell(REFUSALS)]), tmp_path, SECCOMP, data_home)
    assert record.status == "completed", record
    facts = json.loads((tmp_path / "facts.json").read_text())
    assert facts["refused"] == dict.fromkeys(facts["refused"], errno.EPERM), facts["refused"]
    assert len(facts["refused"]) == 14
    assert all(v is True for v in facts["allowed"].values()), facts["allowed"]
    assert (tmp_path / "copy.bin").stat().st_size == 1000  # sendfile refused: read/write


# --- honest notebooks ------------------------------------------------------------------------

HONEST = """
import os, json
import numpy as np
import matplotlib
matplotlib.use("Agg")
import matplotlib.pyplot as plt
import tensorflow as tf
from tensorflow import keras
x = np.random.default_rng(0).random((64, 4)).astype("float32")
y = (x.sum(axis=1) > 2).astype("float32")
model = keras.Sequential([keras.layers.Input((4,)), keras.layers.Dense(8, activation="relu"),
                          keras.layers.Dense(1, activation="sigmoid")])
model.compile(optimizer="adam", loss="binary_crossentropy")
history = model.fit(x, y, epochs=3, batch_size=16, verbose=0)
plt.plot(history.history["loss"])
plt.savefig("loss.png")
json.dump({"loss": history.history["loss"]}, open("fit.json", "w"))
"""


@pytest.mark.slow
@needs_bwrap
@pytest.mark.parametrize(
    "settings",
    [
        pytest.param(dataclasses.replace(SECCOMP, memory_mb=3072), id="seccomp"),
        pytest.param(
            dataclasses.replace(CGROUP, memory_mb=3072, seccomp_with_cgroup=True, tmp_mb=64),
            id="cgroup",
            marks=needs_cgroup,
        ),
    ],
)
def test_honest_tensorflow_notebook_passes(settings, tmp_path, data_home):
    record, _ = _run(new_notebook(cells=[new_code_cell(HONEST)]), tmp_path, settings, data_home)
    assert record.status == "completed", record
    assert len(json.loads((tmp_path / "fit.json").read_text())["loss"]) == 3
    assert (tmp_path / "loss.png").stat().st_size > 0


# --- no kernel -------------------------------------------------------------------------------


def test_memory_accounting_setting_is_read_strictly():
    assert SandboxSettings.from_mapping({"memory_accounting": "seccomp"}).memory_accounting == (
        "seccomp"
    )
    assert SandboxSettings().memory_accounting == "auto"
    with pytest.raises(ValueError, match="'auto', 'cgroup', 'seccomp'"):
        SandboxSettings.from_mapping({"memory_accounting": "pss"})
    with pytest.raises(ValueError, match="seccomp_with_cgroup"):
        SandboxSettings.from_mapping({"seccomp_with_cgroup": "yes"})
    with pytest.raises(ValueError, match="memory_acounting"):
        SandboxSettings.from_mapping({"memory_acounting": "cgroup"})


@needs_bwrap
def test_cgroup_mode_refuses_to_grade_without_a_cgroup(monkeypatch, course):
    monkeypatch.setattr(sandbox, "_memory_cgroup", lambda: (None, "no writable memory cgroup"))
    monkeypatch.setattr(sandbox, "_PROBES", {})
    problem = reason_text(bubblewrap_problem(SandboxSettings(memory_accounting="cgroup")))
    assert 'memory_accounting is "cgroup"' in problem and "no writable memory cgroup" in problem
    course.nbgrader_config.Course.sandbox = {"memory_accounting": "cgroup"}
    with pytest.raises(SandboxUnavailable, match="no memory cgroup can be made"):
        choose_launcher(course)
    # auto: the seccomp filter instead
    plan = memory_plan(SandboxSettings())
    assert (
        plan.cgroup is None
        and plan.seccomp
        and "no writable memory cgroup" in reason_text(plan.note)
    )


def test_without_a_cgroup_the_filter_is_required(monkeypatch):
    monkeypatch.setattr(sandbox, "_memory_cgroup", lambda: (None, "no memory cgroup"))
    monkeypatch.setattr(sandbox, "_seccomp_problem", lambda: "pyseccomp is not installed")
    monkeypatch.setattr(sandbox, "_PROBES", {})
    for mode in ("auto", "seccomp"):
        problem = reason_text(bubblewrap_problem(SandboxSettings(memory_accounting=mode)))
        assert "cannot be enforced" in problem and "pyseccomp is not installed" in problem
    # with a cgroup the filter is a bonus: grading goes on without it
    base = sandbox.CgroupBase(1, Path("/nonexistent"))
    monkeypatch.setattr(sandbox, "_memory_cgroup", lambda: (base, None))
    plan = memory_plan(SandboxSettings())
    assert plan.problem is None and plan.cgroup == base and not plan.seccomp


def test_seccomp_program_compiles():
    program = seccomp_program()
    assert len(program) % 8 == 0 and len(program) > 8 * len(sandbox.SECCOMP_RULES)


def test_locate_memory_cgroup():
    v1 = "4:memory:/jobs/42\n1:cpu,cpuacct:/\n0::/\n"
    mounts = (
        "30 25 0:26 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
        "31 25 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"
    )
    assert locate_memory_cgroup(v1, mounts) == (1, Path("/sys/fs/cgroup/memory/jobs/42"))
    v2 = "0::/user.slice/grader.scope\n"
    mounts2 = "30 25 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw,nsdelegate\n"
    assert locate_memory_cgroup(v2, mounts2) == (2, Path("/sys/fs/cgroup/user.slice/grader.scope"))
    # a container: its cgroup tree mounted from a sub-folder
    boxed = "30 25 0:26 /docker/abc /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n"
    assert locate_memory_cgroup("4:memory:/docker/abc/k\n", boxed) == (
        1,
        Path("/sys/fs/cgroup/memory/k"),
    )
    assert "not mounted" in reason_text(locate_memory_cgroup(v1, ""))
    assert "no memory cgroup" in reason_text(locate_memory_cgroup("1:cpu:/\n", mounts))
    assert "no está montada" in reason_text(locate_memory_cgroup(v1, ""), "es")


def test_command_applies_the_filter_in_the_innermost_bwrap(tmp_path):
    launcher = BubblewrapLauncher(BASE)
    argv = launcher.command(tmp_path, tmp_path / ".ipc", None, uid=None, seccomp_fd=3)
    assert argv[argv.index("--seccomp") + 1] == "3" and argv.count("--seccomp") == 1
    assert argv.index("--seccomp") < argv.index("--unsetenv")
    root = launcher.command(tmp_path, tmp_path / ".ipc", None, uid=234567, seccomp_fd=3)
    assert root.count("--seccomp") == 1 and root.index("--seccomp") > root.index("setpriv")
    assert "--seccomp" not in launcher.command(tmp_path, tmp_path / ".ipc", None, uid=None)
    # /dev (a tmpfs without a size, owned by an unprivileged sandbox) is read-only
    assert " --remount-ro /dev " in " ".join(argv) + " "


@needs_cgroup
def test_stale_cgroups_of_a_dead_grader_are_swept():
    base = memory_plan(CGROUP).cgroup
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True).stdout.strip()
    stale = KernelCgroup(base, 64 << 20, name=f"{CGROUP_PREFIX}{dead}-1-abcdef")
    mine = KernelCgroup(base, 64 << 20)
    mine.create()  # (creating sweeps too)
    os.mkdir(stale.path)
    try:
        assert stale.path in sweep_cgroups(base)
        assert not stale.path.exists() and mine.path.exists()  # a live grader's stays
        assert (mine.path / "memory.limit_in_bytes").exists() or (mine.path / "memory.max").exists()
    finally:
        assert mine.remove() and stale.remove()
    assert not mine.path.exists()
