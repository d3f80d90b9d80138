"""A normalized view of a captured Keras model, and a numpy forward pass through it.

Reusable by every assignment whose students build a plain stack of layers (lessons 4 and 5).
It works on the plain data written by ``dlcourse.keras_capture`` (layer configs,
activation names, compile settings, a weights index and a ``.npz``), never on live Keras
objects, and it never retrains anything.

Normalization makes equivalent spellings compare equal:

* ``Dense(512, activation="relu")`` = ``Dense(512)`` + ``Activation("relu")`` = ``Dense(512)``
  + ``ReLU()`` (an activation layer is folded into the linear Dense before it);
* ``"relu"``, ``tf.nn.relu``, ``keras.activations.relu`` are all ``relu``; ``None``,
  ``"linear"`` and ``Activation("linear")`` are all linear;
* ``keras.Input(shape=(11,))`` = ``input_shape=[11]`` (the input size is read from the model,
  or from the first kernel once built); a model without any declared input is accepted;
* Dropout and BatchNormalization stay layers (lesson 5 checks them); a Flatten on flat input
  and Activation("linear") are dropped as no-ops;
* ``loss="mae"`` = ``"mean_absolute_error"`` = ``MeanAbsoluteError()`` =
  ``keras.losses.mean_absolute_error``.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# --- activations ------------------------------------------------------------------------------

_ACTIVATION_ALIASES = {
    "linear": "linear",
    "identity": "linear",
    "none": "linear",
    "": "linear",
    "relu": "relu",
    "relu6": "relu6",
    "sigmoid": "sigmoid",
    "tanh": "tanh",
    "softmax": "softmax",
    "log_softmax": "log_softmax",
    "elu": "elu",
    "selu": "selu",
    "softplus": "softplus",
    "softsign": "softsign",
    "swish": "swish",
    "silu": "swish",
    "gelu": "gelu",
    "exponential": "exponential",
    "exp": "exponential",
    "hard_sigmoid": "hard_sigmoid",
    "leaky_relu": "leaky_relu",
    "mish": "mish",
    "hard_silu": "hard_swish",
    "hard_swish": "hard_swish",
}
# Activation layers (class name -> canonical activation) when used with their defaults.
_ACTIVATION_LAYERS = {"ReLU": "relu", "LeakyReLU": "leaky_relu", "ELU": "elu", "Softmax": "softmax"}
_DROPOUT_LAYERS = {
    "Dropout",
    "AlphaDropout",
    "GaussianDropout",
    "GaussianNoise",
    "SpatialDropout1D",
}
_IDEMPOTENT = {"linear", "relu", "relu6"}


def _key(name: Any) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


_ACTIVATION_KEYS = {_key(k): v for k, v in _ACTIVATION_ALIASES.items()}


def canonical_activation(name: Any) -> str:
    """``"ReLU"``, ``"relu"``, ``None`` -> ``"relu"``, ``"relu"``, ``"linear"``; unknown names as given."""
    if name is None:
        return "linear"
    if isinstance(
        name, dict
    ):  # a serialized function: {"class_name": "function", "config": "relu"}
        name = name.get("config") if isinstance(name.get("config"), str) else name.get("class_name")
    return _ACTIVATION_KEYS.get(_key(name), str(name).strip())


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _softplus(x):
    return np.logaddexp(0.0, x)


_ERF = np.frompyfunc(math.erf, 1, 1)

ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": lambda x: np.maximum(x, 0.0),
    "relu6": lambda x: np.clip(x, 0.0, 6.0),
    "sigmoid": _sigmoid,
    "tanh": np.tanh,
    "softmax": lambda x: (
        np.exp(x - x.max(axis=-1, keepdims=True))
        / np.exp(x - x.max(axis=-1, keepdims=True)).sum(axis=-1, keepdims=True)
    ),
    "elu": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "selu": lambda x: (
        1.0507009873554805 * np.where(x > 0, x, 1.6732632423543772 * np.expm1(np.minimum(x, 0.0)))
    ),
    "softplus": _softplus,
    "softsign": lambda x: x / (1.0 + np.abs(x)),
    "swish": lambda x: x * _sigmoid(x),
    "gelu": lambda x: 0.5 * x * (1.0 + _ERF(x / math.sqrt(2.0)).astype(np.float64)),
    "exponential": np.exp,
    "hard_sigmoid": lambda x: np.clip(x + 3.0, 0.0, 6.0) / 6.0,
    "hard_swish": lambda x: x * np.clip(x + 3.0, 0.0, 6.0) / 6.0,
    "leaky_relu": lambda x: np.where(x > 0, x, 0.2 * x),
    "mish": lambda x: x * np.tanh(_softplus(x)),
}


# --- the normalized view ----------------------------------------------------------------------


@dataclass
class LayerView:
    """One layer of the normalized model (activation layers already folded in)."""

    kind: str  # "Dense", "Dropout", "BatchNormalization", "Activation" or another class name
    units: int | None = None
    activation: str | None = None  # canonical name for Dense/Activation
    rate: float | None = None
    params: dict[str, Any] = field(default_factory=dict)
    layer: int | None = None  # position in the captured layer list (owner of the weights)
    folded: list[int] = field(default_factory=list)  # captured positions folded into this one
    config: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        if self.kind == "Dense":
            text = f"Dense({self.units}" + (
                "" if self.activation == "linear" else f", {self.activation}"
            )
            if self.params.get("use_bias") is False:
                text += ", use_bias=False"
            return text + ")"
        if self.kind == "Activation":
            return f"Activation({self.activation})"
        if self.kind in _DROPOUT_LAYERS:
            return f"{self.kind}({_short(self.rate)})"
        if self.kind == "BatchNormalization":
            return "BatchNormalization()"
        return f"{self.kind}()"

    def same_as(self, other: LayerView) -> bool:
        return self.describe() == other.describe()


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def dense(units: int, activation: str = "linear") -> LayerView:
    return LayerView(
        "Dense", units=units, activation=canonical_activation(activation), params={"use_bias": True}
    )


def dropout(rate: float) -> LayerView:
    return LayerView("Dropout", rate=float(rate))


def batch_norm() -> LayerView:
    return LayerView("BatchNormalization")


@dataclass
class ModelView:
    """A captured model, normalized: input size, layers, and what was folded or dropped."""

    input_dim: int | None
    layers: list[LayerView]
    notes: list[str] = field(default_factory=list)
    problem: str | None = None  # e.g. a nested model: cannot be compared layer by layer

    def describe(self) -> str:
        return ", ".join(layer.describe() for layer in self.layers) or "(no layers)"


def _input_dim(model: dict) -> int | None:
    shape = model.get("input_shape")
    if isinstance(shape, list) and shape and isinstance(shape[-1], int):
        return int(shape[-1])
    config = model.get("config") if isinstance(model.get("config"), dict) else {}
    for entry in config.get("layers") if isinstance(config.get("layers"), list) else []:
        if isinstance(entry, dict) and entry.get("class_name") == "InputLayer":
            batch = (entry.get("config") or {}).get("batch_shape") or (
                entry.get("config") or {}
            ).get("batch_input_shape")
            if isinstance(batch, list) and batch and isinstance(batch[-1], int):
                return int(batch[-1])
    for layer in model.get("layers", []):
        config = layer.get("config") if isinstance(layer.get("config"), dict) else {}
        batch = config.get("batch_shape") or config.get("batch_input_shape")
        if isinstance(batch, list) and batch and isinstance(batch[-1], int):
            return int(batch[-1])
        for weight in layer.get("weights") if isinstance(layer.get("weights"), list) else []:
            shape = weight.get("shape") if isinstance(weight, dict) else None
            if (
                weight.get("name") == "kernel"
                and isinstance(shape, list)
                and len(shape) == 2
                and isinstance(shape[0], int)
            ):
                return shape[0]
        if layer.get("class_name") not in ("InputLayer", "Flatten"):
            break
    return None


def _layer_activation(layer: dict) -> str:
    config = layer.get("config") if isinstance(layer.get("config"), dict) else {}
    if isinstance(config.get("activation"), str):
        return canonical_activation(config.get("activation"))
    info = layer.get("activation") if isinstance(layer.get("activation"), dict) else {}
    if info.get("name"):
        return canonical_activation(info["name"])
    return canonical_activation(config.get("activation"))


def normalize(model: dict) -> ModelView:
    """The normalized view of a model captured by ``keras_capture.describe_model``."""
    layers = model.get("layers") if isinstance(model.get("layers"), list) else []
    layers = [layer if isinstance(layer, dict) else {"class_name": "?"} for layer in layers]
    view = ModelView(input_dim=_input_dim({**model, "layers": layers}), layers=[])
    for position, layer in enumerate(layers):
        kind = str(layer.get("class_name", "?"))
        # the layer's own config; its attributes when get_config() failed (a lambda inside)
        config = layer.get("config") if isinstance(layer.get("config"), dict) else None
        config = config or (
            layer["attributes"] if isinstance(layer.get("attributes"), dict) else {}
        )
        if layer.get("nested"):
            view.problem = f"nested model {kind}"
            view.layers.append(LayerView(kind, layer=position, config=config))
            continue
        if kind == "InputLayer":
            continue
        if kind == "Dense":
            view.layers.append(
                LayerView(
                    "Dense",
                    units=_int(config.get("units")),
                    activation=_layer_activation(layer),
                    params={"use_bias": config.get("use_bias", True) is not False},
                    layer=position,
                    config=config,
                )
            )
            continue
        activation = None
        if kind == "Activation":
            activation = _layer_activation(layer)
        elif kind in _ACTIVATION_LAYERS and _default_activation_layer(kind, config):
            activation = _ACTIVATION_LAYERS[kind]
        if activation is not None:
            previous = view.layers[-1] if view.layers else None
            if activation == "linear":
                view.notes.append(f"layer {position + 1}: Activation(linear) does nothing")
                continue
            if (
                previous is not None
                and previous.kind == "Dense"
                and previous.activation == "linear"
            ):
                previous.activation = activation
                previous.folded.append(position)
                continue
            if (
                previous is not None
                and previous.kind in ("Dense", "Activation")
                and previous.activation == activation
                and activation in _IDEMPOTENT
            ):
                previous.folded.append(position)
                view.notes.append(f"layer {position + 1}: a second {activation} changes nothing")
                continue
            view.layers.append(
                LayerView("Activation", activation=activation, layer=position, config=config)
            )
            continue
        if kind in _DROPOUT_LAYERS:
            rate = config.get("rate", config.get("stddev"))
            view.layers.append(LayerView(kind, rate=_float(rate), layer=position, config=config))
            continue
        if kind == "BatchNormalization":
            view.layers.append(
                LayerView(
                    kind,
                    layer=position,
                    config=config,
                    params={
                        "epsilon": _float(config.get("epsilon", 1e-3)),
                        "center": config.get("center", True) is not False,
                        "scale": config.get("scale", True) is not False,
                    },
                )
            )
            continue
        if kind == "Flatten" and not view.layers:
            view.notes.append(f"layer {position + 1}: Flatten on flat input does nothing")
            continue
        view.layers.append(LayerView(kind, layer=position, config=config))
    return view


def _default_activation_layer(kind: str, config: dict) -> bool:
    if kind == "ReLU":
        return (
            config.get("max_value") is None
            and not config.get("negative_slope")
            and not config.get("threshold")
        )
    if kind == "LeakyReLU":
        return _float(config.get("negative_slope", config.get("alpha", 0.2))) == 0.2
    if kind == "ELU":
        return _float(config.get("alpha", 1.0)) == 1.0
    if kind == "Softmax":
        return config.get("axis", -1) in (-1, [-1])
    return False


def _int(value: Any) -> int | None:
    try:
        return int(value) if value is not None and float(value) == int(value) else None
    except (TypeError, ValueError):
        return None


def _float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --- comparison with a specification ----------------------------------------------------------


@dataclass
class Mismatch:
    """The first difference between a model and its specification."""

    kind: str  # input | count | type | units | activation | output_activation | rate | other
    position: int | None = None  # 1-based layer position
    expected: str = ""
    found: str = ""
    n_found: int = 0
    n_expected: int = 0


def compare(
    view: ModelView, spec: list[LayerView], input_dim: int | None = None
) -> Mismatch | None:
    """The first mismatch (by position) between ``view`` and ``spec``, or None."""
    n_found, n_expected = len(view.layers), len(spec)
    if input_dim is not None and view.input_dim is not None and view.input_dim != input_dim:
        return Mismatch("input", None, str(input_dim), str(view.input_dim), n_found, n_expected)
    first = None
    for i in range(max(n_found, n_expected)):
        if i >= n_found:
            first = Mismatch("count", i + 1, spec[i].describe(), "nothing", n_found, n_expected)
            break
        if i >= n_expected:
            first = Mismatch(
                "count", i + 1, "nothing", view.layers[i].describe(), n_found, n_expected
            )
            break
        got, want = view.layers[i], spec[i]
        if got.same_as(want):
            continue
        kind = "other"
        if got.kind != want.kind:
            kind = "type"
        elif want.kind == "Dense" and got.units != want.units:
            kind = "units"
        elif want.kind == "Dense" and got.activation != want.activation:
            kind = "output_activation" if i == n_expected - 1 else "activation"
        elif want.kind in _DROPOUT_LAYERS and got.rate != want.rate:
            kind = "rate"
        first = Mismatch(kind, i + 1, want.describe(), got.describe(), n_found, n_expected)
        break
    if first is not None and n_found != n_expected and first.kind != "count":
        first.kind = "count"
    return first


# --- forward pass -----------------------------------------------------------------------------


class Unsupported(Exception):  # noqa: N818 - reads as a verdict
    """The forward pass cannot reproduce this model (an unknown layer or activation)."""


def weights_by_layer(
    index: list[dict], arrays: dict[str, np.ndarray]
) -> dict[int, dict[str, np.ndarray]]:
    """``{captured layer position: {weight name: array}}`` from the capture's weights index."""
    out: dict[int, dict[str, np.ndarray]] = {}
    for entry in index if isinstance(index, list) else []:
        if not isinstance(entry, dict):
            continue
        key = entry.get("key")
        if key not in arrays or not isinstance(entry.get("layer"), int):
            continue
        name = str(entry.get("name") or entry.get("path", "").rsplit("/", 1)[-1])
        out.setdefault(entry["layer"], {})[name] = np.asarray(arrays[key], dtype=np.float64)
    return out


