"""Hidden checkers of ``lesson4_early_stopping`` (lessons 4.2 to 4.7).

They judge the plain data captured by ``dlcourse.keras_capture`` and never retrain a
model: the split is matched row by row against the course's data, the callback and the model
are read from their settings and configs, and the validation loss is re-computed with a numpy
forward pass from the captured weights, both on the student's own validation data (to check
that the history belongs to the model) and on rows the model did not train on (for the
threshold: the course's validation split, or, for a student who split otherwise, their own
validation rows that are not training rows; see ``held_out_rows``). The expected values come
from the lesson text (COURSE.md), never from the student's kernel.

Points (15): split 2, early_stopping 2, model 3, history 4, best_epoch 1, fit_diagnosis 3.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from autograder.checkers.answer_key import (
    LABEL_ALIASES,
    LABEL_ITEMS,
    REMEDY_LETTERS,
    SET_ITEMS,
)
from autograder.checkers.support import Fail, NotAttempted, describe_found
from autograder.config import threshold_defaults
from dlcourse import keras_model as km
from dlcourse.rules import lesson4_early_stopping as rules

DIAGNOSIS_ITEMS = [*LABEL_ITEMS, *SET_ITEMS]


# Every threshold and its default, declared once (autograder.config.EarlyStoppingThresholds).
DEFAULTS = threshold_defaults("lesson4_early_stopping")


@pytest.fixture
def sub(context) -> rules.Submission:
    """The submission being checked, analysed once (memoized in the context's cache)."""
    if "lesson4_early_stopping" not in context.cache:
        context.cache["lesson4_early_stopping"] = rules.Submission(
            context.artifacts, context.thresholds, data=context.wine_arrays, defaults=DEFAULTS
        )
    return context.cache["lesson4_early_stopping"]


@pytest.mark.grade_cell("test_split", points=1)
def test_split_rows(sub, verdict):
    verdict.accept(rules.split_rows(sub))


@pytest.mark.grade_cell("test_split", points=1)
def test_split_scaling(sub, verdict):
    verdict.accept(rules.split_scaling(sub))


@pytest.mark.grade_cell("test_early_stopping", points=0.5)
def test_early_stopping_monitor(sub, verdict):
    verdict.accept(rules.early_stopping_monitor(sub))


@pytest.mark.grade_cell("test_early_stopping", points=0.5)
def test_early_stopping_min_delta(sub, verdict):
    verdict.accept(rules.early_stopping_min_delta(sub))


@pytest.mark.grade_cell("test_early_stopping", points=0.5)
def test_early_stopping_patience(sub, verdict):
    verdict.accept(rules.early_stopping_patience(sub))


@pytest.mark.grade_cell("test_early_stopping", points=0.5)
def test_early_stopping_restore(sub, verdict):
    verdict.accept(rules.early_stopping_restore(sub))


@pytest.mark.grade_cell("test_model", points=2)
def test_model_architecture(sub, verdict):
    verdict.accept(rules.model_architecture(sub))


@pytest.mark.grade_cell("test_model", points=0.5)
def test_model_optimizer(sub, verdict):
    verdict.accept(rules.model_optimizer(sub))


@pytest.mark.grade_cell("test_model", points=0.5)
def test_model_loss(sub, verdict):
    verdict.accept(rules.model_loss(sub))


@pytest.mark.grade_cell("test_history", points=0.5)
def test_history_fit(sub, verdict):
    verdict.accept(rules.history_fit(sub))


@pytest.mark.grade_cell("test_history", points=0.5)
def test_history_callback(sub, verdict):
    verdict.accept(rules.history_callback(sub))


@pytest.mark.grade_cell("test_history", points=0.5)
def test_history_stopped(sub, verdict):
    verdict.accept(rules.history_stopped(sub))


def _integrity(sub: rules.Submission) -> dict:
    """The final weights must be those of the epoch the training implies.

    That epoch comes from the recorded series, not from the callback's ``best_epoch``: the
    rule of the EarlyStopping that took part in ``fit``, replayed on its monitored series
    (``rules.Claims``), gives the epoch ``restore_best_weights=True`` puts back; without a
    restoring callback it is the last epoch. The loss of the captured final weights on the
    student's own validation data (numpy forward pass) must equal that epoch's ``val_loss``.

    Tolerance (``es_history_atol`` + ``es_history_rtol`` × value, 1e-6 + 1e-5 × v, about 2e-6
    at the course's MAE of 0.09): Keras computes ``val_loss`` in float32 (float32 weights and
    matmuls, a batch-weighted float32 mean), the checker in float64 from the same float32
    weights. float32's relative precision is 2**-24 ≈ 6e-8; rounding accumulated over the
    11→512→512→512→1 dot products and the mean stays below 1e-7 absolute on this model
    (REFERENCE.md §2; about 2e-9 on the lesson's run, ``tests/test_training_claims.py``), so
    the tolerance keeps a margin of 20 or more, while staying 500 times smaller than
    ``min_delta`` (0.001), the smallest change between epochs the callback counts.
    """
    training = rules.trained(sub)
    series = training.val_loss
    if series is None:
        raise Fail("es_history.no_validation")
    if training.loss.name is None:
        raise Fail("es_history.loss_unsupported", found=training.loss.found)
    arrays = training.student_split()
    claims = rules.training_claims(sub)
    if claims.used and claims.replay is None:
        raise Fail("es_history.callback_unreadable", argument=claims.unreadable)
    expected = claims.final_epoch

    def loss_on(x, y) -> float:
        try:
            return km.loss_value(training.loss, y, training.predict(x))
        except km.Unsupported:
            raise Fail("es_history.loss_unsupported", found=training.loss.found) from None

    value = loss_on(arrays["X_valid"], arrays["y_valid"])
    if expected < len(series) and training.matches(value, series[expected : expected + 1]):
        return {"value": value, "epoch": expected, "series": series, "claims": claims}
    elsewhere = training.matches(value, series)
    if elsewhere:
        params = {
            "value": round(value, 5),
            "expected": round(series[expected], 5),
            "epoch": expected + 1,
            "found_epoch": elsewhere[0] + 1,
        }
        if claims.restores:
            raise Fail("es_history.weights_not_restored", **params)
        raise Fail("es_history.weights_not_last", **params)
    if training.matches(loss_on(arrays["X_train"], arrays["y_train"]), series):
        raise Fail("es_history.validation_is_training")
    n = len(arrays["X_train"])
    for fraction in (0.1, 0.15, 0.2, 0.25, 0.3, 0.33):
        start = int(math.ceil(n * (1.0 - fraction)))
        if 0 < start < n and training.matches(
            loss_on(arrays["X_train"][start:], arrays["y_train"][start:]), series
        ):
            raise Fail("es_history.validation_split", fraction=fraction)
    raise Fail("es_history.forged", value=round(value, 5), best=round(min(series), 5))


@pytest.mark.grade_cell("test_history", points=0.5)
def test_history_integrity(sub, verdict):
    found = sub.memo.get("integrity", lambda: _integrity(sub))
    verdict.ok("es_history.integrity_ok", epoch=found["epoch"] + 1, value=round(found["value"], 5))


@pytest.mark.grade_cell("test_history", points=1)
def test_history_restored(sub, verdict):
    rules.trained(sub)  # a history that cannot be read says why, not "unverified"
    try:
        found = sub.memo.get("integrity", lambda: _integrity(sub))
    except Fail as exc:
        if exc.message_id == "es_history.no_validation":
            raise
        raise Fail("es_history.restored_unverified") from None
    best = min(found["series"])
    tolerance = rules.ES_MIN_DELTA + float(sub.t["es_history_atol"])
    if found["value"] <= best + tolerance:
        verdict.ok("es_history.restored_ok", value=round(found["value"], 5), best=round(best, 5))
        return
    params = {
        "value": round(found["value"], 5),
        "best": round(best, 5),
        "epoch": found["epoch"] + 1,
    }
    claims = found["claims"]
    if not claims.used:
        raise Fail("es_history.not_restored_no_callback", **params)
    if not claims.settings.get("restore_best_weights"):
        raise Fail("es_history.not_restored", **params)
    if claims.settings.get("monitor") == "loss":
        raise Fail(
            "es_history.restored_by_loss",
            monitor=rules.shown(claims.settings.get("monitor")),
            **params,
        )
    raise Fail("es_history.not_best", **params)


MIN_HELD_OUT = 50  # fewer rows than this measure an MAE too noisily to grade


def held_out_rows(sub: rules.Submission, data: dict) -> tuple[np.ndarray, np.ndarray, str]:
    """The rows the validation MAE is measured on: rows the student's model did not train on.

    * The student's split has the course's rows (the lesson's ``train_test_split``): the
      course's validation split, scaled as the course scales it; the thresholds are
      calibrated on exactly these rows (``where="course"``).
    * Another split (another ``random_state`` or ``test_size``, the validation set taken from
      the training data...): the course's validation rows would include rows the model trained
      on, and score it on them. The MAE is measured instead on the student's own validation
      rows that are not training rows, as the student's arrays hold them (so scaled as the
      model was trained; ``where="own"``); a row identical to a training row (the data has
      duplicates) counts as trained on. When fewer than ``MIN_HELD_OUT`` such rows are left
      (``X_valid`` is ``X_train``, or shares most of it), the course's validation rows that
      are not training rows, scaled as the course scales them (``where="held_out"``); with
      fewer than ``MIN_HELD_OUT`` of those too, nothing is left to measure:
      ``es_history.val_mae_no_held_out``.
    * No usable split (its own check says why): the course's validation split, as before.
    """
    try:
        split = sub.memo.get("split", lambda: rules._split(sub))
    except (Fail, NotAttempted):
        split = None
    if split is None or rules._same_rows(split, data["train_index"], data["valid_index"]):
        return data["X_valid"], data["y_valid"], "course"
    trained_on = np.zeros(len(split.canon), dtype=bool)
    trained_on[split.canon[split.train_rows]] = True
    own = ~trained_on[split.canon[split.valid_rows]]
    if own.sum() >= MIN_HELD_OUT:
        return split.arrays["X_valid"][own], split.arrays["y_valid"][own], "own"
    course = ~trained_on[split.canon[data["valid_index"]]]
    if course.sum() >= MIN_HELD_OUT:
        return data["X_valid"][course], data["y_valid"][course], "held_out"
    raise Fail("es_history.val_mae_no_held_out", n=int(course.sum()), minimum=MIN_HELD_OUT)


@pytest.mark.grade_cell("test_history", points=1)
def test_history_val_mae(sub, verdict):
    """The final model's MAE on rows it did not train on (``held_out_rows``), between the
    calibrated bounds."""
    training = rules.trained(sub)
    data = sub.data()
    if training.view.input_dim not in (None, rules.N_FEATURES):
        raise Fail(
            "es_history.forward_unsupported",
            what=f"keras.Input(shape=({training.view.input_dim},))",
        )
    x, y, where = held_out_rows(sub, data)
    value = km.mae(y, training.predict(x))
    rows = {"where": where, "n": len(y)}
    high, low = float(sub.t["es_val_mae_max"]), float(sub.t["es_val_mae_min"])
    if not math.isfinite(value) or value > high:
        raise Fail("es_history.val_mae_high", value=round(value, 4), threshold=high, **rows)
    if value < low:
        raise Fail("es_history.val_mae_implausible", value=round(value, 4), low=low, **rows)
    verdict.ok("es_history.val_mae_ok", value=round(value, 4), threshold=high, **rows)


@pytest.mark.grade_cell("test_best_epoch", points=1)
def test_best_epoch(sub, answers, verdict):
    found = answers.integer("best_epoch")
    try:
        training = rules.trained(sub)
    except (Fail, NotAttempted):
        training = None
    series = training.val_loss if training is not None else None
    if not series:
        raise Fail("es_best_epoch.no_history")
    lowest = min(series)
    best = {k + 1 for k, v in enumerate(series) if v == lowest}
    if found in best:
        verdict.ok("es_best_epoch.correct")
        return
    if not 1 <= found <= len(series):
        if found + 1 in best:
            raise Fail("es_best_epoch.zero_based")
        raise Fail("es_best_epoch.out_of_range", found=found, epochs=len(series))
    if found + 1 in best:
        raise Fail("es_best_epoch.zero_based")
    claims = rules.training_claims(sub)
    restored = claims.replay.restored if claims.replay is not None else None
    if restored is not None and found == restored - claims.initial_epoch + 1:
        raise Fail("es_best_epoch.restored_epoch")
    if found == len(series):
        raise Fail("es_best_epoch.last_epoch")
    raise Fail("es_best_epoch.wrong", found=found)


def _letters(value: Any) -> frozenset[str] | None:
    if isinstance(value, str):
        items = [c for c in value.lower() if c.isalpha()]
    elif isinstance(value, (frozenset, list, tuple)):
        items = []
        for item in value:
            if not isinstance(item, str) or len(item.strip().rstrip(")")) != 1:
                return None
            items.append(item.strip().rstrip(")").lower())
    else:
        return None
    if not items or any(c not in REMEDY_LETTERS for c in items):
        return None
    return frozenset(items)


@pytest.mark.parametrize("item", DIAGNOSIS_ITEMS)
@pytest.mark.grade_cell("test_fit_diagnosis", points=0.5)
def test_fit_diagnosis(answers, verdict, item):
    mapping = answers.mapping("fit_diagnosis")
    keys = {str(k).strip(): v for k, v in mapping.items()}
    if item not in keys:
        raise Fail("es_diagnosis.missing", item=item)
    value = keys[item]
    if item in LABEL_ITEMS:
        label = LABEL_ALIASES.get(value.strip().lower()) if isinstance(value, str) else None
        if label is None:
            raise Fail("es_diagnosis.unknown_label", item=item, found=describe_found(value))
        if label != LABEL_ITEMS[item]:
            raise Fail("es_diagnosis.wrong", item=item, found=label)
        verdict.ok("es_diagnosis.correct", item=item)
        return
    letters = _letters(value)
    if letters is None:
        raise Fail(
            "es_diagnosis.remedies_format",
            item=item,
            found=describe_found(value),
            letters=", ".join(REMEDY_LETTERS),
        )
    if letters != SET_ITEMS[item]:
        raise Fail("es_diagnosis.remedies_wrong", item=item)
    verdict.ok("es_diagnosis.remedies_correct", item=item)
