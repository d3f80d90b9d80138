"""Sample students of ``lesson4_early_stopping`` and the scores a careful teacher gives them.

Four correct solutions written in different valid styles, and students who make the
mistakes of the misconception catalogue (docs/misconceptions_lesson4_early_stopping.md).
Where a mistake does not need a full training run, the student's run is short (the
swallowed-comment callback stops after a few epochs, the student without callbacks copied
``epochs=50`` from an earlier exercise...), so that the whole class grades in a few minutes.
Several students combine mistakes in *different* cells, as weak submissions do.
"""

from __future__ import annotations

import copy

SOLUTIONS = {
    "ans_split": """\
X_train, X_valid, y_train, y_valid = train_test_split(X, y, test_size=0.2, random_state=3)
low, high = X_train.min(axis=0), X_train.max(axis=0)
X_train, X_valid = (X_train - low) / (high - low), (X_valid - low) / (high - low)
y_low, y_high = y_train.min(), y_train.max()
y_train, y_valid = (y_train - y_low) / (y_high - y_low), (y_valid - y_low) / (y_high - y_low)
""",
    "ans_early_stopping": """\
early_stopping = callbacks.EarlyStopping(
    min_delta=0.001,  # minimum amount of change to count as an improvement
    patience=20,  # how many epochs to wait before stopping
    restore_best_weights=True,
)
""",
    "ans_model": """\
model = keras.Sequential([
    keras.Input(shape=(11,)),
    layers.Dense(512, activation="relu"),
    layers.Dense(512, activation="relu"),
    layers.Dense(512, activation="relu"),
    layers.Dense(1),
])
model.compile(optimizer="adam", loss="mae")
""",
    "ans_history": """\
history = model.fit(
    X_train, y_train,
    validation_data=(X_valid, y_valid),
    batch_size=256,
    epochs=500,
    callbacks=[early_stopping],
    verbose=0,
)
""",
    "ans_best_epoch": 'best_epoch = int(np.argmin(history.history["val_loss"])) + 1\n',
    "ans_fit_diagnosis": """\
fit_diagnosis = {
    "una_raza": "underfitting",
    "perros_marrones": "overfitting",
    "curva_A": "overfitting",
    "curva_B": "underfitting",
    "remedios_underfitting": {"a", "b", "e"},
    "remedios_overfitting": {"c", "d"},
}
""",
}


def _fill(nb, answers):
    from tests.sample_class import fill

    return fill(nb, {**SOLUTIONS, **answers})


def _model(hidden: str, output: str = "layers.Dense(1)", loss: str = '"mae"') -> str:
    return (
        f"model = keras.Sequential([\n    keras.Input(shape=(11,)),\n{hidden}    {output},\n])\n"
        f'model.compile(optimizer="adam", loss={loss})\n'
    )


RELU_512 = '    layers.Dense(512, activation="relu"),\n'


# --- correct solutions, four styles ----------------------------------------------------------


def perfect(nb):
    return _fill(nb, {})


def style_seed(nb):
    """The seed's own spellings: tf.keras imports, input_shape, Dense + Activation layers, a
    loss object, Kaggle's max_/min_ scaling, idxmin on a DataFrame, Spanish labels."""
    return _fill(
        nb,
        {
            "ans_split": """\
X_train, X_valid, y_train, y_valid = train_test_split(X, y, test_size=0.2, random_state=3)
max_ = X_train.max(axis=0)
min_ = X_train.min(axis=0)
X_train = (X_train - min_) / (max_ - min_)
X_valid = (X_valid - min_) / (max_ - min_)
y_max, y_min = y_train.max(), y_train.min()
y_train = (y_train - y_min) / (y_max - y_min)
y_valid = (y_valid - y_min) / (y_max - y_min)
""",
            "ans_early_stopping": """\
from tensorflow.keras.callbacks import EarlyStopping

early_stopping = EarlyStopping(
    min_delta=0.001, # minimium amount of change to count as an improvement
    patience=20, # how many epochs to wait before stopping
    restore_best_weights=True,
)
""",
            "ans_model": """\
from tensorflow import keras
from tensorflow.keras import layers

model = keras.Sequential([
    layers.Dense(512, input_shape=[11]),
    layers.Activation('relu'),
    layers.Dense(512),
    layers.Activation('relu'),
    layers.Dense(512),
    layers.Activation('relu'),
    layers.Dense(1),
])
model.compile(
    optimizer=keras.optimizers.Adam(),
    loss=keras.losses.MeanAbsoluteError(),
)
""",
            "ans_best_epoch": """\
history_df = pd.DataFrame(history.history)
best_epoch = history_df['val_loss'].idxmin() + 1
""",
            "ans_fit_diagnosis": """\
fit_diagnosis = {
    "una_raza": "Desajuste",
    "perros_marrones": "sobreajuste",
    "curva_A": "Overfitting",
    "curva_B": " underfitting ",
    "remedios_underfitting": ["a", "b", "e"],
    "remedios_overfitting": ["d", "c"],
}
""",
        },
    )