def _activate(name: str | None, x: np.ndarray) -> np.ndarray:
    function = ACTIVATIONS.get(name or "linear")
    if function is None:
        raise Unsupported(str(name))
    return function(x)


def forward(
    view: ModelView, weights: dict[int, dict[str, np.ndarray]], x: np.ndarray
) -> np.ndarray:
    """The model's predictions for ``x`` in inference mode (Dropout off, BatchNorm moving stats).

    The grader runs this on what a student's kernel captured: its cost is bounded first
    (``MAX_FORWARD_FLOPS``, ``MAX_ACTIVATIONS``), so a captured "validation set" of a million
    rows or a layer of a million units is a verdict, not minutes of the grader's CPU."""
    _check_cost(weights, np.shape(x))
    try:
        with np.errstate(all="ignore"):
            return _forward(view, weights, x)
    except (ValueError, TypeError, KeyError, IndexError) as exc:  # weights of the wrong shape
        raise Unsupported(f"weights ({type(exc).__name__})") from None


# The lessons' models on the red wine data cost about 1e9 multiply-adds and 1e6 activations;
# these bounds are 20 times that, and keep one forward pass under a few seconds and 200 MB.
MAX_FORWARD_FLOPS = 2e10
MAX_ACTIVATIONS = 25_000_000


