"""Hidden checkers of lesson4_early_stopping on crafted artifacts (no kernel, no TensorFlow).

Every entry of the misconception catalogue (docs/misconceptions_lesson4_early_stopping.md) is
produced here from a realistic wrong submission, written as the capture would write it: the
split through ``keras_capture.capture_split`` on real data, the Keras objects as the plain data
``keras_capture`` produces. The "trained" model is a random-features network whose output layer
is solved by least squares, so the numpy forward pass has real weights to evaluate. All crafted
students are checked in one pytest session (``run_checks_many``), which keeps this file fast.
"""

from __future__ import annotations

import copy
import functools
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from autograder.check import run_checks_many
from autograder.checkers.support import wine_arrays
from autograder.config import load_course
from autograder.messages import catalogue
from dlcourse import capture, keras_capture
from dlcourse import keras_model as km
from dlcourse.rules import lesson4_early_stopping as rules
from tests.conftest import ROOT
from tests.helpers import write_execution

AID = "lesson4_early_stopping"
POINTS = {
    "test_split": 2,
    "test_early_stopping": 2,
    "test_model": 3,
    "test_history": 4,
    "test_best_epoch": 1,
    "test_fit_diagnosis": 3,
}
THRESHOLDS = load_course(ROOT / "course_config.py").thresholds[AID]
MISSING = object()  # the variable is not defined in the kernel
NOT_CAPTURED = object()  # the test cell never ran: nothing was written for this answer
RIGHT_DIAGNOSIS = {
    "una_raza": "underfitting",
    "perros_marrones": "overfitting",
    "curva_A": "overfitting",
    "curva_B": "underfitting",
    "remedios_underfitting": {"a", "b", "e"},
    "remedios_overfitting": {"c", "d"},
}


class KerasObject:
    """Stands in for a live Keras object in ``answers/<name>.json`` (described as "other")."""

    def __repr__(self) -> str:
        return "<keras object>"


# --- the course data and a small "trained" network ---------------------------------------------


@pytest.fixture(scope="module")
def data():
    return wine_arrays()


def _pandas_split(data, random_state=3, test_size=0.2):
    import pandas as pd
    from sklearn.model_selection import train_test_split

    X = pd.DataFrame(data["raw_X"])
    y = pd.Series(data["raw_y"])
    return train_test_split(X, y, test_size=test_size, random_state=random_state)


def _minmax(train, *others):
    low, high = train.min(axis=0), train.max(axis=0)
    return [(part - low) / (high - low) for part in (train, *others)]


def fake_network(data, hidden=384, seed=0, shift=0.0, fit_on="all"):
    """Dense(hidden, relu) with random weights + Dense(1) solved by least squares (384 wide:
    its MAE stays under the threshold on any 320 rows, not only the course's validation rows,
    since a student's own split is scored on its own validation rows)."""
    return copy.deepcopy(_fake_network(data["X_train"].shape, hidden, seed, shift, fit_on))


@functools.lru_cache(maxsize=8)
def _fake_network(_, hidden, seed, shift, fit_on):
    data = wine_arrays()
    rng = np.random.default_rng(seed)
    w1 = rng.normal(0.0, 0.8, (11, hidden))
    b1 = rng.normal(0.0, 0.5, hidden)
    if fit_on == "valid":
        x, y = data["X_valid"], data["y_valid"]
    elif fit_on == "random_state_42":  # a student's own training rows, as they scaled them
        arrays = split_with(data, random_state=42, as_numpy=True)
        x, y = arrays["X_train"], arrays["y_train"]
    else:
        x, y = np.r_[data["X_train"], data["X_valid"]], np.r_[data["y_train"], data["y_valid"]]
    features = np.c_[np.maximum(x @ w1 + b1, 0.0), np.ones(len(x))]
    solution = np.linalg.solve(features.T @ features + 1e-3 * np.eye(hidden + 1), features.T @ y)
    w2, b2 = solution[:-1, None], np.array([solution[-1] + shift])
    arrays = {"w000": w1, "w001": b1, "w002": w2, "w003": b2}
    index = [
        {
            "key": "w000",
            "layer": 0,
            "layer_name": "dense",
            "name": "kernel",
            "path": "dense/kernel",
            "shape": [11, hidden],
        },
        {
            "key": "w001",
            "layer": 0,
            "layer_name": "dense",
            "name": "bias",
            "path": "dense/bias",
            "shape": [hidden],
        },
        {
            "key": "w002",
            "layer": 1,
            "layer_name": "dense_1",
            "name": "kernel",
            "path": "dense_1/kernel",
            "shape": [hidden, 1],
        },
        {
            "key": "w003",
            "layer": 1,
            "layer_name": "dense_1",
            "name": "bias",
            "path": "dense_1/bias",
            "shape": [1],
        },
    ]
    desc = model_desc([dense(hidden, "relu", 11), dense(1, "linear", hidden)])
    return desc, index, arrays


def predict(desc, index, arrays, x):
    view = km.normalize(desc)
    return km.forward(view, km.weights_by_layer(index, arrays), x)


# --- plain-data descriptions, as keras_capture writes them ------------------------------------


def dense(units, activation="linear", n_in=None, act_name=None, act_module=None, name="dense"):
    layer = {
        "class_name": "Dense",
        "module": "keras.src.layers.core.dense",
        "name": name,
        "config": {"name": name, "units": units, "activation": activation, "use_bias": True},
        "activation": {
            "name": act_name or activation,
            "module": act_module or "keras.src.activations.activations",
        },
        "weights": [],
    }
    if n_in:
        layer["weights"] = [
            {"name": "kernel", "path": f"{name}/kernel", "shape": [n_in, units]},
            {"name": "bias", "path": f"{name}/bias", "shape": [units]},
        ]
    return layer


def plain_layer(class_name, **config):
    layer = {
        "class_name": class_name,
        "module": "keras.src.layers",
        "name": class_name.lower(),
        "config": {"name": class_name.lower(), **config},
        "weights": [],
    }
    if class_name == "Activation":
        layer["activation"] = {"name": config["activation"], "module": "keras"}
    return layer


def model_desc(layers, input_shape=(None, 11), loss=None, optimizer=None, compiled=True):
    return {
        "type": "keras.src.models.sequential.Sequential",
        "is_model": True,
        "class_name": "Sequential",
        "built": input_shape is not None,
        "input_shape": list(input_shape) if input_shape else None,
        "layers": layers,
        "compile": {
            "compiled": compiled,
            "optimizer": optimizer
            or {"kind": "object", "class_name": "Adam", "learning_rate": 0.001},
            "loss": loss or {"kind": "str", "name": "mae"},
        },
    }


def spec_model(**kw):
    hidden = [dense(512, "relu", 11 if i == 0 else 512, name=f"dense_{i}") for i in range(3)]
    return model_desc([*hidden, dense(1, "linear", 512, name="dense_3")], **kw)


def callback_settings(**changes):
    settings = {
        "monitor": "val_loss",
        "min_delta": 0.001,
        "min_delta_raw": 0.001,
        "patience": 20,
        "restore_best_weights": True,
        "mode": "auto",
        "baseline": None,
        "start_from_epoch": 0,
        "verbose": 0,
    }
    settings.update(changes)
    if "min_delta" in changes:
        settings["min_delta_raw"] = changes["min_delta"]
        settings["min_delta"] = (
            abs(changes["min_delta"]) if isinstance(changes["min_delta"], (int, float)) else None
        )
    return settings


def callback_desc(settings=None, state=None):
    return {
        "type": "keras.src.callbacks.early_stopping.EarlyStopping",
        "is_callback": True,
        "is_early_stopping": True,
        "settings": settings or callback_settings(),
        "state": state,
    }


# --- a crafted student --------------------------------------------------------------------------


@dataclass
class Student:
    """Everything the hidden test cells would have captured for one submission."""

    split: dict[str, Any]
    callback: Any
    model: Any
    training: dict | None
    weights: dict[str, np.ndarray]
    best_epoch: Any
    fit_diagnosis: Any
    cells: dict[str, dict] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)  # answers as the kernel held them
    callback_payload: dict | None = None  # keras/early_stopping.json, when not the default

    def write(self, folder: Path, monkeypatch, split_from: Path | None = None) -> Path:
        monkeypatch.setenv(capture.ENV_ARTIFACTS, str(folder))
        if split_from is None:
            keras_capture.capture_split({k: v for k, v in self.split.items() if v is not MISSING})
        else:  # the very same split as an already captured student: copy its files
            shutil.copytree(split_from / "split", folder / "split")
            (folder / "answers").mkdir(parents=True, exist_ok=True)
            shutil.copy(split_from / "answers" / "split.json", folder / "answers" / "split.json")
        values = {
            "early_stopping": KerasObject(),
            "model": KerasObject(),
            "history": KerasObject(),
            "best_epoch": self.best_epoch,
            "fit_diagnosis": self.fit_diagnosis,
            **self.values,
        }
        names = [k for k, v in values.items() if v is not NOT_CAPTURED]
        capture.answers({k: v for k, v in values.items() if v is not MISSING}, *names)
        keras = folder / "keras"
        keras.mkdir(parents=True, exist_ok=True)
        if self.callback_payload is not None:
            (keras / "early_stopping.json").write_text(json.dumps(self.callback_payload))
        elif self.callback is not None:
            (keras / "early_stopping.json").write_text(
                json.dumps({"name": "early_stopping", "present": True, "callback": self.callback})
            )
        if self.model is not None:
            (keras / "model.json").write_text(
                json.dumps({"name": "model", "present": True, "model": self.model})
            )
        if self.training is not None:
            (keras / "training.json").write_text(json.dumps(self.training))
            with open(keras / "weights.npz", "wb") as handle:
                np.savez(handle, **self.weights)
        write_execution(folder, self.cells)
        return folder


