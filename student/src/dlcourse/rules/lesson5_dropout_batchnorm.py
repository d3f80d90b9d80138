"""What the ``lesson5_dropout_batchnorm`` checkers build on: the lesson's numbers, the submission
read once per grading, and the *block structure* of a captured model.

It reuses the shared machinery and adds only what lesson 5 needs:

* ``dlcourse.keras_capture`` wrote the artifacts (``keras/model.json``,
  ``keras/training.json``, ``keras/weights.npz``);
* ``dlcourse.keras_model`` normalizes the model (``Dense(1024)`` +
  ``Activation("relu")`` = ``Dense(1024, activation="relu")``, ``ReLU()``, ``tf.nn.relu``...),
  runs the numpy forward pass in inference mode (Dropout = identity, BatchNormalization with its
  moving statistics) and normalizes the loss and the optimizer;
* this module cuts the normalized layers into an input *prefix*, one *block* per hidden
  ``Dense`` (the hidden ``Dense`` and every layer up to the next ``Dense``), the output
  ``Dense`` and a *tail* after it. Lesson 5's rules are rules about blocks: one ``Dropout`` and
  one ``BatchNormalization`` in every hidden block, in any order (both placements of seed 5.4:
  after the layer, or between a linear ``Dense`` and its ``Activation``), nothing after the
  output.

Only numpy and the shared checker modules are imported (no TensorFlow, no pytest): the
calibration script imports the constants from here.
"""

from __future__ import annotations

import functools
import math
import re
from dataclasses import dataclass, field
from typing import Any

from dlcourse import keras_model as km
from dlcourse import layout
from dlcourse.artifacts import ArtifactError
from dlcourse.checking import CapturedSubmission, Fail, Passed, describe_found, short_summary
from dlcourse.rules import fit_record

# --- what the lesson asks for (public: it is in the notebook's text) ---------------------------
N_FEATURES = 11
N_HIDDEN = 3
HIDDEN_UNITS = 1024
HIDDEN_ACTIVATION = "relu"
DROPOUT_RATE = 0.3
EPOCHS = 100
BATCH_SIZE = 256
OPTIMIZER = "adam"
LOSS = "mae"
SPEC_TEXT = "3 × [Dense(1024, relu), Dropout(0.3), BatchNormalization()] + Dense(1)"
# The seed's lesson 5.5 code: five hidden Dense layers (the lesson's model has three).
SEED_HIDDEN = 5
# The notebook's experiment (regularization_effect): the same stack of Dense(relu) layers with
# and without Dropout(0.3), narrower, without BatchNormalization, on the first 200 training rows
# with small batches, so that overfitting shows within seconds. docs/calibration_lesson5.md
# explains the sizes.
EXPERIMENT_UNITS = 256
EXPERIMENT_ROWS = 200
EXPERIMENT_BATCH = 16
EXPERIMENT_EPOCHS = 60

DROPOUT = "Dropout"
BATCH_NORM = "BatchNormalization"
OTHER_DROPOUTS = {"AlphaDropout", "GaussianDropout", "GaussianNoise", "SpatialDropout1D"}
KNOWN_KINDS = {"Dense", DROPOUT, BATCH_NORM, "Activation"}

# Tolerances of the public checks (the hidden checker adds its calibrated thresholds).
DEFAULTS = {
    "db_history_atol": 1e-6,
    "db_history_rtol": 1e-5,
}


# --- the submission, read once per grading ----------------------------------------------------


class Submission(CapturedSubmission):
    """One submission's artifacts, answers, thresholds and memo (kept in ``context.cache``)."""

    DEFAULTS = DEFAULTS


# --- errors of the answer cells that the lesson's own code provokes ---------------------------

_UNITS_ERROR = re.compile(r"Received:\s*units\s*=\s*([-+0-9.eE]+)")
_RATE_ERROR = re.compile(r"Received:\s*rate\s*=\s*([-+0-9.eE]+)")


