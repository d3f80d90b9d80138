"""Hidden checkers of lesson5_dropout_batchnorm on crafted artifacts (no kernel, no training).

Every entry of the misconception catalogue (docs/misconceptions_lesson5_dropout_batchnorm.md)
is produced from a realistic submission: the models are real Keras objects, built but never
fitted, and captured by ``keras_capture`` exactly as the hidden test cells capture them. Their
weights are *constructed* instead of trained: the hidden layers carry the 11 features through
(identity kernels; BatchNormalization with unit moving statistics) or random ReLU features, and
the output layer is solved by least squares, so the numpy forward pass has a real, good model to
evaluate (validation MAE about 0.099, a linear regression). The ``History`` objects are real
Keras histories whose last ``val_loss`` is what those weights give. All crafted students are
checked in one pytest session (``run_checks_many``).
"""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import math  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

from autograder.check import run_checks_many  # noqa: E402
from autograder.checkers.support import wine_arrays
from autograder.config import load_course  # noqa: E402
from autograder.messages import catalogue, render_all  # noqa: E402
from dlcourse import capture, keras_capture  # noqa: E402
from dlcourse import keras_model as km  # noqa: E402
from dlcourse.rules import lesson5_dropout_batchnorm as l5  # noqa: E402
from tests.conftest import ROOT  # noqa: E402
from tests.helpers import write_execution  # noqa: E402

keras = pytest.importorskip("keras")
layers = keras.layers

AID = "lesson5_dropout_batchnorm"
POINTS = {
    "test_dropout": 3,
    "test_batchnorm": 2,
    "test_history": 4,
    "test_regularization_effect": 1,
}
THRESHOLDS = load_course(ROOT / "course_config.py").thresholds[AID]
MISSING = object()  # the variable is not defined in the kernel
NOT_IMPLEMENTED = {"status": "error", "error": {"ename": "NotImplementedError", "evalue": ""}}
NAME_ERROR_MODEL = {
    "status": "error",
    "error": {"ename": "NameError", "evalue": "name 'model' is not defined"},
}


# --- models: real Keras layers, never fitted ----------------------------------------------------


def relu_block(units=1024, rate=0.3):
    """Seed 5.5 (corrected): Dense(relu) -> Dropout -> BatchNormalization."""
    return [
        layers.Dense(units, activation="relu"),
        layers.Dropout(rate),
        layers.BatchNormalization(),
    ]


def bn_first_block(units=1024, rate=0.3):
    return [
        layers.Dense(units, activation="relu"),
        layers.BatchNormalization(),
        layers.Dropout(rate),
    ]


def between_block(units=1024, rate=0.3):
    """Seed 5.4's second placement: linear Dense -> BatchNormalization -> Activation."""
    return [
        layers.Dense(units),
        layers.BatchNormalization(),
        layers.Activation("relu"),
        layers.Dropout(rate),
    ]


def stack(blocks, head=(), tail=(), input_layer=True):
    layers_ = [keras.Input(shape=(11,))] if input_layer else []
    return [*layers_, *head, *blocks, layers.Dense(1), *tail]


def reference_layers():
    return stack([layer for _ in range(3) for layer in relu_block()])


def model_of(layer_list, loss="mae", optimizer="adam", compiled=True):
    model = keras.Sequential(layer_list)
    if compiled:
        model.compile(optimizer=optimizer, loss=loss)
    return model


# --- constructed weights: a good model without training -----------------------------------------


@pytest.fixture(scope="module")
def data():
    return wine_arrays()


def _view_and_weights(model):
    desc = keras_capture.describe_model(model)
    index, arrays = keras_capture.model_weights(model)
    return km.normalize(desc), km.weights_by_layer(index, arrays)


_CONSTRUCTED: dict[tuple, list[np.ndarray]] = {}


def _signature(model) -> tuple:
    return tuple(
        (
            type(layer).__name__,
            str(
                sorted(
                    (k, str(v)) for k, v in layer.get_config().items() if k not in ("name", "seed")
                )
            ),
        )
        for layer in model.layers
    )


def construct(model, data, features="identity", fit_on="train", shift=0.0, seed=0):
    """Set the weights of a built model so that it predicts well (see the module docstring).

    The same architecture always gets the same weights: they are computed once and reused."""
    key = (_signature(model), features, fit_on, shift, seed)
    if key in _CONSTRUCTED:
        model.set_weights(_CONSTRUCTED[key])
        return model
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, _, var = layer.get_weights()
            layer.set_weights(
                [
                    np.ones_like(gamma),
                    np.zeros_like(beta),
                    np.zeros_like(var),
                    np.full_like(var, 1.0 - layer.epsilon),
                ]
            )
    dense = [layer for layer in model.layers if isinstance(layer, layers.Dense)]
    for i, layer in enumerate(dense[:-1]):
        weights = layer.get_weights()
        kernel = np.zeros_like(weights[0])
        bias = np.zeros(kernel.shape[1], dtype=kernel.dtype)
        if i == 0 and features == "random":
            kernel = rng.normal(0.0, 0.8, kernel.shape).astype(kernel.dtype)
            bias = rng.normal(0.0, 0.5, bias.shape).astype(kernel.dtype)
        elif i == 0:
            n = min(kernel.shape)
            kernel[:n, :n] = np.eye(n)
            bias[:n] = 1.0  # x + 1 > 0 for every (scaled) feature: ReLU lets it through
        else:
            n = min(kernel.shape)
            kernel[:n, :n] = np.eye(n)
        layer.set_weights([kernel, bias] if len(weights) == 2 else [kernel])
    view, weights = _view_and_weights(model)
    out = max(i for i, layer in enumerate(view.layers) if layer.kind == "Dense")
    body = km.ModelView(view.input_dim, view.layers[:out])
    x, y = (
        (data["X_train"], data["y_train"])
        if fit_on == "train"
        else (data["X_valid"], data["y_valid"])
    )
    features_ = np.c_[km.forward(body, weights, x), np.ones(len(x))]
    if view.layers[out].activation == "sigmoid":  # fit the logit: the output squashes it back
        y = np.log(np.clip(y, 0.02, 0.98) / (1.0 - np.clip(y, 0.02, 0.98)))
    solution = np.linalg.solve(
        features_.T @ features_ + 1e-6 * np.eye(features_.shape[1]), features_.T @ y
    )
    output = dense[-1]
    output.set_weights(
        [solution[:-1, None].astype("float32"), np.array([solution[-1] + shift], dtype="float32")]
    )
    _CONSTRUCTED[key] = model.get_weights()
    return model