def _check_cost(weights: dict[int, dict[str, np.ndarray]], shape: tuple[int, ...]) -> None:
    rows = int(shape[0]) if shape else 0
    kernels = [w["kernel"] for w in weights.values() if getattr(w.get("kernel"), "ndim", 0) == 2]
    flops = rows * sum(int(k.shape[0]) * int(k.shape[1]) for k in kernels)
    widest = max([int(shape[-1]) if len(shape) > 1 else 1, *(int(k.shape[1]) for k in kernels)])
    if flops > MAX_FORWARD_FLOPS or rows * widest > MAX_ACTIVATIONS:
        raise Unsupported(
            f"{rows} rows through layers up to {widest} units wide: far larger than the lesson's"
        )


def _forward(
    view: ModelView, weights: dict[int, dict[str, np.ndarray]], x: np.ndarray
) -> np.ndarray:
    if view.problem:
        raise Unsupported(view.problem)
    out = np.asarray(x, dtype=np.float64)
    for layer in view.layers:
        w = weights.get(layer.layer, {}) if layer.layer is not None else {}
        if layer.kind == "Dense":
            if "kernel" not in w:
                raise Unsupported(f"{layer.describe()}: kernel = ?")
            kernel = w["kernel"]
            if kernel.ndim != 2 or kernel.shape[0] != out.shape[-1]:
                raise Unsupported(
                    f"{layer.describe()}: kernel {tuple(kernel.shape)} · input {out.shape[-1]}"
                )
            out = out @ kernel
            if layer.params.get("use_bias", True) and "bias" in w:
                out = out + w["bias"]
            out = _activate(layer.activation, out)
        elif layer.kind == "Activation":
            out = _activate(layer.activation, out)
        elif layer.kind in _DROPOUT_LAYERS:
            continue
        elif layer.kind == "BatchNormalization":
            if "moving_mean" not in w or "moving_variance" not in w:
                raise Unsupported("BatchNormalization: moving_mean = ?")
            axis = layer.config.get("axis", -1)
            if axis not in (-1, [-1], 1, [1]) or out.ndim != 2:
                raise Unsupported(f"BatchNormalization(axis={axis})")
            eps = layer.params.get("epsilon") or 1e-3
            out = (out - w["moving_mean"]) / np.sqrt(w["moving_variance"] + eps)
            if layer.params.get("scale", True) and "gamma" in w:
                out = out * w["gamma"]
            if layer.params.get("center", True) and "beta" in w:
                out = out + w["beta"]
        elif layer.kind == "Flatten":
            out = out.reshape(len(out), -1)
        else:
            raise Unsupported(f"{layer.kind}()")
    return out