def style_numpy(nb):
    """numpy arrays and scikit-learn's MinMaxScaler; tf.nn.relu; the loss's long name."""
    return _fill(
        nb,
        {
            "ans_split": """\
from sklearn.preprocessing import MinMaxScaler

features, target = X.to_numpy(), y.to_numpy().reshape(-1, 1)
X_train, X_valid, y_train, y_valid = train_test_split(features, target, test_size=0.2,
                                                      random_state=3)
x_scaler = MinMaxScaler().fit(X_train)
X_train, X_valid = x_scaler.transform(X_train), x_scaler.transform(X_valid)
y_scaler = MinMaxScaler().fit(y_train)
y_train, y_valid = y_scaler.transform(y_train), y_scaler.transform(y_valid)
""",
            "ans_early_stopping": """\
early_stopping = keras.callbacks.EarlyStopping(monitor="val_loss", mode="min", min_delta=1e-3,
                                               patience=20, restore_best_weights=True)
""",
            "ans_model": _model(
                "    layers.Dense(512, activation=tf.nn.relu),\n" * 3, loss='"mean_absolute_error"'
            ),
            "ans_best_epoch": 'best_epoch = 1 + int(np.argmin(np.array(history.history["val_loss"])))\n',
            "ans_fit_diagnosis": """\
fit_diagnosis = dict(una_raza="underfitting", perros_marrones="overfitting",
                     curva_A="overfitting", curva_B="underfitting",
                     remedios_underfitting={"A", "B", "E"}, remedios_overfitting="c, d")
""",
        },
    )


def style_add(nb):
    """Split the whole DataFrame, model.add with ReLU layers, a loss function, a tuple."""
    return _fill(
        nb,
        {
            "ans_split": """\
df_train, df_valid = train_test_split(red_wine, test_size=0.2, random_state=3)
lo, hi = df_train.min(), df_train.max()
df_train, df_valid = (df_train - lo) / (hi - lo), (df_valid - lo) / (hi - lo)
X_train, y_train = df_train.drop(columns="quality"), df_train["quality"]
X_valid, y_valid = df_valid.drop(columns="quality"), df_valid["quality"]
""",
            "ans_model": """\
model = keras.Sequential()
model.add(keras.Input(shape=(11,)))
for _ in range(3):
    model.add(layers.Dense(512))
    model.add(layers.ReLU())
model.add(layers.Dense(1, activation="linear"))
model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.001),
              loss=keras.losses.mean_absolute_error)
""",
            "ans_best_epoch": """\
val_losses = history.history["val_loss"]
best_epoch = val_losses.index(min(val_losses)) + 1
""",
            "ans_fit_diagnosis": """\
fit_diagnosis = {"una_raza": "underfitting", "perros_marrones": "overfitting",
                 "curva_A": "overfitting", "curva_B": "underfitting",
                 "remedios_underfitting": ("b", "e", "a"), "remedios_overfitting": ("c", "d")}
""",
        },
    )


# --- the misconception catalogue -------------------------------------------------------------


def blank(nb):
    return copy.deepcopy(nb)


def swallowed(nb):
    """Copies the seed's callback verbatim: the comment swallows patience and restore."""
    return _fill(nb, {"ans_early_stopping": SWALLOWED})


SWALLOWED = """\
early_stopping = callbacks.EarlyStopping(
    min_delta=0.001, # minimium amount of change to count as an improvement patience=20, # how many epochs to wait before stopping restore_best_weights=True,
)
"""


def leaky_keras_doc(nb):
    """Scales with the whole data set before splitting; copies the callback of Keras'
    documentation, EarlyStopping(monitor='loss', patience=3), so restore_best_weights is off."""
    return _fill(
        nb,
        {
            "ans_split": """\
X_scaled = (X - X.min()) / (X.max() - X.min())
y_scaled = (y - y.min()) / (y.max() - y.min())
X_train, X_valid, y_train, y_valid = train_test_split(X_scaled, y_scaled, test_size=0.2,
                                                      random_state=3)
""",
            "ans_early_stopping": "early_stopping = keras.callbacks.EarlyStopping(monitor='loss', patience=3)\n",
        },
    )


