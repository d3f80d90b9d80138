"""The sandbox around student kernels (``autograder.sandbox``).

A probe notebook tries everything a hostile kernel would (open sockets, read the gradebook,
``source/`` and the checkers, find the grader's secrets, write the system) and writes what it
saw to ``facts.json``. It runs once in the sandbox and once, as a control, without it: the
control proves that every attempt of the probe would succeed if the sandbox were not there.
"""

from __future__ import annotations

import dataclasses
import json
import os
import pickle
import shutil
import socket
import sys
import time
import warnings
from pathlib import Path

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from autograder.execute import LocalLauncher, RunSettings, run_notebook
from autograder.sandbox import (
    BubblewrapLauncher,
    SandboxSettings,
    SandboxUnavailable,
    UnsandboxedWarning,
    bubblewrap_problem,
    choose_launcher,
    reason_text,
    sanitize_workdir,
)

SECRET_ENV = "AUTOGRADER_SANDBOX_TEST_SECRET"
LIMITS = SandboxSettings(
    memory_mb=1024,
    address_space_mb=4096,
    processes=64,
    file_size_mb=32,
    disk_mb=128,
    max_files=500,
    tmp_mb=16,
    cpu_seconds=77,
)
needs_bwrap = pytest.mark.skipif(
    bubblewrap_problem(LIMITS) is not None,
    reason=f"bubblewrap sandbox unavailable: {reason_text(bubblewrap_problem(LIMITS))} "
    "(apt-get install bubblewrap; CI installs it)",
)

PROBE = r"""
import json, os, resource, socket, sys
facts = {}
def attempt(name, action):
    try:
        facts[name] = {"ok": True, "value": repr(action())[:300]}
    except BaseException as exc:
        facts[name] = {"ok": False, "error": (type(exc).__name__ + ": " + str(exc))[:300]}
def write(path):
    def act():
        with open(path, "w") as handle:
            handle.write("x")
    return act
attempt("socket_host_listener", lambda: socket.create_connection(("127.0.0.1", PORT), timeout=3).close())
attempt("socket_internet", lambda: socket.create_connection(("1.1.1.1", 53), timeout=3).close())
attempt("dns", lambda: socket.getaddrinfo("pypi.org", 443))
attempt("read_gradebook", lambda: open(GRADEBOOK, "rb").read(16))
attempt("read_source", lambda: os.listdir(SOURCE))
attempt("read_checkers", lambda: open(CHECKERS).read(100))
attempt("import_checkers", lambda: __import__("autograder.checkers"))
attempt("import_course", lambda: __import__("dlcourse.capture").capture.ENV_ARTIFACTS)
attempt("import_grader", lambda: __import__("autograder.core"))
attempt("read_data", lambda: open(DATA, "rb").read(10))
attempt("write_data", write(DATA_DIR + "/x"))
attempt("secret_env", lambda: os.environ[SECRET])
attempt("write_usr", write("/usr/x"))
attempt("write_etc", write("/etc/x"))
attempt("write_root", write("/x"))
attempt("write_course_tree", write(COURSE_ROOT + "/.sandbox-probe-" + TOKEN))
attempt("write_tmp", write("/tmp/sandbox-private-" + TOKEN))
attempt("write_workdir", write("written-by-kernel"))
attempt("read_shadow", lambda: open("/etc/shadow").read(10))
facts["uid"] = os.getuid()
facts["cap_eff"] = [l for l in open("/proc/self/status") if l.startswith("CapEff")][0].split()[1]
facts["pid"] = os.getpid()
facts["limits"] = {n: resource.getrlimit(getattr(resource, "RLIMIT_" + n))[0]
                   for n in ("AS", "NPROC", "FSIZE", "CPU", "NOFILE", "CORE")}
facts["env"] = sorted(os.environ)
facts["cwd"] = os.getcwd()
json.dump(facts, open("facts.json", "w"))
"""


