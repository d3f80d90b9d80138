"""End to end: the sample class of lesson4_learning_rate, executed for real, graded once."""

import csv
import json
import subprocess
import sys

import pytest

from autograder.batch import grade_class
from autograder.core import Assignment, GradingSettings, grade
from autograder.record import gradebook_scores
from tests.conftest import ROOT, make_course
from tests.sample_class import build_sample_class, expected

pytestmark = pytest.mark.slow
AID = "lesson4_learning_rate"


@pytest.fixture(scope="module")
def graded(graded_class):
    return graded_class(AID)


@pytest.mark.parametrize("student", sorted(expected(AID)))
def test_each_student_gets_what_a_teacher_would_give(graded, student):
    want = expected(AID)[student]
    got = graded.results.students[student]
    assert got.status == want["status"], got.error
    assert {g: c.score for g, c in got.cells.items()} == want["cells"]
    assert got.score == sum(want["cells"].values())
    for gid, message_id in want.get("messages", {}).items():
        ids = {c.message_id for c in got.cells[gid].checks}
        assert message_id in ids, (gid, ids)


def test_whole_class_was_graded(graded):
    assert sorted(graded.results.students) == sorted(graded.students)


def test_corrupt_file_gets_a_clear_reason_and_nothing_else_is_lost(graded):
    corrupt = graded.results.students["corrupt"]
    assert corrupt.status == "error" and "not JSON" in corrupt.error
    assert all(c.checks[0].message_id == "submission_error" for c in corrupt.cells.values())
    assert graded.results.students["perfect"].score == 8


def test_blank_is_not_attempted_not_wrong(graded):
    blank = graded.results.students["blank"]
    assert all(cell.not_attempted for cell in blank.cells.values())


def test_skip_execution_and_fake_scores_earn_nothing(graded):
    skip = graded.results.students["skip_execution"]
    assert skip.score == 0
    assert any("was modified" in p for p in skip.problems)
    assert graded.results.students["fake_score"].score == 0


def test_gradebook_holds_the_same_scores(graded):
    assignment = Assignment.from_course(graded.course, AID)
    scores = gradebook_scores(graded.course.db_url, assignment)
    for student, result in graded.results.students.items():
        assert scores[student] == {g: c.score for g, c in result.cells.items()}


def test_results_file_and_autograded_layout(graded):
    data = json.loads((graded.course.results_dir / f"{AID}.json").read_text())
    assert set(data["students"]) == set(graded.students)
    executed = graded.course.autograded_dir / "perfect" / AID
    assert (executed / "learning_rate.ipynb").is_file()
    assert (executed / "artifacts" / "answers" / "steps_lr_003.json").is_file()
    assert (executed / "timestamp.txt").is_file()


def test_csv_export_from_the_command_line(graded, tmp_path):
    out = tmp_path / "grades.csv"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "autograder",
            "--config",
            str(ROOT / "course_config.py"),
            "--state-dir",
            str(graded.course.state_dir),
            "export",
            "--format",
            "csv",
            "--assignment",
            AID,
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {r["student_id"]: r for r in csv.DictReader(out.open())}
    assert float(rows["perfect"]["score"]) == 8 and rows["corrupt"]["status"] == "error"
    assert float(rows["partial"][f"{AID}:test_curve_labels"]) == 1


def test_grading_twice_gives_identical_scores(graded, tmp_path):
    course = make_course(tmp_path / "again")
    build_sample_class(course.release_dir, course.submitted_dir, AID, "learning_rate.ipynb")
    again = grade_class(course, AID, progress=False)
    first = {
        s: {g: c.score for g, c in r.cells.items()} for s, r in graded.results.students.items()
    }
    second = {s: {g: c.score for g, c in r.cells.items()} for s, r in again.students.items()}
    assert first == second


def test_solution_notebook_scores_full_marks(graded, tmp_path):
    course = graded.course
    assignment = Assignment.from_course(course, AID)
    result = grade(
        course.source_dir / AID / assignment.notebook,
        assignment,
        GradingSettings.from_course(course),
        workdir=tmp_path / "solution",
    )
    assert result.status == "graded" and result.score == result.max_score == 8


def test_each_result_says_where_its_time_went(graded):
    """The cost breakdown (issue: grading at the speed of the students' own training): every
    phase of the execution, the checks and the writer's share, in the results JSON."""
    from autograder.execute import PHASES

    stored = json.loads((graded.course.results_dir / f"{AID}.json").read_text(encoding="utf-8"))[
        "students"
    ]
    timing = stored["perfect"]["timing"]
    for key in (*PHASES, "read_rebuild", "write_notebook", "check", "gradebook", "journal"):
        assert key in timing and timing[key] >= 0, key
    assert timing["answer_cells"] > 0 and timing["setup_cell"] > 0 and timing["kernel_start"] > 0
    phases = sum(timing[p] for p in PHASES)
    assert abs(phases - timing["execute"]) < 0.05 + 0.02 * timing["execute"], timing
    assert timing["total"] >= timing["execute"] + timing["check"] - 0.01
    # a file that could not be read never started a kernel
    assert "kernel_start" not in stored["corrupt"]["timing"]
