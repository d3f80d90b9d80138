"""Hidden checkers of ``lesson5_dropout_batchnorm`` (lessons 5.1 to 5.5).

They judge the plain data captured by ``autograder.course.keras_capture`` and never retrain:
the model is read from its layer configs (normalized by ``keras_model``, cut into hidden blocks
by ``lesson5_support``), and the validation MAE is re-computed with a numpy forward pass in
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

from autograder.capture import ArtifactError
from autograder.checkers import keras_model as km
from autograder.checkers import lesson5_support as l5
from autograder.checkers.support import Fail, as_letter, describe_found

ASSIGNMENT = "lesson5_dropout_batchnorm"
EFFECT_LETTERS = "abcd"
EFFECT_ANSWER = "c"
# A specific explanation for each wrong option of regularization_effect (never the right one).
EFFECT_WRONG = {
    "a": "db_effect.faster",
    "b": "db_effect.no_overfitting",
    "d": "db_effect.val_worse",
}


@pytest.fixture
def sub(context) -> l5.Submission:
    """The submission being checked, read once (memoized in the context's cache)."""
    if ASSIGNMENT not in context.cache:
        context.cache[ASSIGNMENT] = l5.Submission(context.artifacts, context.thresholds)
    return context.cache[ASSIGNMENT]


# --- model (lessons 5.2, 5.4, 5.5): read once, shared by test_dropout and test_batchnorm ------


def _answer(sub: l5.Submission, name: str, test_cell: str):
    """The answer's capture record; ``not_executed`` when its test cell never ran."""
    try:
        answer = sub.artifacts.answer(name)
    except ArtifactError as exc:
        raise Fail("artifact_invalid", name=name, reason=str(exc)) from None
    if answer is None:
        reason = sub.cell(test_cell).get("reason") or "the notebook stopped before it"
        raise Fail("not_executed", cell=test_cell, reason=reason)
    return answer


def _model(sub: l5.Submission) -> l5.Structure:
    answer = _answer(sub, "model", "test_dropout")
    if not answer.present:
        specific = l5.model_cell_error(sub)
        if specific is not None:
            raise specific
    value = sub.answers.get("model")
    payload = sub.json("keras/model.json", "model")
    if "error" in payload and "model" not in payload:
        raise Fail("artifact_invalid", name="model", reason=str(payload["error"])[:200])
    model = payload.get("model") or {}
    if not model.get("is_model"):
        raise Fail("db_model.wrong_type", found=describe_found(value))
    view = km.normalize(model)
    if view.problem:
        raise Fail("db_model.not_a_stack", found=view.problem)
    return l5.structure(view)


def _structure(sub: l5.Submission) -> l5.Structure:
    return sub.memo.get("model", lambda: _model(sub))


def _layers(found: l5.Structure) -> dict:
    return {"layers": found.describe()}


def _one_per_block(found: l5.Structure, kind: str, message_prefix: str) -> None:
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


@pytest.mark.grade_cell("test_dropout", points=1)
def test_dropout_hidden(sub, verdict):
    found = _structure(sub)
    misplaced = l5.misplaced_dense(found)
    if misplaced is not None:
        raise Fail(
            "db_dropout.dense_not_dropout",
            found=str(misplaced.config.get("units", misplaced.units)),
        )
    if not found.blocks:
        raise Fail("db_model.no_hidden", **_layers(found))
    for layer in found.layers():
        if layer.kind in l5.OTHER_DROPOUTS:
            raise Fail("db_dropout.other_kind", found=layer.kind, position=l5.position(layer))
    _one_per_block(found, l5.DROPOUT, "db_dropout")
    verdict.ok(
        "db_dropout.hidden_ok",
        n=len(found.blocks),
        on_inputs=any(layer.kind == l5.DROPOUT for layer in found.prefix),
    )


@pytest.mark.grade_cell("test_dropout", points=0.5)
def test_dropout_output(sub, verdict):
    found = _structure(sub)
    if found.output is None:
        raise Fail("db_model.no_dense", **_layers(found))
    after = [
        layer for layer in found.tail if layer.kind == l5.DROPOUT or layer.kind in l5.OTHER_DROPOUTS
    ]
    if after:
        raise Fail(
            "db_dropout.after_output",
            position=l5.position(after[0]),
            output=l5.position(found.output),
            **_layers(found),
        )
    if not found.dropouts():
        raise Fail("db_dropout.none", **_layers(found))
    verdict.ok("db_dropout.output_ok")


@pytest.mark.grade_cell("test_dropout", points=1)
def test_dropout_rate(sub, verdict):
    found = _structure(sub)
    dropouts = found.dropouts()
    if not dropouts:
        raise Fail("db_dropout.none", **_layers(found))
    for layer in dropouts:
        rate = layer.rate
        if l5.same_rate(rate):
            continue
        where = l5.position(layer)
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
        if l5.same_rate(rate, 1 - l5.DROPOUT_RATE):
            raise Fail("db_dropout.rate_keep", found=f"{rate:g}", position=where)
        if l5.same_rate(rate, 0.5):
            raise Fail("db_dropout.rate_seed_50", position=where)
        raise Fail("db_dropout.rate_wrong", found=f"{rate:g}", position=where)
    verdict.ok("db_dropout.rate_ok", n=len(dropouts))


@pytest.mark.grade_cell("test_dropout", points=0.5)
def test_dense_layers(sub, verdict):
    found = _structure(sub)
    view = found.view
    if view.input_dim not in (None, l5.N_FEATURES):
        raise Fail("db_model.input", found=view.input_dim, expected=l5.N_FEATURES)
    for layer in found.layers():
        if layer.kind not in l5.KNOWN_KINDS | l5.OTHER_DROPOUTS:
            raise Fail(
                "db_model.other_layer",
                found=layer.describe(),
                position=l5.position(layer),
                **_layers(found),
            )
    if found.output is None:
        raise Fail("db_model.no_dense", **_layers(found))
    n = len(found.blocks)
    if n != l5.N_HIDDEN:
        raise Fail("db_model.hidden_count", found=n, seed=n == l5.SEED_HIDDEN, **_layers(found))
    for block in found.blocks:
        if block.dense.units != l5.HIDDEN_UNITS:
            raise Fail(
                "db_model.units",
                block=block.number,
                position=block.position,
                found=str(block.dense.config.get("units", block.dense.units)),
            )
    for block in found.blocks:
        if block.activation != l5.HIDDEN_ACTIVATION:
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
            position=l5.position(output),
        )
    if output.activation not in (None, "linear"):
        raise Fail(
            "db_model.output_activation", found=output.activation, position=l5.position(output)
        )
    verdict.ok("db_model.dense_ok", **_layers(found))