@functools.lru_cache(maxsize=1)
def _right_split():
    data = wine_arrays()
    X_train, X_valid, y_train, y_valid = _pandas_split(data)
    return (*_minmax(X_train, X_valid), *_minmax(y_train, y_valid))


def base_student(data) -> Student:
    X_train, X_valid, y_train, y_valid = (part.copy() for part in _right_split())
    desc, index, arrays = fake_network(data)
    value = km.mae(data["y_valid"], predict(desc, index, arrays, data["X_valid"]))
    best = 29  # 0-based epoch of the minimum; training stops 20 epochs later
    n = best + 21
    val = [
        value + 0.04 * (best - k) / best if k < best else value + 0.0002 * (k - best)
        for k in range(n)
    ]
    loss = [0.2 * math.exp(-k / 15) + 0.05 for k in range(n)]
    training = {
        "model_name": "model",
        "history_name": "history",
        "callback_name": "early_stopping",
        "history_present": True,
        "history": {
            "type": "keras.src.callbacks.history.History",
            "is_history": True,
            "history": {"loss": loss, "val_loss": val},
            "params": {"verbose": 0, "epochs": 500, "steps": 5},
            "epoch": list(range(n)),
            "model_is_model": True,
            "has_model": True,
            "model_history_is_history": True,
        },
        "model_present": True,
        "model": desc,
        "weights": index,
        "model_state": {"optimizer_iterations": 5 * n, "stop_training": True},
        "callback_present": True,
        "callback": callback_desc(
            state={
                "stopped_epoch": n - 1,
                "best_epoch": best,
                "wait": 20,
                "best": value,
                "attached": True,
                "attached_to_model": True,
                "attached_type": "keras.src.models.Sequential",
            }
        ),
        "other_early_stopping": [],
    }
    return Student(
        split={"X_train": X_train, "X_valid": X_valid, "y_train": y_train, "y_valid": y_valid},
        callback=callback_desc(),
        model=spec_model(),
        training=training,
        weights=arrays,
        best_epoch=best + 1,
        fit_diagnosis=copy.deepcopy(RIGHT_DIAGNOSIS),
    )


# --- mutations: one realistic mistake each ----------------------------------------------------


def split_with(
    data, random_state=3, test_size=0.2, scale="train", target="train", valid="same", as_numpy=False
):
    X_train, X_valid, y_train, y_valid = _pandas_split(data, random_state, test_size)
    if scale == "train":
        X_train, X_valid2 = _minmax(X_train, X_valid)
    elif scale == "whole":
        low, high = data["raw_X"].min(axis=0), data["raw_X"].max(axis=0)
        X_train, X_valid2 = (X_train - low) / (high - low), (X_valid - low) / (high - low)
    elif scale == "standard":
        mean, std = X_train.mean(axis=0), X_train.std(axis=0)
        X_train, X_valid2 = (X_train - mean) / std, (X_valid - mean) / std
    else:
        X_valid2 = X_valid
    if valid == "own":
        X_valid2 = _minmax(X_valid)[0]
    elif valid == "raw":
        X_valid2 = X_valid
    if target == "train":
        y_train, y_valid = _minmax(y_train, y_valid)
    out = {"X_train": X_train, "X_valid": X_valid2, "y_train": y_train, "y_valid": y_valid}
    if as_numpy:
        out = {k: v.to_numpy() for k, v in out.items()}
    return out


def with_history(student: Student, val=None, loss=None, params=None, state=None, **history):
    h = student.training["history"]
    if val is not None:
        h["history"]["val_loss"] = val
    if loss is not None:
        h["history"]["loss"] = loss
    if val is False:
        del h["history"]["val_loss"]
    if params is not None:
        h["params"].update(params)
    if state is not None:
        student.training["callback"]["state"].update(state)
    h.update(history)


def _value(student: Student, data, x=None, y=None) -> float:
    t = student.training
    x = data["X_valid"] if x is None else x
    y = data["y_valid"] if y is None else y
    return km.mae(y, predict(t["model"], t["weights"], student.weights, x))


def _series_with(value, at, n, above=0.0):
    """A val_loss curve whose minimum sits at ``at`` (value - above) and equals ``value`` at
    its last epoch when ``above`` > 0 (or at ``at`` otherwise)."""
    low = value - above
    series = [
        low + 0.03 * (at - k) / max(at, 1)
        if k < at
        else low + (k - at) * above / max(n - 1 - at, 1)
        for k in range(n)
    ]
    if not above:
        series = [
            low + 0.03 * (at - k) / at if k < at else low + 0.0002 * (k - at) for k in range(n)
        ]
    return series


def _retrain_weights(student, data, **kw):
    desc, index, arrays = fake_network(data, **kw)
    student.training["model"], student.training["weights"], student.weights = desc, index, arrays
    value = _value(student, data)
    series = student.training["history"]["history"]["val_loss"]
    best = int(np.argmin(series))
    student.training["history"]["history"]["val_loss"] = [v - series[best] + value for v in series]


def _validation_on(student, data, x, y):
    value = _value(student, data, x, y)
    n = 50
    with_history(student, val=_series_with(value, 29, n))


def _history_on_own_split(student: Student) -> None:
    """A student's history was measured on their own validation data: shift the crafted
    curve so that its restored epoch is the model's loss on that data (when usable)."""
    try:
        arrays = _student_split(student)
        x, y = arrays["X_valid"].astype(float), arrays["y_valid"].astype(float)
    except (KeyError, ValueError, TypeError, AttributeError):
        return
    if x.ndim != 2 or x.shape[1] != 11 or len(x) != len(y):
        return
    t = student.training
    value = km.mae(y, predict(t["model"], t["weights"], student.weights, x))
    if not math.isfinite(value):
        return
    series = t["history"]["history"]["val_loss"]
    best = t["callback"]["state"]["best_epoch"]
    t["history"]["history"]["val_loss"] = [v - series[best] + value for v in series]


def _student_split(student):
    return {
        k: (v.to_numpy() if hasattr(v, "to_numpy") else np.asarray(v))
        for k, v in student.split.items()
    }


def gentle_curve(n=500, at=29, drop=0.04, rise=0.00004):
    """A val_loss shape (relative to its minimum, 0 at epoch ``at``): falls by ``drop`` until
    ``at``, then rises by ``rise`` per epoch (with patience 20 the last epoch sits within
    min_delta of the minimum)."""
    return [drop * (at - k) / at if k < at else rise * (k - at) for k in range(n)]


def loss_curve(n=500):
    return [0.2 * math.exp(-k / 15) + 0.05 for k in range(n)]


def _replay(settings, history):
    monitor = settings["monitor"]
    series = history.get(monitor) or [None] * len(history["loss"])
    return rules.replay_early_stopping(
        series,
        min_delta=settings["min_delta"],
        patience=settings["patience"],
        direction=rules.monitor_direction(monitor, settings["mode"]),
        baseline=settings["baseline"],
        start_from_epoch=settings["start_from_epoch"],
    )


def settle(s: Student, d, val, loss=None, epochs=500, used=True, weights_at=None):
    """What ``fit(epochs=epochs)`` leaves when the model's val_loss follows the shape ``val``
    (and its training loss ``loss``): the history is cut where the callback's rule fires (when
    the callback takes part, ``used``), the callback's state is the rule's, and the curve is
    shifted so that the final weights (the restored epoch, or the last; or ``weights_at``)
    hold the model's real validation loss. Everything is consistent, as after an honest fit."""
    t = s.training
    settings = t["callback"]["settings"]
    value = _value(s, d)
    loss = list(loss or loss_curve(epochs))[:epochs]
    val = list(val)[:epochs]
    for _ in range(2):  # the shift moves float32 roundings: replay again on the shifted curve
        history = {"loss": loss, "val_loss": val}
        replay = _replay(settings, history) if used else None
        n = replay.seen if replay and replay.fired is not None else epochs
        restores = replay and settings["restore_best_weights"] and replay.restored is not None
        final = replay.restored if restores else n - 1
        final = final if weights_at is None else weights_at
        val = [v - val[final] + value for v in val]
    h = t["history"]
    h["history"] = {"loss": loss[:n], "val_loss": val[:n]}
    s.best_epoch = int(np.argmin(val[:n])) + 1  # the student reads it off their own history
    h["params"]["epochs"] = epochs
    h["epoch"] = list(range(n))
    t["model_state"] = {
        "optimizer_iterations": 5 * n,
        "stop_training": bool(replay and replay.fired),
    }
    state = t["callback"].get("state")
    if used:
        best = replay.best if settings["monitor"] != "val_loss" else val[replay.best_epoch]
        state.update(
            stopped_epoch=replay.stopped_epoch,
            best_epoch=replay.best_epoch,
            wait=replay.wait,
            best=best,
            attached=True,
            attached_to_model=True,
        )
    elif isinstance(state, dict):
        state.update(
            stopped_epoch=0,
            best_epoch=None,
            wait=0,
            best=None,
            attached=False,
            attached_to_model=False,
        )
    return n


