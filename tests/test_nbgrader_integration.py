"""nbgrader's own commands agree with the course package (``autograder/nbgrader_plugins.py``,
``nbgrader_config.py``, docs/nbgrader.md).

Each test runs nbgrader on a temporary copy of the course (``course_config.py``,
``nbgrader_config.py``, ``source/``, ``release/``), the way an instructor or a student runs it:
as a command in a folder, or through nbgrader's Python API as formgrader does. The notebooks
executed are lesson 4.1's (no TensorFlow), so none of these tests is slow.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from autograder import messages
from autograder.collect import scan_submissions
from autograder.config import load_course
from dlcourse import layout
from tests.conftest import ROOT
from tests.sample_class import TIMESTAMP, recipes

AID = "lesson4_learning_rate"
NOTEBOOK = "learning_rate.ipynb"
NOISE = ("CRITICAL", "Unwritable directory", "is not absolute")


@pytest.fixture
def course_dir(tmp_path) -> Path:
    """A copy of the course, as an instructor's checkout holds it."""
    root = tmp_path / "course"
    root.mkdir()
    for name in ("course_config.py", "nbgrader_config.py"):
        shutil.copy(ROOT / name, root / name)
    for name in ("source", "release"):
        shutil.copytree(ROOT / name, root / name)
    return root


def environment(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("COURSE_CONFIG", "COURSE_STATE_DIR")}
    # nbgrader's caches and the user's own Jupyter configuration stay out of the test
    env["JUPYTER_DATA_DIR"] = str(tmp_path / "jupyter-data")
    env["JUPYTER_CONFIG_DIR"] = str(tmp_path / "jupyter-config")
    return env


def nbgrader(*args: str, cwd: Path, tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "nbgrader", *args],
        cwd=cwd,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )


def output(run: subprocess.CompletedProcess) -> str:
    return run.stdout + run.stderr


def assert_quiet(run: subprocess.CompletedProcess) -> None:
    text = output(run)
    assert run.returncode == 0, text
    assert not [n for n in NOISE if n in text], text


def submit_sample(course_dir: Path, *students: str) -> None:
    """Sample students of lesson 4.1 in ``submitted/``, as ``nbgrader collect`` lays them out."""
    release = nbformat.read(course_dir / "release" / AID / NOTEBOOK, as_version=4)
    for student in students:
        folder = course_dir / "submitted" / student / AID
        folder.mkdir(parents=True)
        nbformat.write(recipes(AID)[student](release), folder / NOTEBOOK)
        (folder / layout.TIMESTAMP_FILE).write_text(TIMESTAMP, encoding="utf-8")


def nbgrader_api(course_dir: Path):
    """nbgrader's API configured as formgrader configures it: from ``nbgrader_config.py``."""
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course_dir)).load_config()
    return NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)


def text(message_id: str, **params) -> str:
    return messages.render(message_id, params, "es")  # the course's language


# --- the course directory and the exchange ------------------------------------------------


def test_nbgrader_sees_absolute_roots_and_the_course_agrees(course_dir):
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("nbgrader_config.py", path=str(course_dir)).load_config()
    assert config.CourseDirectory.root == str(course_dir)
    assert config.Exchange.root == str(course_dir / "exchange")
    assert (course_dir / "exchange").is_dir()
    course = load_course(course_dir / "course_config.py")
    assert course.root == course_dir
    assert course.nbgrader_config.CourseDirectory.root == str(course_dir)
    assert (
        "exchange/" in (ROOT / ".gitignore").read_text().splitlines()
        or "/exchange/" in (ROOT / ".gitignore").read_text().splitlines()
    )


@pytest.mark.slow  # nbgrader commands in subprocesses
def test_nbgrader_list_works_without_an_exchange_elsewhere(course_dir, tmp_path):
    run = nbgrader("list", cwd=course_dir, tmp_path=tmp_path)
    assert_quiet(run)


