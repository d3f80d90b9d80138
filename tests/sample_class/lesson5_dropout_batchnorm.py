"""Sample students of ``lesson5_dropout_batchnorm`` and the scores a careful teacher gives them.

Correct solutions in four valid styles (one of them with an extra Dropout on the inputs, which
lesson 5.1 allows), and one student per entry of the misconception catalogue
(docs/misconceptions_lesson5_dropout_batchnorm.md). A student whose mistake is structural (it
is visible in the model itself) runs a single epoch "to try it out", so that the whole class
grades in a few minutes; the expected scores say what that costs them (the epochs check, and the
validation threshold: after one epoch the validation MAE is 0.3 or more, far above it).
"""

from __future__ import annotations

import copy

SOLUTIONS = {
    "ans_model": """\
model = keras.Sequential([
    keras.Input(shape=(11,)),
    layers.Dense(1024, activation="relu"),
    layers.Dropout(0.3),
    layers.BatchNormalization(),
    layers.Dense(1024, activation="relu"),
    layers.Dropout(0.3),
    layers.BatchNormalization(),
    layers.Dense(1024, activation="relu"),
    layers.Dropout(0.3),
    layers.BatchNormalization(),
    layers.Dense(1),
])
model.compile(optimizer="adam", loss="mae")
""",
    "ans_history": """\
history = model.fit(
    X_train, y_train,
    validation_data=(X_valid, y_valid),
    batch_size=256,
    epochs=100,
    verbose=0,
)
""",
    "ans_regularization_effect": 'regularization_effect = "c"\n',
}

# The seed's lesson 5.5 code, copied as printed (Dense(10.3) and the extra layers).
SEED_MODEL = """\
from tensorflow import keras
from tensorflow.keras import layers

model = keras.Sequential([
    layers.Dense(1024, activation='relu', input_shape=[11]),
    layers.Dropout(0.3),
    layers.BatchNormalization(),
    layers.Dense(1024, activation='relu'),
    layers.Dense(1024, activation='relu'),
    layers.Dense(1024, activation='relu'),
    layers.Dense(1024, activation='relu'),
    layers.Dense(10.3),
    layers.BatchNormalization(),
    layers.Dense(1),
])
model.compile(
    optimizer='adam',
    loss='mae',
)
"""


def _fill(nb, answers):
    from tests.sample_class import fill

    return fill(nb, {**SOLUTIONS, **answers})


def _blocks(block: str, head: str = "", tail: str = "") -> str:
    """A model of three identical hidden blocks (``block`` is their source lines)."""
    return (
        "model = keras.Sequential([\n    keras.Input(shape=(11,)),\n"
        + head
        + block * 3
        + "    layers.Dense(1),\n"
        + tail
        + '])\nmodel.compile(optimizer="adam", loss="mae")\n'
    )


BLOCK = (
    '    layers.Dense(1024, activation="relu"),\n    layers.Dropout(0.3),\n'
    "    layers.BatchNormalization(),\n"
)


def _epochs(epochs: int) -> str:
    return SOLUTIONS["ans_history"].replace("epochs=100", f"epochs={epochs}")


# --- correct solutions -----------------------------------------------------------------------


def perfect(nb):
    return _fill(nb, {})


def style_seed(nb):
    """The seed's spellings: tf.keras, input_shape, seed 5.4's second placement (linear Dense,
    BatchNormalization, Activation), Dropout(rate=...), optimizer and loss objects."""
    return _fill(
        nb,
        {
            "ans_model": """\
from tensorflow import keras
from tensorflow.keras import layers

model = keras.Sequential([
    layers.Dense(1024, input_shape=[11]),
    layers.BatchNormalization(),
    layers.Activation('relu'),
    layers.Dropout(rate=0.3),
    layers.Dense(1024),
    layers.BatchNormalization(),
    layers.Activation('relu'),
    layers.Dropout(rate=0.3),
    layers.Dense(1024),
    layers.BatchNormalization(),
    layers.Activation('relu'),
    layers.Dropout(rate=0.3),
    layers.Dense(1),
])
model.compile(
    optimizer=keras.optimizers.Adam(),
    loss=keras.losses.MeanAbsoluteError(),
)
""",
            "ans_history": """\
history = model.fit(X_train, y_train, epochs=100, batch_size=256,
                    validation_data=(X_valid, y_valid), verbose=0)
""",
            "ans_regularization_effect": "regularization_effect = 'C'\n",
        },
    )


def style_add(nb):
    """model.add in a loop, BatchNormalization before Dropout, the loss's long name."""
    return _fill(
        nb,
        {
            "ans_model": """\
model = keras.Sequential()
model.add(keras.Input(shape=(11,)))
for _ in range(3):
    model.add(layers.Dense(1024, activation=tf.nn.relu))
    model.add(layers.BatchNormalization())
    model.add(layers.Dropout(0.3))
model.add(layers.Dense(1))
model.compile(optimizer="adam", loss="mean_absolute_error")
""",
            "ans_regularization_effect": 'regularization_effect = " c) "\n',
        },
    )


def input_dropout(nb):
    """A Dropout on the inputs too (lesson 5.1: dropout applies to inputs and hidden layers):
    accepted, with a note."""
    return _fill(nb, {"ans_model": _blocks(BLOCK, head="    layers.Dropout(0.3),\n")})


# --- the misconception catalogue ---------------------------------------------------------------


def blank(nb):
    return copy.deepcopy(nb)