def trained_with(s: Student, d, val=None, loss=None, epochs=500, changed=None, **settings):
    """The student created ``EarlyStopping(**settings)`` and trained with it (the same settings
    captured before and after ``fit``; ``changed`` overrides the after-fit capture only)."""
    s.callback = callback_desc(callback_settings(**settings))
    s.training["callback"]["settings"] = callback_settings(**{**settings, **(changed or {})})
    return settle(s, d, val if val is not None else gentle_curve(epochs), loss, epochs)


CASES: dict[str, tuple[Any, dict[str, set[str]]]] = {}


def case(name, expect):
    def register(function):
        CASES[name] = (function, expect)
        return function

    return register


# split -------------------------------------------------------------------------------------
case("split_numpy_minmaxscaler", {})(lambda s, d: setattr(s, "split", split_with(d, as_numpy=True)))
case("split_random_state_42", {"test_split": {"es_split.random_state"}})(
    lambda s, d: setattr(s, "split", split_with(d, random_state=42))
)
case("split_test_size", {"test_split": {"es_split.test_size"}})(
    lambda s, d: setattr(s, "split", split_with(d, test_size=0.25))
)
case("split_leakage", {"test_split": {"es_split.leakage"}})(
    lambda s, d: setattr(s, "split", split_with(d, scale="whole"))
)
case("split_not_scaled", {"test_split": {"es_split.not_scaled"}})(
    lambda s, d: setattr(s, "split", split_with(d, scale="none", target="none"))
)
case("split_standardized", {"test_split": {"es_split.standardized"}})(
    lambda s, d: setattr(s, "split", split_with(d, scale="standard"))
)
case("split_valid_own_scale", {"test_split": {"es_split.valid_own_scale"}})(
    lambda s, d: setattr(s, "split", split_with(d, valid="own"))
)
case("split_valid_not_scaled", {"test_split": {"es_split.valid_not_scaled"}})(
    lambda s, d: setattr(s, "split", split_with(d, valid="raw"))
)
case("split_target_not_scaled", {"test_split": {"es_split.target_not_scaled"}})(
    lambda s, d: setattr(s, "split", split_with(d, target="none"))
)


@case("split_misaligned", {"test_split": {"es_split.misaligned"}})
def _(s, d):
    s.split["y_train"] = s.split["y_train"].sample(frac=1.0, random_state=0).to_numpy()


NO_SPLIT = {"es_history.no_split", "es_history.restored_unverified"}


@case(
    "split_unpack_order",
    {
        "test_split": {"es_split.unpack_order", "es_split.scaling_unchecked"},
        "test_history": NO_SPLIT,
    },
)
def _(s, d):
    parts = s.split
    s.split = {
        "X_train": parts["X_train"],
        "y_train": parts["X_valid"],
        "X_valid": parts["y_train"],
        "y_valid": parts["y_valid"],
    }


@case(
    "split_quality_left_in_x",
    {"test_split": {"es_split.columns", "es_split.scaling_unchecked"}, "test_history": NO_SPLIT},
)
def _(s, d):
    s.split["X_train"] = np.c_[s.split["X_train"], s.split["y_train"]]
    s.split["X_valid"] = np.c_[s.split["X_valid"], s.split["y_valid"]]


@case("split_part_missing", {"test_split": {"es_split.missing"}, "test_history": NO_SPLIT})
def _(s, d):
    s.split["y_valid"] = MISSING


@case("split_wrong_type", {"test_split": {"es_split.wrong_type"}, "test_history": NO_SPLIT})
def _(s, d):
    s.split["X_valid"] = "X_valid.csv"


@case(
    "split_unknown_rows",
    {
        "test_split": {"es_split.unknown_rows", "es_split.scaling_unchecked"},
        "test_history": NO_SPLIT,
    },
)
def _(s, d):
    s.split["X_train"] = s.split["X_train"] + np.random.default_rng(0).normal(
        0, 0.01, s.split["X_train"].shape
    )


@case("split_rows_wrong", {"test_split": {"es_split.rows_wrong"}})
def _(s, d):
    import pandas as pd

    order = np.random.default_rng(7).permutation(len(d["raw_X"]))
    X, y = pd.DataFrame(d["raw_X"]).iloc[order], pd.Series(d["raw_y"]).iloc[order]
    X_train, X_valid, y_train, y_valid = X.iloc[:1279], X.iloc[1279:], y.iloc[:1279], y.iloc[1279:]
    X_train, X_valid = _minmax(X_train, X_valid)
    y_train, y_valid = _minmax(y_train, y_valid)
    s.split = {"X_train": X_train, "X_valid": X_valid, "y_train": y_train, "y_valid": y_valid}


@case(
    "split_y_two_columns",
    {"test_split": {"es_split.columns_y", "es_split.scaling_unchecked"}, "test_history": NO_SPLIT},
)
def _(s, d):
    s.split["y_train"] = np.c_[s.split["y_train"], s.split["y_train"]]


@case(
    "split_lengths",
    {"test_split": {"es_split.lengths", "es_split.scaling_unchecked"}, "test_history": NO_SPLIT},
)
def _(s, d):
    s.split["y_train"] = s.split["y_train"].iloc[:-1]


@case(
    "split_not_finite",
    {"test_split": {"es_split.not_finite", "es_split.scaling_unchecked"}, "test_history": NO_SPLIT},
)
def _(s, d):
    s.split["X_valid"] = s.split["X_valid"].to_numpy().copy()
    s.split["X_valid"][0, 0] = np.nan


@case("split_scaling_wrong", {"test_split": {"es_split.scaling_wrong"}})
def _(s, d):
    s.split["X_valid"] = s.split["X_valid"] * 2.0


@case("split_target_wrong", {"test_split": {"es_split.target_wrong"}})
def _(s, d):
    s.split["y_valid"] = s.split["y_valid"] / 2.0


# early_stopping ------------------------------------------------------------------------------
# Each student trained with the callback they wrote: the history is what its rule gives on the
# same validation curve (``trained_with``), so a wrong argument also shows in the training.
def _es_case(name, expect, **settings):
    case(name, expect)(lambda s, d: trained_with(s, d, **settings))


_es_case(
    "es_swallowed_comment",
    {"test_early_stopping": {"es_callback.swallowed"}},
    patience=0,
    restore_best_weights=False,
)
_es_case(
    "es_restore_false",
    {"test_early_stopping": {"es_callback.restore_false"}},
    restore_best_weights=False,
)
# the training loss keeps improving by more than min_delta over 20 epochs long after val_loss
# has turned: the callback restores a late epoch
_es_case(
    "es_monitor_loss",
    {
        "test_early_stopping": {"es_callback.monitor_loss"},
        "test_history": {"es_history.restored_by_loss"},
    },
    monitor="loss",
)
# no val_mae in the history: the callback never acts, nothing is restored
_es_case(
    "es_monitor_other",
    {
        "test_early_stopping": {"es_callback.monitor"},
        "test_history": {"es_history.not_stopped", "es_history.not_best"},
    },
    monitor="val_mae",
)
# a rising val_loss is "an improvement": it stops 20 epochs after epoch 1 and restores it
_es_case(
    "es_mode_max",
    {"test_early_stopping": {"es_callback.mode"}, "test_history": {"es_history.not_best"}},
    mode="max",
)
_es_case(
    "es_min_delta_default", {"test_early_stopping": {"es_callback.min_delta_default"}}, min_delta=0
)
_es_case(
    "es_min_delta_other",
    {"test_early_stopping": {"es_callback.min_delta"}, "test_history": {"es_history.not_best"}},
    min_delta=0.1,
)
_es_case("es_negative_min_delta_is_fine", {}, min_delta=-0.001)
_es_case(
    "es_seed_4_3_values",
    {
        "test_early_stopping": {"es_callback.min_delta_seed", "es_callback.patience_seed"},
        "test_history": {"es_history.not_best"},  # falls of less than 0.01 do not count
    },
    min_delta=0.01,
    patience=30,
)
_es_case(
    "es_patience_default", {"test_early_stopping": {"es_callback.patience_default"}}, patience=0
)
_es_case("es_patience_other", {"test_early_stopping": {"es_callback.patience"}}, patience=5)


@case("es_wrong_type", {"test_early_stopping": {"es_callback.wrong_type"}})
def _(s, d):
    s.values["early_stopping"] = "EarlyStopping(patience=20)"
    s.callback = {
        "type": "builtins.str",
        "is_callback": False,
        "is_early_stopping": False,
        "repr": "EarlyStopping(patience=20)",
    }


