"""Where everything a graded run captures lives: the one artifact layout, with its version.

Standard library only: the student's kernel writes these paths (``dlcourse.capture``,
``dlcourse.keras_capture``), the grader reads them (checkers, plots, feedback, report, regrade)
and keeps them under ``autograded/<student>/<assignment>/``. Every path is spelled here once.

``LAYOUT_VERSION`` is written into each run's execution record; a regrade of artifacts written
under another layout says so instead of misreading them. Raise it whenever a path or a file's
format changes incompatibly.
"""

from __future__ import annotations

from pathlib import Path

LAYOUT_VERSION = 2
# the layouts this code reads: version 1 (records without a version, before this module)
# used the same paths and files
READABLE_VERSIONS = frozenset({1, 2})


def readable(version: object) -> bool:
    """Whether artifacts recorded under layout ``version`` (None: 1) can be read here."""
    return (1 if version is None else version) in READABLE_VERSIONS


ARTIFACTS_DIRNAME = "artifacts"  # in the work folder, beside the executed notebook
EXECUTION_RECORD = "execution.json"  # written by the grader after the kernel stopped
TIMESTAMP_FILE = "timestamp.txt"  # the submission time, in the work folder (nbgrader's)

ANSWERS_DIR = "answers"
SPLIT_META = "split/split.json"  # the names of the four split arrays, or the capture's error
SPLIT_ARRAYS = "split/arrays.npz"  # X_train, X_valid, y_train, y_valid
KERAS_DIR = "keras"
KERAS_MODEL = "keras/model.json"
KERAS_EARLY_STOPPING = "keras/early_stopping.json"
KERAS_TRAINING_GLOB = "*training.json"  # one per fit: training.json, <prefix>training.json
HISTORY_FILES = ("history.json", "keras/history.json")  # simpler captures of a History
EARLY_STOPPING_FILES = ("early_stopping.json",)


def answer(name: str) -> str:
    """The captured value of answer ``name``."""
    return f"{ANSWERS_DIR}/{name}.json"


def keras_json(name: str) -> str:
    return f"{KERAS_DIR}/{name}.json"


def keras_training(prefix: str = "") -> str:
    """A ``fit``'s history, params and callback state (``prefix``: a second model's)."""
    return f"{KERAS_DIR}/{prefix}training.json"


def keras_weights(prefix: str = "") -> str:
    """The weights after that ``fit``, one array per weight, in layer order."""
    return f"{KERAS_DIR}/{prefix}weights.npz"


def work_folder(autograded_dir: str | Path, student: str, assignment_id: str) -> Path:
    """``autograded/<student>/<assignment>/``: the executed notebook, its timestamp and its
    artifacts (nbgrader's layout, which formgrader reads)."""
    return Path(autograded_dir) / student / assignment_id


def artifacts_folder(autograded_dir: str | Path, student: str, assignment_id: str) -> Path:
    return work_folder(autograded_dir, student, assignment_id) / ARTIFACTS_DIRNAME