# --- losses and optimizers --------------------------------------------------------------------

_LOSS_ALIASES = {
    "mae": "mae",
    "meanabsoluteerror": "mae",
    "mse": "mse",
    "meansquarederror": "mse",
    "huber": "huber",
    "huberloss": "huber",
    "logcosh": "log_cosh",
    "mape": "mape",
    "meanabsolutepercentageerror": "mape",
    "msle": "msle",
    "meansquaredlogarithmicerror": "msle",
    "binarycrossentropy": "binary_crossentropy",
    "categoricalcrossentropy": "categorical_crossentropy",
    "sparsecategoricalcrossentropy": "sparse_categorical_crossentropy",
    "poisson": "poisson",
    "hinge": "hinge",
    "kld": "kld",
    "kldivergence": "kld",
}


@dataclass(frozen=True)
class LossView:
    name: str | None  # canonical ("mae", "mse", ...) or None when unknown
    found: str  # how the student wrote it, for messages
    delta: float = 1.0  # Huber's delta


def normalize_loss(compile_info: dict) -> LossView:
    """The canonical loss of a captured ``compile`` (names, functions and Loss objects)."""
    described = (compile_info or {}).get("loss")
    described = described if isinstance(described, dict) else {}
    kind = described.get("kind")
    items = described.get("items")
    if (
        kind == "list"
        and isinstance(items, list)
        and len(items) == 1
        and isinstance(items[0], dict)
    ):
        described, kind = items[0], items[0].get("kind")
    if kind == "str":
        found = described.get("name", "")
        return LossView(_LOSS_ALIASES.get(_key(found)), repr(found))
    if kind == "object":
        class_name = described.get("class_name", "")
        function = described.get("fn")
        name = _LOSS_ALIASES.get(_key(class_name))
        if name is None and function:
            name = _LOSS_ALIASES.get(_key(function))
        delta = _float((described.get("config") or {}).get("delta")) or 1.0
        return LossView(name, f"{class_name}()", delta)
    if kind == "function":
        found = described.get("name", "")
        return LossView(_LOSS_ALIASES.get(_key(found)), f"{found} (function)")
    if kind in (None, "none"):
        config = ((compile_info or {}).get("config") or {}).get("loss")
        if isinstance(config, str):
            return LossView(_LOSS_ALIASES.get(_key(config)), repr(config))
        return LossView(None, "none")
    return LossView(None, str(described.get("class_name") or described.get("repr") or kind))