@pytest.mark.grade_cell("test_batchnorm", points=1.5)
def test_batchnorm_blocks(sub, verdict):
    found = _structure(sub)
    if not found.blocks:
        raise Fail("db_model.no_hidden", **_layers(found))
    _one_per_block(found, l5.BATCH_NORM, "db_batchnorm")
    placements = {_placement(block) for block in found.blocks}
    verdict.ok(
        "db_batchnorm.blocks_ok",
        n=len(found.blocks),
        placement=placements.pop() if len(placements) == 1 else "mixed",
        on_inputs=any(layer.kind == l5.BATCH_NORM for layer in found.prefix),
    )


def _placement(block: l5.Block) -> str:
    """``"between"`` a linear Dense and its Activation, or ``"after"`` the activated layer."""
    if block.dense.activation not in (None, "linear"):
        return "after"
    kinds = [layer.kind for layer in block.after]
    if "Activation" in kinds and kinds.index(l5.BATCH_NORM) < kinds.index("Activation"):
        return "between"
    return "after"


@pytest.mark.grade_cell("test_batchnorm", points=0.5)
def test_batchnorm_output(sub, verdict):
    found = _structure(sub)
    if found.output is None:
        raise Fail("db_model.no_dense", **_layers(found))
    after = [layer for layer in found.tail if layer.kind == l5.BATCH_NORM]
    if after:
        raise Fail(
            "db_batchnorm.after_output",
            position=l5.position(after[0]),
            output=l5.position(found.output),
            **_layers(found),
        )
    if not any(layer.kind == l5.BATCH_NORM for layer in found.layers()):
        raise Fail("db_batchnorm.none", **_layers(found))
    verdict.ok("db_batchnorm.output_ok")


# --- history (lesson 5.5) ---------------------------------------------------------------------


def _payload(sub: l5.Submission) -> dict:
    answer = _answer(sub, "history", "test_history")
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
    payload = sub.json("keras/training.json", "history")
    if "error" in payload and "history" not in payload:
        raise Fail("artifact_invalid", name="history", reason=str(payload["error"])[:200])
    return payload


class Trained:
    """The model as it was when ``history`` was captured: its view, loss and weights."""

    def __init__(self, sub: l5.Submission, payload: dict):
        self.sub = sub
        self.payload = payload
        self.model = payload["model"]
        self.view = km.normalize(self.model)
        self.loss = km.normalize_loss(self.model.get("compile") or {})

    def weights(self) -> dict[int, dict]:
        def load():
            arrays = self.sub.npz("keras/weights.npz", "history")
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