@pytest.mark.slow
def test_release_fetch_submit_collect_then_grade(course_dir, tmp_path):
    """A class on one machine: the instructor releases, a student fetches in their own folder,
    answers and submits, the instructor collects, and ``autograder grade`` grades it."""
    assert_quiet(nbgrader("release_assignment", AID, cwd=course_dir, tmp_path=tmp_path))
    listed = nbgrader("list", cwd=course_dir, tmp_path=tmp_path)
    assert_quiet(listed)
    assert AID in output(listed)

    student = tmp_path / "alice-home"
    student.mkdir()
    (student / "nbgrader_config.py").write_text(  # what the instructor tells the class
        "c = get_config()\n"
        f"c.CourseDirectory.course_id = {load_course(course_dir / 'course_config.py').course_id!r}\n"
        f"c.Exchange.root = {str(course_dir / 'exchange')!r}\n",
        encoding="utf-8",
    )
    assert_quiet(nbgrader("fetch_assignment", AID, cwd=student, tmp_path=tmp_path))
    fetched = student / AID / NOTEBOOK
    nb = nbformat.read(fetched, as_version=4)
    nbformat.write(recipes(AID)["perfect"](nb), fetched)
    assert_quiet(nbgrader("submit", AID, "--student", "alice", cwd=student, tmp_path=tmp_path))

    collected = nbgrader("collect", AID, cwd=course_dir, tmp_path=tmp_path)
    assert_quiet(collected)
    course = load_course(course_dir / "course_config.py")
    scan = scan_submissions(course.submitted_dir, AID, NOTEBOOK)
    assert [s.student for s in scan.submissions] == ["alice"]
    assert scan.submissions[0].path == course.submitted_dir / "alice" / AID / NOTEBOOK

    graded = subprocess.run(
        [sys.executable, "-m", "autograder", "grade", AID, "-q", "--workers", "1"],
        cwd=course_dir,
        env=environment(tmp_path),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert graded.returncode == 0, output(graded)
    assert "alice" in graded.stdout and "8/8" in graded.stdout, output(graded)

    # the course's feedback page travels back through the exchange
    assert_quiet(nbgrader("generate_feedback", AID, cwd=course_dir, tmp_path=tmp_path))
    assert_quiet(nbgrader("release_feedback", AID, cwd=course_dir, tmp_path=tmp_path))
    assert_quiet(nbgrader("fetch_feedback", AID, cwd=student, tmp_path=tmp_path))
    pages = list((student / AID / "feedback").glob(f"*/{Path(NOTEBOOK).stem}.html"))
    ours = course.feedback_dir / "alice" / AID / f"{Path(NOTEBOOK).stem}.html"
    assert len(pages) == 1 and pages[0].read_bytes() == ours.read_bytes()


# --- nbgrader autograde / formgrader's Autograde button -----------------------------------


@pytest.mark.slow  # nbgrader commands in subprocesses
def test_autograde_that_cannot_use_the_course_pipeline_refuses_and_deletes_nothing(
    course_dir, tmp_path
):
    submit_sample(course_dir, "partial")
    kept = layout.artifacts_folder(course_dir / "autograded", "partial", AID) / "kept.json"
    kept.parent.mkdir(parents=True)
    kept.write_text("{}", encoding="utf-8")
    other = f"sqlite:///{tmp_path / 'another.db'}"
    run = nbgrader("autograde", AID, "--force", "--db", other, cwd=course_dir, tmp_path=tmp_path)
    assert run.returncode == 1, output(run)
    assert kept.is_file(), "nbgrader autograde deleted the stored artifacts"
    assert f"autograder grade {AID}" in output(run)
    assert "No se ha borrado nada" in output(run), output(run)


@pytest.mark.slow
def test_formgrader_autograde_grades_with_the_course_pipeline_and_keeps_artifacts(course_dir):
    submit_sample(course_dir, "perfect", "partial")
    api = nbgrader_api(course_dir)
    first = api.autograde(AID, "partial")  # formgrader: force=True, one student
    assert first["success"], first
    course = load_course(course_dir / "course_config.py")
    artifacts = layout.artifacts_folder(course.autograded_dir, "partial", AID)
    assert (artifacts / layout.EXECUTION_RECORD).is_file()
    from autograder.batch import load_results
    from autograder.core import Assignment
    from autograder.record import gradebook_scores

    results = load_results(course, AID)
    assert sorted(results.students) == ["partial"]  # only the student asked for
    scores = gradebook_scores(course.db_url, Assignment.from_course(course, AID))
    assert sum(scores["partial"].values()) == results.students["partial"].score == 3
    assert text("nbgrader.graded", student="partial", score="3", max_score="8") in first["log"]

    # the button again: the stored run is checked again, never deleted
    marker = artifacts / "still-here.txt"
    marker.write_text("x", encoding="utf-8")
    again = api.autograde(AID, "partial")
    assert again["success"], again
    assert marker.is_file()
    assert load_results(course, AID).students["partial"].score == 3

    # nbgrader's feedback button writes the course's page, which shows no hidden test
    feedback = api.generate_feedback(AID, "partial")
    assert feedback["success"], feedback
    page = (course.feedback_dir / "partial" / AID / NOTEBOOK).with_suffix(".html")
    html = page.read_text(encoding="utf-8")
    source = nbformat.read(course.source_dir / AID / NOTEBOOK, as_version=4)
    hidden = [
        line.strip()
        for cell in source.cells
        if "BEGIN HIDDEN TESTS" in cell.source
        for line in cell.source.split("### BEGIN HIDDEN TESTS", 1)[1].splitlines()
        if len(line.strip()) > 12 and "END HIDDEN" not in line
    ]
    assert hidden and not [line for line in hidden if line in html]
    assert "Content-Security-Policy" in html  # the course's page, not nbgrader's


# --- nbgrader generate_feedback -----------------------------------------------------------


@pytest.mark.slow  # nbgrader commands in subprocesses
def test_generate_feedback_never_overwrites_the_course_pages(course_dir, tmp_path):
    """Nothing graded by the course's pipeline: nbgrader's feedback refuses, our page stays."""
    folder = layout.work_folder(course_dir / "autograded", "alice", AID)
    folder.mkdir(parents=True)
    shutil.copy(course_dir / "release" / AID / NOTEBOOK, folder / NOTEBOOK)
    page = course_dir / "feedback" / "alice" / AID / "learning_rate.html"
    page.parent.mkdir(parents=True)
    page.write_text("<p>our page</p>", encoding="utf-8")
    run = nbgrader("generate_feedback", AID, "--force", cwd=course_dir, tmp_path=tmp_path)
    assert run.returncode == 1, output(run)
    assert page.read_text(encoding="utf-8") == "<p>our page</p>"
    assert f"autograder feedback {AID}" in output(run)


# --- nbgrader validate --------------------------------------------------------------------


@pytest.mark.slow  # nbgrader commands in subprocesses
def test_validate_says_it_runs_only_the_visible_checks(course_dir, tmp_path):
    """The partial student scores 3/8; the visible checks cannot see that, and validate says
    so instead of "Success! Your notebook passes all the tests"."""
    notebook = tmp_path / "alice" / NOTEBOOK
    notebook.parent.mkdir()
    release = nbformat.read(course_dir / "release" / AID / NOTEBOOK, as_version=4)
    nbformat.write(recipes(AID)["partial"](release), notebook)
    run = nbgrader("validate", str(notebook), cwd=course_dir, tmp_path=tmp_path)
    said = " ".join(output(run).split())
    assert run.returncode == 0, output(run)
    assert "passes all the tests" not in said
    assert text("nbgrader.validate_passed") in said
    assert text("nbgrader.validate_scope") in said


# --- formgrader itself, over HTTP -----------------------------------------------------------


@pytest.mark.slow
def test_formgrader_buttons_over_http(course_dir, tmp_path):
    """formgrader's Autograde and Generate feedback buttons (the requests its page sends), in a
    real Jupyter server started in the course folder: the course's pipeline grades (its
    kernels start although the server's event loop is running), the stored run survives a
    second press, and the page written is the course's."""
    import json
    import socket
    import time
    import urllib.request

    submit_sample(course_dir, "partial")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            f"--port={port}",
            "--ServerApp.ip=127.0.0.1",
            "--IdentityProvider.token=secret",
            "--ServerApp.allow_root=True",
            "--ServerApp.jpserver_extensions={'nbgrader.server_extensions.formgrader': True}",
        ],
        cwd=course_dir,
        env=environment(tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )

    def press(path: str) -> dict:
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/formgrader/api/{path}",
            data=b"",
            headers={"Authorization": "token secret", "X-XSRFToken": "x", "Cookie": "_xsrf=x"},
        )
        with urllib.request.urlopen(request, timeout=600) as response:
            return json.loads(response.read())

    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status?token=secret")
                break
            except OSError:
                assert time.monotonic() < deadline, "the Jupyter server did not start"
                time.sleep(0.5)
        first = press(f"submission/{AID}/partial/autograde")
        assert first["success"], first
        assert text("nbgrader.graded", student="partial", score="3", max_score="8") in first["log"]
        marker = layout.artifacts_folder(course_dir / "autograded", "partial", AID) / "kept.txt"
        marker.write_text("x", encoding="utf-8")
        assert press(f"submission/{AID}/partial/autograde")["success"]
        assert marker.is_file()
        assert press(f"assignment/{AID}/partial/generate_feedback")["success"]
        page = course_dir / "feedback" / "partial" / AID / f"{Path(NOTEBOOK).stem}.html"
        assert "Content-Security-Policy" in page.read_text(encoding="utf-8")
    finally:
        server.terminate()
        server.wait(timeout=30)