def loss_value(loss: LossView, y: np.ndarray, pred: np.ndarray) -> float:
    """The loss as Keras reports it (mean over the samples), computed with numpy."""
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    pred = np.asarray(pred, dtype=np.float64).reshape(len(pred), -1)
    diff = pred - y
    if loss.name == "mae":
        return float(np.mean(np.abs(diff)))
    if loss.name == "mse":
        return float(np.mean(diff**2))
    if loss.name == "huber":
        a = np.abs(diff)
        return float(
            np.mean(np.where(a <= loss.delta, 0.5 * diff**2, loss.delta * (a - 0.5 * loss.delta)))
        )
    if loss.name == "log_cosh":
        return float(np.mean(diff + _softplus(-2.0 * diff) - math.log(2.0)))
    if loss.name == "mape":
        return float(100.0 * np.mean(np.abs(diff) / np.maximum(np.abs(y), 1e-7)))
    if loss.name == "msle":
        first = np.log(np.maximum(pred, 1e-7) + 1.0)
        second = np.log(np.maximum(y, 1e-7) + 1.0)
        return float(np.mean((first - second) ** 2))
    raise Unsupported(loss.found)


def mae(y: np.ndarray, pred: np.ndarray) -> float:
    return loss_value(LossView("mae", "mae"), y, pred)


def normalize_optimizer(compile_info: dict) -> tuple[str | None, str]:
    """``("adam", "Adam")`` from a captured compile; ``(None, ...)`` when not compiled."""
    optimizer = (compile_info or {}).get("optimizer")
    optimizer = optimizer if isinstance(optimizer, dict) else {}
    kind = optimizer.get("kind")
    if kind == "str" and isinstance(optimizer.get("name"), str):
        return optimizer["name"].strip().lower(), repr(optimizer["name"])
    if kind == "object":
        name = str(optimizer.get("class_name", ""))
        return name.lower(), name
    return None, "none"
