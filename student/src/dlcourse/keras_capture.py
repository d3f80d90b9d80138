"""Kernel-side capture of Keras objects (and of a train/validation split) as plain data.

The hidden test cells call these functions; they write JSON and ``.npz`` files into the
artifacts folder (``AUTOGRADER_ARTIFACTS``) and nothing else. The hidden checkers then judge
those files in the grader's own process (hidden checkers). Nothing here judges, and
nothing here raises: a wrong type (a string, ``None``, a model that was never compiled or
fitted) is recorded as data describing the problem. Outside grading every ``capture_*``
function is a no-op.

What is written (paths relative to the artifacts folder)::

    answers/<name>.json          presence and a short description (as ``capture.answers``)
    split/split.json             type, shape, columns and data-set row numbers of each part
    split/arrays.npz             X_train, X_valid, y_train, y_valid as float64 arrays
    keras/<name>.json            an EarlyStopping's settings (``capture_callback``)
    keras/<name>.json            a model's layers, configs and compile settings (``capture_model``)
    keras/training.json          history, history.params, the callback's settings and state,
                                 the trained model's description and its weights index, and
                                 the model's own record of its training (``model_state``:
                                 optimizer steps taken, ``model.stop_training``)
    keras/weights.npz            one array per weight, in layer order (names in the index)

A self-check (``dlcourse.selfcheck``) runs the same capture into memory
(``dlcourse.capture.recording``) and judges it with the public rules the hidden checkers use.

Only numpy is imported at module level: the checkers import ``match_rows`` from here and must
not pay for TensorFlow.
"""

from __future__ import annotations

import gc
import math
import numbers
from typing import Any

import numpy as np

from dlcourse import capture as _capture
from dlcourse import layout

SPLIT_NAMES = ("X_train", "X_valid", "y_train", "y_valid")
MAX_ROWS = 100_000
MAX_HISTORY = 20_000  # values per history key
MAX_WEIGHT_VALUES = 50_000_000
MAX_LAYERS = 200
N_FEATURES = 11


# --- plain data -------------------------------------------------------------------------------


def _type_name(value: Any) -> str:
    kind = type(value)
    return f"{kind.__module__}.{kind.__qualname__}"


def plain(value: Any, depth: int = 0) -> Any:
    """``value`` as JSON-able data: numbers, strings, lists and dicts; anything else as text."""
    if value is None or isinstance(value, (bool, str)):
        return value if not isinstance(value, str) else value[:2000]
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        number = float(value)
        return number if math.isfinite(number) else str(number)
    if (
        type(value).__module__ == "numpy"
        and hasattr(value, "item")
        and getattr(value, "ndim", 1) == 0
    ):
        return plain(value.item(), depth)
    if depth < 8 and isinstance(value, dict):
        return {str(k)[:200]: plain(v, depth + 1) for k, v in list(value.items())[:500]}
    if depth < 8 and isinstance(value, (list, tuple)):
        return [plain(v, depth + 1) for v in list(value)[:MAX_HISTORY]]
    try:
        text = repr(value)
    except Exception:  # noqa: BLE001 - a hostile __repr__ must not stop the capture
        text = "<unrepresentable>"
    return {"__repr__": text[:200], "__type__": _type_name(value)}


def _number(value: Any) -> float | None:
    """A finite float, or None (tensors and numpy scalars included)."""
    try:
        if isinstance(value, bool) or isinstance(value, str):
            return None
        number = float(np.asarray(value).reshape(()))
    except Exception:  # noqa: BLE001
        return None
    return number if math.isfinite(number) else None


