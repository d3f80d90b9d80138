"""Hidden checkers of ``lesson5_dropout_batchnorm`` (lessons 5.1 to 5.5).

They judge the plain data captured by ``dlcourse.keras_capture`` and never retrain:
the model is read from its layer configs (normalized by ``keras_model``, cut into hidden blocks
by ``dlcourse.rules.lesson5_dropout_batchnorm``), and the validation MAE is re-computed with a numpy forward pass in
inference mode (Dropout off, BatchNormalization with its moving statistics) from the captured
weights, on the course's validation split. The expected values come from the lesson's text
(COURSE.md), never from the student's kernel.

Points (10):

* ``test_dropout`` (3): a Dropout in every hidden block 1, none after the output 0.5, every
  rate 0.3 1, the Dense layers 3 x Dense(1024, relu) + Dense(1) 0.5;
* ``test_batchnorm`` (2): a BatchNormalization in every hidden block 1.5 (after the layer or
  between a linear Dense and its Activation: both placements of seed 5.4), none after the
  output 0.5;
* ``test_history`` (4): trained on this model with validation data 1, 100 epochs of batch 256
  0.5, adam + MAE 0.5, the final weights reproduce the last ``val_loss`` 1, validation MAE under
  the calibrated threshold 1;
* ``test_regularization_effect`` (1): the letter.
"""

from __future__ import annotations

import math

import pytest

from autograder.checkers.answer_key import EFFECT_ANSWER, EFFECT_LETTERS
from autograder.checkers.support import Fail, as_letter, describe_found
from autograder.config import threshold_defaults
from dlcourse import keras_model as km
from dlcourse.rules import lesson5_dropout_batchnorm as l5

ASSIGNMENT = "lesson5_dropout_batchnorm"
# Every threshold and its default, declared once (autograder.config.DropoutBatchnormThresholds).
DEFAULTS = threshold_defaults(ASSIGNMENT)


EFFECT_WRONG = {
    "a": "db_effect.faster",
    "b": "db_effect.no_overfitting",
    "d": "db_effect.val_worse",
}


@pytest.fixture
def sub(context) -> l5.Submission:
    """The submission being checked, read once (memoized in the context's cache)."""
    if ASSIGNMENT not in context.cache:
        context.cache[ASSIGNMENT] = l5.Submission(
            context.artifacts, context.thresholds, data=context.wine_arrays, defaults=DEFAULTS
        )
    return context.cache[ASSIGNMENT]


@pytest.mark.grade_cell("test_dropout", points=1)
def test_dropout_hidden(sub, verdict):
    verdict.accept(l5.dropout_hidden(sub))


@pytest.mark.grade_cell("test_dropout", points=0.5)
def test_dropout_output(sub, verdict):
    verdict.accept(l5.dropout_output(sub))


@pytest.mark.grade_cell("test_dropout", points=1)
def test_dropout_rate(sub, verdict):
    verdict.accept(l5.dropout_rate(sub))


@pytest.mark.grade_cell("test_dropout", points=0.5)
def test_dense_layers(sub, verdict):
    verdict.accept(l5.dense_layers(sub))


@pytest.mark.grade_cell("test_batchnorm", points=1.5)
def test_batchnorm_blocks(sub, verdict):
    verdict.accept(l5.batchnorm_blocks(sub))


@pytest.mark.grade_cell("test_batchnorm", points=0.5)
def test_batchnorm_output(sub, verdict):
    verdict.accept(l5.batchnorm_output(sub))


@pytest.mark.grade_cell("test_history", points=1)
def test_history_model(sub, verdict):
    verdict.accept(l5.history_model(sub))


@pytest.mark.grade_cell("test_history", points=0.5)
def test_history_fit(sub, verdict):
    verdict.accept(l5.history_fit(sub))


@pytest.mark.grade_cell("test_history", points=0.5)
def test_history_compile(sub, verdict):
    verdict.accept(l5.history_compile(sub))


def _matches(sub: l5.Submission, value: float, series: list[float]) -> list[int]:
    atol, rtol = float(sub.t["db_history_atol"]), float(sub.t["db_history_rtol"])
    return [k for k, v in enumerate(series) if abs(v - value) <= atol + rtol * abs(v)]


@pytest.mark.grade_cell("test_history", points=1)
def test_history_integrity(sub, verdict):
    history = l5.trained_history(sub)
    series = l5.val_loss_of(history)
    if series is None:
        raise Fail("db_history.no_validation")
    trained = l5.trained(sub)
    if trained.loss.name is None:
        raise Fail("db_history.loss_unsupported", found=trained.loss.found)
    data = sub.data()

    def loss_on(x, y) -> float:
        try:
            return km.loss_value(trained.loss, y, trained.predict(x))
        except km.Unsupported as exc:
            raise Fail("db_history.loss_unsupported", found=str(exc)) from None

    value = loss_on(data["X_valid"], data["y_valid"])
    if _matches(sub, value, series[-1:]):
        verdict.ok("db_history.integrity_ok", value=round(value, 5), epochs=len(series))
        return
    earlier = _matches(sub, value, series)
    if earlier:
        raise Fail(
            "db_history.not_last_epoch",
            epoch=earlier[-1] + 1,
            epochs=len(series),
            value=round(value, 5),
            last=round(series[-1], 5),
        )
    if _matches(sub, loss_on(data["X_train"], data["y_train"]), series[-1:]):
        raise Fail("db_history.validation_is_training")
    n = len(data["X_train"])
    for fraction in (0.1, 0.15, 0.2, 0.25, 0.3, 0.33):
        start = int(math.ceil(n * (1.0 - fraction)))
        if 0 < start < n and _matches(
            sub, loss_on(data["X_train"][start:], data["y_train"][start:]), series[-1:]
        ):
            raise Fail("db_history.validation_split", fraction=fraction)
    raise Fail("db_history.mismatch", value=round(value, 5), last=round(series[-1], 5))


@pytest.mark.grade_cell("test_history", points=1)
def test_history_val_mae(sub, verdict):
    trained = l5.trained(sub)
    if trained.view.input_dim not in (None, l5.N_FEATURES):
        raise Fail(
            "db_history.forward_unsupported",
            what=f"the model takes {trained.view.input_dim} inputs",
        )
    data = sub.data()
    value = km.mae(data["y_valid"], trained.predict(data["X_valid"]))
    high, low = float(sub.t["db_val_mae_max"]), float(sub.t["db_val_mae_min"])
    if not math.isfinite(value) or value > high:
        raise Fail("db_history.val_mae_high", value=round(value, 4), threshold=high)
    if value < low:
        raise Fail("db_history.val_mae_implausible", value=round(value, 4), low=low)
    verdict.ok("db_history.val_mae_ok", value=round(value, 4), threshold=high)


@pytest.mark.grade_cell("test_regularization_effect", points=1)
def test_regularization_effect(answers, verdict):
    value = answers.get("regularization_effect")
    letter = as_letter(value)
    if letter is None or letter not in EFFECT_LETTERS:
        raise Fail(
            "db_effect.unknown_letter",
            found=describe_found(value),
            letters=", ".join(f'"{c}"' for c in EFFECT_LETTERS),
        )
    if letter != EFFECT_ANSWER:
        raise Fail(EFFECT_WRONG.get(letter, "db_effect.wrong"), found=letter)
    verdict.ok("db_effect.correct")
