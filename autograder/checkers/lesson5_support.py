"""What the ``lesson5_dropout_batchnorm`` checkers build on: the lesson's numbers, the submission
read once per grading, and the *block structure* of a captured model.

It reuses the shared machinery and adds only what lesson 5 needs:

* ``autograder.course.keras_capture`` wrote the artifacts (``keras/model.json``,
  ``keras/training.json``, ``keras/weights.npz``);
* ``autograder.checkers.keras_model`` normalizes the model (``Dense(1024)`` +
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

import math
import re
from dataclasses import dataclass, field
from typing import Any

from autograder.checkers import keras_model as km
from autograder.checkers.support import CapturedSubmission, Fail

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

DEFAULTS = {
    "db_val_mae_max": 0.145,
    "db_val_mae_min": 0.05,
    "db_history_atol": 1e-6,
    "db_history_rtol": 1e-5,
}


# --- the submission, read once per grading ----------------------------------------------------


class Submission(CapturedSubmission):
    """One submission's artifacts, answers, thresholds and memo (kept in ``context.cache``)."""

    def __init__(self, artifacts, thresholds: dict[str, Any] | None):
        super().__init__(artifacts, thresholds, DEFAULTS)


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
