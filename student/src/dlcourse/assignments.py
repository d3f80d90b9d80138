"""The questions of each assignment, as the student's self-checks see them.

A question is one graded test cell (``test_<key>``): the answer variable it reads, how its
answer is captured (the very capture the hidden test cell runs) and which checks run in the
notebook. Public questions run the shared rules of ``dlcourse.rules``, the same definitions the
hidden checkers use; questions whose expected value is the answer itself run only a format
check (``dlcourse.sanity``). Nothing here knows an expected hidden answer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from dlcourse import keras_capture as kc
from dlcourse import sanity
from dlcourse.checking import Passed
from dlcourse.playground import CURVE_LABELS, PANELS
from dlcourse.rules import lesson4_early_stopping as es
from dlcourse.rules import lesson5_dropout_batchnorm as db

Rule = Callable[[Any], Passed]


@dataclass(frozen=True)
class Question:
    """One graded cell's self-check."""

    answer: str  # the variable the student defines
    needs: tuple[str, ...] = ()  # every variable the question reads (default: ``answer``)
    capture: Callable[[dict], None] | None = None  # kernel capture into the current store
    rules: tuple[Rule, ...] = ()  # public checks on the captured submission
    form: Callable[[Any, str], Passed] | None = None  # format check of the answer's value
    submission: Callable[..., Any] | None = None  # the rules module's Submission class
    practice: str | None = None  # how practice mode compares it (``dlcourse.practice``)

    @property
    def variables(self) -> tuple[str, ...]:
        return self.needs or (self.answer,)


@dataclass(frozen=True)
class Assignment:
    assignment_id: str
    questions: dict[str, Question] = field(default_factory=dict)


def _integer(minimum: int) -> Callable[[Any, str], Passed]:
    return partial(sanity.integer, minimum=minimum)


LESSON4_LEARNING_RATE = Assignment(
    "lesson4_learning_rate",
    {
        "steps_lr_003": Question("steps_lr_003", form=_integer(1), practice="integer"),
        "steps_lr_01": Question("steps_lr_01", form=_integer(1), practice="integer"),
        "lr_1_outcome": Question(
            "lr_1_outcome", form=partial(sanity.letter, options="abcd"), practice="letter"
        ),
        "goldilocks_lr": Question("goldilocks_lr", form=sanity.number),
        "step_size": Question("step_size", form=sanity.number),
        "steps_per_epoch": Question("steps_per_epoch", form=_integer(1), practice="integer"),
        "curve_labels": Question(
            "curve_labels",
            form=partial(sanity.labels, keys=PANELS, labels=CURVE_LABELS),
            practice="labels",
        ),
    },
)


def _capture_es_history(namespace: dict) -> None:
    kc.capture_split(namespace)
    kc.capture_training(namespace, model="model", history="history", callback="early_stopping")


LESSON4_EARLY_STOPPING = Assignment(
    "lesson4_early_stopping",
    {
        "split": Question(
            "split",
            needs=es.SPLIT_NAMES,
            capture=kc.capture_split,
            rules=(es.split_rows, es.split_scaling),
            submission=es.Submission,
        ),
        "early_stopping": Question(
            "early_stopping",
            capture=partial(kc.capture_callback, name="early_stopping"),
            rules=(
                es.early_stopping_monitor,
                es.early_stopping_min_delta,
                es.early_stopping_patience,
                es.early_stopping_restore,
            ),
            submission=es.Submission,
        ),
        "model": Question(
            "model",
            capture=partial(kc.capture_model, name="model"),
            rules=(es.model_architecture, es.model_optimizer, es.model_loss),
            submission=es.Submission,
        ),
        "history": Question(
            "history",
            needs=("history", "model", "early_stopping", *es.SPLIT_NAMES),
            capture=_capture_es_history,
            rules=(es.history_fit, es.history_callback, es.history_stopped),
            submission=es.Submission,
        ),
        "best_epoch": Question("best_epoch", form=_integer(1)),
        "fit_diagnosis": Question(
            "fit_diagnosis",
            form=partial(
                sanity.diagnosis,
                label_keys=["una_raza", "perros_marrones", "curva_A", "curva_B"],
                labels=["underfitting", "overfitting", "desajuste", "sobreajuste"],
                set_keys=["remedios_underfitting", "remedios_overfitting"],
                letters="abcde",
            ),
            practice="diagnosis",
        ),
    },
)


def _capture_db_history(namespace: dict) -> None:
    kc.capture_model(namespace, "model")
    kc.capture_training(namespace, model="model", history="history", callback=None)


LESSON5_DROPOUT_BATCHNORM = Assignment(
    "lesson5_dropout_batchnorm",
    {
        "dropout": Question(
            "model",
            capture=partial(kc.capture_model, name="model"),
            rules=(db.dropout_hidden, db.dropout_output, db.dropout_rate, db.dense_layers),
            submission=db.Submission,
        ),
        "batchnorm": Question(
            "model",
            capture=partial(kc.capture_model, name="model"),
            rules=(db.batchnorm_blocks, db.batchnorm_output),
            submission=db.Submission,
        ),
        "history": Question(
            "history",
            needs=("history", "model"),
            capture=_capture_db_history,
            rules=(db.history_model, db.history_fit, db.history_compile),
            submission=db.Submission,
        ),
        "regularization_effect": Question(
            "regularization_effect",
            form=partial(sanity.letter, options="abcd"),
            practice="letter",
        ),
    },
)

ASSIGNMENTS = {
    a.assignment_id: a
    for a in (LESSON4_LEARNING_RATE, LESSON4_EARLY_STOPPING, LESSON5_DROPOUT_BATCHNORM)
}