def seed42_tanh(nb):
    """The usual random_state=42 instead of the lesson's 3; tanh in the hidden layers."""
    return _fill(
        nb,
        {
            "ans_split": SOLUTIONS["ans_split"].replace("random_state=3", "random_state=42"),
            "ans_model": _model('    layers.Dense(512, activation="tanh"),\n' * 3),
        },
    )


def no_callback(nb):
    """Copies the fit call of an earlier exercise (no callbacks, epochs=30); counts the best
    epoch from 0; swaps the two schematic curves and adds a remedy."""
    return _fill(
        nb,
        {
            "ans_history": """\
history = model.fit(
    X_train, y_train,
    validation_data=(X_valid, y_valid),
    batch_size=256,
    epochs=30,
    verbose=0,
)
""",
            "ans_best_epoch": 'best_epoch = int(np.argmin(history.history["val_loss"]))\n',
            "ans_fit_diagnosis": """\
fit_diagnosis = {
    "una_raza": "underfitting",
    "perros_marrones": "overfitting",
    "curva_A": "underfitting",
    "curva_B": "overfitting",
    "remedios_underfitting": {"a", "b", "e"},
    "remedios_overfitting": {"b", "c", "d"},
}
""",
        },
    )


def no_validation_sigmoid(nb):
    """A sigmoid on the output (the targets are in [0, 1], after all); forgets
    validation_data and, tired of waiting, lowers epochs to 40."""
    return _fill(
        nb,
        {
            "ans_model": _model(RELU_512 * 3, 'layers.Dense(1, activation="sigmoid")'),
            "ans_history": """\
history = model.fit(
    X_train, y_train,
    batch_size=256,
    epochs=40,
    callbacks=[early_stopping],
    verbose=0,
)
""",
        },
    )


def mse_two_layers(nb):
    """fit_transform on the validation set (its own min and max); two hidden layers and the
    mean squared error; answers the epoch early stopping restored."""
    return _fill(
        nb,
        {
            "ans_split": """\
from sklearn.preprocessing import MinMaxScaler

X_train, X_valid, y_train, y_valid = train_test_split(X, y, test_size=0.2, random_state=3)
scaler = MinMaxScaler()
X_train = scaler.fit_transform(X_train)
X_valid = scaler.fit_transform(X_valid)
y_low, y_high = y_train.min(), y_train.max()
y_train, y_valid = (y_train - y_low) / (y_high - y_low), (y_valid - y_low) / (y_high - y_low)
""",
            "ans_model": _model(RELU_512 * 2, loss='"mse"'),
            "ans_best_epoch": "best_epoch = early_stopping.best_epoch + 1\n",
        },
    )


def forged(nb):
    """Dense(256) and the seed's swallowed callback stop training early with a poor model;
    the student then 'improves' the validation curve by hand."""
    return _fill(
        nb,
        {
            "ans_early_stopping": SWALLOWED,
            "ans_model": _model('    layers.Dense(256, activation="relu"),\n' * 3),
            "ans_history": SOLUTIONS["ans_history"]
            + """\
history.history["val_loss"] = [0.9 * v for v in history.history["val_loss"]]
""",
        },
    )


def wrong_types(nb):
    """Quotes the callback, forgets compile (fit fails), a string epoch and a list."""
    return _fill(
        nb,
        {
            "ans_early_stopping": (
                'early_stopping = "callbacks.EarlyStopping(min_delta=0.001, '
                'patience=20, restore_best_weights=True)"\n'
            ),
            "ans_model": """\
model = keras.Sequential([
    keras.Input(shape=(11,)),
    layers.Dense(512, activation="relu"),
    layers.Dense(512, activation="relu"),
    layers.Dense(512, activation="relu"),
    layers.Dense(1),
])
""",
            "ans_history": SOLUTIONS["ans_history"].replace(
                "callbacks=[early_stopping]", "callbacks=[]"
            ),
            "ans_best_epoch": 'best_epoch = "56"\n',
            "ans_fit_diagnosis": 'fit_diagnosis = ["underfitting", "overfitting"]\n',
        },
    )


RECIPES = {
    "perfect": perfect,
    "style_seed": style_seed,
    "style_numpy": style_numpy,
    "style_add": style_add,
    "blank": blank,
    "swallowed": swallowed,
    "leaky_keras_doc": leaky_keras_doc,
    "seed42_tanh": seed42_tanh,
    "no_callback": no_callback,
    "no_validation_sigmoid": no_validation_sigmoid,
    "mse_two_layers": mse_two_layers,
    "forged": forged,
    "wrong_types": wrong_types,
}