def _probe(tmp: Path, course, launcher, port: int, token: str) -> dict:
    gradebook = course.state_dir / "gradebook.db"
    gradebook.parent.mkdir(parents=True, exist_ok=True)
    gradebook.write_bytes(b"SQLite format 3\x00 pretend")
    # A private copy of the data home: the unsandboxed control run *can* write into it, and
    # tests never write into the shared data folder.
    data = tmp / "data"
    data.mkdir()
    shutil.copy2(Path(os.environ["COURSE_DATA_HOME"]) / "winequality-red.csv", data)
    values = {
        "PORT": port,
        "GRADEBOOK": str(gradebook),
        "SOURCE": str(course.source_dir),
        "CHECKERS": str(course.root / "autograder" / "checkers" / "lesson4_learning_rate.py"),
        "DATA": str(data / "winequality-red.csv"),
        "DATA_DIR": str(data),
        "SECRET": SECRET_ENV,
        "COURSE_ROOT": str(course.root),
        "TOKEN": token,
    }
    header = "".join(f"{k} = {v!r}\n" for k, v in values.items())
    nb = new_notebook(cells=[new_code_cell(header + PROBE)])
    work = tmp / "work"
    work.mkdir(parents=True)
    os.environ[SECRET_ENV] = "s3cr3t"
    try:
        record = run_notebook(
            nb,
            work,
            RunSettings(cell_timeout=60, notebook_timeout=90, data_home=str(data)),
            launcher,
        )
    finally:
        os.environ.pop(SECRET_ENV, None)
    assert record.status == "completed", (record.reason, nb.cells[0].outputs)
    return json.loads((work / "facts.json").read_text())


@pytest.fixture(scope="module")
def listener():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    yield server.getsockname()[1]
    server.close()


@pytest.fixture(scope="module")
def sandboxed(tmp_path_factory, listener, data_home):
    if bubblewrap_problem(LIMITS):
        pytest.skip(f"bubblewrap sandbox unavailable: {reason_text(bubblewrap_problem(LIMITS))}")
    from tests.conftest import make_course

    tmp = tmp_path_factory.mktemp("sandboxed")
    token = str(time.time_ns())
    return _probe(
        tmp, make_course(tmp / "state"), BubblewrapLauncher(LIMITS), listener, token
    ), token


@pytest.fixture(scope="module")
def unsandboxed(tmp_path_factory, listener, data_home):
    from tests.conftest import make_course

    tmp = tmp_path_factory.mktemp("unsandboxed")
    token = f"control-{time.time_ns()}"
    course = make_course(tmp / "state")
    try:
        return _probe(tmp, course, LocalLauncher(), listener, token)
    finally:  # the control run could write into the course tree: remove what it wrote
        (course.root / f".sandbox-probe-{token}").unlink(missing_ok=True)


CONTAINED = [
    "socket_host_listener",
    "read_gradebook",
    "read_source",
    "read_checkers",
    "import_checkers",
    "import_grader",
    "secret_env",
    "write_course_tree",
]


@pytest.mark.slow
def test_control_run_without_sandbox_reaches_everything(unsandboxed):
    """Without the sandbox the probe's attempts succeed: the sandbox tests are not vacuous."""
    reached = {k for k in CONTAINED if unsandboxed[k]["ok"]}
    assert reached == set(CONTAINED) - {"secret_env"}  # the environment is clean anyway


@pytest.mark.slow
@needs_bwrap
def test_sandboxed_kernel_cannot_open_a_socket(sandboxed):
    facts, _ = sandboxed
    for name in ("socket_host_listener", "socket_internet", "dns"):
        assert not facts[name]["ok"], (name, facts[name])


@pytest.mark.slow
@needs_bwrap
def test_sandboxed_kernel_cannot_read_the_gradebook_source_or_checkers(sandboxed):
    facts, _ = sandboxed
    for name in (
        "read_gradebook",
        "read_source",
        "read_checkers",
        "import_checkers",
        "import_grader",
    ):
        assert not facts[name]["ok"], (name, facts[name])
        assert "No such file" in facts[name]["error"] or "No module" in facts[name]["error"]


@pytest.mark.slow
@needs_bwrap
def test_sandboxed_kernel_sees_the_course_package_and_data_read_only(sandboxed):
    facts, _ = sandboxed
    assert facts["import_course"]["ok"], facts["import_course"]
    assert facts["read_data"]["ok"], facts["read_data"]
    assert not facts["write_data"]["ok"]


@pytest.mark.slow
@needs_bwrap
def test_sandboxed_kernel_has_a_clean_environment(sandboxed):
    facts, _ = sandboxed
    assert not facts["secret_env"]["ok"]
    assert SECRET_ENV not in facts["env"]
    assert "JPY_PARENT_PID" not in facts["env"]


@pytest.mark.slow
@needs_bwrap
def test_sandboxed_kernel_sees_a_read_only_system_and_a_private_tmp(sandboxed):
    facts, token = sandboxed
    for name in ("write_usr", "write_etc", "write_root", "write_course_tree", "read_shadow"):
        assert not facts[name]["ok"], (name, facts[name])
    assert facts["write_tmp"]["ok"] and facts["write_workdir"]["ok"]
    assert not Path(f"/tmp/sandbox-private-{token}").exists()  # its /tmp was its own


