"""Hostile submissions that forge training claims: what the student's kernel says about a
training (``history.params``, the callback's state, the history itself) against what the
recorded series, the optimizer's step count and the final weights prove. Lesson 4
(``lesson4_early_stopping``, with EarlyStopping) and lesson 5 (``lesson5_dropout_batchnorm``,
100 epochs without a callback).

Each case trains for real (in the sandbox, with the course's own limits) and then lies about
it. Holding means the history cell (``test_history``, 4 points) does not get full marks, one of
its messages names the inconsistency, and the honest students graded around the attackers keep
their scores. Graded by ``tests/test_adversarial_training.py``.
"""

from __future__ import annotations

from dataclasses import dataclass

from tests.sample_class import lesson5_dropout_batchnorm as lesson5
from tests.sample_class.lesson4_early_stopping import SOLUTIONS, _fill

AID = "lesson4_early_stopping"
NOTEBOOK = "early_stopping.ipynb"
HISTORY_CELL = "test_history"
HONEST = ("a_honest", "zz_honest")

# the ids that say *what* is inconsistent (public and hidden catalogues)
INCONSISTENCY_IDS = {
    f"es_history.{name}"
    for name in (
        "series_lengths",
        "epoch_list",
        "iterations_fewer",
        "iterations_more",
        "params_invalid",
        "more_than_requested",
        "stopped_late",
        "stopped_unexplained",
        "stopped_without_callback",
        "stop_not_requested",
        "callback_idle",
        "callback_changed",
        "callback_state",
        "callback_unreadable",
        "weights_not_restored",
        "weights_not_last",
    )
}

FIT = """history = model.fit(
    X_train, y_train,
    validation_data=(X_valid, y_valid),
    batch_size=256,
    epochs={epochs},
    callbacks={callbacks},
    verbose=0,
)
"""


@dataclass(frozen=True)
class TrainingCase:
    name: str
    attack: str
    history: str  # the source of the answer cell that trains (ans_history)

    @property
    def student(self) -> str:
        return "adv_" + self.name


CASES = [
    TrainingCase(
        "forged_params_set_model",
        "56 epochs without any callback, then history.params['epochs'] = 500 and "
        "early_stopping.set_model(model)",
        FIT.format(epochs=56, callbacks="[]")
        + 'history.params["epochs"] = 500\nearly_stopping.set_model(model)\n',
    ),
    TrainingCase(
        "callback_state_by_hand",
        "40 epochs without the callback, then its stopped_epoch, best_epoch and wait set by hand",
        FIT.format(epochs=40, callbacks="[]")
        + "early_stopping.set_model(model)\nearly_stopping.stopped_epoch = 39\n"
        "early_stopping.best_epoch = 19\nearly_stopping.wait = 20\n"
        'history.params["epochs"] = 500\n',
    ),
    TrainingCase(
        "history_truncated",
        "a real early-stopped training whose history is then cut to 20 epochs",
        FIT.format(epochs=500, callbacks="[early_stopping]")
        + "history.history = {k: v[:20] for k, v in history.history.items()}\n"
        "history.epoch = history.epoch[:20]\n",
    ),
    TrainingCase(
        "patience_changed_after_fit",
        "trained with patience 5, then the callback's patience set to the lesson's 20",
        "early_stopping.patience = 5\n"
        + FIT.format(epochs=500, callbacks="[early_stopping]")
        + "early_stopping.patience = 20\n",
    ),
    TrainingCase(
        "refit_after_stop",
        "an early-stopped training, then 30 more epochs of fit on the same model",
        FIT.format(epochs=500, callbacks="[early_stopping]")
        + "model.fit(X_train, y_train, batch_size=256, epochs=30, verbose=0)\n",
    ),
]


def build(nb, case: TrainingCase):
    return _fill(nb, {"ans_history": case.history})


def honest(nb):
    return _fill(nb, {"ans_history": SOLUTIONS["ans_history"]})


# --- lesson 5: 100 epochs, no callback -----------------------------------------------------------

LESSON5_AID = "lesson5_dropout_batchnorm"
LESSON5_NOTEBOOK = "dropout_batchnorm.ipynb"
LESSON5_HONEST = ("zz_honest5",)  # the sample class trains more honest lesson-5 students
LESSON5_INCONSISTENCY_IDS = {
    f"db_history.{name}"
    for name in (
        "series_lengths",
        "epoch_list",
        "iterations_fewer",
        "iterations_more",
        "more_than_requested",
        "params_forged",
        "mismatch",
    )
}

FIT5 = FIT.replace("    callbacks={callbacks},\n", "")  # the lesson trains without a callback


LESSON5_CASES = [
    TrainingCase(
        "l5_params_forged",
        "10 epochs, then history.params['epochs'] = 100",
        FIT5.format(epochs=10) + 'history.params["epochs"] = 100\n',
    ),
    TrainingCase(
        "l5_history_padded",
        "10 epochs, then every series padded to 100 epochs with its last value",
        FIT5.format(epochs=10)
        + "history.history = {k: v + [v[-1]] * 90 for k, v in history.history.items()}\n"
        "history.epoch = list(range(100))\n"
        'history.params["epochs"] = 100\n',
    ),
    TrainingCase(
        "l5_steps_forged",
        "batch_size=64 (20 steps an epoch) for 10 epochs, then history.params says 256's 5 "
        "steps and 100 epochs",
        FIT5.format(epochs=10).replace("batch_size=256", "batch_size=64")
        + 'history.params["steps"] = 5\nhistory.params["epochs"] = 100\n',
    ),
]


def build_lesson5(nb, case: TrainingCase):
    return lesson5._fill(nb, {"ans_history": case.history})


def honest_lesson5(nb):
    return lesson5._fill(nb, {"ans_history": lesson5.SOLUTIONS["ans_history"]})