def _trained(sub: l5.Submission) -> Trained:
    def load():
        payload = sub.memo.get("payload", lambda: _payload(sub))
        model = payload.get("model") or {}
        if not payload.get("model_present") or not model.get("is_model"):
            raise Fail("db_history.no_model")
        return Trained(sub, payload)

    return sub.memo.get("trained", load)


def _history(sub: l5.Submission) -> dict:
    def load():
        payload = sub.memo.get("payload", lambda: _payload(sub))
        history = payload.get("history") or {}
        if not history.get("is_history"):
            raise Fail("db_history.wrong_type", found=describe_found(sub.answers.get("history")))
        _trained(sub)
        if not (history.get("history") or {}).get("loss"):
            raise Fail("db_history.empty")
        if not history.get("model_is_model"):
            raise Fail("db_history.not_retrained")
        return history

    return sub.memo.get("history", load)


def _val_loss(history: dict) -> list[float] | None:
    values = (history.get("history") or {}).get("val_loss")
    if not values:
        return None
    if any(not _is_number(v) for v in values):  # NaN and infinity are captured as None
        raise Fail("db_history.not_finite")
    return [float(v) for v in values]


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


@pytest.mark.grade_cell("test_history", points=1)
def test_history_model(sub, verdict):
    history = _history(sub)
    if _val_loss(history) is None:
        raise Fail("db_history.no_validation")
    verdict.ok("db_history.model_ok")


@pytest.mark.grade_cell("test_history", points=0.5)
def test_history_fit(sub, verdict):
    history = _history(sub)
    params = history.get("params") if isinstance(history.get("params"), dict) else {}
    epochs = params.get("epochs")
    if epochs != l5.EPOCHS:
        raise Fail("db_history.epochs", found=describe_found(epochs))
    steps = params.get("steps")
    n_train = len(km.wine_arrays()["X_train"])
    if steps != math.ceil(n_train / l5.BATCH_SIZE):
        batch = math.ceil(n_train / steps) if _is_number(steps) and steps > 0 else "?"
        raise Fail("db_history.batch_size", steps=describe_found(steps), batch=batch)
    verdict.ok("db_history.fit_ok")


def _compiled(sub: l5.Submission) -> dict:
    """The compile settings of ``model`` when it was trained (else as the model cell left it)."""
    try:
        return _trained(sub).model.get("compile") or {}
    except Fail as first:
        try:
            payload = sub.json("keras/model.json", "model")
        except Fail:
            raise first from None
        model = payload.get("model") or {}
        if not model.get("is_model"):
            raise first from None
        return model.get("compile") or {}


@pytest.mark.grade_cell("test_history", points=0.5)
def test_history_compile(sub, verdict):
    compiled = _compiled(sub)
    if not compiled.get("compiled"):
        raise Fail("db_history.not_compiled")
    name, found = km.normalize_optimizer(compiled)
    if name != l5.OPTIMIZER:
        raise Fail("db_history.optimizer", found=found)
    loss = km.normalize_loss(compiled)
    if loss.name != l5.LOSS:
        raise Fail("db_history.loss", found=loss.found)
    verdict.ok("db_history.compile_ok", found=loss.found)


def _matches(sub: l5.Submission, value: float, series: list[float]) -> list[int]:
    atol, rtol = float(sub.t["db_history_atol"]), float(sub.t["db_history_rtol"])
    return [k for k, v in enumerate(series) if abs(v - value) <= atol + rtol * abs(v)]


@pytest.mark.grade_cell("test_history", points=1)
def test_history_integrity(sub, verdict):
    history = _history(sub)
    series = _val_loss(history)
    if series is None:
        raise Fail("db_history.no_validation")
    trained = _trained(sub)
    if trained.loss.name is None:
        raise Fail("db_history.loss_unsupported", found=trained.loss.found)
    data = km.wine_arrays()

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
    trained = _trained(sub)
    if trained.view.input_dim not in (None, l5.N_FEATURES):
        raise Fail(
            "db_history.forward_unsupported",
            what=f"the model takes {trained.view.input_dim} inputs",
        )
    data = km.wine_arrays()
    value = km.mae(data["y_valid"], trained.predict(data["X_valid"]))
    high, low = float(sub.t["db_val_mae_max"]), float(sub.t["db_val_mae_min"])
    if not math.isfinite(value) or value > high:
        raise Fail("db_history.val_mae_high", value=round(value, 4), threshold=high)
    if value < low:
        raise Fail("db_history.val_mae_implausible", value=round(value, 4), low=low)
    verdict.ok("db_history.val_mae_ok", value=round(value, 4), threshold=high)


# --- regularization_effect (lessons 5.1 and 5.2, the notebook's experiment) --------------------


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