# model ---------------------------------------------------------------------------------------
ACTIVATION = plain_layer("Activation", activation="relu")
case("model_dense_plus_activation_and_input_shape", {})(
    lambda s, d: setattr(
        s,
        "model",
        model_desc(
            [
                dense(512, "linear", 11),
                ACTIVATION,
                dense(512, "linear", 512),
                plain_layer("ReLU", max_value=None, negative_slope=0.0, threshold=0.0),
                dense(
                    512, "relu", 512, act_name="relu", act_module="tensorflow.python.ops.gen_nn_ops"
                ),
                dense(1, "linear", 512),
                plain_layer("Activation", activation="linear"),
            ],
            loss={
                "kind": "object",
                "class_name": "MeanAbsoluteError",
                "fn": "mean_absolute_error",
                "config": {"name": "mean_absolute_error"},
            },
        ),
    )
)
case("model_without_input_and_loss_function", {})(
    lambda s, d: setattr(
        s,
        "model",
        model_desc(
            [dense(512, "relu"), dense(512, "relu"), dense(512, "relu"), dense(1)],
            input_shape=None,
            loss={"kind": "function", "name": "mean_absolute_error", "module": "keras.src.losses"},
            optimizer={"kind": "str", "name": "Adam"},
        ),
    )
)
case("model_loss_long_name_in_a_list", {})(
    lambda s, d: setattr(
        s,
        "model",
        spec_model(
            loss={"kind": "list", "items": [{"kind": "str", "name": "mean_absolute_error"}]}
        ),
    )
)
case("model_two_hidden_layers", {"test_model": {"es_model.layer_count"}})(
    lambda s, d: setattr(
        s,
        "model",
        model_desc([dense(512, "relu", 11), dense(512, "relu", 512), dense(1, "linear", 512)]),
    )
)
case("model_units", {"test_model": {"es_model.layer_units"}})(
    lambda s, d: setattr(
        s,
        "model",
        model_desc(
            [
                dense(512, "relu", 11),
                dense(256, "relu", 512),
                dense(512, "relu", 256),
                dense(1, "linear", 512),
            ]
        ),
    )
)
case("model_activation", {"test_model": {"es_model.layer_activation"}})(
    lambda s, d: setattr(
        s,
        "model",
        model_desc(
            [
                dense(512, "tanh", 11),
                dense(512, "relu", 512),
                dense(512, "relu", 512),
                dense(1, "linear", 512),
            ]
        ),
    )
)
case("model_sigmoid_output", {"test_model": {"es_model.output_activation"}})(
    lambda s, d: setattr(
        s,
        "model",
        model_desc(
            [
                dense(512, "relu", 11),
                dense(512, "relu", 512),
                dense(512, "relu", 512),
                dense(1, "sigmoid", 512),
            ]
        ),
    )
)
case("model_dropout_inside", {"test_model": {"es_model.layer_count"}})(
    lambda s, d: setattr(
        s,
        "model",
        model_desc(
            [
                dense(512, "relu", 11),
                plain_layer("Dropout", rate=0.3),
                dense(512, "relu", 512),
                dense(512, "relu", 512),
                dense(1, "linear", 512),
            ]
        ),
    )
)
case("model_layer_type", {"test_model": {"es_model.layer_type"}})(
    lambda s, d: setattr(
        s,
        "model",
        model_desc(
            [
                dense(512, "relu", 11),
                plain_layer("BatchNormalization"),
                dense(512, "relu", 512),
                dense(1, "linear", 512),
            ]
        ),
    )
)
case("model_input_12", {"test_model": {"es_model.input"}})(
    lambda s, d: setattr(s, "model", spec_model(input_shape=(None, 12)))
)
case("model_loss_mse", {"test_model": {"es_model.loss"}})(
    lambda s, d: setattr(s, "model", spec_model(loss={"kind": "str", "name": "mse"}))
)
case("model_optimizer_sgd", {"test_model": {"es_model.optimizer"}})(
    lambda s, d: setattr(s, "model", spec_model(optimizer={"kind": "object", "class_name": "SGD"}))
)
case("model_not_compiled", {"test_model": {"es_model.not_compiled"}})(
    lambda s, d: setattr(
        s, "model", spec_model(compiled=False, optimizer={"kind": "none"}, loss={"kind": "none"})
    )
)


@case("model_nested", {"test_model": {"es_model.not_a_stack"}})
def _(s, d):
    inner = {
        "class_name": "Sequential",
        "module": "keras.src.models",
        "name": "inner",
        "config": {},
        "weights": [],
        "nested": True,
    }
    s.model = model_desc([inner, dense(1, "linear")])


@case("model_none", {"test_model": {"es_model.wrong_type"}})
def _(s, d):
    s.values["model"] = None
    s.model = {"type": "builtins.NoneType", "is_model": False, "repr": None}


# history -------------------------------------------------------------------------------------
case(
    "history_no_validation",
    {
        "test_history": {
            "es_history.fit_arguments",  # no validation_data and epochs=50: both named
            "es_history.no_validation",
            "es_history.not_stopped_no_validation",
        },
        "test_best_epoch": {"es_best_epoch.no_history"},
    },
)(
    # the callback watched a val_loss that never came: it never counted an epoch
    lambda s, d: with_history(
        s,
        val=False,
        params={"epochs": 50},
        loss=[0.1] * 50,
        state={"stopped_epoch": 0, "best_epoch": 0, "wait": 0, "best": None},
    )
)
case("history_epochs", {"test_history": {"es_history.epochs"}})(
    lambda s, d: with_history(s, params={"epochs": 100})
)


@case("history_batch_size", {"test_history": {"es_history.batch_size"}})
def _(s, d):
    with_history(s, params={"steps": 40})
    s.training["model_state"]["optimizer_iterations"] = 40 * 50


@case(
    "history_callback_not_used",
    {
        "test_history": {
            "es_history.callback_not_used",
            "es_history.not_stopped_no_callback",
            "es_history.epochs",
        }
    },
)
def _(s, d):
    # nothing restored: the final weights are the last epoch's (a little above the minimum)
    with_history(
        s,
        val=_series_with(_value(s, d), 29, 50, above=0.0005),
        params={"epochs": 50},
        state={
            "attached": False,
            "attached_to_model": False,
            "stopped_epoch": 0,
            "best_epoch": None,
        },
    )


FLAT = gentle_curve(rise=0.000002)  # after its minimum, val_loss hardly moves


@case(
    "history_callback_on_other_model",
    {"test_history": {"es_history.callback_other_model", "es_history.not_stopped_no_callback"}},
)
def _(s, d):
    # this model trained with no callback of its own: all 500 epochs
    settle(s, d, FLAT, used=False)
    s.training["callback"]["state"].update(attached=True, attached_to_model=False)


@case("history_new_callback_inside_fit", {"test_history": {"es_history.callback_other_instance"}})
def _(s, d):
    with_history(s, state={"attached": False, "attached_to_model": False})
    s.training["other_early_stopping"] = [
        callback_desc(state={"attached_to_model": True, "best_epoch": 29, "stopped_epoch": 49})
    ]


@case("history_not_stopped", {"test_history": {"es_history.not_stopped", "es_history.epochs"}})
def _(s, d):
    with_history(s, params={"epochs": 50})


@case("history_forged", {"test_history": {"es_history.forged", "es_history.restored_unverified"}})
def _(s, d):
    h = s.training["history"]["history"]
    h["val_loss"] = [0.9 * v for v in h["val_loss"]]


@case(
    "history_validation_is_training",
    {"test_history": {"es_history.validation_is_training", "es_history.restored_unverified"}},
)
def _(s, d):
    arrays = _student_split(s)
    _validation_on(s, d, arrays["X_train"], arrays["y_train"])


@case(
    "history_validation_split",
    {"test_history": {"es_history.validation_split", "es_history.restored_unverified"}},
)
def _(s, d):
    arrays = _student_split(s)
    start = math.ceil(len(arrays["X_train"]) * 0.8)
    _validation_on(s, d, arrays["X_train"][start:], arrays["y_train"][start:])


RISING = gentle_curve(rise=0.0002)  # 20 epochs after its minimum, val_loss is 0.004 higher

case(
    "history_not_restored",
    {
        "test_early_stopping": {"es_callback.restore_false"},
        "test_history": {"es_history.not_restored"},
    },
)(lambda s, d: trained_with(s, d, RISING, restore_best_weights=False))


@case(
    "history_restored_by_training_loss",
    {
        "test_early_stopping": {"es_callback.monitor_loss"},
        "test_history": {"es_history.restored_by_loss"},
    },
)
def _(s, d):
    # the training loss falls fast until epoch 30, then by less than min_delta: epoch 30 is
    # restored, 15 epochs after the lowest val_loss
    loss = [0.2 - 0.005 * k if k <= 29 else 0.055 - 0.00001 * (k - 29) for k in range(500)]
    val = [0.004 * (15 - k) / 15 if k < 15 else 0.0003 * (k - 15) for k in range(500)]
    trained_with(s, d, val, loss, monitor="loss")


case(
    "history_not_restored_without_callback",
    {
        "test_history": {
            "es_history.not_restored_no_callback",
            "es_history.callback_not_used",
            "es_history.not_stopped_no_callback",
        }
    },
)(lambda s, d: settle(s, d, gentle_curve(rise=0.004 / 470), used=False))


@case("history_val_mae_high", {"test_history": {"es_history.val_mae_high"}})
def _(s, d):
    _retrain_weights(s, d, hidden=16)


@case("history_val_mae_implausible", {"test_history": {"es_history.val_mae_implausible"}})
def _(s, d):
    _retrain_weights(s, d, hidden=900, fit_on="valid")


@case(
    "history_dict",
    {"test_history": {"es_history.wrong_type"}, "test_best_epoch": {"es_best_epoch.no_history"}},
)
def _(s, d):
    s.values["history"] = {"loss": [0.1], "val_loss": [0.1]}
    s.training["history"] = {
        "type": "builtins.dict",
        "is_history": False,
        "dict_keys": ["loss", "val_loss"],
    }