def _error(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"[:300]


def _answer(namespace: dict, name: str) -> None:
    try:
        _capture.answers(namespace, name)
    except Exception:  # noqa: BLE001 - the capture never breaks a test cell
        pass


def _missing(namespace: dict, name: str) -> bool:
    return name not in namespace or namespace[name] is Ellipsis


# --- arrays and the split ---------------------------------------------------------------------


def to_array(value: Any) -> tuple[np.ndarray | None, str | None]:
    """A float64 array of ``value`` (DataFrame, Series, array, list, tensor) or a problem."""
    if value is None or isinstance(value, (str, bytes, dict, numbers.Number)):
        return None, f"not an array ({_type_name(value)})"
    try:
        if hasattr(value, "to_numpy"):
            array = value.to_numpy()
        elif hasattr(value, "numpy") and callable(value.numpy):
            array = value.numpy()
        else:
            array = np.asarray(value)
        array = np.asarray(array, dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - text columns, ragged lists...
        return None, f"not numeric ({_error(exc)})"
    if array.ndim == 0 or array.ndim > 2:
        return None, f"has {array.ndim} dimensions"
    if array.shape[0] > MAX_ROWS or array.size > MAX_ROWS * 64:
        return None, f"is too large ({array.shape})"
    return array, None


def describe_part(value: Any) -> dict:
    """Type, shape, columns and (for pandas) the index of one part of a split."""
    info: dict[str, Any] = {"present": True, "type": _type_name(value)}
    shape = getattr(value, "shape", None)
    try:
        info["shape"] = [int(s) for s in shape] if shape is not None else None
    except Exception:  # noqa: BLE001
        info["shape"] = None
    try:
        columns = getattr(value, "columns", None)
        info["columns"] = [str(c) for c in columns][:100] if columns is not None else None
    except Exception:  # noqa: BLE001
        info["columns"] = None
    info["index"] = None
    try:
        index = getattr(value, "index", None)
        if index is not None and not callable(index) and len(index) <= MAX_ROWS:
            values = np.asarray(index)
            if values.dtype.kind in "iu":
                info["index"] = [int(v) for v in values]
    except Exception:  # noqa: BLE001
        pass
    return info


def _column_codes(uniques: np.ndarray, tol: float, mapped: np.ndarray):
    """Position of each mapped value among ``uniques`` and whether it lies within ``tol``."""
    pos = np.clip(np.searchsorted(uniques, mapped), 1, max(len(uniques) - 1, 1))
    left = uniques[pos - 1]
    right = uniques[np.minimum(pos, len(uniques) - 1)]
    take_left = np.abs(mapped - left) <= np.abs(mapped - right)
    nearest = np.where(take_left, pos - 1, np.minimum(pos, len(uniques) - 1))
    ok = np.abs(uniques[nearest] - mapped) <= tol
    return nearest, ok


class _Matcher:
    """Finds data-set rows in arrays that may be min-max scaled, standardized or unscaled.

    Each column of a part is some increasing affine map of the data's column (any scaling a
    student can apply column by column). For each column the matcher tries a few candidate
    maps (identity; the other part's map; the part's extremes sent onto extremes of the data
    or of the rows not used by the other part) and keeps the first that puts (nearly) every
    value on a value of the data; rows are then looked up by their column values.
    """

    def __init__(self, raw: np.ndarray, k: int = 8):
        self.raw = np.asarray(raw, dtype=np.float64)
        self.k = k
        self.uniques = [np.unique(self.raw[:, j]) for j in range(self.raw.shape[1])]
        self.tols = [0.25 * float(np.min(np.diff(u))) if len(u) > 1 else 1e-9 for u in self.uniques]
        codes = np.stack(
            [np.searchsorted(u, self.raw[:, j]) for j, u in enumerate(self.uniques)], axis=1
        )
        self.lookup: dict[tuple, int] = {}
        for i, row in enumerate(map(tuple, codes.tolist())):
            self.lookup.setdefault(row, i)

    def _maps(
        self,
        column: np.ndarray,
        j: int,
        extra: list[tuple[float, float]],
        bounds: list[tuple[float, float]],
    ):
        vmin, vmax = float(column.min()), float(column.max())
        yield 1.0, 0.0  # unscaled
        yield from extra
        u = self.uniques[j]
        span = vmax - vmin
        if span <= 0:
            return
        pairs = list(bounds)
        pairs += [
            (u[a], u[-1 - b])
            for total in range(2 * self.k - 1)
            for a in range(self.k)
            for b in range(self.k)
            if a + b == total and a < len(u) and b < len(u)
        ]
        for lo, hi in pairs:
            if hi > lo:
                scale = (hi - lo) / span
                yield scale, lo - vmin * scale

    def part(
        self,
        values: np.ndarray,
        extra: list[list[tuple[float, float]]] | None = None,
        bounds: list[list[tuple[float, float]]] | None = None,
    ):
        """Data-set row of each row of ``values`` (-1 when not found) and the maps used."""
        n, ncol = values.shape
        codes = np.zeros((n, ncol), dtype=np.int64)
        good = np.ones(n, dtype=bool)
        maps: list[tuple[float, float]] = []
        for j in range(ncol):
            column = values[:, j]
            best = None
            for scale, offset in self._maps(
                column, j, (extra or [[]] * ncol)[j], (bounds or [[]] * ncol)[j]
            ):
                nearest, ok = _column_codes(self.uniques[j], self.tols[j], column * scale + offset)
                hits = int(ok.sum())
                if best is None or hits > best[0]:
                    best = (hits, nearest, ok, (scale, offset))
                if hits >= n - max(1, n // 200):
                    break
            _, nearest, ok, used = best
            codes[:, j] = nearest
            good &= ok
            maps.append(used)
        rows = np.full(n, -1, dtype=np.int64)
        for i in np.flatnonzero(good):
            rows[i] = self.lookup.get(tuple(codes[i].tolist()), -1)
        return rows, maps


def match_rows(
    train: np.ndarray, valid: np.ndarray, raw: np.ndarray
) -> tuple[list[int], list[int]]:
    """Row numbers of the data set ``raw`` for each row of ``train`` and ``valid``.

    ``-1`` marks a row that is not a row of the data. Duplicated data rows all map to the first
    of them. Works on unscaled, min-max scaled (with any statistics) and standardized features.
    """
    raw = np.asarray(raw, dtype=np.float64)
    matcher = _Matcher(raw)
    train = np.asarray(train, dtype=np.float64)
    valid = np.asarray(valid, dtype=np.float64)
    if (
        train.ndim != 2
        or valid.ndim != 2
        or train.shape[1] != raw.shape[1]
        or (valid.shape[1] != raw.shape[1])
        or not len(train)
        or not len(valid)
    ):
        return [-1] * len(train), [-1] * len(valid)
    train_rows, train_maps = matcher.part(train)
    used = train_rows[train_rows >= 0]
    rest = np.setdiff1d(np.arange(len(raw)), used)
    bounds = [
        [(float(raw[rest, j].min()), float(raw[rest, j].max()))] if len(rest) else []
        for j in range(raw.shape[1])
    ]
    valid_rows, _ = matcher.part(valid, extra=[[m] for m in train_maps], bounds=bounds)
    return train_rows.tolist(), valid_rows.tolist()


def _load_features() -> tuple[np.ndarray, list[str]] | None:
    try:
        from dlcourse.data import TARGET, load_red_wine

        frame = load_red_wine()
        features = frame.drop(columns=[TARGET])
        return features.to_numpy(dtype=np.float64), [str(c) for c in features.columns]
    except Exception:  # noqa: BLE001 - the checker loads the data itself anyway
        return None


def capture_split(
    namespace: dict, names: tuple[str, ...] = SPLIT_NAMES, answer: str = "split"
) -> None:
    """Save the four parts of the split: descriptions, data-set row numbers and the arrays."""
    if not _capture.active():
        return
    try:
        present = {n: namespace[n] for n in names if not _missing(namespace, n)}
        _capture.write_json(
            layout.answer(answer),
            {
                "name": answer,
                "present": bool(present),
                "value": _capture.describe({n: present[n] for n in present}),
            },
        )
        parts: dict[str, Any] = {}
        arrays: dict[str, np.ndarray] = {}
        for name in names:
            if name not in present:
                parts[name] = {"present": False}
                continue
            parts[name] = describe_part(present[name])
            array, problem = to_array(present[name])
            parts[name]["problem"] = problem
            if array is not None:
                arrays[name] = array
        rows = None
        loaded = _load_features()
        x_train, x_valid = arrays.get(names[0]), arrays.get(names[1])
        if loaded is not None and x_train is not None and x_valid is not None:
            try:
                train_rows, valid_rows = match_rows(x_train, x_valid, loaded[0])
                rows = {names[0]: train_rows, names[1]: valid_rows}
            except Exception as exc:  # noqa: BLE001
                rows = {"error": _error(exc)}
        _capture.write_json(
            layout.SPLIT_META,
            {
                "names": list(names),
                "parts": parts,
                "rows": rows,
                "n_data": None if loaded is None else len(loaded[0]),
            },
        )
        _capture.write_npz(layout.SPLIT_ARRAYS, arrays)
    except Exception as exc:  # noqa: BLE001 - never break the test cell
        _capture.write_json(layout.SPLIT_META, {"names": list(names), "error": _error(exc)})


# --- Keras objects ----------------------------------------------------------------------------


def _keras():
    try:
        import keras

        return keras
    except Exception:  # noqa: BLE001
        return None


def _isinstance(value: Any, dotted: str) -> bool:
    keras = _keras()
    if keras is None:
        return False
    target: Any = keras
    try:
        for part in dotted.split("."):
            target = getattr(target, part)
        return isinstance(value, target)
    except Exception:  # noqa: BLE001
        return False


def is_model(value: Any) -> bool:
    return _isinstance(value, "Model")


def is_history(value: Any) -> bool:
    return _isinstance(value, "callbacks.History")


def is_early_stopping(value: Any) -> bool:
    return _isinstance(value, "callbacks.EarlyStopping")


def _attached_model(callback: Any) -> Any:
    try:
        return callback.__dict__.get("_model", None)
    except Exception:  # noqa: BLE001
        return None


def _function_name(function: Any) -> str:
    try:
        return str(getattr(function, "__name__", None) or type(function).__name__)[:100]
    except Exception:  # noqa: BLE001
        return "?"


def describe_callback(callback: Any, model: Any = None) -> dict:
    """Settings (and, after ``fit``, state) of a callback, as plain data."""
    info: dict[str, Any] = {
        "type": _type_name(callback),
        "is_callback": _isinstance(callback, "callbacks.Callback"),
        "is_early_stopping": is_early_stopping(callback),
    }
    if not info["is_callback"]:
        info["repr"] = plain(callback) if not isinstance(callback, str) else callback[:300]
        return info
    get = callback.__dict__.get
    min_delta = _number(get("min_delta"))
    info["settings"] = {
        "monitor": plain(get("monitor")),
        "min_delta": None if min_delta is None else abs(min_delta),
        "min_delta_raw": plain(get("min_delta")),
        "patience": plain(get("patience")),
        "restore_best_weights": plain(get("restore_best_weights")),
        "mode": plain(get("mode")),
        "baseline": plain(get("baseline")),
        "start_from_epoch": plain(get("start_from_epoch")),
        "verbose": plain(get("verbose")),
    }
    attached = _attached_model(callback)
    monitor_op = get("monitor_op")
    info["state"] = {
        "stopped_epoch": plain(get("stopped_epoch")),
        "best_epoch": plain(get("best_epoch")),
        "wait": plain(get("wait")),
        "best": _number(get("best")),
        # the comparison Keras chose at the first epoch ("less"/"greater"; None before fit)
        "monitor_op": None if monitor_op is None else _function_name(monitor_op),
        "attached": attached is not None,
        "attached_to_model": model is not None and attached is model,
        "attached_type": None if attached is None else _type_name(attached),
    }
    return info


def _capture_described(namespace: dict, name: str, key: str, describe, extra=None) -> None:
    """Save ``describe(namespace[name])`` under ``key`` as ``keras/<name>.json`` (and the
    plain answer); a failing description is saved as an error, never raised. ``extra``
    (``extra(namespace, name, payload)``) may add fields; its failure adds nothing."""
    if not _capture.active():
        return
    _answer(namespace, name)
    try:
        payload = {"name": name, "present": not _missing(namespace, name)}
        if payload["present"]:
            payload[key] = describe(namespace[name])
    except Exception as exc:  # noqa: BLE001 - the test cell must never raise
        payload = {"name": name, "present": True, "error": _error(exc)}
    if extra is not None:
        try:
            extra(namespace, name, payload)
        except Exception:  # noqa: BLE001
            pass
    _capture.write_json(layout.keras_json(name), payload)


MAX_OTHERS = 5


def _named_early_stoppings(namespace: dict, skip: str | None = None) -> dict[int, list[str]]:
    """``{id(callback): [names]}`` of the EarlyStopping objects bound to names of the user's
    namespace (``early = EarlyStopping(...)``): one pass over its top-level values."""
    found: dict[int, list[str]] = {}
    for key, value in list(namespace.items()):
        if not isinstance(key, str) or key.startswith("_") or key == skip:
            continue
        if is_early_stopping(value):
            names = found.setdefault(id(value), [])
            if len(names) < MAX_OTHERS:
                names.append(key[:100])
            if len(found) >= MAX_OTHERS:
                break
    return found


def _callback_elsewhere(namespace: dict, name: str, payload: dict) -> None:
    """When ``name`` holds no EarlyStopping, record those kept under other names (``others``),
    so that the checker can say where the student's callback is."""
    if payload.get("present") and _as_dict(payload.get("callback")).get("is_early_stopping"):
        return
    named = _named_early_stoppings(namespace, skip=name)
    if not named:
        return
    objects = {id(v): v for v in namespace.values() if id(v) in named}
    payload["others"] = [
        {"name": names[0], "names": names, "callback": describe_callback(objects[key])}
        for key, names in named.items()
    ]


def _as_dict(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def capture_callback(namespace: dict, name: str = "early_stopping") -> None:
    """Save the settings of the callback ``name`` (before training) as ``keras/<name>.json``;
    when ``name`` is not an EarlyStopping, also those kept under other names (``others``)."""
    _capture_described(namespace, name, "callback", describe_callback, _callback_elsewhere)


def activation_info(function: Any) -> dict:
    """Name and module of an activation function (``tf.nn.relu`` and ``"relu"`` alike)."""
    name = getattr(function, "__name__", None) or type(function).__name__
    return {"name": str(name)[:100], "module": str(getattr(function, "__module__", ""))[:200]}


def describe_layer(layer: Any) -> dict:
    info: dict[str, Any] = {
        "class_name": type(layer).__name__,
        "module": type(layer).__module__,
        "name": str(getattr(layer, "name", ""))[:200],
    }
    try:
        info["config"] = plain(layer.get_config())
    except Exception as exc:  # noqa: BLE001 - e.g. a lambda activation cannot be serialized
        info["config"] = None
        info["config_error"] = _error(exc)
    attributes = {}
    for name in ("units", "rate", "use_bias", "epsilon", "center", "scale", "axis"):
        try:
            if name in layer.__dict__:
                attributes[name] = plain(layer.__dict__[name])
        except Exception:  # noqa: BLE001
            pass
    info["attributes"] = attributes
    activation = getattr(layer, "activation", None)
    if activation is not None and callable(activation):
        info["activation"] = activation_info(activation)
    try:
        info["weights"] = [
            {
                "name": str(getattr(w, "name", "")),
                "path": str(getattr(w, "path", "")),
                "shape": [int(s) for s in w.shape],
            }
            for w in layer.weights
        ]
    except Exception as exc:  # noqa: BLE001
        info["weights"] = []
        info["weights_error"] = _error(exc)
    if hasattr(layer, "layers") and isinstance(getattr(layer, "layers", None), list):
        info["nested"] = True
    return info


def describe_loss(loss: Any) -> dict:
    """How the loss was given to ``compile``: a name, a function or a Loss object."""
    if loss is None:
        return {"kind": "none"}
    if isinstance(loss, str):
        return {"kind": "str", "name": loss[:100]}
    if isinstance(loss, (list, tuple)):
        return {"kind": "list", "items": [describe_loss(item) for item in list(loss)[:5]]}
    if isinstance(loss, dict):
        return {
            "kind": "dict",
            "items": {str(k)[:50]: describe_loss(v) for k, v in list(loss.items())[:5]},
        }
    info: dict[str, Any] = {"class_name": type(loss).__name__, "module": type(loss).__module__}
    if _isinstance(loss, "losses.Loss"):
        info["kind"] = "object"
        function = getattr(loss, "fn", None)
        if function is not None:
            info["fn"] = activation_info(function)["name"]
        try:
            info["config"] = plain(loss.get_config())
        except Exception:  # noqa: BLE001
            info["config"] = None
        return info
    if callable(loss):
        info.update(kind="function", **activation_info(loss))
        return info
    info.update(kind="other", repr=plain(loss))
    return info


def describe_optimizer(optimizer: Any) -> dict:
    if optimizer is None:
        return {"kind": "none"}
    if isinstance(optimizer, str):
        return {"kind": "str", "name": optimizer[:100]}
    info = {
        "kind": "object",
        "class_name": type(optimizer).__name__,
        "module": type(optimizer).__module__,
    }
    try:
        info["learning_rate"] = _number(optimizer.learning_rate)
    except Exception:  # noqa: BLE001
        info["learning_rate"] = None
    return info


def describe_model(model: Any) -> dict:
    """A Keras model as plain data: layers with their configs, input shape, compile settings."""
    info: dict[str, Any] = {"type": _type_name(model), "is_model": is_model(model)}
    if not info["is_model"]:
        info["repr"] = model[:300] if isinstance(model, str) else plain(model)
        return info
    info["class_name"] = type(model).__name__
    info["built"] = bool(getattr(model, "built", False))
    try:
        info["input_shape"] = plain(model.input_shape)
    except Exception as exc:  # noqa: BLE001 - a model without an Input is built at fit
        info["input_shape"] = None
        info["input_shape_error"] = _error(exc)
    try:
        layers = list(model.layers)[:MAX_LAYERS]
    except Exception as exc:  # noqa: BLE001
        layers = []
        info["layers_error"] = _error(exc)
    info["layers"] = [describe_layer(layer) for layer in layers]
    try:
        config = model.get_config()
        info["config"] = plain(config)
        info["config_class_names"] = [
            plain(entry.get("class_name")) for entry in config.get("layers", [])
        ][:MAX_LAYERS]
    except Exception as exc:  # noqa: BLE001
        info["config"] = None
        info["config_error"] = _error(exc)
    compiled = getattr(model, "compiled", None)
    optimizer = getattr(model, "optimizer", None)
    info["compile"] = {
        "compiled": bool(compiled) if compiled is not None else optimizer is not None,
        "optimizer": describe_optimizer(optimizer),
        "loss": describe_loss(getattr(model, "loss", None)),
    }
    try:
        info["compile"]["config"] = plain(model.get_compile_config())
    except Exception as exc:  # noqa: BLE001 - e.g. a lambda loss cannot be serialized
        info["compile"]["config"] = None
        info["compile"]["config_error"] = _error(exc)
    return info


def model_weights(model: Any) -> tuple[list[dict], dict[str, np.ndarray]]:
    """One array per weight, in layer order, and the index naming them."""
    index: list[dict] = []
    arrays: dict[str, np.ndarray] = {}
    total = 0
    for position, layer in enumerate(list(model.layers)[:MAX_LAYERS]):
        try:
            variables = list(layer.weights)
            values = layer.get_weights()
        except Exception:  # noqa: BLE001
            continue
        for variable, value in zip(variables, values, strict=False):
            array = np.asarray(value)
            total += array.size
            if total > MAX_WEIGHT_VALUES or array.dtype.kind not in "biuf":
                continue
            key = f"w{len(index):03d}"
            arrays[key] = array
            index.append(
                {
                    "key": key,
                    "layer": position,
                    "layer_name": str(layer.name),
                    "name": str(getattr(variable, "name", "")),
                    "path": str(getattr(variable, "path", "")),
                    "shape": [int(s) for s in array.shape],
                }
            )
    return index, arrays


def describe_history(history: Any, model: Any = None) -> dict:
    """``history.history``, ``history.params`` and whose fit produced it."""
    info: dict[str, Any] = {"type": _type_name(history), "is_history": is_history(history)}
    if not info["is_history"]:
        if isinstance(history, dict):
            info["dict_keys"] = [str(k)[:50] for k in list(history)[:20]]
        info["repr"] = plain(history) if not isinstance(history, str) else history[:300]
        return info
    values: dict[str, list] = {}
    raw = getattr(history, "history", None)
    if isinstance(raw, dict):
        for key, series in list(raw.items())[:50]:
            try:
                values[str(key)] = [_number(v) for v in list(series)[:MAX_HISTORY]]
            except Exception:  # noqa: BLE001
                values[str(key)] = []
    info["history"] = values
    info["params"] = plain(getattr(history, "params", None))
    info["epoch"] = plain(list(getattr(history, "epoch", []) or [])[:MAX_HISTORY])
    owner = _attached_model(history)
    info["model_is_model"] = model is not None and owner is model
    info["has_model"] = owner is not None
    info["model_history_is_history"] = (
        model is not None and getattr(model, "history", None) is history
    )
    return info


def training_state(model: Any) -> dict:
    """What the model itself says about its training, next to what the History says:
    how many gradient steps its optimizer took (every ``fit`` adds ``epochs × steps``) and
    whether a callback asked ``fit`` to stop (``model.stop_training``, which ``fit`` resets
    to False when it starts and EarlyStopping sets to True when it fires)."""
    state: dict[str, Any] = {"optimizer_iterations": None, "stop_training": None}
    try:
        optimizer = getattr(model, "optimizer", None)
        if optimizer is not None and not isinstance(optimizer, str):
            iterations = _number(getattr(optimizer, "iterations", None))
            state["optimizer_iterations"] = iterations
    except Exception:  # noqa: BLE001 - never break the test cell
        pass
    try:
        stop = getattr(model, "stop_training", None)
        state["stop_training"] = stop if isinstance(stop, bool) else None
    except Exception:  # noqa: BLE001
        pass
    return state


def _other_early_stoppings(model: Any, known: Any, namespace: dict | None = None) -> list[dict]:
    """EarlyStopping objects attached to ``model`` other than ``known`` (created inside fit, or
    kept under another name: ``names`` lists the user's names bound to each, maybe none)."""
    if model is None:
        return []
    found = []
    try:
        named = _named_early_stoppings(namespace or {})
    except Exception:  # noqa: BLE001
        named = {}
    try:
        keras = _keras()
        kind = keras.callbacks.EarlyStopping
        for obj in gc.get_objects():
            if isinstance(obj, kind) and obj is not known and _attached_model(obj) is model:
                found.append({**describe_callback(obj, model), "names": named.get(id(obj), [])})
                if len(found) >= MAX_OTHERS:
                    break
    except Exception:  # noqa: BLE001
        return found
    return found


MAX_SOURCE_CELLS = 50
MAX_SOURCE_CHARS = 100_000


def _call_name(node: Any) -> str | None:
    func = getattr(node, "func", None)
    if func is None:
        return None
    return getattr(func, "attr", None) or getattr(func, "id", None)


def _is_set_expression(node: Any, set_names: set[str]) -> bool:
    import ast

    if isinstance(node, (ast.Set, ast.SetComp)):
        return True
    if isinstance(node, ast.Call) and _call_name(node) in ("set", "frozenset"):
        return True
    return isinstance(node, ast.Name) and node.id in set_names


def sequential_from_set(source: str, name: str) -> bool | None:
    """Whether ``source`` (one cell) assigns ``name = ...Sequential(<a set>)``: a set literal
    (``{layer, ...}``), a set comprehension, ``set(...)`` or a name the cell bound to one.
    None when the cell does not assign ``name`` (or cannot be parsed)."""
    import ast

    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return None
    set_names: set[str] = set()
    verdict: bool | None = None
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign):
            continue
        targets = {t.id for t in node.targets if isinstance(t, ast.Name)}
        if _is_set_expression(node.value, set()):
            set_names |= targets
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign):
            continue
        if name not in {t.id for t in node.targets if isinstance(t, ast.Name)}:
            continue
        value = node.value
        if isinstance(value, ast.Call) and _call_name(value) == "Sequential":
            given = [*value.args[:1], *(k.value for k in value.keywords if k.arg == "layers")]
            verdict = bool(verdict) or any(_is_set_expression(g, set_names) for g in given)
        elif verdict is None:
            verdict = False
    return verdict


def _model_source(namespace: dict, name: str, payload: dict) -> None:
    """Add ``built_from_set`` to the model's description: whether the latest cell that assigned
    ``name`` (in IPython's input history, ``In``) built it as ``keras.Sequential({...})``, a set,
    whose layers Keras stacks in an order nobody wrote. Absent when there is no history."""
    model = payload.get("model")
    history = namespace.get("In")
    if not isinstance(model, dict) or not model.get("is_model") or not isinstance(history, list):
        return
    for source in reversed(history[-MAX_SOURCE_CELLS:]):
        if not isinstance(source, str) or name not in source or len(source) > MAX_SOURCE_CHARS:
            continue
        verdict = sequential_from_set(source, name)
        if verdict is not None:
            model["built_from_set"] = verdict
            return


def capture_model(namespace: dict, name: str = "model") -> None:
    """Save the model ``name`` (layers, configs, compile settings) as ``keras/<name>.json``;
    ``built_from_set`` says whether its cell passed a set to ``Sequential``."""
    _capture_described(namespace, name, "model", describe_model, _model_source)


def capture_training(
    namespace: dict,
    model: str = "model",
    history: str = "history",
    callback: str | None = "early_stopping",
    prefix: str = "",
) -> None:
    """Save what ``fit`` left behind: history, params, callback state, trained weights."""
    if not _capture.active():
        return
    _answer(namespace, history)
    payload: dict[str, Any] = {
        "model_name": model,
        "history_name": history,
        "callback_name": callback,
    }
    arrays: dict[str, np.ndarray] = {}
    try:
        the_model = None if _missing(namespace, model) else namespace[model]
        the_history = None if _missing(namespace, history) else namespace[history]
        payload["history_present"] = not _missing(namespace, history)
        payload["history"] = (
            describe_history(the_history, the_model) if payload["history_present"] else None
        )
        payload["model_present"] = the_model is not None
        payload["model"] = describe_model(the_model) if the_model is not None else None
        if payload["model"] and payload["model"].get("is_model"):
            try:
                payload["weights"], arrays = model_weights(the_model)
            except Exception as exc:  # noqa: BLE001
                payload["weights"], payload["weights_error"] = [], _error(exc)
            payload["model_state"] = training_state(the_model)
        the_callback = None
        if callback:
            payload["callback_present"] = not _missing(namespace, callback)
            if payload["callback_present"]:
                the_callback = namespace[callback]
                payload["callback"] = describe_callback(the_callback, the_model)
        # Only where the lesson trains with a callback (lesson 4): the search walks every
        # object of the kernel, about 0.15 s, for nothing in a lesson without callbacks.
        if callback and is_model(the_model):
            payload["other_early_stopping"] = _other_early_stoppings(
                the_model, the_callback, namespace
            )
    except Exception as exc:  # noqa: BLE001 - never break the test cell
        payload["error"] = _error(exc)
    _capture.write_json(layout.keras_training(prefix), payload)
    _capture.write_npz(layout.keras_weights(prefix), arrays)


__all__ = [
    "capture_callback",
    "capture_model",
    "capture_split",
    "capture_training",
    "describe_callback",
    "describe_history",
    "describe_loss",
    "describe_model",
    "match_rows",
    "model_weights",
    "plain",
    "to_array",
]