def loss_of(model, x, y, loss="mae") -> float:
    view, weights = _view_and_weights(model)
    return km.loss_value(km.LossView(loss, loss), y, km.forward(view, weights, x))


def history_for(
    model,
    last_val: float | None,
    epochs=100,
    steps=5,
    owner=None,
    n=None,
    series: list[float] | None = None,
):
    """A real Keras History as ``fit`` leaves it, ending at ``last_val``."""
    history = keras.callbacks.History()
    history.set_model(owner if owner is not None else model)
    n = n or epochs
    loss = [0.3 - 0.18 * k / max(n - 1, 1) for k in range(n)]
    history.history = {"loss": loss}
    if last_val is not None:
        history.history["val_loss"] = (
            series
            if series is not None
            else [last_val + 0.1 * (n - 1 - k) / max(n - 1, 1) for k in range(n)]
        )
    history.params = {"verbose": 0, "epochs": epochs, "steps": steps}
    history.epoch = list(range(n))
    if owner is None and getattr(model, "optimizer", None) is not None:
        model.optimizer.iterations.assign(n * steps)  # the steps this fit would have taken
    return history


# --- a crafted student ----------------------------------------------------------------------


@dataclass
class Student:
    model: Any = None  # a Keras model, MISSING, or any value
    history: Any = None  # a History, MISSING, or any value
    effect: Any = "c"
    cells: dict[str, dict] = field(default_factory=dict)
    captured: tuple[str, ...] = ("model", "history", "effect")
    source: str | None = None  # the model cell's code, in IPython's input history (``In``)

    def write(self, folder: Path, monkeypatch) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        monkeypatch.setenv(capture.ENV_ARTIFACTS, str(folder))
        namespace = {
            "model": self.model,
            "history": self.history,
            "regularization_effect": self.effect,
        }
        namespace = {k: v for k, v in namespace.items() if v is not MISSING}
        if self.source is not None:
            namespace["In"] = ["", self.source, 'kc.capture_model(globals(), "model")']
        if "model" in self.captured:
            keras_capture.capture_model(namespace, "model")
        if "history" in self.captured:
            keras_capture.capture_training(
                namespace, model="model", history="history", callback=None
            )
        if "effect" in self.captured:
            capture.answers(namespace, "regularization_effect")
        write_execution(folder, self.cells)
        return folder


def trained(
    data, layer_list=None, loss="mae", optimizer="adam", epochs=100, steps=5, **weights
) -> Student:
    """A student whose ``model`` was "trained" (constructed weights) and whose ``history``
    is the one of that training. The reference network is built and solved once per setting
    (a third of this module's time): cases then differ only in what they do after ``fit``, and
    each is captured before the next case starts (``history_for`` resets the step count)."""
    key = (id(data), loss, str(optimizer), tuple(sorted(weights.items())))
    if layer_list is None and key in _REFERENCE_MODELS:
        model, value = _REFERENCE_MODELS[key]
    else:
        model = construct(
            model_of(layer_list or reference_layers(), loss, optimizer), data, **weights
        )
        value = loss_of(model, data["X_valid"], data["y_valid"], "mse" if loss == "mse" else "mae")
        if layer_list is None and isinstance(optimizer, str):
            _REFERENCE_MODELS[key] = (model, value)
    model.stop_training = False
    return Student(model, history_for(model, value, epochs, steps))


_REFERENCE_MODELS: dict[tuple, tuple[Any, float]] = {}


# --- the cases: (student factory, {cell: set of failed message ids}) -------------------------

Case = tuple[Callable[[Any], Student], dict[str, set[str]]]
CASES: dict[str, Case] = {}


def case(name: str, expect: dict[str, set[str]] | None = None):
    def register(function):
        CASES[name] = (function, expect or {})
        return function

    return register


# correct solutions, in several styles ---------------------------------------------------------
case("reference")(lambda d: trained(d))
case("bn_before_dropout")(
    lambda d: trained(d, stack([layer for _ in range(3) for layer in bn_first_block()]))
)
case("linear_dense_bn_activation")(
    lambda d: trained(d, stack([layer for _ in range(3) for layer in between_block()]))
)


@case("input_shape_relu_layer_loss_object")
def _(d):
    body = [
        layers.Dense(1024, input_shape=[11]),
        layers.BatchNormalization(),
        layers.ReLU(),
        layers.Dropout(rate=0.3),
    ]
    for _ in range(2):
        body += [
            layers.Dense(1024),
            layers.BatchNormalization(),
            layers.ReLU(),
            layers.Dropout(rate=0.3),
        ]
    student = trained(
        d,
        stack(body, input_layer=False),
        loss=keras.losses.MeanAbsoluteError(),
        optimizer=keras.optimizers.Adam(),
    )
    student.effect = " C) "
    return student


