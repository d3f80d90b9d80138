"""End to end: the sample class of lesson4_early_stopping, executed for real (real kernels,
real Keras training), captured, and graded once by the hidden checkers."""

import numpy as np
import pytest

from autograder.capture import Artifacts
from autograder.core import Assignment, GradingSettings, grade
from tests.sample_class import expected

pytestmark = pytest.mark.slow
AID = "lesson4_early_stopping"
CORRECT = ["perfect", "style_seed", "style_numpy", "style_add"]


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
    for gid, message_ids in want.get("messages", {}).items():
        found = {c.message_id for c in got.cells[gid].checks}
        assert set(message_ids) <= found, (gid, sorted(found))


def test_whole_class_was_graded(graded):
    assert sorted(graded.results.students) == sorted(graded.students)
    assert sorted(graded.students) == sorted(expected(AID))


def test_every_correct_style_gets_full_marks(graded):
    for student in CORRECT:
        result = graded.results.students[student]
        assert result.score == result.max_score == 15, student
        assert all(c.passed for cell in result.cells.values() for c in cell.checks), student


def test_correct_styles_train_the_same_model(graded):
    """Equivalent spellings build the same network from the same seed: same re-evaluated MAE."""
    values = set()
    for student in CORRECT:
        check = next(
            c
            for c in graded.results.students[student].cells["test_history"].checks
            if c.id == "history_val_mae"
        )
        values.add(check.params["value"])
    assert len(values) == 1, values


def test_blank_is_not_attempted_not_wrong(graded):
    blank = graded.results.students["blank"]
    assert all(cell.not_attempted for cell in blank.cells.values())


def test_wrong_types_get_messages_not_tracebacks(graded):
    result = graded.results.students["wrong_types"]
    for cell in result.cells.values():
        for check in cell.checks:
            assert check.outcome != "error", (check.id, check.message)
            assert "Traceback" not in check.message


def test_capture_is_plain_data_and_checks_never_retrain(graded):
    folder = graded.course.autograded_dir / "perfect" / AID / "artifacts"
    artifacts = Artifacts(folder)
    training = artifacts.read_json("keras/training.json")
    weights = artifacts.read_npz("keras/weights.npz")  # allow_pickle=False inside
    assert training["history"]["params"]["epochs"] == 500
    assert training["callback"]["state"]["attached_to_model"] is True
    assert len(weights) == 8 and weights["w000"].shape == (11, 512)
    split = artifacts.read_json("split/split.json")
    assert len(split["rows"]["X_valid"]) == 320 and min(split["rows"]["X_valid"]) >= 0
    assert np.load(folder / "split" / "arrays.npz", allow_pickle=False)["X_train"].shape == (
        1279,
        11,
    )
    # the checks are a tiny part of grading: no model is trained outside the kernel
    results = graded.results.students.values()
    checks = sum(r.timing.get("check", 0) for r in results)
    execute = sum(r.timing.get("execute", 0) for r in results)
    assert checks < 0.05 * execute, (checks, execute)


def test_grading_twice_gives_identical_results(graded, tmp_path):
    course = graded.course
    assignment = Assignment.from_course(course, AID)
    submission = course.submitted_dir / "perfect" / AID / assignment.notebook
    again = grade(
        submission,
        assignment,
        GradingSettings.from_course(course),
        student="perfect",
        workdir=tmp_path / "again",
    )
    first = graded.results.students["perfect"]
    assert {g: c.score for g, c in again.cells.items()} == {
        g: c.score for g, c in first.cells.items()
    }
    params = {c.id: c.params for cell in first.cells.values() for c in cell.checks}
    params_again = {c.id: c.params for cell in again.cells.values() for c in cell.checks}
    assert params_again == params  # same epochs, same re-evaluated losses, to the last digit


def test_solution_notebook_scores_full_marks(graded, tmp_path):
    course = graded.course
    assignment = Assignment.from_course(course, AID)
    result = grade(
        course.source_dir / AID / assignment.notebook,
        assignment,
        GradingSettings.from_course(course),
        workdir=tmp_path / "solution",
    )
    assert result.status == "graded" and result.score == result.max_score == 15
