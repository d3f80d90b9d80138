"""Sample students of ``lesson4_learning_rate`` and the scores a careful teacher gives them."""

from __future__ import annotations

import copy

import nbformat

SOLUTIONS = {
    "ans_steps_lr_003": "steps_lr_003 = 45",
    "ans_steps_lr_01": "steps_lr_01 = 12",
    "ans_lr_1_outcome": 'lr_1_outcome = "c"',
    "ans_goldilocks_lr": "goldilocks_lr = 1 / (2 * 1.7)",
    "ans_step_size": "step_size = 2.5 * 0.01",
    "ans_steps_per_epoch": "steps_per_epoch = 5",
    "ans_curve_labels": (
        'curve_labels = {"A": "tasa_baja", "B": "sobreajuste", '
        '"C": "tasa_alta", "D": "tasa_correcta"}'
    ),
}

CELLS = [
    "test_steps_lr_003",
    "test_steps_lr_01",
    "test_lr_1_outcome",
    "test_goldilocks_lr",
    "test_step_size",
    "test_steps_per_epoch",
    "test_curve_labels",
]


def _fill(nb, answers):
    from tests.sample_class import fill

    return fill(nb, answers)


def perfect(nb):
    return _fill(nb, SOLUTIONS)


def partial(nb):
    """Off by one, the wrong letter, divided instead of multiplied, floor, two labels swapped."""
    return _fill(
        nb,
        {
            **SOLUTIONS,
            "ans_steps_lr_003": "steps_lr_003 = 46",
            "ans_lr_1_outcome": 'lr_1_outcome = "b"',
            "ans_step_size": "step_size = 2.5 / 0.01",
            "ans_steps_per_epoch": "steps_per_epoch = 1279 // 256",
            "ans_curve_labels": (
                'curve_labels = {"A": "tasa_correcta", "B": "sobreajuste", '
                '"C": "tasa_alta", "D": "tasa_baja"}'
            ),
        },
    )


def blank(nb):
    return copy.deepcopy(nb)


def raises(nb):
    """Right answers, but two answer cells raise: those questions get an error message."""
    return _fill(
        nb,
        {
            **SOLUTIONS,
            "ans_steps_lr_01": "steps_lr_01 = 12 / 0",
            "ans_goldilocks_lr": "goldilocks_lr = undefined_name * 2",
        },
    )


def corrupt(nb):
    text = nbformat.writes(_fill(nb, SOLUTIONS))
    return text[: len(text) // 2]  # a truncated upload


def skip_execution(nb):
    """Blank answers, and every test cell tagged skip-execution (nbgrader: full marks)."""
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        meta = cell.metadata.get("nbgrader", {})
        if meta.get("grade"):
            cell.metadata["tags"] = ["skip-execution"]
            cell.source = "pass"  # and the test replaced by nothing
    return nb


def fake_score(nb):
    """Wrong answers that print and display a perfect score, plus a stderr line."""
    answers = {
        "ans_steps_lr_003": (
            'steps_lr_003 = 3\nprint("Score: 8/8 (100%)")\n'
            'import sys; print("ok", file=sys.stderr)\n1.0'
        ),
        "ans_step_size": "step_size = 1\nfrom IPython.display import display\ndisplay(8.0)\n8.0",
    }
    return _fill(nb, answers)


def spellings(nb):
    """Right answers written differently: floats for ints, numpy numbers, upper case, sets."""
    return _fill(
        nb,
        {
            "ans_steps_lr_003": "import numpy as np\nsteps_lr_003 = np.int64(45)",
            "ans_steps_lr_01": "steps_lr_01 = 12.0",
            "ans_lr_1_outcome": 'lr_1_outcome = " C) "',
            "ans_goldilocks_lr": "goldilocks_lr = 0.294",
            "ans_step_size": "step_size = 0.025",
            "ans_steps_per_epoch": "import math\nsteps_per_epoch = float(math.ceil(1279 / 256))",
            "ans_curve_labels": (
                'curve_labels = {"a": "TASA_BAJA", "b": " sobreajuste", '
                '"C": "tasa_alta", "D": "tasa_correcta"}'
            ),
        },
    )


RECIPES = {
    "perfect": perfect,
    "partial": partial,
    "blank": blank,
    "raises": raises,
    "corrupt": corrupt,
    "skip_execution": skip_execution,
    "fake_score": fake_score,
    "spellings": spellings,
}

_FULL = {
    "test_steps_lr_003": 1,
    "test_steps_lr_01": 1,
    "test_lr_1_outcome": 1,
    "test_goldilocks_lr": 1,
    "test_step_size": 1,
    "test_steps_per_epoch": 1,
    "test_curve_labels": 2,
}
_ZERO = dict.fromkeys(_FULL, 0)

# status, per-cell scores and, for some cells, the message id the student must see
EXPECTED = {
    "perfect": {"status": "graded", "cells": _FULL},
    "spellings": {"status": "graded", "cells": _FULL},
    "partial": {
        "status": "graded",
        "cells": {
            **_FULL,
            "test_steps_lr_003": 0,
            "test_lr_1_outcome": 0,
            "test_step_size": 0,
            "test_steps_per_epoch": 0,
            "test_curve_labels": 1,
        },
        "messages": {
            "test_steps_lr_003": "steps.off_by_one",
            "test_lr_1_outcome": "lr_outcome.wrong",
            "test_step_size": "step_size.divided",
            "test_steps_per_epoch": "steps_per_epoch.floor",
        },
    },
    "blank": {
        "status": "graded",
        "cells": _ZERO,
        "messages": dict.fromkeys(_FULL, "not_attempted"),
    },
    "raises": {
        "status": "graded",
        "cells": {**_FULL, "test_steps_lr_01": 0, "test_goldilocks_lr": 0},
        "messages": {
            "test_steps_lr_01": "answer_cell_error",
            "test_goldilocks_lr": "answer_cell_error",
        },
    },
    "corrupt": {"status": "error", "cells": _ZERO},
    "skip_execution": {
        "status": "graded",
        "cells": _ZERO,
        "messages": dict.fromkeys(_FULL, "not_attempted"),
    },
    "fake_score": {
        "status": "graded",
        "cells": _ZERO,
        "messages": {
            "test_steps_lr_003": "steps.wrong",
            "test_step_size": "step_size.wrong",
            "test_lr_1_outcome": "not_attempted",
        },
    },
}