@case("dropout_before_activation_no_bias")
def _(d):
    body = []
    for _ in range(3):
        body += [
            layers.Dense(1024, use_bias=False),
            layers.BatchNormalization(),
            layers.Dropout(0.3),
            layers.Activation("relu"),
        ]
    student = trained(d, stack(body), loss="mean_absolute_error")
    student.effect = {"c"}
    return student


case("dropout_on_inputs_too")(
    lambda d: trained(
        d, stack([layer for _ in range(3) for layer in relu_block()], head=[layers.Dropout(0.3)])
    )
)
case("batchnorm_on_inputs_too")(
    lambda d: trained(
        d,
        stack(
            [layer for _ in range(3) for layer in relu_block()], head=[layers.BatchNormalization()]
        ),
    )
)

# test_dropout -------------------------------------------------------------------------------
DENSE_10_3 = {
    "status": "error",
    "error": {
        "ename": "ValueError",
        "evalue": (
            "Received an invalid value for `units`, expected a positive integer. Received: units=10.3"
        ),
    },
}
RATE_30 = {
    "status": "error",
    "error": {
        "ename": "ValueError",
        "evalue": (
            "Invalid value received for argument `rate`. Expected a float value between 0 and 1. "
            "Received: rate=30"
        ),
    },
}
MODEL_FAILED = {"test_history": {"db_history.no_model_built"}}


@case(
    "dense_10_3_keras3",
    {
        "test_dropout": {"db_dropout.dense_not_dropout"},
        "test_batchnorm": {"db_dropout.dense_not_dropout"},
        **MODEL_FAILED,
    },
)
def _(d):
    return Student(
        MISSING, MISSING, cells={"ans_model": DENSE_10_3, "ans_history": NAME_ERROR_MODEL}
    )


@case(
    "rate_30_keras3",
    {
        "test_dropout": {"db_dropout.rate_percent"},
        "test_batchnorm": {"db_dropout.rate_percent"},
        **MODEL_FAILED,
    },
)
def _(d):
    return Student(MISSING, MISSING, cells={"ans_model": RATE_30, "ans_history": NAME_ERROR_MODEL})


@case(
    "seed_code_in_old_keras",
    {
        "test_dropout": {"db_dropout.dense_not_dropout", "db_model.hidden_count"},
        "test_batchnorm": {"db_batchnorm.missing"},
    },
)
def _(d):
    """Keras 2 turned Dense(10.3) into Dense(10): the seed's printed code, as it ran there."""
    body = [
        layers.Dense(1024, activation="relu"),
        layers.Dropout(0.3),
        layers.BatchNormalization(),
        *[layers.Dense(1024, activation="relu") for _ in range(4)],
        layers.Dense(10),
        layers.BatchNormalization(),
    ]
    return trained(d, stack(body))


@case(
    "seed_code_fixed_but_extra_layers",
    {
        "test_dropout": {"db_dropout.missing", "db_model.hidden_count"},
        "test_batchnorm": {"db_batchnorm.missing"},
    },
)
def _(d):
    body = [
        layers.Dense(1024, activation="relu"),
        layers.Dropout(0.3),
        layers.BatchNormalization(),
        *[layers.Dense(1024, activation="relu") for _ in range(4)],
        layers.Dropout(0.3),
        layers.BatchNormalization(),
    ]
    return trained(d, stack(body))


def _rate_case(rate):
    return lambda d: trained(d, stack([layer for _ in range(3) for layer in relu_block(rate=rate)]))


case("rate_0", {"test_dropout": {"db_dropout.rate_zero"}})(_rate_case(0.0))
case("rate_0_7_kept_fraction", {"test_dropout": {"db_dropout.rate_keep"}})(_rate_case(0.7))
case("rate_0_5_seed_usual", {"test_dropout": {"db_dropout.rate_seed_50"}})(_rate_case(0.5))
case("rate_0_2", {"test_dropout": {"db_dropout.rate_wrong"}})(_rate_case(0.2))
case("dropout_after_output", {"test_dropout": {"db_dropout.after_output"}})(
    lambda d: trained(
        d, stack([layer for _ in range(3) for layer in relu_block()], tail=[layers.Dropout(0.3)])
    )
)
case(
    "dropout_only_after_output", {"test_dropout": {"db_dropout.missing", "db_dropout.after_output"}}
)(
    lambda d: trained(
        d,
        stack(
            [
                layer
                for _ in range(3)
                for layer in (layers.Dense(1024, activation="relu"), layers.BatchNormalization())
            ],
            tail=[layers.Dropout(0.3)],
        ),
    )
)


@case("dropout_before_each_dense", {"test_dropout": {"db_dropout.before_dense"}})
def _(d):
    body = []
    for _ in range(3):
        body += [
            layers.Dropout(0.3),
            layers.Dense(1024, activation="relu"),
            layers.BatchNormalization(),
        ]
    return trained(d, stack(body))