@case(
    "history_from_other_model",
    {"test_history": {"es_history.other_model"}, "test_best_epoch": {"es_best_epoch.no_history"}},
)
def _(s, d):
    s.training["history"]["model_is_model"] = False


@case(
    "history_loss_unsupported",
    {"test_history": {"es_history.loss_unsupported", "es_history.restored_unverified"}},
)
def _(s, d):
    s.training["model"]["compile"]["loss"] = {"kind": "str", "name": "binary_crossentropy"}


@case(
    "history_unknown_activation",
    {"test_history": {"es_history.forward_unsupported", "es_history.restored_unverified"}},
)
def _(s, d):
    layer = s.training["model"]["layers"][0]  # Dense(128, activation=lambda x: ...)
    layer.update(
        config=None,
        config_error="OSError: could not get source code",
        attributes={"units": 128, "use_bias": True},
        activation={"name": "<lambda>", "module": "__main__"},
    )


@case("history_mse_is_checked_in_its_own_units", {})
def _(s, d):
    s.training["model"]["compile"]["loss"] = {"kind": "str", "name": "mse"}
    t = s.training
    value = km.loss_value(
        km.LossView("mse", "mse"),
        d["y_valid"],
        predict(t["model"], t["weights"], s.weights, d["X_valid"]),
    )
    with_history(s, val=_series_with(value, 29, 50))


@case(
    "history_without_model",
    {"test_history": {"es_history.no_model"}, "test_best_epoch": {"es_best_epoch.no_history"}},
)
def _(s, d):
    s.training["model_present"] = False
    s.training["model"] = None


@case(
    "history_empty",
    {"test_history": {"es_history.empty"}, "test_best_epoch": {"es_best_epoch.no_history"}},
)
def _(s, d):
    with_history(s, val=[], loss=[])


@case(
    "history_callback_undefined",
    {"test_history": {"es_history.callback_missing", "es_history.not_stopped_no_callback"}},
)
def _(s, d):
    settle(s, d, FLAT, used=False)
    s.training["callback_present"] = False
    del s.training["callback"]


@case(
    "history_callback_not_early_stopping",
    {"test_history": {"es_history.callback_wrong_type", "es_history.not_stopped_no_callback"}},
)
def _(s, d):
    settle(s, d, FLAT, used=False)
    s.training["callback"] = {
        "type": "builtins.str",
        "is_callback": False,
        "is_early_stopping": False,
        "repr": "EarlyStopping(...)",
    }


@case(
    "history_not_best",
    {
        "test_early_stopping": {"es_callback.min_delta_seed"},
        "test_history": {"es_history.not_best"},
    },
)
def _(s, d):
    # min_delta=0.01 (the 4.3 example): the last falls, of less than 0.01, were not
    # "an improvement", so the epoch restored is 5 epochs before the lowest val_loss
    trained_with(s, d, min_delta=0.01)


# forged training claims ---------------------------------------------------------------------
# ``history.params``, the callback's attached model and state are objects of the kernel: each
# case below sets some of them by hand. The checks believe only what the recorded series, the
# optimizer's step count and the weights prove (EarlyStopping's rule replayed on the series).
IDLE = {"stopped_epoch": 0, "best_epoch": None, "wait": 0, "best": None}


@case(
    "claims_no_callback_params_forged",
    {
        "test_history": {
            "es_history.epochs",  # without a callback, fit ran every epoch asked: 56
            "es_history.callback_idle",
            "es_history.stopped_without_callback",
        }
    },
)
def _(s, d):
    # trained 56 epochs without any callback, then history.params["epochs"] = 500 and
    # early_stopping.set_model(model): the callback never saw an epoch
    settle(s, d, FLAT, epochs=56, used=False)
    s.training["history"]["params"]["epochs"] = 500
    s.training["callback"]["state"].update(attached=True, attached_to_model=True, **IDLE)


@case(
    "claims_state_set_by_hand",
    {
        "test_history": {
            "es_history.callback_state",
            "es_history.stopped_late",
            "es_history.weights_not_restored",
            "es_history.restored_unverified",
        }
    },
)
def _(s, d):
    # the same training without a callback, and the callback's state typed in as well
    settle(s, d, RISING, epochs=56, used=False)
    s.training["history"]["params"]["epochs"] = 500
    best = s.best_epoch - 1
    val = s.training["history"]["history"]["val_loss"]
    s.training["callback"]["state"].update(
        attached=True,
        attached_to_model=True,
        stopped_epoch=55,
        best_epoch=best,
        wait=20,
        best=val[best],
    )
    s.training["model_state"]["stop_training"] = True


@case(
    "claims_val_loss_truncated",
    {
        "test_history": {
            "es_history.series_lengths",
            "es_history.callback_state",
            "es_history.stopped_unexplained",
            "es_history.forged",
            "es_history.restored_unverified",
        }
    },
)
def _(s, d):
    h = s.training["history"]["history"]
    h["val_loss"] = h["val_loss"][:20]
    s.best_epoch = 20


@case(
    "claims_history_truncated_everywhere",
    {
        "test_history": {
            "es_history.iterations_more",
            "es_history.callback_state",
            "es_history.stopped_unexplained",
            "es_history.forged",
            "es_history.restored_unverified",
        }
    },
)
def _(s, d):
    h = s.training["history"]
    h["history"] = {k: v[:20] for k, v in h["history"].items()}
    h["epoch"] = h["epoch"][:20]
    s.best_epoch = 20


@case(
    "claims_history_padded",
    {"test_history": {"es_history.iterations_fewer", "es_history.stopped_late"}},
)
def _(s, d):
    # 30 more epochs appended by hand, as if patience had run out later
    h = s.training["history"]
    h["history"] = {k: v + [v[-1]] * 30 for k, v in h["history"].items()}
    h["epoch"] = list(range(80))


@case(
    "claims_patience_changed_after_fit",
    {"test_history": {"es_history.callback_state", "es_history.stopped_unexplained"}},
)
def _(s, d):
    # trained with patience=5, then early_stopping.patience = 20 before the capture
    trained_with(s, d, patience=5)
    s.callback["settings"]["patience"] = 20
    s.training["callback"]["settings"]["patience"] = 20


@case("claims_patience_changed_before_fit", {"test_history": {"es_history.callback_changed"}})
def _(s, d):
    # created with patience=20 (graded), set to 5 just before fit
    trained_with(s, d, patience=20, changed={"patience": 5})


@case(
    "claims_refit_afterwards",
    {
        "test_history": {
            "es_history.iterations_more",
            "es_history.forged",
            "es_history.restored_unverified",
        }
    },
)
def _(s, d):
    # after fit, model.fit(X_train, y_train, epochs=10) again: other weights, 50 more steps
    s.weights["w003"] = s.weights["w003"] + 0.003
    s.training["model_state"]["optimizer_iterations"] += 50


@case(
    "claims_restore_set_after_fit",
    {"test_history": {"es_history.weights_not_restored", "es_history.restored_unverified"}},
)
def _(s, d):
    # trained without restoring, then early_stopping.restore_best_weights = True
    trained_with(s, d, RISING, restore_best_weights=False)
    s.callback["settings"]["restore_best_weights"] = True
    s.training["callback"]["settings"]["restore_best_weights"] = True


@case(
    "claims_weights_not_last",
    {
        "test_early_stopping": {"es_callback.restore_false"},
        "test_history": {"es_history.weights_not_last", "es_history.restored_unverified"},
    },
)
def _(s, d):
    # restore_best_weights=False, and then the weights of the best epoch put back by hand
    trained_with(s, d, RISING, restore_best_weights=False)
    settle(s, d, RISING, weights_at=29)


@case("claims_stop_not_requested", {"test_history": {"es_history.stop_not_requested"}})
def _(s, d):
    # everything typed to look like early stopping, but fit was never asked to stop
    s.training["model_state"]["stop_training"] = False


@case(
    "claims_more_than_requested",
    {"test_history": {"es_history.epochs", "es_history.more_than_requested"}},
)
def _(s, d):
    s.training["history"]["params"]["epochs"] = 40


@case(
    "claims_params_without_epochs",
    {"test_history": {"es_history.epochs", "es_history.params_invalid"}},
)
def _(s, d):
    del s.training["history"]["params"]["epochs"]


@case("claims_epoch_list_gap", {"test_history": {"es_history.epoch_list"}})
def _(s, d):
    s.training["history"]["epoch"] = [*range(25), *range(26, 51)]


@case(
    "claims_callback_unreadable",
    {
        "test_early_stopping": {"es_callback.patience"},
        "test_history": {"es_history.callback_unreadable", "es_history.restored_unverified"},
    },
)
def _(s, d):
    s.callback["settings"]["patience"] = "20"
    s.training["callback"]["settings"]["patience"] = "20"


# honest runs that did not stop early: only the lesson's own messages, no inconsistency
case(
    "honest_full_length_restores_anyway",
    {"test_history": {"es_history.epochs", "es_history.not_stopped"}},
)(lambda s, d: trained_with(s, d, RISING, epochs=40))  # Keras restores even when not fired
case(
    "honest_full_length_no_restore",
    {
        "test_early_stopping": {"es_callback.restore_false"},
        "test_history": {"es_history.epochs", "es_history.not_stopped"},
    },
)(lambda s, d: trained_with(s, d, FLAT, epochs=40, restore_best_weights=False))