@pytest.mark.slow
@needs_bwrap
def test_sandboxed_kernel_is_unprivileged_and_limited(sandboxed):
    facts, _ = sandboxed
    assert facts["uid"] != 0 and int(facts["cap_eff"], 16) == 0
    limits = facts["limits"]
    assert limits["AS"] == LIMITS.address_space_mb * 2**20
    assert limits["NPROC"] == LIMITS.processes
    assert limits["FSIZE"] == LIMITS.file_size_mb * 2**20
    assert limits["CPU"] == LIMITS.cpu_seconds
    assert limits["CORE"] == 0
    assert facts["pid"] < 10  # its own PID namespace


@pytest.mark.slow
@needs_bwrap
def test_wall_clock_limit_kills_the_whole_process_tree(tmp_path, data_home):
    marker = f"{time.time_ns() % 10**6}.25"
    nb = new_notebook(
        cells=[
            new_code_cell(
                "import os, signal, subprocess\n"
                f"subprocess.Popen(['setsid', 'sleep', '{marker}'], start_new_session=True)\n"
                f"os.system('nohup sleep {marker} >/dev/null 2>&1 &')\n"
                "signal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
            )
        ]
    )
    started = time.perf_counter()
    record = run_notebook(
        nb,
        tmp_path,
        RunSettings(cell_timeout=3, notebook_timeout=6, data_home=str(data_home)),
        BubblewrapLauncher(LIMITS),
    )
    assert record.status == "timeout" and "6 s" in record.reason.text("en")
    assert time.perf_counter() - started < 30
    alive = [p for p in Path("/proc").iterdir() if p.name.isdigit() and _cmd(p).count(marker)]
    assert not alive


@pytest.mark.slow
@needs_bwrap
def test_cpu_time_limit_stops_the_kernel_with_a_reason(tmp_path, data_home):
    nb = new_notebook(
        cells=[
            new_code_cell(
                "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass"
            )
        ]
    )
    limits = dataclasses.replace(LIMITS, cpu_seconds=4)
    record = run_notebook(
        nb,
        tmp_path,
        RunSettings(cell_timeout=30, notebook_timeout=40, data_home=str(data_home)),
        BubblewrapLauncher(limits),
    )
    assert record.status == "kernel_died"
    assert "more than 4 s of CPU time" in record.reason.text("en")


def _cmd(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


# --- choosing the launcher (no kernel) -------------------------------------------------------


def _course_with(course, sandbox: dict):
    course.nbgrader_config.Course.sandbox = sandbox
    return course


def test_refuses_to_run_unsandboxed_without_bubblewrap(course):
    course = _course_with(course, {"bwrap": "no-such-bwrap-here"})
    with pytest.raises(SandboxUnavailable) as info:
        choose_launcher(course)
    message = str(info.value)
    assert "apt-get install bubblewrap" in message and "--allow-unsandboxed" in message
    assert "'no-such-bwrap-here') is not installed" in message
    # the instructor reads it in the course language, the reason included
    spanish = info.value.note.text("es")
    assert spanish.startswith("Me niego a calificar: bubblewrap ('no-such-bwrap-here') no está")
    assert "is not installed" not in spanish and "--allow-unsandboxed" in spanish


def test_the_cli_refuses_an_unavailable_sandbox_in_the_course_language(tmp_path, capsys):
    from autograder.cli import main
    from tests.conftest import ROOT

    config = tmp_path / "course_config.py"
    extra = '\nc.Course.sandbox = {"bwrap": "no-such-bwrap-here"}\n'
    config.write_text((ROOT / "course_config.py").read_text(encoding="utf-8") + extra)
    state = tmp_path / "state"
    folder = state / "submitted" / "ana" / "lesson4_learning_rate"
    folder.mkdir(parents=True)
    (folder / "learning_rate.ipynb").write_text('{"cells": [], "nbformat": 4}')
    argv = ["--config", str(config), "--state-dir", str(state), "grade", "lesson4_learning_rate"]
    status = main(argv)
    said = capsys.readouterr().err
    assert status == 1 and "Me niego a calificar" in said and "Refusing" not in said, said


def test_unsandboxed_only_when_explicitly_allowed_and_loudly(course, capsys):
    course = _course_with(course, {"bwrap": "no-such-bwrap-here"})
    with pytest.warns(UnsandboxedWarning, match="WITHOUT a sandbox"):
        launcher = choose_launcher(course, allow_unsandboxed=True)
    assert isinstance(launcher, LocalLauncher)
    assert "WITHOUT a sandbox" in capsys.readouterr().err
    course = _course_with(course, {"bwrap": "no-such-bwrap-here", "allow_unsandboxed": True})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnsandboxedWarning)
        assert isinstance(choose_launcher(course), LocalLauncher)