case("no_dropout", {"test_dropout": {"db_dropout.missing", "db_dropout.none"}})(
    lambda d: trained(
        d,
        stack(
            [
                layer
                for _ in range(3)
                for layer in (layers.Dense(1024, activation="relu"), layers.BatchNormalization())
            ]
        ),
    )
)
case("two_dropouts_in_a_block", {"test_dropout": {"db_dropout.twice"}})(
    lambda d: trained(d, stack([*relu_block(), layers.Dropout(0.3), *relu_block(), *relu_block()]))
)
case("gaussian_dropout", {"test_dropout": {"db_dropout.other_kind", "db_dropout.none"}})(
    lambda d: trained(
        d,
        stack(
            [
                layer
                for _ in range(3)
                for layer in (
                    layers.Dense(1024, activation="relu"),
                    layers.GaussianDropout(0.3),
                    layers.BatchNormalization(),
                )
            ]
        ),
    )
)
case("units_512", {"test_dropout": {"db_model.units"}})(
    lambda d: trained(d, stack([layer for _ in range(3) for layer in relu_block(units=512)]))
)
case("tanh", {"test_dropout": {"db_model.activation"}})(
    lambda d: trained(
        d,
        stack(
            [
                layer
                for _ in range(3)
                for layer in (
                    layers.Dense(1024, activation="tanh"),
                    layers.Dropout(0.3),
                    layers.BatchNormalization(),
                )
            ]
        ),
    )
)
case("linear_hidden_layers", {"test_dropout": {"db_model.activation"}})(
    lambda d: trained(
        d,
        stack(
            [
                layer
                for _ in range(3)
                for layer in (layers.Dense(1024), layers.Dropout(0.3), layers.BatchNormalization())
            ]
        ),
    )
)
case("two_hidden_blocks", {"test_dropout": {"db_model.hidden_count"}})(
    lambda d: trained(d, stack([layer for _ in range(2) for layer in relu_block()]))
)
case("flatten_in_a_block", {"test_dropout": {"db_model.other_layer"}})(
    lambda d: trained(d, stack([*relu_block(), layers.Flatten(), *relu_block(), *relu_block()]))
)


@case("sigmoid_output", {"test_dropout": {"db_model.output_activation"}})
def _(d):
    layer_list = reference_layers()
    layer_list[-1] = layers.Dense(1, activation="sigmoid")
    return trained(d, layer_list)


@case(
    "two_outputs",
    {"test_dropout": {"db_model.output_units"}, "test_history": {"answer_cell_error"}},
)
def _(d):
    layer_list = reference_layers()
    layer_list[-1] = layers.Dense(2)
    student = Student(model_of(layer_list), MISSING)  # fit failed: shapes do not match
    student.cells = {
        "ans_history": {
            "status": "error",
            "error": {
                "ename": "ValueError",
                "evalue": "Arguments `target` and `output` must have the same shape",
            },
        }
    }
    return student


@case(
    "input_12_features", {"test_dropout": {"db_model.input"}, "test_history": {"answer_cell_error"}}
)
def _(d):
    student = Student(
        model_of(
            [
                keras.Input(shape=(12,)),
                *[layer for _ in range(3) for layer in relu_block()],
                layers.Dense(1),
            ]
        ),
        MISSING,
    )
    student.cells = {
        "ans_history": {
            "status": "error",
            "error": {"ename": "ValueError", "evalue": "Input 0 of layer dense is incompatible"},
        }
    }
    return student


# test_batchnorm -----------------------------------------------------------------------------
case("batchnorm_after_output", {"test_batchnorm": {"db_batchnorm.after_output"}})(
    lambda d: trained(
        d,
        stack(
            [layer for _ in range(3) for layer in relu_block()], tail=[layers.BatchNormalization()]
        ),
    )
)


@case("batchnorm_before_each_dense", {"test_batchnorm": {"db_batchnorm.before_dense"}})
def _(d):
    body = []
    for _ in range(3):
        body += [
            layers.BatchNormalization(),
            layers.Dense(1024, activation="relu"),
            layers.Dropout(0.3),
        ]
    return trained(d, stack(body))


case("no_batchnorm", {"test_batchnorm": {"db_batchnorm.missing", "db_batchnorm.none"}})(
    lambda d: trained(
        d,
        stack(
            [
                layer
                for _ in range(3)
                for layer in (layers.Dense(1024, activation="relu"), layers.Dropout(0.3))
            ]
        ),
    )
)
case("two_batchnorms_in_a_block", {"test_batchnorm": {"db_batchnorm.twice"}})(
    lambda d: trained(
        d, stack([*relu_block(), layers.BatchNormalization(), *relu_block(), *relu_block()])
    )
)

# test_history -------------------------------------------------------------------------------


@case("not_retrained", {"test_history": {"db_history.not_retrained", "db_history.val_mae_high"}})
def _(d):
    """Trained a plain model first, then added the layers and kept the old history."""
    old = trained(d, stack([layers.Dense(1024, activation="relu") for _ in range(3)]))
    return Student(model_of(reference_layers()), old.history)


@case(
    "not_retrained_unbuilt", {"test_history": {"db_history.not_retrained", "db_history.untrained"}}
)
def _(d):
    old = trained(d, stack([layers.Dense(1024, activation="relu") for _ in range(3)]))
    return Student(
        model_of(stack([layer for _ in range(3) for layer in relu_block()], input_layer=False)),
        old.history,
    )


@case("diverged", {"test_history": {"db_history.not_finite"}})
def _(d):
    student = trained(d)
    student.history.history["val_loss"][-5:] = [float("nan")] * 5
    return student


@case("hidden_dense_10_is_not_the_seed_bug", {"test_dropout": {"db_model.units"}})
def _(d):
    """Ten units everywhere is a (wrong) design, not the seed's Dense(10.3)."""
    return trained(d, stack([layer for _ in range(3) for layer in relu_block(units=10)]))


@case("no_validation_data", {"test_history": {"db_history.no_validation"}})
def _(d):
    student = trained(d)
    student.history = history_for(student.model, None)
    return student