def _as_float(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def model_cell_error(sub: Submission) -> Fail | None:
    """The lesson-specific verdict for an ``ans_model`` cell that raised before ``model`` was
    defined: ``layers.Dense(10.3)`` (seed 5.5) or a rate given as a percentage."""
    info = sub.cell("ans_model")
    error = info.get("error") or {}
    if info.get("status") != "error" or not isinstance(error, dict):
        return None
    text = f"{error.get('ename', '')}: {error.get('evalue', '')}"
    units = _UNITS_ERROR.search(text)
    if units:
        value = _as_float(units.group(1))
        if value is not None and value != int(value):
            return Fail("db_dropout.dense_not_dropout", found=units.group(1))
    rate = _RATE_ERROR.search(text)
    if rate:
        value = _as_float(rate.group(1))
        if value is not None and value > 1:
            return Fail(
                "db_dropout.rate_percent",
                found=rate.group(1),
                fraction=f"{value / 100:g}",
                percent=f"{value * 100:g}",
            )
        return Fail("db_dropout.rate_invalid", found=rate.group(1))
    return None


# --- the block structure ------------------------------------------------------------------------


@dataclass
class Block:
    """A hidden ``Dense`` (``number`` counts from 1) and the layers up to the next ``Dense``."""

    number: int
    dense: km.LayerView
    after: list[km.LayerView]

    @property
    def position(self) -> int:
        """1-based position of the Dense in ``model.layers`` (what the student counts)."""
        return (self.dense.layer or 0) + 1

    def kinds(self, kind: str) -> list[km.LayerView]:
        return [layer for layer in self.after if layer.kind == kind]

    @property
    def activation(self) -> str:
        """The block's activation: the Dense's own, or the Activation layer of a linear Dense
        (seed 5.4: ``Dense`` -> ``BatchNormalization`` -> ``Activation("relu")``)."""
        if self.dense.activation not in (None, "linear"):
            return self.dense.activation
        found = [layer.activation for layer in self.after if layer.kind == "Activation"]
        return (
            found[0]
            if len(found) == 1 and found[0]
            else "linear"
            if not found
            else "+".join(str(a) for a in found)
        )

    def describe(self) -> str:
        return ", ".join(layer.describe() for layer in [self.dense, *self.after])


@dataclass
class Structure:
    view: km.ModelView
    prefix: list[km.LayerView] = field(default_factory=list)
    blocks: list[Block] = field(default_factory=list)
    output: km.LayerView | None = None
    tail: list[km.LayerView] = field(default_factory=list)
    # the model's cell passed a set to ``Sequential``: Keras stacked its layers in hash order
    from_set: bool = False

    def layers(self) -> list[km.LayerView]:
        return [
            *self.prefix,
            *(layer for block in self.blocks for layer in (block.dense, *block.after)),
            *([self.output] if self.output else []),
            *self.tail,
        ]

    def dropouts(self) -> list[km.LayerView]:
        return [layer for layer in self.layers() if layer.kind == DROPOUT]

    def describe(self) -> str:
        return self.view.describe()


def structure(view: km.ModelView) -> Structure:
    """Cut a normalized model into prefix, hidden blocks, output and tail."""
    dense = [i for i, layer in enumerate(view.layers) if layer.kind == "Dense"]
    if not dense:
        return Structure(view, prefix=list(view.layers))
    blocks = [
        Block(n, view.layers[start], list(view.layers[start + 1 : end]))
        for n, (start, end) in enumerate(zip(dense[:-1], dense[1:], strict=False), 1)
    ]
    return Structure(
        view,
        list(view.layers[: dense[0]]),
        blocks,
        view.layers[dense[-1]],
        list(view.layers[dense[-1] + 1 :]),
    )


def position(layer: km.LayerView) -> int:
    return (layer.layer or 0) + 1


def misplaced_dense(found: Structure) -> km.LayerView | None:
    """A ``Dense`` that stands where a ``Dropout`` was meant: ``Dense(10.3)`` (Keras 2 turned
    it into a linear ``Dense(10)`` right after a wide hidden layer without dropout; Keras 3
    refuses it, see ``model_cell_error``)."""
    for previous, block in zip(found.blocks, found.blocks[1:], strict=False):
        units = block.dense.config.get("units")
        if isinstance(units, float) and units != int(units):
            return block.dense
        if (
            block.dense.units == 10
            and block.dense.activation in (None, "linear")
            and (previous.dense.units or 0) > 10
            and not previous.kinds(DROPOUT)
        ):
            return block.dense
    return None


def rate_of(layer: km.LayerView) -> float | None:
    return layer.rate if layer.rate is not None else None


def same_rate(value: float | None, expected: float = DROPOUT_RATE) -> bool:
    return value is not None and math.isclose(value, expected, rel_tol=1e-6, abs_tol=1e-9)


# --- the public checks (the hidden checker wraps each one) -----------------------------------


def captured_answer(sub: Submission, name: str, test_cell: str):
    """The answer's capture record; ``not_executed`` when its test cell never ran."""
    try:
        answer = sub.artifacts.answer(name)
    except ArtifactError as exc:
        raise Fail("artifact_invalid", name=name, reason=exc.note) from None
    if answer is None:
        reason = sub.cell(test_cell).get("reason_note") or {"id": "run.stopped_before"}
        raise Fail("not_executed", cell=test_cell, reason=reason)
    return answer


def _model(sub: Submission) -> Structure:
    answer = captured_answer(sub, "model", "test_dropout")
    if not answer.present:
        specific = model_cell_error(sub)
        if specific is not None:
            raise specific
    value = sub.answers.get("model")
    payload = sub.json(layout.KERAS_MODEL, "model")
    if "error" in payload and "model" not in payload:
        raise Fail("artifact_invalid", name="model", reason=str(payload["error"])[:200])
    model = payload.get("model") or {}
    if not model.get("is_model"):
        raise Fail("db_model.wrong_type", found=describe_found(value))
    view = km.normalize(model)
    if view.problem:
        raise Fail("db_model.not_a_stack", found=view.problem)
    found = structure(view)
    found.from_set = model.get("built_from_set") is True
    return found


def _structure(sub: Submission) -> Structure:
    return sub.memo.get("model", lambda: _model(sub))


def explained_by_set(check):
    """A failing structure check of a model built from a set (``keras.Sequential({...})``)
    reports the set, whose layers have no order, not the order Keras happened to give them
    (the points stay those of the check)."""

    @functools.wraps(check)
    def run(sub):
        try:
            return check(sub)
        except Fail as failure:
            try:
                found = _structure(sub)
            except Fail:
                raise failure from None
            if found.from_set:
                raise Fail("db_model.set_order", layers=found.describe() or "-") from None
            raise

    return run


def _layers(found: Structure) -> dict:
    return {"layers": found.describe()}


def _one_per_block(found: Structure, kind: str, message_prefix: str) -> None:
    """Every hidden block holds exactly one layer of ``kind``; else ``<prefix>.before_dense``
    (it sits before the first Dense instead), ``<prefix>.missing`` or ``<prefix>.twice``."""
    missing = [block for block in found.blocks if not block.kinds(kind)]
    if missing:
        block = missing[0]
        params = {
            "block": block.number,
            "position": block.position,
            "found": block.describe(),
            **_layers(found),
        }
        if any(layer.kind == kind for layer in found.prefix):
            raise Fail(f"{message_prefix}.before_dense", **params)
        raise Fail(f"{message_prefix}.missing", **params)
    for block in found.blocks:
        if len(block.kinds(kind)) > 1:
            raise Fail(
                f"{message_prefix}.twice",
                block=block.number,
                position=block.position,
                found=block.describe(),
            )


@explained_by_set
def dropout_hidden(sub) -> Passed:
    found = _structure(sub)
    misplaced = misplaced_dense(found)
    if misplaced is not None:
        raise Fail(
            "db_dropout.dense_not_dropout",
            found=str(misplaced.config.get("units", misplaced.units)),
        )
    if not found.blocks:
        raise Fail("db_model.no_hidden", **_layers(found))
    for layer in found.layers():
        if layer.kind in OTHER_DROPOUTS:
            raise Fail("db_dropout.other_kind", found=layer.kind, position=position(layer))
    _one_per_block(found, DROPOUT, "db_dropout")
    return Passed(
        "db_dropout.hidden_ok",
        n=len(found.blocks),
        on_inputs=any(layer.kind == DROPOUT for layer in found.prefix),
    )


@explained_by_set
def dropout_output(sub) -> Passed:
    found = _structure(sub)
    if found.output is None:
        raise Fail("db_model.no_dense", **_layers(found))
    after = [layer for layer in found.tail if layer.kind == DROPOUT or layer.kind in OTHER_DROPOUTS]
    if after:
        raise Fail(
            "db_dropout.after_output",
            position=position(after[0]),
            output=position(found.output),
            **_layers(found),
        )
    if not found.dropouts():
        raise Fail("db_dropout.none", **_layers(found))
    return Passed("db_dropout.output_ok")


@explained_by_set
def dropout_rate(sub) -> Passed:
    found = _structure(sub)
    dropouts = found.dropouts()
    if not dropouts:
        raise Fail("db_dropout.none", **_layers(found))
    for layer in dropouts:
        rate = layer.rate
        if same_rate(rate):
            continue
        where = position(layer)
        if rate is None:
            raise Fail("db_dropout.rate_invalid", found=str(layer.config.get("rate")))
        if rate == 0:
            raise Fail("db_dropout.rate_zero", position=where)
        if rate > 1:
            raise Fail(
                "db_dropout.rate_percent",
                found=f"{rate:g}",
                fraction=f"{rate / 100:g}",
                percent=f"{rate * 100:g}",
            )
        if same_rate(rate, 1 - DROPOUT_RATE):
            raise Fail("db_dropout.rate_keep", found=f"{rate:g}", position=where)
        if same_rate(rate, 0.5):
            raise Fail("db_dropout.rate_seed_50", position=where)
        raise Fail("db_dropout.rate_wrong", found=f"{rate:g}", position=where)
    return Passed("db_dropout.rate_ok", n=len(dropouts))


@explained_by_set
def dense_layers(sub) -> Passed:
    found = _structure(sub)
    view = found.view
    if view.input_dim not in (None, N_FEATURES):
        raise Fail("db_model.input", found=view.input_dim, expected=N_FEATURES)
    for layer in found.layers():
        if layer.kind not in KNOWN_KINDS | OTHER_DROPOUTS:
            raise Fail(
                "db_model.other_layer",
                found=layer.describe(),
                position=position(layer),
                **_layers(found),
            )
    if found.output is None:
        raise Fail("db_model.no_dense", **_layers(found))
    n = len(found.blocks)
    if n != N_HIDDEN:
        raise Fail("db_model.hidden_count", found=n, seed=n == SEED_HIDDEN, **_layers(found))
    for block in found.blocks:
        if block.dense.units != HIDDEN_UNITS:
            raise Fail(
                "db_model.units",
                block=block.number,
                position=block.position,
                found=str(block.dense.config.get("units", block.dense.units)),
            )
    for block in found.blocks:
        if block.activation != HIDDEN_ACTIVATION:
            raise Fail(
                "db_model.activation",
                block=block.number,
                position=block.position,
                found=block.activation,
            )
    output = found.output
    if output.units != 1:
        raise Fail(
            "db_model.output_units",
            found=str(output.config.get("units", output.units)),
            position=position(output),
        )
    if output.activation not in (None, "linear"):
        raise Fail("db_model.output_activation", found=output.activation, position=position(output))
    return Passed("db_model.dense_ok", **_layers(found))


@explained_by_set
def batchnorm_blocks(sub) -> Passed:
    found = _structure(sub)
    if not found.blocks:
        raise Fail("db_model.no_hidden", **_layers(found))
    _one_per_block(found, BATCH_NORM, "db_batchnorm")
    placements = {_placement(block) for block in found.blocks}
    return Passed(
        "db_batchnorm.blocks_ok",
        n=len(found.blocks),
        placement=placements.pop() if len(placements) == 1 else "mixed",
        on_inputs=any(layer.kind == BATCH_NORM for layer in found.prefix),
    )


def _placement(block: Block) -> str:
    """``"between"`` a linear Dense and its Activation, or ``"after"`` the activated layer."""
    if block.dense.activation not in (None, "linear"):
        return "after"
    kinds = [layer.kind for layer in block.after]
    if "Activation" in kinds and kinds.index(BATCH_NORM) < kinds.index("Activation"):
        return "between"
    return "after"


@explained_by_set
def batchnorm_output(sub) -> Passed:
    found = _structure(sub)
    if found.output is None:
        raise Fail("db_model.no_dense", **_layers(found))
    after = [layer for layer in found.tail if layer.kind == BATCH_NORM]
    if after:
        raise Fail(
            "db_batchnorm.after_output",
            position=position(after[0]),
            output=position(found.output),
            **_layers(found),
        )
    if not any(layer.kind == BATCH_NORM for layer in found.layers()):
        raise Fail("db_batchnorm.none", **_layers(found))
    return Passed("db_batchnorm.output_ok")


def _payload(sub: Submission) -> dict:
    answer = captured_answer(sub, "history", "test_history")
    if not answer.present:
        info = sub.cell("ans_history")
        error = info.get("error") or {}
        if (
            info.get("status") == "error"
            and isinstance(error, dict)
            and error.get("ename") == "NameError"
            and "'model'" in str(error.get("evalue"))
        ):
            raise Fail("db_history.no_model_built")
    sub.answers.get("history")  # not attempted, an error in the answer cell, a timeout
    payload = sub.json(layout.keras_training(), "history")
    if "error" in payload and "history" not in payload:
        raise Fail("artifact_invalid", name="history", reason=str(payload["error"])[:200])
    return payload


class Trained:
    """The model as it was when ``history`` was captured: its view, loss and weights."""

    def __init__(self, sub: Submission, payload: dict):
        self.sub = sub
        self.payload = payload
        self.model = payload["model"]
        self.view = km.normalize(self.model)
        self.loss = km.normalize_loss(self.model.get("compile") or {})

    def weights(self) -> dict[int, dict]:
        def load():
            arrays = self.sub.npz(layout.keras_weights(), "history")
            return km.weights_by_layer(self.payload.get("weights") or [], arrays)

        return self.sub.memo.get("weights", load)

    def predict(self, x):
        weights = self.weights()
        if any(
            layer.kind == "Dense" and "kernel" not in weights.get(layer.layer, {})
            for layer in self.view.layers
        ):
            raise Fail("db_history.untrained")  # never built nor fitted: no weights at all
        try:
            return km.forward(self.view, weights, x)
        except km.Unsupported as exc:
            raise Fail("db_history.forward_unsupported", what=str(exc)) from None


def trained(sub: Submission) -> Trained:
    def load():
        payload = sub.memo.get("payload", lambda: _payload(sub))
        model = payload.get("model") or {}
        if not payload.get("model_present") or not model.get("is_model"):
            raise Fail("db_history.no_model")
        return Trained(sub, payload)

    return sub.memo.get("trained", load)


def trained_history(sub: Submission) -> dict:
    def load():
        payload = sub.memo.get("payload", lambda: _payload(sub))
        history = payload.get("history") or {}
        if not history.get("is_history"):
            raise Fail("db_history.wrong_type", found=describe_found(sub.answers.get("history")))
        trained(sub)
        if not (history.get("history") or {}).get("loss"):
            raise Fail("db_history.empty")
        if not history.get("model_is_model"):
            raise Fail("db_history.not_retrained")
        return history

    return sub.memo.get("history", load)


def val_loss_of(history: dict) -> list[float] | None:
    values = (history.get("history") or {}).get("val_loss")
    if not values:
        return None
    if any(not is_number(v) for v in values):  # NaN and infinity are captured as None
        raise Fail("db_history.not_finite")
    return [float(v) for v in values]


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def history_model(sub) -> Passed:
    history = trained_history(sub)
    if val_loss_of(history) is None:
        raise Fail("db_history.no_validation")
    return Passed("db_history.model_ok")


def _proven_epochs(history: dict, payload: dict, params: dict) -> Any:
    """The ``epochs`` of the ``fit`` call as far as the record proves it.

    ``history.params`` can be edited by hand, so it is believed only where the series agree:
    the history must be one ``fit``'s record (``fit_record``), it never holds more epochs than
    asked, and unless something stopped ``fit`` (``model.stop_training``, which ``fit`` resets
    when it starts and only a callback sets) it holds every epoch asked for."""
    values = history.get("history") if isinstance(history.get("history"), dict) else {}
    state = payload.get("model_state") if isinstance(payload.get("model_state"), dict) else {}
    fit_record.check_one_fit(
        values,
        history.get("epoch"),
        iterations=state.get("optimizer_iterations"),
        steps=params.get("steps"),
        prefix="db_history",
    )
    requested = fit_record.whole(params.get("epochs"))
    if requested is None:
        return params.get("epochs")
    n = len(values.get("loss") or [])
    full = requested - fit_record.first_epoch(history.get("epoch"))
    if n > full:
        raise Fail("db_history.more_than_requested", epochs=n, limit=requested)
    if n < full and state.get("stop_training") is not True:
        raise Fail("db_history.params_forged", epochs=n, limit=requested)
    # A callback stopped it (``model.stop_training``): the lesson uses none, and what that
    # costs is charged once, by the integrity check (the final weights are not the last epoch's).
    return requested


def history_fit(sub) -> Passed:
    """``epochs`` and ``batch_size`` of the ``fit`` call; when both are wrong, one message
    names both."""
    history = trained_history(sub)
    params = history.get("params") if isinstance(history.get("params"), dict) else {}
    steps = params.get("steps")
    epochs = _proven_epochs(history, trained(sub).payload, params)
    n_train = len(sub.data()["X_train"])
    batch = None
    if steps != math.ceil(n_train / BATCH_SIZE):
        batch = math.ceil(n_train / steps) if is_number(steps) and steps > 0 else "?"
    if epochs != EPOCHS and batch is not None:
        raise Fail(
            "db_history.fit_arguments",
            epochs=short_summary(epochs),
            steps=short_summary(steps),
            batch=batch,
        )
    if epochs != EPOCHS:
        raise Fail("db_history.epochs", found=short_summary(epochs))
    if batch is not None:
        raise Fail("db_history.batch_size", steps=short_summary(steps), batch=batch)
    return Passed("db_history.fit_ok")


def _compiled(sub: Submission) -> dict:
    """The compile settings of ``model`` when it was trained (else as the model cell left it)."""
    try:
        return trained(sub).model.get("compile") or {}
    except Fail as first:
        try:
            payload = sub.json(layout.KERAS_MODEL, "model")
        except Fail:
            raise first from None
        model = payload.get("model") or {}
        if not model.get("is_model"):
            raise first from None
        return model.get("compile") or {}


def history_compile(sub) -> Passed:
    compiled = _compiled(sub)
    if not compiled.get("compiled"):
        error = sub.cell_error("ans_model")  # the cell raised before or in model.compile
        if error is not None:
            raise Fail("answer_cell_error", name="model", error=error)
        raise Fail("db_history.not_compiled")
    name, found = km.normalize_optimizer(compiled)
    if name != OPTIMIZER:
        raise Fail("db_history.optimizer", found=found)
    loss = km.normalize_loss(compiled)
    if loss.name != LOSS:
        raise Fail("db_history.loss", found=loss.found)
    return Passed("db_history.compile_ok", found=loss.found)