@case("honest_baseline_and_start_from_epoch", {})
def _(s, d):
    # a baseline the model never beats: improvements no longer reset the wait, so the rule
    # fires at the first epoch without one (epoch 31), and restores epoch 30
    n = trained_with(s, d, RISING, baseline=_value(s, d) - 0.01, start_from_epoch=5)
    assert n == 31 and s.training["callback"]["state"]["best_epoch"] == 29


# best_epoch ----------------------------------------------------------------------------------
case("best_epoch_zero_based", {"test_best_epoch": {"es_best_epoch.zero_based"}})(
    lambda s, d: setattr(s, "best_epoch", 29)
)
case("best_epoch_last", {"test_best_epoch": {"es_best_epoch.last_epoch"}})(
    lambda s, d: setattr(s, "best_epoch", 50)
)
case("best_epoch_wrong", {"test_best_epoch": {"es_best_epoch.wrong"}})(
    lambda s, d: setattr(s, "best_epoch", 12)
)
case("best_epoch_out_of_range", {"test_best_epoch": {"es_best_epoch.out_of_range"}})(
    lambda s, d: setattr(s, "best_epoch", 500)
)
case("best_epoch_string", {"test_best_epoch": {"wrong_type"}})(
    lambda s, d: setattr(s, "best_epoch", "30")
)
case("best_epoch_numpy_float_is_fine", {})(lambda s, d: setattr(s, "best_epoch", np.float64(30.0)))


@case("best_epoch_restored_epoch", {"test_best_epoch": {"es_best_epoch.restored_epoch"}})
def _(s, d):
    # min_delta: the last improvement that counted (and the restored weights) is epoch 26
    # (1-based); the lowest val_loss, 0.0005 lower, is at epoch 30
    series = list(s.training["history"]["history"]["val_loss"]) + RISING[50:]
    value = series[29]
    for k in range(25, 30):
        series[k] = value - 0.0001 * (k - 25)
    settle(s, d, series)
    assert s.training["callback"]["state"]["best_epoch"] == 25
    s.best_epoch = 26


# fit_diagnosis -------------------------------------------------------------------------------
case("diagnosis_spellings", {})(
    lambda s, d: setattr(
        s,
        "fit_diagnosis",
        {
            "una_raza": "Desajuste",
            "perros_marrones": " SOBREAJUSTE",
            "curva_A": "overfitting",
            "curva_B": "underfitting",
            "remedios_underfitting": "a, b, e",
            "remedios_overfitting": ["D", "c)"],
        },
    )
)
case("diagnosis_curves_swapped", {"test_fit_diagnosis": {"es_diagnosis.wrong"}})(
    lambda s, d: s.fit_diagnosis.update(curva_A="underfitting", curva_B="overfitting")
)
case("diagnosis_unknown_label", {"test_fit_diagnosis": {"es_diagnosis.unknown_label"}})(
    lambda s, d: s.fit_diagnosis.update(una_raza="varianza")
)
case("diagnosis_missing_key", {"test_fit_diagnosis": {"es_diagnosis.missing"}})(
    lambda s, d: s.fit_diagnosis.pop("curva_B")
)
case("diagnosis_remedies_wrong", {"test_fit_diagnosis": {"es_diagnosis.remedies_wrong"}})(
    lambda s, d: s.fit_diagnosis.update(remedios_overfitting={"b", "c", "d"})
)
case("diagnosis_remedies_format", {"test_fit_diagnosis": {"es_diagnosis.remedies_format"}})(
    lambda s, d: s.fit_diagnosis.update(remedios_overfitting={"c", "dropout"})
)
case("diagnosis_list", {"test_fit_diagnosis": {"wrong_type"}})(
    lambda s, d: setattr(s, "fit_diagnosis", ["underfitting", "overfitting"])
)


# not attempted, errors -----------------------------------------------------------------------
@case("blank", {gid: {"not_attempted"} for gid in POINTS})
def _(s, d):
    s.split = dict.fromkeys(s.split, MISSING)
    s.values.update(early_stopping=MISSING, model=MISSING, history=MISSING)
    s.callback = s.model = None
    s.training = {"history_present": False, "model_present": False, "callback_present": False}
    s.best_epoch = s.fit_diagnosis = MISSING


@case(
    "history_cell_raised",
    {"test_history": {"answer_cell_error"}, "test_best_epoch": {"es_best_epoch.no_history"}},
)
def _(s, d):
    s.values["history"] = MISSING
    s.training = {"history_present": False, "model_present": True, "model": s.training["model"]}
    s.cells["ans_history"] = {
        "status": "error",
        "error": {
            "ename": "RuntimeError",
            "evalue": "You must call `compile()` before using the model.",
        },
    }


@case("model_test_cell_never_ran", {"test_model": {"not_executed"}})
def _(s, d):
    s.values["model"] = NOT_CAPTURED
    s.model = None
    s.cells["test_model"] = {"status": "not_run", "reason": "the notebook exceeded its time limit"}


# messages that name the real cause (issue 14) ------------------------------------------------
COMPILE_TYPO = {
    "status": "error",
    "error": {
        "ename": "AttributeError",
        "evalue": "'Sequential' object has no attribute 'complie'",
    },
}


@case(
    "model_cell_raised_in_compile",
    {
        "test_model": {"answer_cell_error"},
        "test_history": {"answer_cell_error"},
        "test_best_epoch": {"es_best_epoch.no_history"},
    },
)
def _(s, d):
    # model.complie(...): the model exists, uncompiled, and its cell raised; fit then failed
    s.model = spec_model(compiled=False, optimizer={"kind": "none"}, loss={"kind": "none"})
    s.values["history"] = MISSING
    s.training = {"history_present": False, "model_present": True, "model": s.training["model"]}
    s.cells["ans_model"] = COMPILE_TYPO
    s.cells["ans_history"] = {
        "status": "error",
        "error": {
            "ename": "ValueError",
            "evalue": "You must call `compile()` before using the model.",
        },
    }


@case(
    "history_epochs_and_batch_size",
    {"test_history": {"es_history.fit_arguments", "es_history.not_stopped"}},
)
def _(s, d):
    # fit(..., epochs=50, batch_size=512): 3 steps per epoch, 50 epochs, no early stop
    with_history(s, params={"epochs": 50, "steps": 3})
    s.training["model_state"]["optimizer_iterations"] = 3 * 50


@case(
    "es_under_another_name",
    {
        "test_early_stopping": {"es_callback.other_name"},
        "test_history": {"es_history.callback_other_name"},
    },
)
def _(s, d):
    # early = callbacks.EarlyStopping(...), and fit(..., callbacks=[early])
    s.values["early_stopping"] = MISSING
    s.callback_payload = {
        "name": "early_stopping",
        "present": False,
        "others": [{"name": "early", "names": ["early"], "callback": callback_desc()}],
    }
    trained = s.training.pop("callback")
    s.training["callback_present"] = False
    s.training["other_early_stopping"] = [{**trained, "names": ["early"]}]


@case("model_from_a_set", {"test_model": {"es_model.set_order"}})
def _(s, d):
    # keras.Sequential({Dense(512, relu), Dense(512, relu), Dense(512, relu), Dense(1)}):
    # Keras stacked the set in hash order
    hidden = [dense(512, "relu", name=f"dense_{i}") for i in range(3)]
    s.model = model_desc([hidden[2], dense(1, name="dense_3"), hidden[0], hidden[1]])
    s.model["built_from_set"] = True


@case("split_valid_is_train", {"test_split": {"es_split.valid_is_train"}})
def _(s, d):
    # X_train, X_valid, ... = train_test_split(X, y, test_size=0.3, ...), then
    # validation_data=(X_train, y_train) written as X_valid = X_train
    parts = split_with(d, test_size=0.3)
    s.split = {
        "X_train": parts["X_train"],
        "X_valid": parts["X_train"].copy(),
        "y_train": parts["y_train"],
        "y_valid": parts["y_train"].copy(),
    }


@case(
    "split_trained_on_everything",
    {"test_split": {"es_split.rows_reused"}, "test_history": {"es_history.val_mae_no_held_out"}},
)
def _(s, d):
    # the whole data set as X_train, its first 320 rows as X_valid: no row is held out
    import pandas as pd

    X, y = pd.DataFrame(d["raw_X"]), pd.Series(d["raw_y"])
    X_train, y_train = _minmax(X)[0], _minmax(y)[0]
    s.split = {
        "X_train": X_train,
        "X_valid": X_train.iloc[:320].copy(),
        "y_train": y_train,
        "y_valid": y_train.iloc[:320].copy(),
    }
    with_history(s, params={"steps": 7})  # 1599 rows in batches of 256
    s.training["model_state"]["optimizer_iterations"] = 7 * 50


@case(
    "split_random_state_42_memorized",
    {"test_split": {"es_split.random_state"}, "test_history": {"es_history.val_mae_high"}},
)
def _(s, d):
    # random_state=42 and a model that memorised its training rows: most of the course's
    # validation rows are among them, so the course rows would flatter it
    s.split = split_with(d, random_state=42)
    _retrain_weights(s, d, hidden=900, fit_on="random_state_42")