case("epochs_50", {"test_history": {"db_history.epochs"}})(lambda d: trained(d, epochs=50))
case("batch_size_32", {"test_history": {"db_history.batch_size"}})(lambda d: trained(d, steps=40))
case("sgd", {"test_history": {"db_history.optimizer"}})(lambda d: trained(d, optimizer="sgd"))
case("mse", {"test_history": {"db_history.loss"}})(lambda d: trained(d, loss="mse"))


@case("not_compiled", {"test_history": {"answer_cell_error", "db_history.not_compiled"}})
def _(d):
    """Forgot compile: fit raises, and the compile check says why."""
    return Student(
        model_of(reference_layers(), compiled=False),
        MISSING,
        cells={
            "ans_history": {
                "status": "error",
                "error": {
                    "ename": "ValueError",
                    "evalue": "You must call `compile()` before using the model.",
                },
            }
        },
    )


@case("history_edited", {"test_history": {"db_history.mismatch"}})
def _(d):
    student = trained(d)
    student.history.history["val_loss"] = [0.9 * v for v in student.history.history["val_loss"]]
    return student


# training claims set by hand (issue 13): history.params, history.epoch and the series can all be
# edited in the kernel; only what they and the optimizer's step count prove together is believed
@case("claims_params_forged", {"test_history": {"db_history.params_forged"}})
def _(d):
    """Trained 10 epochs, then ``history.params["epochs"] = 100``: no credit for 100 epochs."""
    student = trained(d, epochs=10)
    student.history.params["epochs"] = 100
    return student


@case("claims_history_padded", {"test_history": {"db_history.iterations_fewer"}})
def _(d):
    """Trained 10 epochs, then every series padded to 100 with its last value."""
    student = trained(d, epochs=10)
    history = student.history
    history.history = {k: v + [v[-1]] * 90 for k, v in history.history.items()}
    history.epoch = list(range(100))
    history.params["epochs"] = 100
    return student


@case("claims_one_series_cut", {"test_history": {"db_history.series_lengths"}})
def _(d):
    student = trained(d)
    student.history.history["loss"] = student.history.history["loss"][:60]
    return student


@case("claims_epoch_list_edited", {"test_history": {"db_history.epoch_list"}})
def _(d):
    student = trained(d)
    student.history.epoch = [*range(50), *range(60, 110)]  # a gap: not one fit's numbering
    return student


@case("claims_more_than_requested", {"test_history": {"db_history.more_than_requested"}})
def _(d):
    student = trained(d)
    student.history.params["epochs"] = 80
    return student


@case("claims_steps_forged", {"test_history": {"db_history.iterations_more"}})
def _(d):
    """``batch_size=32`` (40 steps an epoch), then ``history.params["steps"] = 5``."""
    student = trained(d, steps=40)
    student.history.params["steps"] = 5
    return student


@case("trained_twice", {"test_history": {"db_history.iterations_more"}})
def _(d):
    """The training cell ran twice on the same model: the optimizer counts both fits."""
    student = trained(d)
    student.model.optimizer.iterations.assign(2 * 100 * 5)
    return student


@case("stopped_by_a_callback")
def _(d):
    """An EarlyStopping without restoring in a lesson that trains all 100 epochs: 60 were run,
    ``fit`` was asked for 100 and the callback stopped it; nothing is forged, so the fit check
    believes ``epochs=100`` (the integrity check charges restored weights, when there are)."""
    student = trained(d)
    value = student.history.history["val_loss"][-1]
    student.history = history_for(student.model, value, epochs=100, n=60)
    student.model.stop_training = True
    return student


@case("validation_on_training_data", {"test_history": {"db_history.validation_is_training"}})
def _(d):
    student = trained(d)
    student.history = history_for(student.model, loss_of(student.model, d["X_train"], d["y_train"]))
    return student


@case("validation_split", {"test_history": {"db_history.validation_split"}})
def _(d):
    student = trained(d)
    start = math.ceil(len(d["X_train"]) * 0.8)
    student.history = history_for(
        student.model, loss_of(student.model, d["X_train"][start:], d["y_train"][start:])
    )
    return student


@case("best_weights_restored", {"test_history": {"db_history.not_last_epoch"}})
def _(d):
    student = trained(d)
    value = loss_of(student.model, d["X_valid"], d["y_valid"])
    series = [
        value + 0.05 * (40 - k) / 40 if k < 40 else value + 0.0005 * (k - 39) for k in range(100)
    ]
    series[40] = value
    student.history = history_for(student.model, value, series=series)
    return student


case("val_mae_high", {"test_history": {"db_history.val_mae_high"}})(lambda d: trained(d, shift=0.2))
case("trained_on_validation", {"test_history": {"db_history.val_mae_implausible"}})(
    lambda d: trained(d, features="random", fit_on="valid")
)


@case("history_is_a_dict", {"test_history": {"db_history.wrong_type"}})
def _(d):
    student = trained(d)
    student.history = dict(student.history.history)
    return student


@case("history_not_attempted", {"test_history": {"not_attempted"}})
def _(d):
    student = trained(d)
    student.history = MISSING
    student.cells = {"ans_history": NOT_IMPLEMENTED}
    return student


@case("history_cell_raised", {"test_history": {"answer_cell_error"}})
def _(d):
    student = trained(d)
    student.history = MISSING
    student.cells = {
        "ans_history": {
            "status": "error",
            "error": {
                "ename": "TypeError",
                "evalue": "fit() got an unexpected keyword argument 'epoch'",
            },
        }
    }
    return student