CELLS = {
    "test_split": 2,
    "test_early_stopping": 2,
    "test_model": 3,
    "test_history": 4,
    "test_best_epoch": 1,
    "test_fit_diagnosis": 3,
}
_FULL = dict(CELLS)
_ZERO = dict.fromkeys(CELLS, 0)

# status, per-cell scores and, per cell, the message ids that must be among its checks
EXPECTED: dict[str, dict] = {
    "perfect": {"status": "graded", "cells": _FULL},
    "style_seed": {"status": "graded", "cells": _FULL},
    "style_numpy": {"status": "graded", "cells": _FULL},
    "style_add": {"status": "graded", "cells": _FULL},
    "blank": {
        "status": "graded",
        "cells": _ZERO,
        "messages": dict.fromkeys(CELLS, ["not_attempted"]),
    },
    # patience=0 stops after 7 epochs, on the last epoch's weights (within min_delta of the
    # best, so "restored" holds), with a poor model
    "swallowed": {
        "status": "graded",
        "cells": {**_FULL, "test_early_stopping": 1, "test_history": 3},
        "messages": {
            "test_early_stopping": ["es_callback.swallowed"],
            "test_history": ["es_history.val_mae_high"],
        },
    },
    "leaky_keras_doc": {
        "status": "graded",
        "cells": {**_FULL, "test_split": 1, "test_early_stopping": 0, "test_history": 2},
        "messages": {
            "test_split": ["es_split.leakage"],
            "test_early_stopping": [
                "es_callback.monitor_loss",
                "es_callback.min_delta_default",
                "es_callback.patience",
                "es_callback.restore_false",
            ],
            "test_history": ["es_history.not_restored", "es_history.val_mae_high"],
        },
    },
    "seed42_tanh": {
        "status": "graded",
        "cells": {**_FULL, "test_split": 1, "test_model": 1, "test_history": 3},
        "messages": {
            "test_split": ["es_split.random_state"],
            "test_model": ["es_model.layer_activation"],
            "test_history": ["es_history.val_mae_high"],
        },
    },
    "no_callback": {
        "status": "graded",
        "cells": {**_FULL, "test_history": 0.5, "test_best_epoch": 0, "test_fit_diagnosis": 1.5},
        "messages": {
            "test_history": [
                "es_history.callback_not_used",
                "es_history.epochs",
                "es_history.not_stopped_no_callback",
                "es_history.not_restored_no_callback",
                "es_history.val_mae_high",
            ],
            "test_best_epoch": ["es_best_epoch.zero_based"],
            "test_fit_diagnosis": ["es_diagnosis.wrong", "es_diagnosis.remedies_wrong"],
        },
    },
    # no val_loss: fit, stopping, integrity and restoring cannot hold; the weights themselves
    # are re-evaluated on the course's validation split and pass
    "no_validation_sigmoid": {
        "status": "graded",
        "cells": {**_FULL, "test_model": 1, "test_history": 1.5, "test_best_epoch": 0},
        "messages": {
            "test_model": ["es_model.output_activation"],
            "test_history": ["es_history.no_validation", "es_history.not_stopped_no_validation"],
            "test_best_epoch": ["answer_cell_error"],
        },
    },
    "mse_two_layers": {
        "status": "graded",
        "cells": {
            **_FULL,
            "test_split": 1,
            "test_model": 0.5,
            "test_history": 3,
            "test_best_epoch": 0,
        },
        "messages": {
            "test_split": ["es_split.valid_own_scale"],
            "test_model": ["es_model.layer_count", "es_model.loss"],
            "test_history": ["es_history.val_mae_high"],
            "test_best_epoch": ["es_best_epoch.restored_epoch"],
        },
    },
    "forged": {
        "status": "graded",
        "cells": {**_FULL, "test_early_stopping": 1, "test_model": 1, "test_history": 1.5},
        "messages": {
            "test_early_stopping": ["es_callback.swallowed"],
            "test_model": ["es_model.layer_units"],
            "test_history": [
                "es_history.forged",
                "es_history.restored_unverified",
                "es_history.val_mae_high",
            ],
        },
    },
    "wrong_types": {
        "status": "graded",
        "cells": {
            **_FULL,
            "test_early_stopping": 0,
            "test_model": 2,
            "test_history": 0,
            "test_best_epoch": 0,
            "test_fit_diagnosis": 0,
        },
        "messages": {
            "test_early_stopping": ["es_callback.wrong_type"],
            "test_model": ["es_model.not_compiled"],
            "test_history": ["answer_cell_error"],
            "test_best_epoch": ["wrong_type"],
            "test_fit_diagnosis": ["wrong_type"],
        },
    },
}
