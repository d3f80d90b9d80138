"""Hidden checkers of ``lesson4_early_stopping`` (lessons 4.2 to 4.7).

They judge the plain data captured by ``dlcourse.keras_capture`` and never retrain a
model: the split is matched row by row against the course's data, the callback and the model
are read from their settings and configs, and the validation loss is re-computed with a numpy
forward pass from the captured weights, both on the student's own validation data (to check
that the history belongs to the model) and on the course's validation split (for the
threshold). The expected values come from the lesson text (COURSE.md), never from the
student's kernel.

Points (15): split 2, early_stopping 2, model 3, history 4, best_epoch 1, fit_diagnosis 3.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from autograder.checkers.answer_key import (
    LABEL_ALIASES,
    LABEL_ITEMS,
    REMEDY_LETTERS,
    SET_ITEMS,
)
from autograder.checkers.support import Fail, NotAttempted, describe_found, wine_arrays
from dlcourse import keras_model as km
from dlcourse.rules import lesson4_early_stopping as rules

DIAGNOSIS_ITEMS = [*LABEL_ITEMS, *SET_ITEMS]


DEFAULTS = {**rules.DEFAULTS, "es_val_mae_max": 0.0875, "es_val_mae_min": 0.06}


@pytest.fixture
def sub(context) -> rules.Submission:
    """The submission being checked, analysed once (memoized in the context's cache)."""
    if "lesson4_early_stopping" not in context.cache:
        context.cache["lesson4_early_stopping"] = rules.Submission(
            context.artifacts, context.thresholds, data=wine_arrays, defaults=DEFAULTS
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


def _explainable_epochs(training: rules.Training, n: int) -> list[int]:
    """Epochs whose weights the final model may hold: the one the callback restored, or the
    last one (no restoring). A match anywhere else would be a coincidence."""
    epochs = []
    callbacks = [training.callback] if training.state.get("attached_to_model") else []
    callbacks += training.payload.get("other_early_stopping") or []
    for callback in callbacks:
        best = (callback.get("state") or {}).get("best_epoch")
        if (
            (callback.get("settings") or {}).get("restore_best_weights")
            and rules.is_number(best)
            and 0 <= best < n
        ):
            epochs.append(int(best))
    return [*epochs, n - 1]


def _integrity(sub: rules.Submission) -> dict:
    """Which epoch of the history the final weights belong to (on the student's own data)."""
    training = rules.trained(sub)
    series = training.val_loss
    if series is None:
        raise Fail("es_history.no_validation")
    if training.loss.name is None:
        raise Fail("es_history.loss_unsupported", found=training.loss.found)
    arrays = training.student_split()
    candidates = _explainable_epochs(training, len(series))

    def matches(x, y) -> tuple[float, list[int]]:
        try:
            value = km.loss_value(training.loss, y, training.predict(x))
        except km.Unsupported:
            raise Fail("es_history.loss_unsupported", found=training.loss.found) from None
        return value, [k for k in training.matches(value, series) if k in candidates]

    value, epochs = matches(arrays["X_valid"], arrays["y_valid"])
    if epochs:
        return {"value": value, "epochs": epochs, "series": series}
    if matches(arrays["X_train"], arrays["y_train"])[1]:
        raise Fail("es_history.validation_is_training")
    n = len(arrays["X_train"])
    for fraction in (0.1, 0.15, 0.2, 0.25, 0.3, 0.33):
        start = int(math.ceil(n * (1.0 - fraction)))
        if 0 < start < n and matches(arrays["X_train"][start:], arrays["y_train"][start:])[1]:
            raise Fail("es_history.validation_split", fraction=fraction)
    raise Fail("es_history.forged", value=round(value, 5), best=round(min(series), 5))


@pytest.mark.grade_cell("test_history", points=0.5)
def test_history_integrity(sub, verdict):
    found = sub.memo.get("integrity", lambda: _integrity(sub))
    verdict.ok(
        "es_history.integrity_ok", epoch=found["epochs"][0] + 1, value=round(found["value"], 5)
    )


@pytest.mark.grade_cell("test_history", points=1)
def test_history_restored(sub, verdict):
    training = rules.trained(sub)
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
        "epoch": found["epochs"][-1] + 1,
    }
    attached = training.state.get("attached_to_model")
    if not attached and not training.payload.get("other_early_stopping"):
        raise Fail("es_history.not_restored_no_callback", **params)
    callback = (
        training.settings
        if attached
        else (training.payload["other_early_stopping"][0].get("settings") or {})
    )
    if callback.get("restore_best_weights") is not True:
        raise Fail("es_history.not_restored", **params)
    if callback.get("monitor") != rules.ES_MONITOR:
        raise Fail(
            "es_history.restored_by_loss", monitor=rules.shown(callback.get("monitor")), **params
        )
    raise Fail("es_history.not_best", **params)


@pytest.mark.grade_cell("test_history", points=1)
def test_history_val_mae(sub, verdict):
    training = rules.trained(sub)
    data = sub.data()
    if training.view.input_dim not in (None, rules.N_FEATURES):
        raise Fail(
            "es_history.forward_unsupported",
            what=f"keras.Input(shape=({training.view.input_dim},))",
        )
    value = km.mae(data["y_valid"], training.predict(data["X_valid"]))
    high, low = float(sub.t["es_val_mae_max"]), float(sub.t["es_val_mae_min"])
    if not math.isfinite(value) or value > high:
        raise Fail("es_history.val_mae_high", value=round(value, 4), threshold=high)
    if value < low:
        raise Fail("es_history.val_mae_implausible", value=round(value, 4), low=low)
    verdict.ok("es_history.val_mae_ok", value=round(value, 4), threshold=high)


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
    restored = training.state.get("best_epoch")
    if rules.is_number(restored) and found == restored + 1:
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