@case(
    "history_dataframe",
    {"test_history": {"es_history.wrong_type"}, "test_best_epoch": {"es_best_epoch.no_history"}},
)
def _(s, d):
    import pandas as pd

    s.values["history"] = pd.DataFrame(s.training["history"]["history"])
    s.training["history"] = {"type": "pandas.core.frame.DataFrame", "is_history": False}


MODULE = {
    "__repr__": (
        "<module 'keras.callbacks' from "
        "'/srv/course/.venv/lib/python3.11/site-packages/keras/callbacks/__init__.py'>"
    ),
    "__type__": "builtins.module",
}
_es_case(
    "es_restore_module",
    {"test_early_stopping": {"es_callback.restore_not_bool"}},
    restore_best_weights=MODULE,
)
_es_case(
    "es_restore_string",
    {"test_early_stopping": {"es_callback.restore_not_bool"}},
    restore_best_weights="False",
)


# tampered captures: the student's own code overwrote capture files with other shapes ------
TAMPERED = {
    "tampered_history": lambda s, d: s.training.update(history="forged"),
    "tampered_history_values": lambda s, d: s.training["history"].update(
        history={"loss": "abc", "val_loss": [1, "x"]}, params=[500]
    ),
    "tampered_model": lambda s, d: setattr(
        s, "model", {"is_model": True, "layers": "abc", "compile": []}
    ),
    "tampered_model_layers": lambda s, d: s.training["model"].update(
        layers=[1, {"class_name": "Dense", "config": [], "weights": "x"}]
    ),
    "tampered_weights": lambda s, d: (
        s.training.update(weights=[{"key": "w000", "layer": 0, "name": "kernel"}, "junk"]),
        s.weights.update(w000=np.zeros((3, 3))),
    ),
    "tampered_callback": lambda s, d: (
        setattr(s, "callback", {"is_early_stopping": True, "settings": ["x"]}),
        s.training.update(callback=[], other_early_stopping="x"),
    ),
    "tampered_split_meta": lambda s, d: None,  # split.json rewritten below
}


# --- running all crafted students in one session ----------------------------------------------


@pytest.fixture(scope="module")
def graded(tmp_path_factory, data):
    folders = {}
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in ["right", *CASES, *TAMPERED]:
            student = base_student(data)
            if name in CASES:
                CASES[name][0](student, data)
            elif name in TAMPERED:
                TAMPERED[name](student, data)
            if name.startswith("split_"):
                _history_on_own_split(student)
            folder = tmp_path_factory.mktemp(name)
            own_split = name.startswith("split_") or name in ("right", "blank")
            folders[name] = student.write(
                folder, monkeypatch, None if own_split else folders["right"]
            )
        split_json = folders["tampered_split_meta"] / "split" / "split.json"
        split_json.write_text(json.dumps({"parts": [1, 2], "rows": "x"}))
    results = run_checks_many(AID, folders, POINTS, THRESHOLDS, "es")
    return results


def failures(cells, gid):
    return {c.message_id for c in cells[gid].checks if not c.passed}


def test_right_submission_gets_full_marks(graded):
    cells = graded["right"]
    assert {g: c.score for g, c in cells.items()} == POINTS
    assert all(c.passed for cell in cells.values() for c in cell.checks)


@pytest.mark.parametrize("name", sorted(CASES))
def test_each_case_gets_exactly_its_messages(graded, name):
    cells = graded[name]
    expect = CASES[name][1]
    for gid in POINTS:
        assert failures(cells, gid) == expect.get(gid, set()), gid
        if not expect.get(gid):
            assert cells[gid].score == POINTS[gid], gid
        else:
            assert cells[gid].score < POINTS[gid], gid


@pytest.mark.parametrize("name", sorted(TAMPERED))
def test_tampered_captures_never_become_grader_errors(graded, name):
    cells = graded[name]
    assert all(c.outcome != "error" for cell in cells.values() for c in cell.checks), [
        (c.id, c.message) for cell in cells.values() for c in cell.checks if c.outcome == "error"
    ]
    assert sum(cell.score for cell in cells.values()) < sum(POINTS.values())


def test_swallowed_comment_loses_exactly_patience_and_restore(graded):
    cells = graded["es_swallowed_comment"]["test_early_stopping"]
    assert cells.score == 1.0
    failed = {c.id: c for c in cells.checks if not c.passed}
    assert set(failed) == {"early_stopping_patience", "early_stopping_restore"}
    text = failed["early_stopping_patience"].messages["es"]
    assert "#" in text and "misma línea" in text and "Lección 4.4" in text


def test_architecture_message_names_the_first_difference_by_position(graded):
    check = next(c for c in graded["model_units"]["test_model"].checks if not c.passed)
    assert "Capa 2" in check.message and "Dense(512, relu)" in check.message
    assert "Dense(256, relu)" in check.message
    check = next(c for c in graded["model_dropout_inside"]["test_model"].checks if not c.passed)
    assert "capa 2" in check.message and "Dropout(0.3)" in check.message
    assert "tiene 5 capas" in check.message


def test_split_message_names_the_random_state_found(graded):
    check = next(c for c in graded["split_random_state_42"]["test_split"].checks if not c.passed)
    assert "random_state=42" in check.message and "random_state=3" in check.message


def _failed(graded, name, gid, message_id):
    return next(c for c in graded[name][gid].checks if c.message_id == message_id)


def test_a_cell_that_raised_in_compile_is_reported_as_its_error(graded):
    for check in graded["model_cell_raised_in_compile"]["test_model"].checks:
        if check.id in ("model_optimizer", "model_loss"):
            assert check.message_id == "answer_cell_error"
            assert "AttributeError" in check.message and "complie" in check.message
            assert "ans_model" in check.message and "no está compilado" not in check.message
    # the architecture was complete before the error: its point stays
    assert graded["model_cell_raised_in_compile"]["test_model"].score == 2


def test_every_wrong_fit_argument_is_named(graded):
    check = _failed(
        graded, "history_epochs_and_batch_size", "test_history", "es_history.fit_arguments"
    )
    for text in check.messages.values():
        assert "`epochs` = 50" in text and "427" in text and "batch_size=256" in text
        assert "(int)" not in text
    assert check.messages["es"].startswith("2 argumentos de `fit`")
    check = _failed(graded, "history_no_validation", "test_history", "es_history.fit_arguments")
    assert "validation_data" in check.message and "`epochs` = 50" in check.message
    # the fit check is worth 0.5 however many arguments are wrong (the other 0.5 lost here is
    # the stopping check: with epochs=50 the history ran all of them)
    assert graded["history_epochs"]["test_history"].score == POINTS["test_history"] - 0.5
    both = graded["history_epochs_and_batch_size"]["test_history"].score
    assert both == POINTS["test_history"] - 1.0


def test_an_early_stopping_under_another_name_is_named(graded):
    cells = graded["es_under_another_name"]
    assert not cells["test_early_stopping"].not_attempted
    for check in cells["test_early_stopping"].checks:
        assert check.message_id == "es_callback.other_name" and "`early`" in check.message
    check = _failed(
        graded, "es_under_another_name", "test_history", "es_history.callback_other_name"
    )
    assert "`early`" in check.message
    assert cells["test_history"].score == POINTS["test_history"] - 0.5  # trained with it


def test_a_set_of_layers_is_reported_as_a_set(graded):
    check = _failed(graded, "model_from_a_set", "test_model", "es_model.set_order")
    assert "conjunto" in check.messages["es"] and "set has no order" in check.messages["en"]
    assert "Dense(1), Dense(512, relu)" in check.message  # the order Keras gave them
    assert graded["model_from_a_set"]["test_model"].score == 1  # compile still counts


def test_a_validation_set_that_is_the_training_set_is_named(graded):
    check = _failed(graded, "split_valid_is_train", "test_split", "es_split.valid_is_train")
    assert "1119" in check.message and "1599" in check.message and "2238" not in check.message
    check = _failed(graded, "split_trained_on_everything", "test_split", "es_split.rows_reused")
    assert "1919" in check.message and "1599" in check.message and "320" in check.message


def test_found_values_are_short_and_untagged(graded):
    check = _failed(graded, "history_dataframe", "test_history", "es_history.wrong_type")
    for text in check.messages.values():
        assert "DataFrame 50 × 2" in text and "Opaque" not in text and "pandas." not in text
    check = _failed(graded, "es_wrong_type", "test_early_stopping", "es_callback.wrong_type")
    assert "'EarlyStopping(patience=20)'" in check.message and "(str)" not in check.message


def test_a_restore_best_weights_that_is_not_a_boolean(graded):
    check = _failed(
        graded, "es_restore_module", "test_early_stopping", "es_callback.restore_not_bool"
    )
    assert "<module 'keras.callbacks'>" in check.message
    for text in check.messages.values():
        assert "/srv" not in text and "__repr__" not in text and "__init__.py" not in text
    assert "sí restauró" in check.messages["es"] and "did restore" in check.messages["en"]
    assert "última" not in check.messages["es"].split("Keras")[0]
    check = _failed(
        graded, "es_restore_string", "test_early_stopping", "es_callback.restore_not_bool"
    )
    assert "'False'" in check.message and "sí restauró" in check.message
    # Keras restored the best weights: the history checks agree
    for name in ("es_restore_module", "es_restore_string"):
        assert graded[name]["test_history"].score == POINTS["test_history"], name


