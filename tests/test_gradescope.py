"""The Gradescope autograder: the bundle, results.json against the specification's schema, and
``run_autograder`` on a temporary folder laid out like ``/autograder``."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import tempfile
import time
import tomllib
import zipfile
from pathlib import Path

import jsonschema
import nbformat
import pytest

from autograder.config import load_course
from autograder.core import Assignment
from autograder.lms import gradescope as gs
from autograder.lms.common import LmsError
from tests.conftest import make_course
from tests.test_lms_export import AID, student_result

# --- Gradescope's results.json, as its autograder specification describes it ------------------

FORMATS = ["text", "html", "simple_format", "md", "ansi"]
VISIBILITY = ["hidden", "after_due_date", "after_published", "visible"]
TEST_SCHEMA = {
    "type": "object",
    "properties": {
        "score": {"type": "number"},
        "max_score": {"type": "number", "minimum": 0},
        "status": {"enum": ["passed", "failed"]},
        "name": {"type": "string"},
        "name_format": {"enum": FORMATS},
        "number": {"type": "string"},
        "output": {"type": "string"},
        "output_format": {"enum": FORMATS},
        "tags": {"type": "array", "items": {"type": "string"}},
        "visibility": {"enum": VISIBILITY},
        "extra_data": {"type": "object"},
    },
    "additionalProperties": False,
}
RESULTS_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "score": {"type": "number"},
        "execution_time": {"type": "number", "minimum": 0},
        "output": {"type": "string"},
        "output_format": {"enum": FORMATS},
        "test_output_format": {"enum": FORMATS},
        "test_name_format": {"enum": FORMATS},
        "visibility": {"enum": VISIBILITY},
        "stdout_visibility": {"enum": VISIBILITY},
        "extra_data": {"type": "object"},
        "tests": {"type": "array", "items": TEST_SCHEMA},
        "leaderboard": {"type": "array"},
    },
    "additionalProperties": False,
    # either a top-level score, or tests that carry scores
    "anyOf": [
        {"required": ["score"]},
        {"required": ["tests"], "properties": {"tests": {"items": {"required": ["score"]}}}},
    ],
}
# what this package promises on top of the specification: every graded cell is a test
OUR_TEST = {
    "required": [
        "name",
        "number",
        "score",
        "max_score",
        "status",
        "output",
        "output_format",
        "visibility",
    ]
}


def validate_results(results: dict, cells: list[str] | None = None) -> None:
    jsonschema.Draft202012Validator.check_schema(RESULTS_SCHEMA)
    jsonschema.validate(results, RESULTS_SCHEMA, cls=jsonschema.Draft202012Validator)
    for test in results["tests"]:
        jsonschema.validate(test, OUR_TEST)
        assert test["score"] <= test["max_score"]
        assert test["status"] == ("passed" if test["score"] == test["max_score"] else "failed")
    if cells is not None:
        assert [t["name"] for t in results["tests"]] == cells
        assert abs(results["score"] - sum(t["score"] for t in results["tests"])) < 1e-9


@pytest.fixture
def course(tmp_path):
    course = make_course(tmp_path / "state")
    course.nbgrader_config.Course.lms = {
        "gradescope": {
            "visibility": {AID: "after_published"},
            "test_visibility": {AID: {"test_curve_labels": "after_due_date"}},
        }
    }
    return course


def cells_of(course) -> list[str]:
    return list(Assignment.from_course(course, AID).cell_points)


# --- results.json -------------------------------------------------------------------------------


def test_results_json_follows_the_spec(course):
    settings = gs.GradescopeSettings.from_course(course, AID)
    result = student_result(course, "ana", {"test_steps_lr_003": 0, "test_curve_labels": 1})
    result.problems = ["locked cell setup was modified; the original was restored"]
    results = gs.gradescope_results(
        result, settings, 12.6, ["Copia.ipynb was graded as learning_rate.ipynb."]
    )
    validate_results(results, cells_of(course))
    assert results["score"] == 6 and results["execution_time"] == 13
    tests = {t["name"]: t for t in results["tests"]}
    assert tests["test_steps_lr_003"]["status"] == "failed"
    assert tests["test_steps_lr_003"]["output"].startswith("- ❌ Revisa `steps_lr_003`")
    assert tests["test_steps_lr_01"]["status"] == "passed"
    assert tests["test_steps_lr_01"]["visibility"] == "after_published"
    assert tests["test_curve_labels"]["visibility"] == "after_due_date"
    assert results["output"].startswith("**Total: 6/8**")
    assert "Copia.ipynb" in results["output"] and "ocked cell setup" in results["output"]
    assert results["stdout_visibility"] == "hidden"


def test_settings_are_checked(course):
    course.nbgrader_config.Course.lms = {"gradescope": {"visibility": "public"}}
    with pytest.raises(LmsError, match="visibility"):
        gs.GradescopeSettings.from_course(course, AID)
    course.nbgrader_config.Course.lms = {"gradescope": {"time_limit": 100, "margin": 60}}
    with pytest.raises(LmsError, match="less than a minute"):
        gs.GradescopeSettings.from_course(course, AID)


def test_find_notebook(tmp_path):
    sub = tmp_path / "submission"
    (sub / ".ipynb_checkpoints").mkdir(parents=True)
    (sub / ".ipynb_checkpoints" / "learning_rate-checkpoint.ipynb").write_text("{}")
    assert gs.find_notebook(sub, "learning_rate.ipynb")[0] is None
    (sub / "Learning_Rate (2).ipynb").write_text("{}")
    path, note = gs.find_notebook(sub, "learning_rate.ipynb")
    assert path.name == "Learning_Rate (2).ipynb" and "graded as learning_rate.ipynb" in note
    (sub / "learning_rate.ipynb").write_text("{}")
    assert gs.find_notebook(sub, "learning_rate.ipynb") == (sub / "learning_rate.ipynb", None)
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.ipynb").write_text("{}")
    (other / "b.ipynb").write_text("{}")
    path, note = gs.find_notebook(other, "learning_rate.ipynb")
    assert path is None and "none is named learning_rate.ipynb" in note


# --- the bundle -----------------------------------------------------------------------------------


def test_bundle_has_everything_gradescope_needs_and_no_secrets(course, tmp_path, data_home):
    course.nbgrader_config.Course.db_url = "postgresql://grader:s3cret@db/gradebook"
    course.nbgrader_config.Course.lms["lti"] = {"client_id": "1", "key_file": "/keys/k.pem"}
    path = gs.build_bundle(course, AID, tmp_path / "autograder.zip")
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        modes = {i.filename: (i.external_attr >> 16) for i in zf.infolist()}
        zf.extractall(tmp_path / "bundle")
    for script in ("setup.sh", "run_autograder"):
        assert script in names and modes[script] & stat.S_IXUSR
        subprocess.run(["bash", "-n", str(tmp_path / "bundle" / script)], check=True)
    assert {
        "gradescope.json",
        "package/pyproject.toml",
        "package/MANIFEST.in",
        "package/autograder/core.py",
        "package/autograder/checkers/pytest.ini",
        f"package/autograder/checkers/{AID}.py",
        "course/course_config.py",
        f"course/source/{AID}/learning_rate.ipynb",
        f"course/release/{AID}/learning_rate.ipynb",
        "data/winequality-red.csv",
    } <= names
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    bundle = tmp_path / "bundle"
    assert (
        hashlib.sha256((bundle / "data/winequality-red.csv").read_bytes()).hexdigest()
        == hashlib.sha256((data_home / "winequality-red.csv").read_bytes()).hexdigest()
    )
    project = tomllib.loads((bundle / "package/pyproject.toml").read_text())["project"]
    assert project["name"] == "autograder" and any("nbgrader" in d for d in project["dependencies"])
    assert any(d.startswith("dlcourse") for d in project["dependencies"])
    student = tomllib.loads((bundle / "package/student/pyproject.toml").read_text())["project"]
    assert student["name"] == "dlcourse" and not any(
        "nbgrader" in d for d in student["dependencies"]
    )
    assert not [n for n in names if n.startswith("package/student/") and "checkers" in n]
    setup_sh = (bundle / "setup.sh").read_text()
    assert "pip install /autograder/source/package/student /autograder/source/package" in setup_sh
    config = (bundle / "course/course_config.py").read_text()
    assert "s3cret" not in config and "lti" not in config and "k.pem" not in config
    bundled = load_course(bundle / "course/course_config.py", state_dir=tmp_path / "s")
    assert bundled.assignment(AID).notebook == "learning_rate.ipynb"
    assert bundled.language == course.language and bundled.db_url.startswith("sqlite")
    settings = json.loads((bundle / "gradescope.json").read_text())
    assert settings["assignment"] == AID and settings["visibility"] == "after_published"
    assert (
        "/autograder/venv/bin/python -m autograder.lms.gradescope run"
        in (bundle / "run_autograder").read_text()
    )


def test_protect_material_leaves_only_data_readable(tmp_path):
    root = tmp_path / "autograder"
    for rel in (
        "source/course/source/a/nb.ipynb",
        "source/package/autograder/x.py",
        "source/data/wine.csv",
        "source/gradescope.json",
    ):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("x")
    gs.protect_material(root, [root / "source" / "data"])
    mode = lambda rel: stat.S_IMODE((root / rel).stat().st_mode)  # noqa: E731
    assert mode("source") == 0o711
    assert (
        mode("source/course") & 0o077 == 0 and mode("source/course/source/a/nb.ipynb") & 0o077 == 0
    )
    assert mode("source/package/autograder/x.py") & 0o077 == 0
    assert mode("source/gradescope.json") & 0o077 == 0
    assert mode("source/data") & 0o055 == 0o055 and mode("source/data/wine.csv") & 0o044 == 0o044
    assert not mode("source/data/wine.csv") & 0o111


# --- run_autograder -------------------------------------------------------------------------------


def autograder_root(course, tmp_path: Path, settings: dict | None = None) -> Path:
    """A folder laid out like /autograder: source/ (the unzipped bundle), submission/, results/."""
    root = Path(tempfile.mkdtemp(prefix="autograder-", dir=tmp_path))
    root.chmod(0o755)
    bundle = gs.build_bundle(course, AID, tmp_path / f"{root.name}.zip")
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(root / "source")
    if settings:
        path = root / "source" / gs.SETTINGS_FILE
        path.write_text(json.dumps({**json.loads(path.read_text()), **settings}))
    (root / "submission").mkdir()
    (root / "results").mkdir()
    (root / "submission_metadata.json").write_text(
        json.dumps(
            {
                "users": [{"email": "ana@uni.es", "name": "Ana", "sid": "A1"}],
                "created_at": "2026-11-20T10:00:00.000000-07:00",
            }
        )
    )
    return root


def test_run_autograder_without_a_notebook(course, tmp_path, data_home):
    root = autograder_root(course, tmp_path)
    (root / "submission" / "learning_rate.pdf").write_bytes(b"%PDF")
    results = gs.run_autograder(root)
    on_disk = json.loads((root / "results" / "results.json").read_text())
    assert on_disk == results
    validate_results(results, cells_of(course))
    assert results["score"] == 0 and results["extra_data"]["status"] == "error"
    assert "No notebook was submitted" in results["output"]


def test_run_autograder_sets_time_limits_from_gradescopes(course, tmp_path, data_home, monkeypatch):
    import autograder.core

    root = autograder_root(course, tmp_path, {"time_limit": 200, "margin": 50})
    nb = nbformat.read(course.release_dir / AID / "learning_rate.ipynb", as_version=4)
    nbformat.write(nb, root / "submission" / "learning_rate.ipynb")
    seen = {}

    def fake_grade(submission, assignment, settings, *, student, workdir, launcher=None):
        seen.update(settings=settings, student=student, submission=Path(submission))
        provisional = json.loads((root / "results" / "results.json").read_text())
        validate_results(provisional)  # already there, in case the grader is killed
        assert "did not finish within the time limit" in provisional["output"]
        return student_result(course, student)

    monkeypatch.setattr(autograder.core, "grade", fake_grade)
    results = gs.run_autograder(root, launcher=object())
    validate_results(results, cells_of(course))
    assert seen["student"] == "ana@uni.es" and results["score"] == 8
    assert 140 <= seen["settings"].notebook_timeout <= 150  # 200 s minus the 50 s margin
    assert seen["settings"].cell_timeout <= seen["settings"].notebook_timeout
    assert seen["settings"].data_home == str(root / "source" / "data")
    assert seen["submission"].parent.parent == root / "work"  # a copy, never the upload


def test_run_autograder_reports_its_own_failure(course, tmp_path, data_home, monkeypatch):
    import autograder.core

    root = autograder_root(course, tmp_path)
    (root / "submission" / "learning_rate.ipynb").write_text("{}")
    monkeypatch.setattr(autograder.core, "grade", lambda *a, **k: 1 / 0)
    results = gs.run_autograder(root)
    validate_results(results)
    assert "autograder itself failed (ZeroDivisionError" in results["output"]


PROBE = """
import json, os
probe = {}
for name, path in {"source": %r, "checkers": %r, "results": %r}.items():
    try:
        if name == "results":
            open(path, "w").write('{"score": 100}')
        else:
            open(path).read()
        probe[name] = "allowed"
    except OSError as exc:
        probe[name] = type(exc).__name__
