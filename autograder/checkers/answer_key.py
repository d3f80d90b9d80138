"""The hidden answer key: every expected value that is itself the answer to a question.

Only the grader distribution holds it (the checkers import it; the student distribution and
the release never do, which ``tests/test_student_dist.py`` proves). ``practice_key`` turns it
into practice mode's answer key (``dlcourse.practice``), which ``autograder release`` writes
into the release only for assignments the instructor set to practice.
"""

from __future__ import annotations

import math

from dlcourse.data import n_train
from dlcourse.playground import CURVE, PANELS

# --- lesson4_learning_rate (lessons 4.1 and 4.2) -----------------------------------------------
LR_1_OUTCOME = "c"  # "it never reaches the minimum: every step jumps across and climbs"
CURVE_TRUTH = {"A": "tasa_baja", "B": "sobreajuste", "C": "tasa_alta", "D": "tasa_correcta"}
STEPS_BATCH_SIZE = 256  # steps_per_epoch: the lesson's batch size

# --- lesson4_early_stopping, fit_diagnosis: seed lessons 4.6 and 4.7 (scenarios, the two schematic curves, remedies).
UNDER, OVER = "underfitting", "overfitting"
LABEL_ITEMS = {"una_raza": UNDER, "perros_marrones": OVER, "curva_A": OVER, "curva_B": UNDER}
SET_ITEMS = {"remedios_underfitting": frozenset("abe"), "remedios_overfitting": frozenset("cd")}
REMEDY_LETTERS = "abcde"
LABEL_ALIASES = {
    "underfitting": UNDER,
    "desajuste": UNDER,
    "subajuste": UNDER,
    "infraajuste": UNDER,
    "under": UNDER,
    "overfitting": OVER,
    "sobreajuste": OVER,
    "over": OVER,
}

# --- lesson5_dropout_batchnorm: the with/without-dropout experiment ---------------------------
EFFECT_LETTERS = "abcd"
EFFECT_ANSWER = "c"


def _one(kind: str, answer: str) -> dict:
    return {"kind": kind, "accepted": {"": [answer]}}


def practice_key(assignment_id: str) -> dict[str, dict]:
    """``{question: {"kind", "accepted": {item: [canonical answers]}}}`` for practice mode."""
    if assignment_id == "lesson4_learning_rate":
        return {
            "steps_lr_003": _one("integer", str(CURVE.steps_to_reach(0.03))),
            "steps_lr_01": _one("integer", str(CURVE.steps_to_reach(0.1))),
            "lr_1_outcome": _one("letter", LR_1_OUTCOME),
            "steps_per_epoch": _one("integer", str(math.ceil(n_train() / STEPS_BATCH_SIZE))),
            "curve_labels": {"kind": "labels", "accepted": {p: [CURVE_TRUTH[p]] for p in PANELS}},
        }
    if assignment_id == "lesson4_early_stopping":
        accepted = {
            item: sorted(alias for alias, label in LABEL_ALIASES.items() if label == truth)
            for item, truth in LABEL_ITEMS.items()
        }
        accepted |= {item: ["".join(sorted(letters))] for item, letters in SET_ITEMS.items()}
        return {"fit_diagnosis": {"kind": "diagnosis", "accepted": accepted}}
    if assignment_id == "lesson5_dropout_batchnorm":
        return {"regularization_effect": _one("letter", EFFECT_ANSWER)}
    return {}
