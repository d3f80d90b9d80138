"""The Gradescope autograder: the bundle, results.json against the specification's schema, and
``run_autograder`` on a temporary folder laid out like ``/autograder``."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
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
from autograder.results import Note
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
        assert [t["tags"] for t in results["tests"]] == [[gid] for gid in cells]
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
    renamed = Note("lms.gradescope.renamed", {"found": "Copia.ipynb", "notebook": "x.ipynb"})
    results = gs.gradescope_results(result, settings, 12.6, [renamed])
    validate_results(results, cells_of(course))
    assert results["score"] == 6 and results["execution_time"] == 13
    tests = {t["tags"][0]: t for t in results["tests"]}
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
    with pytest.raises(LmsError, match="less than a minute") as caught:
        gs.GradescopeSettings.from_course(course, AID)
    # the reason is data: shown in the instructor's language where it is read
    assert caught.value.note.id == "lms.gradescope.short_time_limit"
    assert "menos de un minuto" in caught.value.note.text("es")


def test_find_notebook(tmp_path):
    sub = tmp_path / "submission"
    (sub / ".ipynb_checkpoints").mkdir(parents=True)
    (sub / ".ipynb_checkpoints" / "learning_rate-checkpoint.ipynb").write_text("{}")
    path, note = gs.find_notebook(sub, "learning_rate.ipynb")
    assert path is None and note.id == "lms.gradescope.no_notebook"
    (sub / "Learning_Rate (2).ipynb").write_text("{}")
    path, note = gs.find_notebook(sub, "learning_rate.ipynb")
    assert path.name == "Learning_Rate (2).ipynb"
    assert note.text("en") == "Learning_Rate (2).ipynb was graded as learning_rate.ipynb."
    assert note.text("es") == "Se calificó Learning_Rate (2).ipynb como learning_rate.ipynb."
    (sub / "learning_rate.ipynb").write_text("{}")
    assert gs.find_notebook(sub, "learning_rate.ipynb") == (sub / "learning_rate.ipynb", None)
    other = tmp_path / "other"
    other.mkdir()
    (other / "a.ipynb").write_text("{}")
    (other / "b.ipynb").write_text("{}")
    path, note = gs.find_notebook(other, "learning_rate.ipynb")
    assert path is None and "ninguno se llama learning_rate.ipynb" in note.text("es")
    assert "none is named learning_rate.ipynb" in note.text("en")


# --- test names and language ----------------------------------------------------------------


def test_tests_are_named_by_the_notebooks_questions_in_the_course_language(course):
    """Gradescope shows each test's name: the question as the notebook numbers and titles it,
    not the grade id; everything the student reads is in the course language."""
    settings = gs.GradescopeSettings.from_course(course, AID)
    result = student_result(course, "ana", {"test_steps_lr_003": 0})
    result.problems = []
    result.notes = [Note("note.locked_modified", {"cell": "setup"}).to_dict()]
    copies = Note("lms.gradescope.copies", {"n": 2, "graded": "a/x.ipynb", "notebook": ""})
    results = gs.gradescope_results(result, settings, 1, [copies])
    names = {t["tags"][0]: t["name"] for t in results["tests"]}
    assert names["test_steps_lr_003"] == "Pregunta 1"
    assert names["test_goldilocks_lr"] == 'Pregunta 4: La tasa "justa" (Goldilocks)'
    assert names["test_curve_labels"] == (
        "Pregunta 7: Lección 4.2: interpretar las curvas de aprendizaje"
    )
    assert not [n for n in names.values() if n.startswith("test_")]
    assert "Se entregaron 2 copias; se calificó a/x.ipynb." in results["output"]
    assert "celda bloqueada" in results["output"] and "was" not in results["output"]

    settings = gs.GradescopeSettings.from_course(dataclasses.replace(course, language="en"), AID)
    results = gs.gradescope_results(result, settings, 1, [copies])
    assert results["tests"][0]["name"] == "Question 1"
    assert "2 copies were submitted; a/x.ipynb was graded." in results["output"]
    assert "ocked cell setup was modified" in results["output"]


def test_two_cells_of_one_question_are_told_apart(tmp_path):
    course = make_course(tmp_path / "state")
    names = gs.question_names(course, "lesson5_dropout_batchnorm")
    assert names["test_dropout"] == "Pregunta 1: el modelo (dropout)"
    assert names["test_batchnorm"] == "Pregunta 1: el modelo (batchnorm)"
    assert names["test_history"] == "Pregunta 2: entrenar"


def test_old_bundles_without_names_fall_back_to_grade_ids(course):
    settings = gs.GradescopeSettings.from_dict(
        {
            k: v
            for k, v in gs.GradescopeSettings.from_course(course, AID).to_dict().items()
            if k != "test_names"
        }
    )
    results = gs.gradescope_results(student_result(course, "ana"), settings, 1)
    assert results["tests"][0]["name"] == "test_steps_lr_003"


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
    } <= names
    assert not [n for n in names if n.startswith("data/")]  # lesson 4.1 reads no data
    assert not [n for n in names if "__pycache__" in n or n.endswith(".pyc")]
    bundle = tmp_path / "bundle"
    project = tomllib.loads((bundle / "package/pyproject.toml").read_text())["project"]
    assert project["name"] == "autograder" and any("nbgrader" in d for d in project["dependencies"])
    assert any(d.startswith("dlcourse") for d in project["dependencies"])
    student = tomllib.loads((bundle / "package/student/pyproject.toml").read_text())["project"]
    assert student["name"] == "dlcourse" and not any(
        "nbgrader" in d for d in student["dependencies"]
    )
    assert not [n for n in names if n.startswith("package/student/") and "checkers" in n]
    setup_sh = (bundle / "setup.sh").read_text()
    assert 'ROOT="${AUTOGRADER_ROOT:-/autograder}"' in setup_sh
    assert 'pip install "$ROOT/source/package/student" "$ROOT/source/package"' in setup_sh
    config = (bundle / "course/course_config.py").read_text()
    assert "s3cret" not in config and "lti" not in config and "k.pem" not in config
    bundled = load_course(bundle / "course/course_config.py", state_dir=tmp_path / "s")
    assert bundled.assignment(AID).notebook == "learning_rate.ipynb"
    assert bundled.language == course.language and bundled.db_url.startswith("sqlite")
    settings = json.loads((bundle / "gradescope.json").read_text())
    assert settings["assignment"] == AID and settings["visibility"] == "after_published"
    runner = (bundle / "run_autograder").read_text()
    assert 'ROOT="${AUTOGRADER_ROOT:-/autograder}"' in runner
    assert '"$ROOT/venv/bin/python" -m autograder.lms.gradescope run --root "$ROOT"' in runner


def test_data_goes_in_only_for_assignments_that_read_it(tmp_path, data_home):
    course = make_course(tmp_path / "state")
    assert not gs.needs_data(course, "lesson4_learning_rate")
    assert gs.needs_data(course, "lesson4_early_stopping")
    assert gs.needs_data(course, "lesson5_dropout_batchnorm")
    assert {"load_red_wine", "course_arrays", "wine_arrays", "capture_split"} <= gs.data_readers()
    path = gs.build_bundle(course, "lesson4_early_stopping", tmp_path / "es.zip")
    with zipfile.ZipFile(path) as zf:
        bundled = zf.read("data/winequality-red.csv")
    assert (
        hashlib.sha256(bundled).hexdigest()
        == hashlib.sha256((data_home / "winequality-red.csv").read_bytes()).hexdigest()
    )


def test_missing_data_names_a_command_that_fetches_it(tmp_path, data_home, monkeypatch):
    """Without the data: lesson 4.1 builds (it reads none); lesson 4.3 stops, naming a command
    that exists and fetches the data into the data home."""
    empty = tmp_path / "empty-home"
    empty.mkdir()
    monkeypatch.setenv("COURSE_DATA_HOME", str(empty))
    course = make_course(tmp_path / "state")
    gs.build_bundle(course, AID, tmp_path / "lr.zip")
    with pytest.raises(LmsError) as caught:
        gs.build_bundle(course, "lesson4_early_stopping", tmp_path / "es.zip")
    message = caught.value.note.text("es")  # the course's language, as the CLI shows it
    assert "winequality-red.csv" in message and str(empty) in message
    command = re.search(r"`(python -c .+?)`", message).group(1)
    assert "fetch" not in message.replace(command, "")  # no made-up fetch command
    # the command, run with the file already in place (no download): it exists and verifies it
    shutil.copy(data_home / "winequality-red.csv", empty / "winequality-red.csv")
    subprocess.run(["bash", "-c", command], check=True, cwd=tmp_path)
    gs.build_bundle(course, "lesson4_early_stopping", tmp_path / "es.zip")


def measured(course, assignment_id: str, seconds: float, kernel_mb: float, grader_mb: float):
    """A cached reference grading with these figures (what ``autograder release`` records)."""
    from autograder import reference
    from autograder.results import student_to_dict

    folder = reference.reference_dir(course, assignment_id)
    folder.mkdir(parents=True, exist_ok=True)
    result = student_result(course, reference.REFERENCE_STUDENT)
    (folder / reference.RESULT_FILE).write_text(json.dumps(student_to_dict(result)))
    (folder / reference.DIGEST_FILE).write_text(reference.reference_digest(course, assignment_id))
    (folder / reference.RESOURCES_FILE).write_text(
        json.dumps({"seconds": seconds, "kernel_peak_mb": kernel_mb, "grader_peak_mb": grader_mb})
    )


def test_bundle_warns_which_gradescope_settings_to_raise(course, tmp_path, data_home, caplog):
    settings = gs.GradescopeSettings.from_course(course, AID)
    assert (settings.memory_mb, settings.cpus, settings.time_limit) == (768, 0.5, 600)
    [note] = gs.check_resources(course, AID, settings)
    assert note.id == "lms.gradescope.not_measured"
    assert "`autograder release lesson4_learning_rate`" in note.text("es")

    measured(course, AID, seconds=3, kernel_mb=110, grader_mb=90)  # lesson 4.1: fits
    assert gs.check_resources(course, AID, settings) == []

    measured(course, AID, seconds=86, kernel_mb=842, grader_mb=227)  # lesson 5's figures
    caplog.set_level("WARNING", logger="autograder.lms.gradescope")
    gs.build_bundle(course, AID, tmp_path / "a.zip")
    [warning] = [r.getMessage() for r in caplog.records]
    assert "1069 MB" in warning and "768 MB (memory_mb)" in warning
    assert (
        "Autograder Settings" in warning
        and 'c.Course.lms["gradescope"]["memory_mb"] = 1536' in (warning)
    )

    measured(course, AID, seconds=400, kernel_mb=842, grader_mb=227)  # slow: CPU, then time
    ids = {n.id: n for n in gs.check_resources(course, AID, settings)}
    assert set(ids) == {"lms.gradescope.memory", "lms.gradescope.cpus", "lms.gradescope.timeout"}
    assert ids["lms.gradescope.cpus"].params["suggest"] == 1
    assert ids["lms.gradescope.timeout"].params["suggest"] == 660  # 400 s x 1.5 + 60, rounded
    assert "at least 660 s" in ids["lms.gradescope.timeout"].text("en")

    course.nbgrader_config.Course.lms = {
        "gradescope": {"memory_mb": 1536, "cpus": 1, "time_limit": 900}
    }
    raised = gs.GradescopeSettings.from_course(course, AID)
    assert gs.check_resources(course, AID, raised) == []


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
    assert "No se entregó ningún cuaderno: sube learning_rate.ipynb" in results["output"]


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
        assert "no terminó dentro del tiempo límite" in provisional["output"]
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
    assert "El propio calificador falló (ZeroDivisionError" in results["output"]


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
        assert "Se calificó learning_rate (1).ipynb como learning_rate.ipynb" in on_disk["output"]
        assert on_disk["tests"][3]["name"] == 'Pregunta 4: La tasa "justa" (Goldilocks)'
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


@pytest.mark.slow
def test_the_release_self_test_measures_what_the_bundle_is_checked_against(course, data_home):
    """Grading the reference solution records its time and peak memory; the bundle's check
    reads them (lesson 4.1 fits Gradescope's defaults)."""
    from autograder.reference import grade_reference, reference_resources

    assert reference_resources(course, AID) is None
    grade_reference(course, AID)
    resources = reference_resources(course, AID)
    assert resources["seconds"] > 0
    assert 20 < resources["kernel_peak_mb"] < 4096 and 20 < resources["grader_peak_mb"] < 4096
    settings = gs.GradescopeSettings.from_course(course, AID)
    assert gs.check_resources(course, AID, settings) == []