probe["uid"] = os.getuid()
json.dump(probe, open("probe.json", "w"))
"""


@pytest.mark.slow
def test_run_autograder_grades_a_real_notebook(course, tmp_path, data_home):
    """The bundle's runner on a folder laid out like /autograder: a real kernel grades a right
    (renamed) submission; run as root, the kernel runs as an unprivileged user and cannot read
    the hidden material or write the results."""
    from tests.sample_class import insert_after
    from tests.sample_class.lesson4_learning_rate import perfect

    as_user = os.geteuid() == 0 and _user_exists("nobody")
    base = Path(tempfile.mkdtemp(prefix="gradescope-", dir="/tmp"))
    try:
        base.chmod(0o755)
        root = autograder_root(course, base, {"run_as": "nobody" if as_user else None})
        gs.protect_material(root, [root / "source" / "data"])
        source_nb = root / "source" / "course" / "source" / AID / "learning_rate.ipynb"
        checker = Path(gs.installed_package_dir()) / "checkers" / f"{AID}.py"
        results_file = root / "results" / "results.json"
        release = nbformat.read(course.release_dir / AID / "learning_rate.ipynb", as_version=4)
        nb = insert_after(
            perfect(release),
            "ans_curve_labels",
            PROBE % (str(source_nb), str(checker), str(results_file)),
        )
        nbformat.write(nb, root / "submission" / "learning_rate (1).ipynb")
        started = time.monotonic()
        results = gs.run_autograder(root)
        elapsed = time.monotonic() - started
        on_disk = json.loads(results_file.read_text())
        assert on_disk == results
        validate_results(on_disk, cells_of(course))
        assert on_disk["score"] == 8, on_disk["output"]
        assert all(t["status"] == "passed" for t in on_disk["tests"])
        assert on_disk["visibility"] == "after_published"
        assert "learning_rate (1).ipynb was graded as learning_rate.ipynb" in on_disk["output"]
        assert on_disk["execution_time"] <= elapsed + 1
        probe = json.loads(next((root / "work").glob("*/grade/probe.json")).read_text())
        if as_user:
            assert probe["uid"] != 0
            # the checker module is readable here only because this test runs from the source
            # tree; setup() makes the installed checkers root-only on Gradescope
            assert probe["source"] == "PermissionError"
            assert probe["results"] == "PermissionError"
        else:
            assert probe["uid"] == os.geteuid()
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _user_exists(name: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(name)
        return shutil.which("setpriv") is not None
    except KeyError:
        return False