# messages that name the real cause (issue 14) --------------------------------------------------
@case(
    "model_from_a_set",
    {
        "test_dropout": {"db_model.set_order"},
        "test_batchnorm": {"db_model.set_order"},
        "test_history": {"not_attempted"},
    },
)
def _(d):
    """``keras.Sequential({...})``: the layers in the order a set gave them (fixed here)."""
    scrambled = [
        layers.Dropout(0.3),
        layers.Dense(1024, activation="relu"),
        layers.BatchNormalization(),
        layers.Dense(1),
        layers.Dense(1024, activation="relu"),
        layers.BatchNormalization(),
        layers.Dropout(0.3),
        layers.Dense(1024, activation="relu"),
        layers.Dropout(0.3),
        layers.BatchNormalization(),
    ]
    return Student(
        model_of([keras.Input(shape=(11,)), *scrambled]),
        MISSING,
        cells={"ans_history": NOT_IMPLEMENTED},
        source=(
            "model = keras.Sequential({\n"
            "    layers.Dense(1024, activation='relu'), layers.Dropout(0.3),\n"
            "    layers.BatchNormalization(), layers.Dense(1),\n"
            "})\nmodel.compile(optimizer='adam', loss='mae')\n"
        ),
    )


@case("model_from_a_list_is_not_a_set")
def _(d):
    student = trained(d)
    student.source = "model = keras.Sequential([layers.Dense(1024), layers.Dense(1)])\n"
    return student


case("epochs_and_batch_size", {"test_history": {"db_history.fit_arguments"}})(
    lambda d: trained(d, epochs=50, steps=3)
)


@case("model_cell_raised_in_compile", {"test_history": {"answer_cell_error"}})
def _(d):
    """``model.complie(...)``: the model is complete but uncompiled; fit then failed."""
    return Student(
        model_of(reference_layers(), compiled=False),
        MISSING,
        cells={
            "ans_model": {
                "status": "error",
                "error": {
                    "ename": "AttributeError",
                    "evalue": "'Sequential' object has no attribute 'complie'",
                },
            },
            "ans_history": {
                "status": "error",
                "error": {
                    "ename": "ValueError",
                    "evalue": "You must call `compile()` before using the model.",
                },
            },
        },
    )


# regularization_effect --------------------------------------------------------------------------
def _effect(value):
    def make(d):
        student = trained(d)
        student.effect = value
        return student

    return make


case("effect_faster", {"test_regularization_effect": {"db_effect.faster"}})(_effect("a"))
case("effect_no_overfitting", {"test_regularization_effect": {"db_effect.no_overfitting"}})(
    _effect("b")
)
case("effect_val_worse", {"test_regularization_effect": {"db_effect.val_worse"}})(_effect("d"))
case("effect_unknown_letter", {"test_regularization_effect": {"db_effect.unknown_letter"}})(
    _effect("e")
)
case("effect_number", {"test_regularization_effect": {"db_effect.unknown_letter"}})(_effect(3))
case("effect_not_attempted", {"test_regularization_effect": {"not_attempted"}})(_effect(MISSING))

# the whole notebook ---------------------------------------------------------------------------
ALL_NOT_ATTEMPTED = {gid: {"not_attempted"} for gid in POINTS}


@case("blank", ALL_NOT_ATTEMPTED)
def _(d):
    return Student(
        MISSING,
        MISSING,
        MISSING,
        cells={
            "ans_model": NOT_IMPLEMENTED,
            "ans_history": NOT_IMPLEMENTED,
            "ans_regularization_effect": NOT_IMPLEMENTED,
        },
    )


@case("kernel_died_before_the_tests", {gid: {"not_executed"} for gid in POINTS})
def _(d):
    student = trained(d)
    student.captured = ()
    student.cells = {gid: {"status": "not_run", "reason": "the kernel died"} for gid in POINTS}
    return student


# --- running them ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def graded(data, tmp_path_factory):
    """Every case, written and checked in one pytest session."""
    monkeypatch = pytest.MonkeyPatch()
    root = tmp_path_factory.mktemp("lesson5")
    folders = {}
    try:
        for name, (factory, _) in CASES.items():
            folders[name] = factory(data).write(root / name, monkeypatch)
    finally:
        monkeypatch.undo()
    return run_checks_many(AID, folders, POINTS, THRESHOLDS)


def failed(cells) -> dict[str, set[str]]:
    return {
        gid: {c.message_id for c in cell.checks if not c.passed}
        for gid, cell in cells.items()
        if any(not c.passed for c in cell.checks)
    }


@pytest.mark.parametrize("name", list(CASES))
def test_each_case_gets_its_messages_and_only_those(graded, name):
    _, expect = CASES[name]
    cells = graded[name]
    assert failed(cells) == expect, name
    for gid, cell in cells.items():
        if gid not in expect:
            assert cell.score == POINTS[gid], (name, gid)
        else:
            assert cell.score < POINTS[gid], (name, gid)
    assert all(c.outcome != "error" for cell in cells.values() for c in cell.checks)


def test_a_correct_model_earns_every_point(graded):
    for name in (
        "reference",
        "bn_before_dropout",
        "linear_dense_bn_activation",
        "input_shape_relu_layer_loss_object",
        "dropout_before_activation_no_bias",
        "dropout_on_inputs_too",
        "batchnorm_on_inputs_too",
    ):
        assert sum(c.score for c in graded[name].values()) == sum(POINTS.values()), name


def test_partial_credit_inside_a_cell(graded):
    assert graded["dropout_after_output"]["test_dropout"].score == 2.5
    assert graded["rate_0"]["test_dropout"].score == 2
    assert graded["units_512"]["test_dropout"].score == 2.5
    assert graded["batchnorm_after_output"]["test_batchnorm"].score == 1.5
    assert graded["not_retrained"]["test_history"].score == 0.5  # only compile is right
    assert graded["history_edited"]["test_history"].score == 3