def test_validation_mae_is_measured_on_rows_the_model_did_not_train_on(graded, data):
    check = _failed(
        graded, "split_random_state_42_memorized", "test_history", "es_history.val_mae_high"
    )
    assert check.params["where"] == "own" and 200 < check.params["n"] < 320
    assert "no entrenó" in check.messages["es"] and "did not train on" in check.messages["en"]
    # on the course's validation rows (most of them training rows of this student) the same
    # model would have passed: what the check used to measure
    student = base_student(data)
    student.split = split_with(data, random_state=42)
    _retrain_weights(student, data, hidden=900, fit_on="random_state_42")
    on_course = _value(student, data)
    assert THRESHOLDS["es_val_mae_min"] < on_course < THRESHOLDS["es_val_mae_max"]
    # the lesson's own split still uses the course's rows, unchanged
    ok = next(c for c in graded["right"]["test_history"].checks if c.id == "history_val_mae")
    assert ok.params["where"] == "course" and ok.params["n"] == len(data["X_valid"])
    check = _failed(
        graded, "split_trained_on_everything", "test_history", "es_history.val_mae_no_held_out"
    )
    assert check.params["n"] == 0


def test_short_summary_of_captured_values():
    import pandas as pd

    from dlcourse.artifacts import Opaque, short_summary, to_python

    frame = pd.DataFrame(np.zeros((1279, 11)))
    split = capture.describe(
        {"X_train": frame, "X_valid": frame.iloc[:320], "y_train": frame[0], "y_valid": np.zeros(3)}
    )
    text = short_summary(to_python(split))
    assert text.startswith("{'X_train': DataFrame 1279 × 11, 'X_valid': DataFrame 320 × 11")
    assert "Opaque" not in text and "pandas" not in text
    assert short_summary(to_python(capture.describe(np.zeros((4, 2))))) == "ndarray 4 × 2"
    assert short_summary(MODULE) == "<module 'keras.callbacks'>"
    assert short_summary(Opaque("keras.src.models.sequential.Sequential", "<Sequential>")) == (
        "Sequential"
    )
    assert short_summary("/home/ana/notebooks/data.csv") == "'…'"  # no paths of a machine
    assert short_summary(50) == "50" and short_summary("40") == "'40'"
    assert short_summary(frozenset({"c", "a"})) == "{'a', 'c'}"
    assert short_summary(Opaque("builtins.list", "<5000 items>")) == "list 5000"
    assert len(short_summary(list(range(1000)))) < 40
    # an old capture (no shape recorded) still reads as its class
    assert short_summary(to_python({"kind": "other", "type": "pandas.DataFrame", "repr": "x"})) == (
        "DataFrame"
    )


def test_sequential_from_set_reads_the_cell_source():
    from dlcourse.keras_capture import sequential_from_set

    assert sequential_from_set("model = keras.Sequential({layers.Dense(1)})", "model") is True
    assert sequential_from_set("ls = {a, b}\nmodel = Sequential(layers=ls)", "model") is True
    assert sequential_from_set("model = keras.Sequential([layers.Dense(1)])", "model") is False
    assert sequential_from_set("model.compile(optimizer='adam')", "model") is None
    assert sequential_from_set("model = (", "model") is None


def test_history_messages_carry_the_recomputed_values(graded):
    check = next(
        c
        for c in graded["history_forged"]["test_history"].checks
        if c.message_id == "es_history.forged"
    )
    assert check.params["value"] > check.params["best"]
    check = next(
        c
        for c in graded["history_val_mae_high"]["test_history"].checks
        if c.message_id == "es_history.val_mae_high"
    )
    assert check.params["value"] > THRESHOLDS["es_val_mae_max"]


def test_not_attempted_is_distinct_from_wrong(graded):
    blank = graded["blank"]
    for cell in blank.values():
        assert cell.not_attempted and cell.score == 0
    assert "No intentada" in blank["test_history"].checks[0].message


def test_messages_never_reveal_hidden_answers(graded):
    for name, cells in graded.items():
        for check in cells["test_best_epoch"].checks:
            if not check.passed and check.message_id.startswith("es_best_epoch"):
                for text in check.messages.values():
                    assert "30" not in text.replace("130", ""), (name, text)
        for check in cells["test_fit_diagnosis"].checks:
            if check.message_id == "es_diagnosis.remedies_wrong":
                assert "{" not in check.message


def test_every_lesson4_message_is_produced_here_or_in_the_sample_class(graded):
    from tests.sample_class.lesson4_early_stopping import EXPECTED

    produced = {
        c.message_id for cells in graded.values() for cell in cells.values() for c in cell.checks
    }
    produced |= {
        m
        for student in EXPECTED.values()
        for ids in student.get("messages", {}).values()
        for m in ids
    }
    ours = {m for m in catalogue() if m.startswith("es_")}
    assert ours <= produced, sorted(ours - produced)


# --- the building blocks ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, expected",
    [
        ("relu", "relu"),
        ("ReLU", "relu"),
        (None, "linear"),
        ("linear", "linear"),
        ("silu", "swish"),
        ("LeakyReLU", "leaky_relu"),
        ({"class_name": "function", "config": "relu"}, "relu"),
        ("<lambda>", "<lambda>"),
    ],
)
def test_activation_aliases(name, expected):
    assert km.canonical_activation(name) == expected


def test_normalized_view_folds_activation_layers():
    view = km.normalize(
        model_desc(
            [
                dense(512, "linear", 11),
                plain_layer("Activation", activation="relu"),
                dense(8, "relu", 512),
                plain_layer("Activation", activation="relu"),
                plain_layer("Dropout", rate=0.3),
                plain_layer("BatchNormalization"),
                dense(1, "linear", 8),
                plain_layer("Activation", activation="sigmoid"),
            ]
        )
    )
    assert view.describe() == (
        "Dense(512, relu), Dense(8, relu), Dropout(0.3), BatchNormalization(), Dense(1, sigmoid)"
    )
    assert view.input_dim == 11


@pytest.mark.parametrize(
    "loss, expected",
    [
        ({"kind": "str", "name": "MAE"}, "mae"),
        ({"kind": "str", "name": "mean_absolute_error"}, "mae"),
        ({"kind": "object", "class_name": "MeanAbsoluteError"}, "mae"),
        (
            {"kind": "object", "class_name": "LossFunctionWrapper", "fn": "mean_absolute_error"},
            "mae",
        ),
        ({"kind": "function", "name": "mean_absolute_error"}, "mae"),
        ({"kind": "object", "class_name": "Huber", "config": {"delta": 2.0}}, "huber"),
        ({"kind": "str", "name": "mse"}, "mse"),
        ({"kind": "function", "name": "<lambda>"}, None),
    ],
)
def test_loss_aliases(loss, expected):
    assert km.normalize_loss({"loss": loss}).name == expected


def test_forward_pass_handles_batch_normalization_and_dropout():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3))
    w = {
        0: {"kernel": rng.normal(size=(3, 4)), "bias": rng.normal(size=4)},
        1: {
            "gamma": rng.normal(size=4),
            "beta": rng.normal(size=4),
            "moving_mean": rng.normal(size=4),
            "moving_variance": rng.uniform(0.5, 2, 4),
        },
        3: {"kernel": rng.normal(size=(4, 1)), "bias": rng.normal(size=1)},
    }
    view = km.normalize(
        model_desc(
            [
                dense(4, "relu", 3),
                plain_layer("BatchNormalization", epsilon=0.001, axis=-1),
                plain_layer("Dropout", rate=0.5),
                dense(1, "linear", 4),
            ],
            input_shape=(None, 3),
        )
    )
    got = km.forward(view, w, x)
    hidden = np.maximum(x @ w[0]["kernel"] + w[0]["bias"], 0)
    bn = (
        w[1]["gamma"] * (hidden - w[1]["moving_mean"]) / np.sqrt(w[1]["moving_variance"] + 0.001)
        + w[1]["beta"]
    )
    assert np.allclose(got, bn @ w[3]["kernel"] + w[3]["bias"])


def test_match_rows_sees_through_any_column_scaling(data):
    from sklearn.preprocessing import StandardScaler

    X_train, X_valid, _, _ = _pandas_split(data, random_state=11)
    expected = (X_train.index.to_numpy(), X_valid.index.to_numpy())
    canon = {}
    first = [canon.setdefault(tuple(r), i) for i, r in enumerate(data["raw_X"].tolist())]
    scaler = StandardScaler().fit(X_train)
    for train, valid in [
        (X_train, X_valid),
        _minmax(X_train, X_valid),
        (scaler.transform(X_train), scaler.transform(X_valid)),
        (_minmax(X_train)[0].astype("float32"), _minmax(X_valid)[0]),
    ]:
        rows = keras_capture.match_rows(np.asarray(train), np.asarray(valid), data["raw_X"])
        for got, want in zip(rows, expected, strict=True):
            assert [first[i] for i in got] == [first[i] for i in want]


def test_duplicate_row_table_is_remembered_per_data_set():
    from dlcourse.rules import lesson4_early_stopping as rules

    data = np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [3.0, 4.0], [5.0, 6.0]])
    table = rules._canonical_rows(data)
    assert table.tolist() == [0, 1, 0, 1, 4]  # each row points at the first identical one
    assert rules._canonical_rows(data.copy()) is table  # the same rows: built once
    other = rules._canonical_rows(data[::-1].copy())
    assert other.tolist() == [0, 1, 2, 1, 2]  # other rows: their own table
