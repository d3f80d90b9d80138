"""Parallel, Dask, regrade, resume and PostgreSQL give the same grades as serial grading."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import replace
from pathlib import Path

import pytest

from autograder.batch import grade_class, regrade_class
from autograder.core import Assignment
from autograder.record import gradebook_scores
from autograder.results import ResultsFile
from tests.conftest import ROOT, make_course
from tests.sample_class import build_sample_class

pytestmark = pytest.mark.slow
AID = "lesson4_learning_rate"
NOTEBOOK = "learning_rate.ipynb"


def scores(results):
    return {
        s: (r.status, {g: c.score for g, c in r.cells.items()}) for s, r in results.students.items()
    }


def messages(results):
    return {
        s: [(c.id, c.message_id) for cell in r.cells.values() for c in cell.checks]
        for s, r in results.students.items()
    }


@pytest.fixture(scope="module")
def serial(graded_class):
    return graded_class(AID)


def new_class(tmp_path, students=None):
    course = make_course(tmp_path)
    build_sample_class(course.release_dir, course.submitted_dir, AID, NOTEBOOK)
    if students:
        for folder in course.submitted_dir.iterdir():
            if folder.name not in students:
                shutil.rmtree(folder)
    return course


def test_parallel_equals_serial(serial, tmp_path):
    course = new_class(tmp_path)
    parallel = grade_class(course, AID, workers=2, progress=False)
    assert scores(parallel) == scores(serial.results)
    assert messages(parallel) == messages(serial.results)
    assert gradebook_scores(course.db_url, Assignment.from_course(course, AID)) == gradebook_scores(
        serial.course.db_url, Assignment.from_course(serial.course, AID)
    )


def test_regrade_without_kernels(serial, tmp_path):
    course = make_course(tmp_path)
    shutil.copytree(serial.course.state_dir, course.state_dir, dirs_exist_ok=True)
    same, changes = regrade_class(course, AID)
    assert changes == [] and scores(same) == scores(serial.results)
    # a threshold change in course_config.py (here: a very loose tolerance) changes a score
    loose = replace(
        course,
        thresholds={**course.thresholds, AID: {**course.thresholds[AID], "answer_rtol": 10.0}},
    )
    updated, changes = regrade_class(loose, AID)
    changed = {c.student: c for c in changes}
    assert set(changed) == {"partial", "fake_score"}  # their step sizes now pass
    assert changed["partial"].cells == {"test_step_size": (0.0, 1.0)}
    assert updated.students["partial"].score == serial.results.students["partial"].score + 1
    assert (
        gradebook_scores(course.db_url, Assignment.from_course(course, AID))["partial"][
            "test_step_size"
        ]
        == 1.0
    )


def grade_command(course, *, workers: int) -> list[str]:
    """``autograder grade`` of the sample class, as an instructor runs it."""
    config = str(ROOT / "course_config.py")
    state = str(course.state_dir)
    options = ["--config", config, "--state-dir", state]
    return [
        sys.executable,
        "-m",
        "autograder",
        *options,
        "grade",
        AID,
        "--workers",
        str(workers),
        "-q",
    ]


def test_killed_run_resumes_without_regrading(tmp_path):
    course = new_class(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = grade_command(course, workers=1)
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    store = ResultsFile(course.results_dir, AID)
    deadline = time.time() + 120
    while time.time() < deadline and not (store.journal.is_file() and store.journal.stat().st_size):
        time.sleep(0.2)
    time.sleep(1.0)
    os.killpg(proc.pid, signal.SIGKILL)  # kill -9 the grader and its kernels mid-class
    proc.wait()
    from autograder.batch import load_results

    # the finished students survive only in the journal (the JSON is written at the end)
    assert store.journal.is_file() and not store.path.exists()

    done_before = dict(load_results(course, AID).students)
    assert 0 < len(done_before) < 8
    finished = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    assert finished.returncode == 0, finished.stderr
    after = load_results(course, AID)
    assert len(after.students) == 8
    for student, before in done_before.items():  # not regraded: identical record, same timing
        assert after.students[student].timing == before.timing
    scores_db = gradebook_scores(course.db_url, Assignment.from_course(course, AID))
    assert set(scores_db) == set(after.students)
    assert store.path.is_file() and not store.journal.exists()  # folded into the JSON


def test_pool_workers_die_with_the_grader(tmp_path):
    """``kill -9`` of the grader alone (not its process group): its pool workers and their
    kernels go with it, instead of grading on beside a rerun."""
    from autograder.sandbox import descendants, process_table

    course = new_class(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = grade_command(course, workers=2)
    proc = subprocess.Popen(
        cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        deadline = time.time() + 120
        kernels: list[int] = []
        while time.time() < deadline:
            table = process_table()
            tree = descendants(table, proc.pid)
            kernels = [pid for pid in tree if _is_kernel(_cmdline(pid))]
            if len(kernels) >= 2:
                break
            time.sleep(0.2)
        assert len(kernels) >= 2, "the workers' kernels did not start"
        os.kill(proc.pid, signal.SIGKILL)  # the grader only
        proc.wait()
        deadline = time.time() + 30
        while time.time() < deadline and any(_alive(pid) for pid in tree):
            time.sleep(0.2)
        survivors = {pid: _cmdline(pid)[:200] for pid in tree if _alive(pid)}
        assert not survivors, survivors
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _is_kernel(cmdline: str) -> bool:
    # the kernel's own interpreter, not the sandbox wrappers whose arguments name it: two of
    # them mean both workers are past their initializer
    words = cmdline.split()
    return (
        bool(words) and Path(words[0]).name.startswith("python") and "ipykernel_launcher" in words
    )


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


@pytest.fixture
def dask_cluster(tmp_path):
    pytest.importorskip("distributed")
    bindir = Path(sys.executable).parent
    scheduler_file = tmp_path / "scheduler.json"
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}"}
    procs = [
        subprocess.Popen(
            [
                str(bindir / "dask"),
                "scheduler",
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--no-dashboard",
                "--scheduler-file",
                str(scheduler_file),
            ],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
    ]
    deadline = time.time() + 60
    while not scheduler_file.exists() and time.time() < deadline:
        time.sleep(0.2)
    for i in range(2):
        workdir = tmp_path / f"worker{i}"  # no shared files with the grader
        workdir.mkdir()
        procs.append(
            subprocess.Popen(
                [
                    str(bindir / "dask"),
                    "worker",
                    "--scheduler-file",
                    str(scheduler_file),
                    "--nthreads",
                    "1",
                    "--no-dashboard",
                    "--local-directory",
                    str(workdir),
                ],
                env=env,
                cwd=workdir,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    import json

    from distributed import Client

    address = json.loads(scheduler_file.read_text())["address"]
    with Client(address, timeout="30s") as client:
        client.wait_for_workers(2, timeout=60)
    yield address
    for proc in procs[::-1]:
        proc.terminate()
    for proc in procs:
        proc.wait(timeout=30)


def test_dask_equals_serial(serial, tmp_path, dask_cluster):
    course = new_class(tmp_path / "class")
    distributed = grade_class(course, AID, scheduler=dask_cluster, progress=False)
    assert scores(distributed) == scores(serial.results)
    assert messages(distributed) == messages(serial.results)
    executed = course.autograded_dir / "perfect" / AID
    assert (executed / NOTEBOOK).is_file() and (executed / "artifacts" / "answers").is_dir()


@pytest.fixture
def postgres_url():
    base = os.environ.get("AUTOGRADER_TEST_PG_URL")
    if not base:
        pytest.skip("AUTOGRADER_TEST_PG_URL is not set (CI starts PostgreSQL and sets it)")
    sqlalchemy = pytest.importorskip("sqlalchemy")
    name = f"autograder_test_{uuid.uuid4().hex[:8]}"
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f"CREATE DATABASE {name}"))
    url = base.rsplit("/", 1)[0] + "/" + name
    yield url
    with admin.connect() as conn:
        conn.execute(sqlalchemy.text(f"DROP DATABASE {name} WITH (FORCE)"))
    admin.dispose()


def test_postgresql_gradebook(serial, tmp_path, postgres_url):
    course = replace(new_class(tmp_path), db_url_setting=postgres_url)
    results = grade_class(course, AID, workers=2, progress=False)
    assert scores(results) == scores(serial.results)
    assignment = Assignment.from_course(course, AID)
    assert gradebook_scores(postgres_url, assignment) == gradebook_scores(
        serial.course.db_url, assignment
    )
    _, changes = regrade_class(course, AID)
    assert changes == []
    from autograder.export import export

    csv_text = export(course, "csv", assignment_id=AID).read_text()
    assert "perfect" in csv_text and "8.0" in csv_text