def test_both_placements_of_seed_5_4_are_named_in_the_feedback(graded):
    def ok_message(name):
        check = next(c for c in graded[name]["test_batchnorm"].checks if c.id == "batchnorm_blocks")
        return check.messages["en"]

    assert "Lesson 5.4's first placement" in ok_message("reference")
    assert "Lesson 5.4's second placement" in ok_message("linear_dense_bn_activation")
    assert "normalize the inputs" in ok_message("batchnorm_on_inputs_too")
    dropout = next(
        c
        for c in graded["dropout_on_inputs_too"]["test_dropout"].checks
        if c.id == "dropout_hidden"
    )
    assert dropout.passed and "Lesson 5.1 allows it" in dropout.messages["en"]


def test_messages_name_the_variable_what_was_found_and_the_lesson(graded):
    def message(name, gid, check_id):
        return next(c for c in graded[name][gid].checks if c.id == check_id).messages

    texts = message("dense_10_3_keras3", "test_dropout", "dropout_hidden")
    assert "Dense(10.3)" in texts["es"] and "Dropout(0.3)" in texts["es"]
    assert "Lección 5.5" in texts["es"] and "Lesson 5.5" in texts["en"]
    texts = message("rate_30_keras3", "test_dropout", "dropout_rate")
    assert "Dropout(30)" in texts["es"] and "3000 %" in texts["es"] and "Lección 5.2" in texts["es"]
    texts = message("rate_0", "test_dropout", "dropout_rate")
    assert "rate=0" in texts["en"] and "layer 2" in texts["en"] and "Lesson 5.2" in texts["en"]
    texts = message("dropout_after_output", "test_dropout", "dropout_output")
    assert "layer 11" in texts["en"] and "layer 10" in texts["en"] and "Lesson 5.1" in texts["en"]
    texts = message("seed_code_fixed_but_extra_layers", "test_dropout", "dense_layers")
    assert "5 hidden" in texts["en"] and "bug of the original code" in texts["en"]
    texts = message("not_retrained", "test_history", "history_model")
    assert "`history`" in texts["en"] and "`model`" in texts["en"] and "Lesson 5.5" in texts["en"]
    texts = message("val_mae_high", "test_history", "history_val_mae")
    assert str(THRESHOLDS["db_val_mae_max"]) in texts["es"]


def test_no_message_reveals_the_letter_of_regularization_effect(graded):
    for name in ("effect_faster", "effect_no_overfitting", "effect_val_worse"):
        for check in graded[name]["test_regularization_effect"].checks:
            for text in [*check.messages.values(), check.hint or ""]:
                assert '"c"' not in text and "c)" not in text.lower(), (name, text)
    for name in ("effect_unknown_letter", "effect_number"):  # every allowed letter, no favourite
        for check in graded[name]["test_regularization_effect"].checks:
            for text in check.messages.values():
                assert '"a", "b", "c", "d"' in text, text
    for message_id in (
        "db_effect.wrong",
        "db_effect.faster",
        "db_effect.no_overfitting",
        "db_effect.val_worse",
    ):
        for text in render_all(message_id, {"found": "a"}).values():
            assert '"c"' not in text


def test_not_attempted_is_distinct_from_wrong(graded):
    for cell in graded["blank"].values():
        assert [c.outcome for c in cell.checks] == ["not_attempted"] * len(cell.checks)


def test_every_catalogue_message_renders_in_both_languages():
    ids = [k for k in catalogue() if k.startswith("db_")]
    used = {m for _, expect in CASES.values() for cells in expect.values() for m in cells}
    failing = {m for m in ids if not m.endswith(("_ok", ".correct"))}
    # every failure message of the catalogue is produced by at least one crafted case
    untested = (
        failing
        - used
        - {
            "db_dropout.rate_invalid",
            "db_model.wrong_type",
            "db_model.not_a_stack",
            "db_model.no_dense",
            "db_model.no_hidden",
            "db_history.no_model",
            "db_history.empty",
            "db_history.forward_unsupported",
            "db_history.loss_unsupported",
            "db_effect.wrong",
        }
    )
    assert not untested, sorted(untested)


@pytest.mark.parametrize(
    "value, message_id",
    [
        ("12", "db_model.wrong_type"),
        (None, "db_model.wrong_type"),
    ],
)
def test_model_of_the_wrong_type(tmp_path, monkeypatch, data, value, message_id):
    student = Student(
        value,
        MISSING,
        cells={
            "ans_history": {
                "status": "error",
                "error": {
                    "ename": "AttributeError",
                    "evalue": "'str' object has no attribute 'fit'",
                },
            }
        },
    )
    folder = student.write(tmp_path / "a", monkeypatch)
    cells = run_checks_many(AID, {"s": folder}, POINTS, THRESHOLDS)["s"]
    assert failed(cells)["test_dropout"] == {message_id}
    assert failed(cells)["test_batchnorm"] == {message_id}


