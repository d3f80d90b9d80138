"""End to end: the sample class of lesson5_dropout_batchnorm, executed for real, graded once.

Real kernels train the real models (one TensorFlow thread per kernel, as in grading), so this
takes a few minutes on 2 cores; the students whose mistake is structural train fewer epochs.
"""

import json

import pytest

from autograder.core import Assignment, GradingSettings, grade
from autograder.record import gradebook_scores
from tests.sample_class import expected

pytestmark = pytest.mark.slow
AID = "lesson5_dropout_batchnorm"


@pytest.fixture(scope="module")
def graded(graded_class):
    return graded_class(AID)


def failed_ids(cell) -> set[str]:
    return {c.message_id for c in cell.checks if not c.passed}


@pytest.mark.parametrize("student", sorted(expected(AID)))
def test_each_student_gets_what_a_teacher_would_give(graded, student):
    want = expected(AID)[student]
    got = graded.results.students[student]
    assert got.status == want["status"], got.error
    scores = {g: c.score for g, c in got.cells.items()}
    assert scores == want["cells"], {g: sorted(failed_ids(c)) for g, c in got.cells.items()}
    assert got.score == sum(want["cells"].values())
    for gid, message_ids in want.get("messages", {}).items():
        assert set(message_ids) <= failed_ids(got.cells[gid]), (gid, failed_ids(got.cells[gid]))
    for cell in got.cells.values():
        assert all(c.outcome != "error" for c in cell.checks), cell.checks


def test_whole_class_was_graded(graded):
    assert sorted(graded.results.students) == sorted(graded.students)


def test_correct_styles_pass_with_both_batchnorm_placements(graded):
    def passed_message(student, check_id):
        cell = graded.results.students[student].cells["test_batchnorm"]
        return next(c for c in cell.checks if c.id == check_id).messages["en"]

    assert "first placement" in passed_message("perfect", "batchnorm_blocks")
    assert "second placement" in passed_message("style_seed", "batchnorm_blocks")
    dropout = graded.results.students["input_dropout"].cells["test_dropout"].checks[0]
    assert dropout.passed and "Lesson 5.1 allows it" in dropout.messages["en"]


def test_the_validation_mae_is_recomputed_and_reproducible(graded):
    """Every correct style trains to a validation MAE under the calibrated threshold, as
    re-computed by the checker, and the value reaches the results file unchanged."""
    threshold = graded.course.thresholds[AID]["db_val_mae_max"]
    values = {}
    for student in ("perfect", "style_seed", "style_add", "input_dropout"):
        cell = graded.results.students[student].cells["test_history"]
        check = next(c for c in cell.checks if c.id == "history_val_mae")
        values[student] = float(check.params["value"])
        assert check.passed and values[student] <= threshold
    data = json.loads((graded.course.results_dir / f"{AID}.json").read_text())
    stored = data["students"]["perfect"]["cells"]["test_history"]["checks"]
    assert any(c.get("params", {}).get("value") == values["perfect"] for c in stored)


def test_gradebook_holds_the_same_scores(graded):
    assignment = Assignment.from_course(graded.course, AID)
    scores = gradebook_scores(graded.course.db_url, assignment)
    for student, result in graded.results.students.items():
        assert scores[student] == {g: c.score for g, c in result.cells.items()}


def test_solution_notebook_scores_full_marks_and_matches_perfect(graded, tmp_path):
    course = graded.course
    assignment = Assignment.from_course(course, AID)
    result = grade(
        course.source_dir / AID / assignment.notebook,
        assignment,
        GradingSettings.from_course(course),
        workdir=tmp_path / "solution",
    )
    assert result.status == "graded" and result.score == result.max_score == 10

    def value(student_result):
        cell = student_result.cells["test_history"]
        return next(c for c in cell.checks if c.id == "history_val_mae").params["value"]

    # same seed, same model, one thread: the same weights as the perfect student, bit for bit
    assert value(result) == value(graded.results.students["perfect"])