def dense_10_3(nb):
    """Copies the seed's code as printed: Keras 3 refuses Dense(10.3), model never exists."""
    return _fill(nb, {"ans_model": SEED_MODEL})


def rate_30(nb):
    """Writes the rate as a percentage: Dropout(30); Keras 3 refuses it."""
    return _fill(nb, {"ans_model": _blocks(BLOCK.replace("Dropout(0.3)", "Dropout(30)"))})


def rate_0(nb):
    """Dropout(0): the layer is there and does nothing; trains 1 epoch only."""
    return _fill(
        nb,
        {
            "ans_model": _blocks(BLOCK.replace("Dropout(0.3)", "Dropout(0)")),
            "ans_history": _epochs(1),
        },
    )


def dropout_after_output(nb):
    """One more Dropout after Dense(1); trains 1 epoch only; thinks dropout speeds training."""
    return _fill(
        nb,
        {
            "ans_model": _blocks(BLOCK, tail="    layers.Dropout(0.3),\n"),
            "ans_history": _epochs(1),
            "ans_regularization_effect": 'regularization_effect = "a"\n',
        },
    )


def batchnorm_after_output(nb):
    """One more BatchNormalization after Dense(1); trains 1 epoch only."""
    return _fill(
        nb,
        {
            "ans_model": _blocks(BLOCK, tail="    layers.BatchNormalization(),\n"),
            "ans_history": _epochs(1),
        },
    )


def not_retrained(nb):
    """Trains a plain network first, then builds the one with dropout and batch normalization
    and keeps the first history: the new model is never trained."""
    return _fill(
        nb,
        {
            "ans_model": """\
first = keras.Sequential([
    keras.Input(shape=(11,)),
    layers.Dense(1024, activation="relu"),
    layers.Dense(1024, activation="relu"),
    layers.Dense(1024, activation="relu"),
    layers.Dense(1),
])
first.compile(optimizer="adam", loss="mae")
first_history = first.fit(X_train, y_train, validation_data=(X_valid, y_valid),
                          batch_size=256, epochs=10, verbose=0)

# now with dropout and batch normalization
"""
            + _blocks(BLOCK),
            "ans_history": "history = first_history  # already trained above\n",
        },
    )


RECIPES = {
    "perfect": perfect,
    "style_seed": style_seed,
    "style_add": style_add,
    "input_dropout": input_dropout,
    "blank": blank,
    "dense_10_3": dense_10_3,
    "rate_30": rate_30,
    "rate_0": rate_0,
    "dropout_after_output": dropout_after_output,
    "batchnorm_after_output": batchnorm_after_output,
    "not_retrained": not_retrained,
}

CELLS = {"test_dropout": 3, "test_batchnorm": 2, "test_history": 4, "test_regularization_effect": 1}
_FULL = dict(CELLS)
_ZERO = dict.fromkeys(CELLS, 0)
# A 1-epoch training run (of 100) loses the epochs check (0.5) and the validation
# threshold (1): the history still belongs to the model and matches its weights.
SHORT = {"test_history": 2.5}
SHORT_MESSAGES = ["db_history.epochs", "db_history.val_mae_high"]
MODEL_FAILED = {"test_dropout": 0, "test_batchnorm": 0, "test_history": 0}

# status, per-cell scores and, per cell, message ids that must be among its failed checks
EXPECTED: dict[str, dict] = {
    "perfect": {"status": "graded", "cells": _FULL},
    "style_seed": {"status": "graded", "cells": _FULL},
    "style_add": {"status": "graded", "cells": _FULL},
    "input_dropout": {"status": "graded", "cells": _FULL},
    "blank": {
        "status": "graded",
        "cells": _ZERO,
        "messages": dict.fromkeys(CELLS, ["not_attempted"]),
    },
    "dense_10_3": {
        "status": "graded",
        "cells": {**_FULL, **MODEL_FAILED},
        "messages": {
            "test_dropout": ["db_dropout.dense_not_dropout"],
            "test_batchnorm": ["db_dropout.dense_not_dropout"],
            "test_history": ["db_history.no_model_built"],
        },
    },
    "rate_30": {
        "status": "graded",
        "cells": {**_FULL, **MODEL_FAILED},
        "messages": {
            "test_dropout": ["db_dropout.rate_percent"],
            "test_batchnorm": ["db_dropout.rate_percent"],
            "test_history": ["db_history.no_model_built"],
        },
    },
    "rate_0": {
        "status": "graded",
        "cells": {**_FULL, "test_dropout": 2, **SHORT},
        "messages": {"test_dropout": ["db_dropout.rate_zero"], "test_history": SHORT_MESSAGES},
    },
    "dropout_after_output": {
        "status": "graded",
        "cells": {**_FULL, "test_dropout": 2.5, **SHORT, "test_regularization_effect": 0},
        "messages": {
            "test_dropout": ["db_dropout.after_output"],
            "test_history": SHORT_MESSAGES,
            "test_regularization_effect": ["db_effect.faster"],
        },
    },
    "batchnorm_after_output": {
        "status": "graded",
        "cells": {**_FULL, "test_batchnorm": 1.5, **SHORT},
        "messages": {
            "test_batchnorm": ["db_batchnorm.after_output"],
            "test_history": SHORT_MESSAGES,
        },
    },
    "not_retrained": {
        "status": "graded",
        "cells": {**_FULL, "test_history": 0.5},
        "messages": {"test_history": ["db_history.not_retrained", "db_history.val_mae_high"]},
    },
}
