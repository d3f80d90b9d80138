"""Hidden checkers of ``lesson4_learning_rate`` (lessons 4.1 and 4.2).

Expected values are computed from the published curve (``dlcourse.playground``), the
same definition the student's playground uses, never typed in by hand.
"""

from __future__ import annotations

import math

import pytest

from autograder.checkers.answer_key import CURVE_TRUTH, LR_1_OUTCOME
from autograder.checkers.support import Fail, as_letter, describe_found
from autograder.config import threshold_defaults
from dlcourse.data import N_ROWS, n_train
from dlcourse.playground import CURVE, CURVE_LABELS, PANELS

BATCH_SIZE = 256
STEP_EXAMPLE = {"gradient": 2.5, "learning_rate": 0.01}
LETTERS = "abcd"
# Every threshold and its default, declared once (autograder.config.LearningRateThresholds).
DEFAULTS = threshold_defaults("lesson4_learning_rate")


def _check_steps(answers, verdict, name: str, lr: float, exercise: int, other_lr: float) -> None:
    found = answers.integer(name)
    expected = CURVE.steps_to_reach(lr)
    if found == expected:
        verdict.ok("steps.correct", lr=lr)
        return
    if abs(found - expected) == 1:
        raise Fail("steps.off_by_one", name=name, lr=lr, exercise=exercise)
    if found == CURVE.steps_to_reach(other_lr):
        raise Fail("steps.wrong_rate", name=name, found=found, lr=lr, other_lr=other_lr)
    raise Fail("steps.wrong", name=name, found=found, lr=lr, exercise=exercise)


@pytest.mark.grade_cell("test_steps_lr_003", points=1)
def test_steps_lr_003(answers, verdict):
    _check_steps(answers, verdict, "steps_lr_003", 0.03, exercise=1, other_lr=0.1)


@pytest.mark.grade_cell("test_steps_lr_01", points=1)
def test_steps_lr_01(answers, verdict):
    _check_steps(answers, verdict, "steps_lr_01", 0.1, exercise=2, other_lr=0.03)


@pytest.mark.grade_cell("test_lr_1_outcome", points=1)
def test_lr_1_outcome(answers, verdict):
    value = answers.get("lr_1_outcome")
    letter = as_letter(value)
    if letter is None or letter not in LETTERS:
        raise Fail("lr_outcome.unknown_letter", found=describe_found(value))
    if letter != LR_1_OUTCOME:
        raise Fail("lr_outcome.wrong", found=letter)
    verdict.ok("lr_outcome.correct")


@pytest.mark.grade_cell("test_goldilocks_lr", points=1)
def test_goldilocks_lr(answers, verdict):
    lr = answers.number("goldilocks_lr")
    fewest = 1  # a parabola is solved in one step by lr = 1 / L''(w)
    steps = CURVE.steps_to_reach(lr) if lr > 0 else None
    if steps is None:
        raise Fail("goldilocks.never", found=lr)
    if steps > fewest:
        raise Fail("goldilocks.slower", found=lr, steps=steps)
    verdict.ok("goldilocks.correct")


@pytest.mark.grade_cell("test_step_size", points=1)
def test_step_size(answers, verdict, thresholds):
    found = answers.number("step_size")
    expected = STEP_EXAMPLE["gradient"] * STEP_EXAMPLE["learning_rate"]
    rtol = float(thresholds.get("answer_rtol", DEFAULTS["answer_rtol"]))
    if math.isclose(found, expected, rel_tol=rtol):
        verdict.ok("step_size.correct")
        return
    if math.isclose(found, -expected, rel_tol=rtol):
        raise Fail("step_size.negative")
    if math.isclose(found, STEP_EXAMPLE["gradient"] / STEP_EXAMPLE["learning_rate"], rel_tol=rtol):
        raise Fail("step_size.divided")
    raise Fail("step_size.wrong", found=found)


@pytest.mark.grade_cell("test_steps_per_epoch", points=1)
def test_steps_per_epoch(answers, verdict):
    found = answers.integer("steps_per_epoch")
    rows = n_train()
    if found == math.ceil(rows / BATCH_SIZE):
        verdict.ok("steps_per_epoch.correct")
        return
    if found == rows // BATCH_SIZE:
        raise Fail("steps_per_epoch.floor")
    if found in (math.ceil(N_ROWS / BATCH_SIZE), N_ROWS // BATCH_SIZE):
        raise Fail("steps_per_epoch.whole_data", n_rows=N_ROWS)
    raise Fail("steps_per_epoch.wrong", found=found)


@pytest.mark.parametrize("panel", PANELS)
@pytest.mark.grade_cell("test_curve_labels", points=0.5)
def test_curve_labels(answers, verdict, panel):
    labels = answers.mapping("curve_labels")
    keys = {str(k).strip().upper(): v for k, v in labels.items()}
    if panel not in keys:
        raise Fail("curve_label.missing", panel=panel)
    value = keys[panel]
    label = value.strip().lower() if isinstance(value, str) else None
    if label not in CURVE_LABELS:
        raise Fail(
            "curve_label.unknown",
            panel=panel,
            found=describe_found(value),
            labels=", ".join(CURVE_LABELS),
        )
    if label != CURVE_TRUTH[panel]:
        raise Fail("curve_label.wrong", panel=panel, found=label)
    verdict.ok("curve_label.correct", panel=panel)