def test_disabled_sandbox_still_needs_explicit_permission(course):
    course = _course_with(course, {"enabled": False})
    with pytest.raises(SandboxUnavailable, match="disabled"):
        choose_launcher(course)


@needs_bwrap
def test_sandbox_is_chosen_when_available(course):
    launcher = choose_launcher(_course_with(course, {"memory_mb": 512}))
    assert isinstance(launcher, BubblewrapLauncher) and launcher.sandboxed
    assert launcher.settings.memory_mb == 512
    assert launcher.settings.cpu_seconds >= 2 * course.notebook_timeout  # derived default
    assert pickle.loads(pickle.dumps(launcher)) == launcher  # travels to pool workers


def test_unknown_settings_are_refused():
    with pytest.raises(ValueError, match="memroy_mb"):
        SandboxSettings.from_mapping({"memroy_mb": 1})


def test_command_isolates_and_limits(tmp_path):
    launcher = BubblewrapLauncher(LIMITS)
    argv = launcher.command(tmp_path, tmp_path / ".ipc", "/nonexistent-data", uid=None)
    text = " ".join(argv)
    assert argv[0] == "prlimit" and f"--nproc={LIMITS.processes}" in argv
    for flag in (
        "--unshare-all",
        "--unshare-user",
        "--disable-userns",
        "--die-with-parent",
        "--remount-ro",
        "--unsetenv",
    ):
        assert flag in argv, flag
    assert f"--bind {tmp_path} {tmp_path}" in text  # the only writable folder
    assert "/source" not in text and "checkers" not in text
    root_argv = launcher.command(tmp_path, tmp_path / ".ipc", None, uid=234567)
    assert "--reuid=234567" in root_argv and "--cap-drop" in root_argv
    assert root_argv.index("setpriv") > root_argv.index("--remount-ro")
    assert root_argv[-5:] == [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"]


def test_sanitize_removes_links_and_special_files(tmp_path):
    (tmp_path / "artifacts").mkdir()
    (tmp_path / "artifacts" / "ok.json").write_text("{}")
    (tmp_path / "learning_rate.ipynb").symlink_to("/etc/passwd")
    (tmp_path / "artifacts" / "dir-link").symlink_to("/")
    os.mkfifo(tmp_path / "timestamp.txt")
    removed = sanitize_workdir(tmp_path)
    assert sorted(removed) == ["artifacts/dir-link", "learning_rate.ipynb", "timestamp.txt"]
    assert (tmp_path / "artifacts" / "ok.json").is_file()
    placeholder = tmp_path / "artifacts" / "dir-link"  # artifacts: a plain file, rejected later
    assert placeholder.is_file() and not placeholder.is_symlink()
    assert not (tmp_path / "learning_rate.ipynb").exists()


def test_kernel_mounts_bind_the_student_package_and_hide_an_installed_grader(monkeypatch, tmp_path):
    """A regular (non-editable) install puts the grader inside the bound virtualenv; the
    kernel's file system must then hide it, while the student package stays visible."""
    from autograder import sandbox

    venv = tmp_path / "venv"
    grader = venv / "lib" / "site-packages" / "autograder"
    grader.mkdir(parents=True)
    monkeypatch.setattr(sandbox, "_python_roots", lambda: [venv])
    monkeypatch.setattr(sandbox, "PACKAGE_DIR", grader)
    args = BubblewrapLauncher(LIMITS).mounts(tmp_path / "work", tmp_path / "work" / ".ipc", None)
    pairs = list(zip(args, args[1:], strict=False))
    assert ("--tmpfs", str(grader)) in pairs
    student = str(sandbox.student_package_dir())
    assert any(a == "--ro-bind" and b == student for a, b in pairs) or student.startswith(str(venv))
    # an editable grader (outside every bound root) is simply absent: nothing to hide
    monkeypatch.setattr(sandbox, "PACKAGE_DIR", tmp_path / "elsewhere" / "autograder")
    args = BubblewrapLauncher(LIMITS).mounts(tmp_path / "work", tmp_path / "work" / ".ipc", None)
    assert "--tmpfs" not in [
        a for a, b in zip(args, args[1:], strict=False) if b.endswith("autograder")
    ]
