"""Public checks of ``lesson4_early_stopping`` (lessons 4.2 to 4.5): one definition for the
hidden checker of this assignment (in the grader distribution) and the student's self-check.

Every expected value here is stated by the lesson itself (COURSE.md, "public" checks): the
split of 4.2 and its scaling, the ``EarlyStopping`` of 4.4, the model and compile settings of
4.5 and the ``fit`` arguments. Each check takes a ``Submission`` (captured artifacts, from
files or from memory), returns ``Passed`` or raises ``Fail``/``NotAttempted``. Checks whose
expected value is the answer itself (the diagnosis, the validation-loss thresholds) live only
in the grader.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from dlcourse import keras_model as km
from dlcourse import layout
from dlcourse.checking import (
    CapturedSubmission,
    Fail,
    NotAttempted,
    Passed,
    describe_found,
    short_summary,
)
from dlcourse.data import shuffled_split
from dlcourse.keras_capture import match_rows
from dlcourse.rules import fit_record

# --- what the lesson asks for (it is in the notebook's text) -----------------------------------

N_FEATURES = 11


TEST_SIZE = 0.2


RANDOM_STATE = 3


SPEC_LAYERS = [km.dense(512, "relu")] * 3 + [km.dense(1)]


SPEC_TEXT = "3 × Dense(512, relu) + Dense(1)"


ES_MONITOR = "val_loss"


ES_MIN_DELTA = 0.001


ES_PATIENCE = 20


EPOCHS = 500


BATCH_SIZE = 256


OPTIMIZER = "adam"


LOSS = "mae"


SEED_43_MIN_DELTA = 0.01


SEED_43_PATIENCE = 30


# Tolerances of the public checks (the hidden checker adds its calibrated thresholds).
DEFAULTS = {
    "es_history_atol": 1e-6,
    "es_history_rtol": 1e-5,
    "es_scale_atol": 1e-5,
}
SPLIT_NAMES = ("X_train", "X_valid", "y_train", "y_valid")


_ANSWER_OF = {
    "split": "split",
    "callback": "early_stopping",
    "model": "model",
    "training": "history",
    "weights": "history",
    "integrity": "history",
    "claims": "history",
}


def as_dict(value: Any) -> dict:
    """A captured field that must be a dict (artifacts are untrusted: anything else is {})."""
    return value if isinstance(value, dict) else {}


class Submission(CapturedSubmission):
    """One submission (or a self-check's capture) as the lesson-4 checks read it."""

    DEFAULTS = DEFAULTS
    MALFORMED = _ANSWER_OF


class Split:
    """The student's four arrays, the data-set rows they hold and the course's data."""

    def __init__(
        self,
        arrays: dict[str, np.ndarray],
        train_rows: np.ndarray,
        valid_rows: np.ndarray,
        data: dict[str, np.ndarray],
        canon: np.ndarray,
    ):
        self.arrays = arrays
        self.train_rows = train_rows
        self.valid_rows = valid_rows
        self.data = data
        self.canon = canon


_CANONICAL: dict[str, np.ndarray] = {}


def _arrays_key(*arrays: np.ndarray) -> str:
    """A digest of the arrays' values and shapes: the key of this module's memos."""
    return hashlib.sha256(
        b"".join(
            np.ascontiguousarray(a, dtype=np.float64).tobytes() + str(a.shape).encode()
            for a in arrays
        )
    ).hexdigest()


def _canonical_rows(raw: np.ndarray) -> np.ndarray:
    """For each data row, the first row identical to it (the data has duplicated rows).

    Remembered per data set: every student of a class is checked against the same rows, and
    building the table costs more than all of one student's other split checks."""
    key = _arrays_key(raw)
    if key not in _CANONICAL:
        first: dict[tuple, int] = {}
        rows = enumerate(map(tuple, raw.tolist()))
        canon = np.array([first.setdefault(row, i) for i, row in rows])
        canon.setflags(write=False)  # shared by every student's Split
        _CANONICAL.clear()
        _CANONICAL[key] = canon
    return _CANONICAL[key]


def _split(sub: Submission) -> Split:
    sub.answers.get("split")  # not attempted / answer cell error / never executed
    meta = sub.json(layout.SPLIT_META, "split")
    if "error" in meta and "parts" not in meta:
        raise Fail("artifact_invalid", name="split", reason=str(meta["error"])[:200])
    parts = {n: as_dict(p) for n, p in as_dict(meta.get("parts")).items()}
    missing = [n for n in SPLIT_NAMES if not parts.get(n, {}).get("present")]
    if missing:
        raise Fail("es_split.missing", names=", ".join(f"`{n}`" for n in missing))
    arrays = sub.npz(layout.SPLIT_ARRAYS, "split")
    for name in SPLIT_NAMES:
        if name not in arrays:
            found = str(parts[name].get("type") or "?").rsplit(".", 1)[-1]
            raise Fail("es_split.wrong_type", name=name, found=found)
    x_train, x_valid = arrays["X_train"], arrays["X_valid"]
    ys = {n: arrays[n] for n in ("y_train", "y_valid")}
    if any(x.ndim != 2 for x in (x_train, x_valid)) or any(
        y.ndim == 2 and y.shape[1] == N_FEATURES for y in ys.values()
    ):
        raise Fail("es_split.unpack_order")
    for name, x in (("X_train", x_train), ("X_valid", x_valid)):
        if x.shape[1] != N_FEATURES:
            raise Fail("es_split.columns", name=name, found=int(x.shape[1]))
    for name, y in ys.items():
        if y.ndim == 2 and y.shape[1] != 1:
            raise Fail("es_split.columns_y", name=name, found=int(y.shape[1]))
        ys[name] = y.reshape(len(y))
    for x_name, y_name in (("X_train", "y_train"), ("X_valid", "y_valid")):
        if len(arrays[x_name]) != len(ys[y_name]):
            raise Fail(
                "es_split.lengths", x=x_name, y=y_name, n_x=len(arrays[x_name]), n_y=len(ys[y_name])
            )
    if not all(np.all(np.isfinite(a)) for a in (x_train, x_valid, *ys.values())):
        raise Fail("es_split.not_finite")
    data = sub.data()
    train_rows, valid_rows = _match_rows(x_train, x_valid, data["raw_X"])
    unknown = int((train_rows < 0).sum() + (valid_rows < 0).sum())
    if unknown:
        raise Fail("es_split.unknown_rows", count=unknown, total=len(train_rows) + len(valid_rows))
    student = {"X_train": x_train, "X_valid": x_valid, **ys}
    return Split(student, train_rows, valid_rows, data, _canonical_rows(data["raw_X"]))


_MATCHED: dict[str, tuple[np.ndarray, np.ndarray]] = {}


def _match_rows(x_train: np.ndarray, x_valid: np.ndarray, raw: np.ndarray):
    """``match_rows``, remembered for identical arrays (regrading the same splits is free)."""
    key = _arrays_key(x_train, x_valid, raw)
    if key not in _MATCHED:
        if len(_MATCHED) >= 256:
            _MATCHED.clear()
        _MATCHED[key] = tuple(np.asarray(r) for r in match_rows(x_train, x_valid, raw))
    return _MATCHED[key]


def _same_rows(split: Split, train_index: np.ndarray, valid_index: np.ndarray) -> bool:
    canon = split.canon
    return (
        len(split.train_rows) == len(train_index)
        and len(split.valid_rows) == len(valid_index)
        and np.array_equal(np.sort(canon[split.train_rows]), np.sort(canon[train_index]))
        and np.array_equal(np.sort(canon[split.valid_rows]), np.sort(canon[valid_index]))
    )


def _other_random_state(split: Split) -> int | None:
    """The ``random_state`` that gives the student's rows, when it is a common one."""
    n = len(split.data["raw_X"])
    for seed in [
        *range(0, 201),
        314,
        1234,
        1337,
        2020,
        2021,
        2022,
        2023,
        2024,
        2025,
        2026,
        12345,
        31415,
        54321,
        99999,
    ]:
        if seed == RANDOM_STATE:
            continue
        train, valid = shuffled_split(n, test_size=TEST_SIZE, random_state=seed)
        if _same_rows(split, train, valid):
            return seed
    return None


def _scalings(rows_raw: np.ndarray, train_raw: np.ndarray, all_raw: np.ndarray):
    """Candidate transforms of ``rows_raw`` a student may have applied, in order of preference."""

    def minmax(reference):
        low, high = reference.min(axis=0), reference.max(axis=0)
        return (rows_raw - low) / np.where(high > low, high - low, 1.0)

    def standard(reference, ddof):
        spread = reference.std(axis=0, ddof=ddof)
        return (rows_raw - reference.mean(axis=0)) / np.where(spread > 0, spread, 1.0)

    yield "train", minmax(train_raw)
    yield "whole", minmax(all_raw)
    yield "none", rows_raw
    yield "own", minmax(rows_raw)
    for ddof in (0, 1):
        yield "standard", standard(train_raw, ddof)
        yield "standard", standard(all_raw, ddof)


def _classify(
    values: np.ndarray,
    rows_raw: np.ndarray,
    train_raw: np.ndarray,
    all_raw: np.ndarray,
    atol: float,
) -> tuple[str, bool]:
    """How ``values`` were scaled, and whether only the row order differs (misaligned)."""
    for name, candidate in _scalings(rows_raw, train_raw, all_raw):
        if candidate.shape == values.shape and np.allclose(values, candidate, rtol=1e-6, atol=atol):
            return name, False
    if values.ndim == 1:
        for name, candidate in _scalings(rows_raw, train_raw, all_raw):
            if np.allclose(np.sort(values), np.sort(candidate), rtol=1e-6, atol=atol):
                return name, True
    return "other", False


def reused_rows(split: Split) -> int:
    """How many of the student's rows are data rows used more than the data holds them: 0 for
    any split of the data (identical rows of the data, which has duplicates, count as many
    times as they occur), the size of ``X_valid`` when it is ``X_train`` again."""
    canon = split.canon
    available = np.bincount(canon, minlength=len(canon))
    used = np.bincount(
        canon[np.r_[split.train_rows, split.valid_rows].astype(int)], minlength=len(canon)
    )
    return int(np.maximum(used - available, 0).sum())


def split_rows(sub) -> Passed:
    split = sub.memo.get("split", lambda: _split(sub))
    data = split.data
    if _same_rows(split, data["train_index"], data["valid_index"]):
        return Passed(
            "es_split.rows_ok", n_train=len(split.train_rows), n_valid=len(split.valid_rows)
        )
    n_total = len(split.train_rows) + len(split.valid_rows)
    n_data = len(data["raw_X"])
    canon = split.canon
    if len(split.valid_rows) and np.array_equal(
        np.sort(canon[split.train_rows]), np.sort(canon[split.valid_rows])
    ):
        raise Fail("es_split.valid_is_train", n_valid=len(split.valid_rows), n_data=n_data)
    repeated = reused_rows(split)
    if repeated:
        raise Fail(
            "es_split.rows_reused",
            count=repeated,
            n_train=len(split.train_rows),
            n_valid=len(split.valid_rows),
            n_total=n_total,
            n_data=n_data,
        )
    if len(split.valid_rows) != math.ceil(TEST_SIZE * len(data["raw_X"])):
        raise Fail(
            "es_split.test_size",
            n_valid=len(split.valid_rows),
            n_total=n_total,
            share=round(100 * len(split.valid_rows) / max(n_total, 1), 1),
        )
    seed = _other_random_state(split)
    if seed is not None:
        raise Fail("es_split.random_state", found=seed)
    raise Fail("es_split.rows_wrong")


def split_scaling(sub) -> Passed:
    try:
        split = sub.memo.get("split", lambda: _split(sub))
    except Fail as exc:
        if exc.message_id in (
            "not_attempted",
            "answer_cell_error",
            "not_executed",
            "answer_cell_timeout",
            "artifact_invalid",
            "es_split.missing",
            "es_split.wrong_type",
        ):
            raise
        raise Fail("es_split.scaling_unchecked") from None
    data, atol = split.data, float(sub.t["es_scale_atol"])
    raw_x, raw_y = data["raw_X"], data["raw_y"]
    train_x = raw_x[split.train_rows]
    kinds = {}
    for name, rows in (("X_train", split.train_rows), ("X_valid", split.valid_rows)):
        kinds[name], _ = _classify(split.arrays[name], raw_x[rows], train_x, raw_x, atol)
    if kinds["X_train"] == "whole" or kinds["X_valid"] == "whole":
        raise Fail("es_split.leakage", name="X_train" if kinds["X_train"] == "whole" else "X_valid")
    if kinds["X_train"] == "none" and kinds["X_valid"] == "none":
        raise Fail("es_split.not_scaled")
    if kinds["X_train"] == "standard" or kinds["X_valid"] == "standard":
        raise Fail("es_split.standardized")
    if kinds["X_train"] == "train" and kinds["X_valid"] == "own":
        raise Fail("es_split.valid_own_scale")
    if kinds["X_train"] == "train" and kinds["X_valid"] == "none":
        raise Fail("es_split.valid_not_scaled")
    if kinds["X_train"] != "train" or kinds["X_valid"] != "train":
        raise Fail(
            "es_split.scaling_wrong", name="X_train" if kinds["X_train"] != "train" else "X_valid"
        )
    train_y = raw_y[split.train_rows]
    for name, rows in (("y_train", split.train_rows), ("y_valid", split.valid_rows)):
        kind, misaligned = _classify(split.arrays[name], raw_y[rows], train_y, raw_y, atol)
        if misaligned:
            raise Fail("es_split.misaligned", name=name)
        if kind == "none":
            raise Fail("es_split.target_not_scaled", name=name)
        if kind == "whole":
            raise Fail("es_split.leakage", name=name)
        if kind != "train":
            raise Fail("es_split.target_wrong", name=name)
    return Passed("es_split.scaling_ok")


def _named(names: Any) -> list[str]:
    """The Python names in a captured list (user names are shown, so only identifiers)."""
    if not isinstance(names, list):
        return []
    return [n for n in names if isinstance(n, str) and n.isidentifier() and len(n) <= 50]


def early_stopping_elsewhere(sub) -> list[str]:
    """The names under which the student's own cell kept an EarlyStopping, when
    ``early_stopping`` holds none (``early = callbacks.EarlyStopping(...)``)."""
    try:
        payload = as_dict(sub.artifacts.read_json(layout.KERAS_EARLY_STOPPING))
    except Exception:  # noqa: BLE001 - missing or unreadable: reported by the other checks
        return []
    others = payload.get("others")
    names: list[str] = []
    for other in others if isinstance(others, list) else []:
        other = as_dict(other)
        if as_dict(other.get("callback")).get("is_early_stopping") is True:
            names += _named(other.get("names") or [other.get("name")])
    return list(dict.fromkeys(names))[:3]


def _quoted(names: list[str]) -> str:
    return ", ".join(f"`{n}`" for n in names)


def _callback(sub: Submission) -> dict:
    try:
        value = sub.answers.get("early_stopping")
    except NotAttempted:
        elsewhere = early_stopping_elsewhere(sub)
        if elsewhere:
            raise Fail("es_callback.other_name", names=_quoted(elsewhere)) from None
        raise
    payload = sub.json(layout.KERAS_EARLY_STOPPING, "early_stopping")
    callback = as_dict(payload.get("callback"))
    if callback.get("is_early_stopping") is not True:
        elsewhere = early_stopping_elsewhere(sub)
        if elsewhere:
            raise Fail("es_callback.other_name", names=_quoted(elsewhere))
        raise Fail("es_callback.wrong_type", found=describe_found(value))
    settings = dict(as_dict(callback.get("settings")))
    settings["swallowed"] = (
        is_number(settings.get("min_delta"))
        and settings["min_delta"] > 0
        and settings.get("patience") == 0
        and settings.get("restore_best_weights") is False
    )
    return settings


def shown(value: Any) -> str:
    """A value the student typed, as they would write it (``'loss'``, ``0.1``, ``False``), an
    object as its class (``short_summary``): no type tags, no captured reprs."""
    return short_summary(value, limit=80)


def is_number(value: Any) -> bool:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond float range (a captured value typed by hand)
        return False


def early_stopping_monitor(sub) -> Passed:
    s = sub.memo.get("callback", lambda: _callback(sub))
    monitor = s.get("monitor")
    if monitor == "loss":
        raise Fail("es_callback.monitor_loss")
    if monitor != ES_MONITOR:
        raise Fail("es_callback.monitor", found=shown(monitor))
    if s.get("mode") not in ("auto", "min"):
        raise Fail("es_callback.mode", found=shown(s.get("mode")))
    return Passed("es_callback.monitor_ok")


def early_stopping_min_delta(sub) -> Passed:
    s = sub.memo.get("callback", lambda: _callback(sub))
    found = s.get("min_delta")
    if is_number(found) and math.isclose(found, ES_MIN_DELTA, rel_tol=1e-6):
        return Passed("es_callback.min_delta_ok")
    if found == 0:
        raise Fail("es_callback.min_delta_default")
    if is_number(found) and math.isclose(found, SEED_43_MIN_DELTA, rel_tol=1e-6):
        raise Fail("es_callback.min_delta_seed", found=found)
    raise Fail("es_callback.min_delta", found=shown(s.get("min_delta_raw", found)))


def early_stopping_patience(sub) -> Passed:
    s = sub.memo.get("callback", lambda: _callback(sub))
    found = s.get("patience")
    if is_number(found) and found == ES_PATIENCE:
        return Passed("es_callback.patience_ok")
    if s["swallowed"]:
        raise Fail("es_callback.swallowed", argument="patience")
    if found == 0:
        raise Fail("es_callback.patience_default")
    if found == SEED_43_PATIENCE:
        raise Fail("es_callback.patience_seed", found=found)
    raise Fail("es_callback.patience", found=shown(found))


def early_stopping_restore(sub) -> Passed:
    s = sub.memo.get("callback", lambda: _callback(sub))
    found = s.get("restore_best_weights")
    if found is True or (found == 1 and not isinstance(found, float)):
        return Passed("es_callback.restore_ok")
    if s["swallowed"]:
        raise Fail("es_callback.swallowed", argument="restore_best_weights")
    if found is False:
        raise Fail("es_callback.restore_false", found=shown(found))
    raise Fail("es_callback.restore_not_bool", found=shown(found), truthy=keras_truthy(found))


def keras_truthy(captured: Any) -> bool:
    """How Keras reads a captured setting in ``if self.restore_best_weights:``: Python's truth
    value. A captured object (``{"__repr__": ..., "__type__": ...}``, e.g. a module) is true,
    as every object without ``__bool__``/``__len__`` is."""
    if isinstance(captured, dict) and set(captured) == {"__repr__", "__type__"}:
        return True
    return bool(captured)


def _model(sub: Submission) -> dict:
    value = sub.answers.get("model")
    payload = sub.json(layout.KERAS_MODEL, "model")
    model = as_dict(payload.get("model"))
    if model.get("is_model") is not True:
        raise Fail("es_model.wrong_type", found=describe_found(value))
    return model


def model_architecture(sub) -> Passed:
    model = sub.memo.get("model", lambda: _model(sub))
    try:
        return _architecture(model)
    except Fail:
        if model.get("built_from_set") is True:
            view = km.normalize(model)
            raise Fail("es_model.set_order", layers=view.describe() or "-") from None
        raise


def _architecture(model: dict) -> Passed:
    view = km.normalize(model)
    if view.problem:
        raise Fail("es_model.not_a_stack", found=view.problem.removeprefix("nested model "))
    mismatch = km.compare(view, SPEC_LAYERS, N_FEATURES)
    if mismatch is None:
        return Passed("es_model.architecture_ok", layers=view.describe())
    params = {
        "position": mismatch.position,
        "expected": mismatch.expected,
        "found": mismatch.found,
        "n_found": mismatch.n_found,
        "n_expected": mismatch.n_expected,
        "layers": view.describe(),
        "spec": SPEC_TEXT,
    }
    if mismatch.kind == "input":
        raise Fail("es_model.input", found=mismatch.found, expected=N_FEATURES)
    if mismatch.kind == "count":
        raise Fail("es_model.layer_count", **params)
    if mismatch.kind == "output_activation":
        raise Fail("es_model.output_activation", **params)
    if mismatch.kind == "activation":
        raise Fail("es_model.layer_activation", **params)
    if mismatch.kind == "units":
        raise Fail("es_model.layer_units", **params)
    raise Fail("es_model.layer_type", **params)


def not_compiled(sub) -> Fail:
    """Why the model is not compiled: the error its cell ended with, when it raised (before or
    in ``model.compile``), else that ``compile`` was never called."""
    error = sub.cell_error("ans_model")
    if error is not None:
        return Fail("answer_cell_error", name="model", error=error)
    return Fail("es_model.not_compiled")


def model_optimizer(sub) -> Passed:
    model = sub.memo.get("model", lambda: _model(sub))
    compiled = as_dict(model.get("compile"))
    if not compiled.get("compiled"):
        raise not_compiled(sub)
    name, found = km.normalize_optimizer(compiled)
    if name != OPTIMIZER:
        raise Fail("es_model.optimizer", found=found)
    return Passed("es_model.optimizer_ok")


def model_loss(sub) -> Passed:
    model = sub.memo.get("model", lambda: _model(sub))
    compiled = as_dict(model.get("compile"))
    if not compiled.get("compiled"):
        raise not_compiled(sub)
    loss = km.normalize_loss(compiled)
    if loss.name != LOSS:
        raise Fail("es_model.loss", found=loss.found)
    return Passed("es_model.loss_ok", found=loss.found)


class Training:
    """What ``fit`` left behind, plus the numpy re-evaluation of the trained weights."""

    def __init__(self, sub: Submission, payload: dict):
        self.sub = sub
        self.payload = payload
        self.history = as_dict(payload["history"])
        self.values: dict[str, list] = {
            k: v for k, v in as_dict(self.history.get("history")).items() if isinstance(v, list)
        }
        self.params: dict = as_dict(self.history.get("params"))
        self.model = as_dict(payload["model"])
        self.callback = as_dict(payload.get("callback"))
        self.settings = as_dict(self.callback.get("settings"))
        self.state = as_dict(self.callback.get("state"))
        others = payload.get("other_early_stopping")
        payload["other_early_stopping"] = (
            [o for o in others if isinstance(o, dict)] if isinstance(others, list) else []
        )
        self.view = km.normalize(self.model)
        self.loss = km.normalize_loss(as_dict(self.model.get("compile")))
        self._predictions: dict[str, np.ndarray] = {}

    @property
    def val_loss(self) -> list[float] | None:
        values = self.values.get("val_loss")
        if not values or not all(is_number(v) for v in values):
            return None
        return [float(v) for v in values]

    @property
    def epochs_run(self) -> int:
        return len(self.values.get("loss") or [])

    def weights(self) -> dict[int, dict[str, np.ndarray]]:
        def load():
            arrays = self.sub.npz(layout.keras_weights(), "history")
            return km.weights_by_layer(self.payload.get("weights") or [], arrays)

        return self.sub.memo.get("weights", load)

    def predict(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float64)
        key = hashlib.sha256(x.tobytes() + str(x.shape).encode()).hexdigest()
        if key not in self._predictions:  # the student's validation set is often the course's
            try:
                self._predictions[key] = km.forward(self.view, self.weights(), x)
            except km.Unsupported as exc:
                raise Fail("es_history.forward_unsupported", what=str(exc)) from None
        return self._predictions[key]

    def student_split(self) -> dict[str, np.ndarray]:
        try:
            split = self.sub.memo.get("split", lambda: _split(self.sub))
        except (Fail, NotAttempted):
            split = None
        if split is None:
            raise Fail("es_history.no_split")
        return split.arrays

    def matches(self, value: float, series: list[float]) -> list[int]:
        atol, rtol = float(self.sub.t["es_history_atol"]), float(self.sub.t["es_history_rtol"])
        return [k for k, v in enumerate(series) if abs(v - value) <= atol + rtol * abs(v)]


def _training(sub: Submission) -> Training:
    sub.answers.get("history")
    payload = sub.json(layout.keras_training(), "history")
    if "error" in payload and "history" not in payload:
        raise Fail("artifact_invalid", name="history", reason=str(payload["error"])[:200])
    history = as_dict(payload.get("history"))
    if history.get("is_history") is not True:
        value = sub.answers.get("history")
        raise Fail("es_history.wrong_type", found=describe_found(value))
    model = as_dict(payload.get("model"))
    if not payload.get("model_present") or model.get("is_model") is not True:
        raise Fail("es_history.no_model")
    if not as_dict(history.get("history")).get("loss"):
        raise Fail("es_history.empty")
    if not history.get("model_is_model"):
        raise Fail("es_history.other_model")
    return Training(sub, payload)


def trained(sub: Submission) -> Training:
    return sub.memo.get("training", lambda: _training(sub))


# --- EarlyStopping's rule, replayed on a recorded series ---------------------------------------
#
# ``history.params``, the callback's attached model and its ``best_epoch``/``stopped_epoch`` are
# objects of the student's kernel: anything can be set by hand. What the checks below trust
# instead is consistency: the rule of Keras 3's EarlyStopping, replayed on the recorded series of
# the monitored metric with the callback's own settings, decides at which epoch training had to
# stop and which epoch's weights had to be restored; the series' lengths, ``history.epoch``,
# ``history.params`` and the optimizer's step counter must agree; and (in the hidden checker)
# the final weights, re-evaluated with numpy, must be those of the epoch the rule restores.


def _float32(value: float) -> np.float32:
    with np.errstate(over="ignore"):
        return np.float32(value)


def _improves(current: float, reference: float | None, min_delta: float, direction: str) -> bool:
    """Keras' ``MonitorCallback._is_improvement``, with Keras 3's arithmetic.

    ``min_delta`` is stored as ``abs(min_delta)`` and negated when the monitor is minimised
    (``mode="min"``, or ``"auto"`` on a loss), so the test is ``current - min_delta < best``,
    i.e. ``current + |min_delta| < best`` ("beats the best by more than ``|min_delta|``"); for
    ``mode="max"`` it is ``current - |min_delta| > best``. The subtraction is done on Python
    floats (the logs are pythonified), then ``ops.less``/``ops.greater`` convert both sides to
    float32 tensors: a tie within float32 rounding is no improvement.
    """
    if reference is None:
        return True
    if direction == "max":
        return bool(_float32(current - min_delta) > _float32(reference))
    return bool(_float32(current + min_delta) < _float32(reference))


@dataclass(frozen=True)
class Replay:
    """What Keras 3's ``EarlyStopping`` does on a recorded series. Epochs are numbered as Keras
    numbers them (from ``initial_epoch``, 0-based), like the callback's own attributes."""

    fired: int | None  # the epoch at whose end the rule stops training; None: never, in the series
    stopped_epoch: int  # ``EarlyStopping.stopped_epoch`` after fit (0 when it never fired)
    best_epoch: int  # ``EarlyStopping.best_epoch`` after fit: the last epoch that improved
    best: float | None  # ``EarlyStopping.best``: the monitored value at ``best_epoch``
    wait: int  # ``EarlyStopping.wait`` after fit
    restored: int | None  # whose weights ``restore_best_weights=True`` puts back; None: none
    seen: int  # values of the series the rule saw before it fired (or all of them)


def replay_early_stopping(
    series: list[float | None],
    *,
    min_delta: float = 0.0,
    patience: float = 0,
    direction: str = "min",
    baseline: float | None = None,
    start_from_epoch: float = 0,
    initial_epoch: int = 0,
) -> Replay:
    """Replay ``keras.callbacks.EarlyStopping`` (Keras 3.x, ``keras/src/callbacks/
    early_stopping.py``) on ``series``, the monitored metric recorded at each epoch (``None``
    where it was not logged), and return the state the callback ends ``fit`` with.

    At the end of each epoch, Keras: skips the epoch when the monitored value is missing or
    ``epoch < start_from_epoch``; adds 1 to ``wait``; on an improvement over ``best`` (see
    ``_improves``; the first monitored epoch always is one, because ``best`` starts as None at
    every ``fit``) records ``best``/``best_epoch`` (and the weights) and resets ``wait`` to 0,
    but only if the value also improves on ``baseline`` when one is given (the baseline is
    not the initial ``best``); otherwise, when ``wait >= patience`` and ``epoch > 0``, it sets
    ``stopped_epoch = epoch`` and stops training. With ``restore_best_weights=True`` the
    weights of ``best_epoch`` are put back when training ends, whether or not the rule fired.
    Pure function: the replay stops at the epoch where the rule fires.
    """
    delta = abs(float(min_delta))
    wait, best, best_epoch, fired, seen = 0, None, 0, None, 0
    for index, current in enumerate(series):
        epoch = initial_epoch + index
        seen = index + 1
        if current is None or epoch < start_from_epoch:
            continue
        wait += 1
        if _improves(current, best, delta, direction):
            best, best_epoch = current, epoch
            if baseline is None or _improves(current, baseline, delta, direction):
                wait = 0
            continue
        if wait >= patience and epoch > 0:
            fired = epoch
            break
    return Replay(
        fired=fired,
        stopped_epoch=0 if fired is None else fired,
        best_epoch=best_epoch,
        best=best,
        wait=wait,
        restored=None if best is None else best_epoch,
        seen=seen,
    )


_MAXIMISED = ("acc", "auc", "precision", "recall", "f1", "iou", "r2", "top_k")


def monitor_direction(monitor: Any, mode: Any, monitor_op: Any = None) -> str:
    """``"min"`` or ``"max"``: how the callback compared values. The comparison Keras picked
    at the first epoch (``monitor_op``, captured after fit) wins; then an explicit ``mode``
    (Keras turns an unknown mode into ``"auto"``); in ``"auto"`` a loss is minimised, and
    other metrics follow their direction (accuracy-like metrics are maximised)."""
    if monitor_op in ("less", "greater"):
        return "min" if monitor_op == "less" else "max"
    if mode in ("min", "max"):
        return mode
    name = str(monitor).removeprefix("val_").lower()
    if name != "loss" and any(word in name for word in _MAXIMISED):
        return "max"
    return "min"


def _whole(value: Any) -> int | None:
    if is_number(value) and float(value) == int(value):
        return int(value)
    return None


class Claims:
    """What the recorded training proves, set against what the kernel's objects claim.

    ``callback`` is the EarlyStopping that took part in ``fit``: attached to this model *and*
    holding the state a ``fit`` leaves (``best_epoch`` exists only after ``on_train_begin``), the
    student's ``early_stopping`` first, else one created inside ``fit``. ``replay`` is its rule
    replayed on the recorded series of its monitor; ``final_epoch`` the index of the epoch
    whose weights the model must hold after ``fit`` (the restored one, or the last).
    """

    def __init__(self, training: Training):
        self.training = training
        history = training.history
        self.n = training.epochs_run
        epochs = history.get("epoch")
        self.epoch_list = epochs if isinstance(epochs, list) else None
        first = _whole(self.epoch_list[0]) if self.epoch_list else None
        self.initial_epoch = first if first is not None and first >= 0 else 0
        self.requested = _whole(training.params.get("epochs"))
        self.full = None if self.requested is None else self.requested - self.initial_epoch
        self.model_state = as_dict(training.payload.get("model_state"))
        self.source: str | None = None
        self.settings: dict = {}
        self.state: dict = {}
        candidates = []
        if training.callback.get("is_early_stopping") and training.state.get("attached_to_model"):
            candidates.append(("student", training.settings, training.state))
        for other in training.payload.get("other_early_stopping") or []:
            state = as_dict(other.get("state"))
            if state.get("attached_to_model"):
                candidates.append(("other", as_dict(other.get("settings")), state))
        for source, settings, state in candidates:
            if is_number(state.get("best_epoch")):
                self.source, self.settings, self.state = source, settings, state
                break
        self.unreadable: str | None = None
        self.replay: Replay | None = None
        if self.source is not None:
            self.replay = self._replay()

    @property
    def used(self) -> bool:
        """An EarlyStopping took part in ``fit`` (as far as its state shows)."""
        return self.source is not None

    def _replay(self) -> Replay | None:
        s = self.settings
        monitor, patience = s.get("monitor"), s.get("patience")
        min_delta = s.get("min_delta")
        baseline, start = s.get("baseline"), s.get("start_from_epoch", 0)
        for name, ok in (
            ("monitor", isinstance(monitor, str)),
            ("patience", is_number(patience)),
            ("min_delta", is_number(min_delta)),
            ("baseline", baseline is None or is_number(baseline)),
            ("start_from_epoch", start is None or is_number(start)),
        ):
            if not ok:
                self.unreadable = name
                return None
        values = self.training.values.get(monitor) or []
        series = [float(v) if is_number(v) else None for v in values[: self.n]]
        series += [None] * (self.n - len(series))
        return replay_early_stopping(
            series,
            min_delta=min_delta,
            patience=patience,
            direction=monitor_direction(monitor, s.get("mode"), self.state.get("monitor_op")),
            baseline=baseline,
            start_from_epoch=start or 0,
            initial_epoch=self.initial_epoch,
        )

    @property
    def trained_after(self) -> bool:
        """The optimizer took more steps than the history records: another ``fit`` ran (and
        reset ``model.stop_training``); ``history_fit`` reports it."""
        iterations = self.model_state.get("optimizer_iterations")
        steps = _whole(self.training.params.get("steps"))
        return is_number(iterations) and steps is not None and iterations > self.n * steps

    @property
    def proven_epochs(self) -> int | None:
        """The ``epochs`` of the ``fit`` call, as far as the series prove it: without an
        early-stopping callback ``fit`` runs every epoch asked for, so the history's length
        *is* the request, whatever ``history.params`` says; with one, the claim stands (the
        stopped check replays the rule to test it)."""
        if self.used or self.requested is None or self.n >= self.full:
            return self.requested
        return self.initial_epoch + self.n

    @property
    def restores(self) -> bool:
        """The callback that trained restores its best weights at the end of ``fit``."""
        return (
            self.replay is not None
            and bool(self.settings.get("restore_best_weights"))
            and self.replay.restored is not None
        )

    @property
    def final_epoch(self) -> int:
        """Index (0-based, into the series) of the epoch whose weights the model must hold."""
        if self.restores:
            return min(max(self.replay.restored - self.initial_epoch, 0), max(self.n - 1, 0))
        return max(self.n - 1, 0)

    def rule(self) -> dict[str, Any]:
        """The callback's rule, as message parameters."""
        s = self.settings
        return {
            "monitor": shown(s.get("monitor")),
            "patience": shown(s.get("patience")),
            "min_delta": shown(s.get("min_delta")),
        }


def training_claims(sub) -> Claims:
    return sub.memo.get("claims", lambda: Claims(trained(sub)))


def _consistency(training: Training, claims: Claims) -> None:
    """The History must be one ``fit``'s record (``fit_record.check_one_fit``)."""
    fit_record.check_one_fit(
        training.values,
        claims.epoch_list,
        iterations=claims.model_state.get("optimizer_iterations"),
        steps=training.params.get("steps"),
        prefix="es_history",
    )


def history_fit(sub) -> Passed:
    """``validation_data``, ``epochs`` and ``batch_size`` of the ``fit`` call: one wrong
    argument gets its own message; several get one message naming every one of them."""
    training = trained(sub)
    no_validation = training.val_loss is None
    claims = training_claims(sub)
    if not no_validation:
        _consistency(training, claims)
    epochs = training.params.get("epochs")
    if claims.proven_epochs is not None:
        epochs = claims.proven_epochs
    steps = training.params.get("steps")
    try:
        n_train = len(training.student_split()["X_train"])
    except Fail:
        n_train = len(sub.data()["X_train"])
    wrong = []
    if no_validation:
        wrong.append("validation_data")
    if epochs != EPOCHS:
        wrong.append("epochs")
    batch = None
    if steps != math.ceil(n_train / BATCH_SIZE):
        wrong.append("batch_size")
        batch = math.ceil(n_train / steps) if is_number(steps) and steps > 0 else "?"
    if len(wrong) > 1:
        raise Fail(
            "es_history.fit_arguments",
            n_wrong=len(wrong),
            no_validation=no_validation,
            epochs=shown(epochs) if "epochs" in wrong else None,
            steps=shown(steps) if batch is not None else None,
            batch=batch,
        )
    if no_validation:
        raise Fail("es_history.no_validation")
    if wrong == ["epochs"]:
        raise Fail("es_history.epochs", found=shown(epochs))
    if wrong == ["batch_size"]:
        raise Fail("es_history.batch_size", steps=shown(steps), batch=batch)
    return Passed("es_history.fit_ok")


_COMPARED_SETTINGS = (
    "monitor",
    "min_delta",
    "patience",
    "restore_best_weights",
    "mode",
    "baseline",
    "start_from_epoch",
)


def _settings_before_fit(sub) -> dict | None:
    """The callback's settings as its own cell captured them (before training), if captured."""
    try:
        payload = sub.artifacts.read_json(layout.KERAS_EARLY_STOPPING)
    except Exception:  # noqa: BLE001 - missing (a self-check) or unreadable (reported there)
        return None
    callback = as_dict(as_dict(payload).get("callback"))
    return as_dict(callback.get("settings")) if callback.get("is_early_stopping") else None


def _same_setting(before: Any, after: Any) -> bool:
    if is_number(before) and is_number(after):
        return math.isclose(float(before), float(after), rel_tol=1e-9, abs_tol=1e-12)
    return before == after


def history_callback(sub) -> Passed:
    training = trained(sub)
    if not training.payload.get("callback_present") or not training.callback.get(
        "is_early_stopping"
    ):
        trained_with = [
            name
            for other in training.payload["other_early_stopping"]
            if as_dict(other.get("state")).get("attached_to_model")
            for name in _named(other.get("names"))
        ]
        if trained_with:
            raise Fail("es_history.callback_other_name", names=_quoted(trained_with[:3]))
    if not training.payload.get("callback_present"):
        raise Fail("es_history.callback_missing")
    if not training.callback.get("is_early_stopping"):
        raise Fail("es_history.callback_wrong_type")
    if training.state.get("attached_to_model"):
        claims = training_claims(sub)
        if claims.source != "student":
            raise Fail("es_history.callback_idle")
        before = _settings_before_fit(sub)
        for name in _COMPARED_SETTINGS if before is not None else ():
            if name in before and not _same_setting(before[name], claims.settings.get(name)):
                raise Fail(
                    "es_history.callback_changed",
                    argument=name,
                    before=shown(before[name]),
                    after=shown(claims.settings.get(name)),
                )
        if claims.replay is None:
            raise Fail("es_history.callback_unreadable", argument=claims.unreadable)
        replay = claims.replay
        for name in ("stopped_epoch", "best_epoch", "wait"):
            found = claims.state.get(name)
            expected = getattr(replay, name)
            if not (is_number(found) and found == expected):
                raise Fail(
                    "es_history.callback_state",
                    field=name,
                    found=shown(found),
                    expected=expected,
                    **claims.rule(),
                )
        return Passed("es_history.callback_ok")
    if training.state.get("attached"):
        raise Fail("es_history.callback_other_model")
    if training.payload.get("other_early_stopping"):
        raise Fail("es_history.callback_other_instance")
    raise Fail("es_history.callback_not_used")


def history_stopped(sub) -> Passed:
    """Credit "early stopping stopped training" only when the recorded series prove it: the
    callback's rule, replayed on the monitored series, fires at the history's last epoch, and
    that epoch comes before the ``epochs`` requested."""
    training = trained(sub)
    claims = training_claims(sub)
    run, limit, full = claims.n, claims.requested, claims.full
    if limit is None:
        raise Fail("es_history.params_invalid", found=shown(training.params.get("epochs")))
    if run > full:
        raise Fail("es_history.more_than_requested", epochs=run, limit=limit)
    replay = claims.replay
    if claims.used and replay is None:
        raise Fail("es_history.callback_unreadable", argument=claims.unreadable)
    if replay is None:
        if run < full:
            raise Fail("es_history.stopped_without_callback", epochs=run, limit=limit)
    else:
        if replay.fired is not None and replay.seen < run:
            raise Fail(
                "es_history.stopped_late",
                epochs=run,
                fired=replay.fired + 1,
                **claims.rule(),
            )
        if run < full:
            if replay.fired is None:
                raise Fail(
                    "es_history.stopped_unexplained", epochs=run, limit=limit, **claims.rule()
                )
            if claims.model_state.get("stop_training") is False and not claims.trained_after:
                raise Fail("es_history.stop_not_requested", epochs=run, limit=limit)
            return Passed("es_history.stopped_ok", epochs=run, limit=limit)
    if training.val_loss is None:
        raise Fail("es_history.not_stopped_no_validation", epochs=run)
    if not claims.used:
        raise Fail("es_history.not_stopped_no_callback", epochs=run)
    raise Fail("es_history.not_stopped", epochs=run)