def test_rare_model_shapes(tmp_path, monkeypatch, data):
    """A model with only the output layer, one with no Dense at all, a nested model, a rate
    that is not a number, and a history with no epoch."""
    only_output = Student(
        model_of([keras.Input(shape=(11,)), layers.Dense(1)]),
        MISSING,
        cells={"ans_history": NOT_IMPLEMENTED},
    )
    no_dense = Student(
        model_of([keras.Input(shape=(11,)), layers.Dropout(0.3)]),
        MISSING,
        cells={"ans_history": NOT_IMPLEMENTED},
    )
    inner = keras.Sequential([keras.Input(shape=(11,)), *relu_block()])
    nested = Student(
        model_of([keras.Input(shape=(11,)), inner, layers.Dense(1)]),
        MISSING,
        cells={"ans_history": NOT_IMPLEMENTED},
    )
    empty = trained(data)
    empty.history = history_for(empty.model, None, n=1)
    empty.history.history = {"loss": []}
    rate_text = Student(
        MISSING,
        MISSING,
        cells={
            "ans_model": {
                "status": "error",
                "error": {
                    "ename": "ValueError",
                    "evalue": (
                        "Invalid value received for argument `rate`. Expected a float value between 0 and "
                        "1. Received: rate=-0.3"
                    ),
                },
            },
            "ans_history": NAME_ERROR_MODEL,
        },
    )
    folders = {
        name: student.write(tmp_path / name, monkeypatch)
        for name, student in {
            "only_output": only_output,
            "no_dense": no_dense,
            "nested": nested,
            "empty": empty,
            "rate_text": rate_text,
        }.items()
    }
    graded = run_checks_many(AID, folders, POINTS, THRESHOLDS)
    assert failed(graded["only_output"])["test_dropout"] == {
        "db_model.no_hidden",
        "db_dropout.none",
        "db_model.hidden_count",
    }
    assert failed(graded["no_dense"])["test_batchnorm"] == {
        "db_model.no_hidden",
        "db_model.no_dense",
    }
    assert failed(graded["nested"])["test_dropout"] == {"db_model.not_a_stack"}
    assert failed(graded["empty"])["test_history"] == {"db_history.empty"}
    assert failed(graded["rate_text"])["test_dropout"] == {"db_dropout.rate_invalid"}


def _check(graded, name, gid, check_id):
    return next(c for c in graded[name][gid].checks if c.id == check_id)


def test_messages_name_the_real_cause(graded):
    # a set of layers: the set is named, not the order Keras happened to give its layers
    check = _check(graded, "model_from_a_set", "test_dropout", "dropout_hidden")
    assert "conjunto" in check.messages["es"] and "set has no order" in check.messages["en"]
    assert check.messages["en"].count("Dropout(0.3)") >= 3  # the order found is shown
    # both wrong fit arguments, without type tags
    check = _check(graded, "epochs_and_batch_size", "test_history", "history_fit")
    for text in check.messages.values():
        assert "`epochs` = 50 " in text and "427" in text and "(int)" not in text
    assert graded["epochs_and_batch_size"]["test_history"].score == 3.5  # one check of 0.5
    check = _check(graded, "epochs_50", "test_history", "history_fit")
    assert "`epochs` = 50;" in check.messages["en"] and "(int)" not in check.messages["en"]
    # the model cell's own error, not "not compiled"
    check = _check(graded, "model_cell_raised_in_compile", "test_history", "history_compile")
    assert check.message_id == "answer_cell_error"
    assert "AttributeError" in check.message and "ans_model" in check.message
    assert "no está compilado" not in check.message
    # the model itself was complete: its structure checks keep their points
    assert graded["model_cell_raised_in_compile"]["test_dropout"].score == POINTS["test_dropout"]


def test_capture_names_an_early_stopping_kept_under_another_name(data):
    """Lesson 4's kernel-side capture (here, where Keras is imported anyway): an EarlyStopping
    assigned to another name is recorded, and the self-check names it."""
    from dlcourse.artifacts import MemoryArtifacts
    from dlcourse.rules import lesson4_early_stopping as l4

    early = keras.callbacks.EarlyStopping(min_delta=0.001, patience=20)
    store = MemoryArtifacts()
    with capture.recording(store):
        keras_capture.capture_callback({"early": early, "_hidden": early}, "early_stopping")
    payload = store.read_json("keras/early_stopping.json")
    assert payload["present"] is False
    assert [o["name"] for o in payload["others"]] == ["early"]
    assert payload["others"][0]["callback"]["settings"]["patience"] == 20
    sub = l4.Submission(store, data=lambda: data)
    with pytest.raises(l4.Fail) as failure:
        l4.early_stopping_patience(sub)
    assert failure.value.message_id == "es_callback.other_name"
    assert failure.value.params["names"] == "`early`"
    # and in the training: the callback attached to the model carries its names
    model = model_of(reference_layers())
    early.set_model(model)
    found = keras_capture._other_early_stoppings(model, None, {"early": early, "model": model})
    assert [o["names"] for o in found] == [["early"]]
    # a callback under its own name records no others
    store = MemoryArtifacts()
    with capture.recording(store):
        keras_capture.capture_callback({"early_stopping": early, "e": early}, "early_stopping")
    assert "others" not in store.read_json("keras/early_stopping.json")


def test_capture_records_a_model_built_from_a_set():
    from dlcourse.artifacts import MemoryArtifacts

    store = MemoryArtifacts()
    model = model_of(reference_layers())
    for source, expected in [
        ("model = keras.Sequential({layers.Dense(1), layers.Dense(2)})\n", True),
        ("model = keras.Sequential([layers.Dense(1), layers.Dense(2)])\n", False),
    ]:
        with capture.recording(store):
            keras_capture.capture_model({"model": model, "In": ["", source, "x = 1"]}, "model")
        assert store.read_json("keras/model.json")["model"]["built_from_set"] is expected
    with capture.recording(store):  # no input history (not IPython): nothing recorded
        keras_capture.capture_model({"model": model}, "model")
    assert "built_from_set" not in store.read_json("keras/model.json")["model"]


def test_thresholds_come_from_course_config():
    for key in l5.DEFAULTS:
        assert key in THRESHOLDS, key
    assert THRESHOLDS["db_val_mae_min"] < THRESHOLDS["db_val_mae_max"]
