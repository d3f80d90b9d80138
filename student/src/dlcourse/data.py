"""The red wine data, fetched like scikit-learn's ``fetch_*`` loaders.

The file is downloaded once from its public source (UCI), verified by sha256 and cached in a
data home: ``$COURSE_DATA_HOME``, else ``data_home`` from ``course_config.py``, else
``~/.cache/dl-course-data``. The lesson-4 split and the min-max scaling live here so that the
notebooks and the checkers use the very same rows and statistics.
"""

from __future__ import annotations

import hashlib
import math
import os
import shutil
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

ENV_DATA_HOME = "COURSE_DATA_HOME"


@dataclass(frozen=True)
class RemoteFile:
    filename: str
    urls: tuple[str, ...]
    sha256: str


RED_WINE = RemoteFile(
    filename="winequality-red.csv",
    urls=(
        "https://archive.ics.uci.edu/ml/machine-learning-databases/wine-quality/winequality-red.csv",
        "https://archive.ics.uci.edu/static/public/186/winequality-red.csv",
    ),
    sha256="4a402cf041b025d4566d954c3b9ba8635a3a8a01e039005d97d6a710278cf05e",
)

N_ROWS = 1599
TARGET = "quality"
# Lesson 4.2: train_test_split(X, y, test_size=0.2, random_state=3)
TEST_SIZE = 0.2
RANDOM_STATE = 3


class DataError(RuntimeError):
    """The course data could not be found, downloaded or verified: a catalogue message
    (``data.*``, ``dlcourse/messages/data.toml``) that says how to fix it, with its
    parameters. ``str()`` is its text in the course language (``$DLCOURSE_LANGUAGE``, else
    Spanish): a student reads it under the notebook's setup cell."""

    def __init__(self, message_id: str, **params):
        self.message_id = message_id
        self.params = params
        super().__init__(message_id)

    def text(self, language: str | None = None) -> str:
        from dlcourse.catalogue import say

        return say(self.message_id, language, **self.params)

    def __str__(self) -> str:
        return self.text()


def get_data_home(data_home: str | os.PathLike | None = None) -> Path:
    """Where the data is cached (created if missing)."""
    chosen = data_home or os.environ.get(ENV_DATA_HOME) or Path.home() / ".cache" / "dl-course-data"
    return Path(chosen).expanduser()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 16), b""):
            digest.update(block)
    return digest.hexdigest()


def _download(remote: RemoteFile, target: Path, timeout: float) -> None:
    errors = []
    for url in remote.urls:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as response:
                with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as tmp:
                    shutil.copyfileobj(response, tmp)
            tmp_path = Path(tmp.name)
            if _sha256(tmp_path) != remote.sha256:
                tmp_path.unlink(missing_ok=True)
                errors.append({"url": url, "checksum": True})
                continue
            tmp_path.replace(target)  # atomic: a half-written file never looks cached
            return
        except (urllib.error.URLError, OSError, TimeoutError) as exc:
            errors.append({"url": url, "detail": str(exc)})
    raise DataError(
        "data.download_failed",
        file=remote.filename,
        errors=errors,
        sha256=remote.sha256,
        folder=str(target.parent),
        variable=ENV_DATA_HOME,
    )


def fetch_file(
    remote: RemoteFile,
    data_home: str | os.PathLike | None = None,
    download_if_missing: bool = True,
    timeout: float = 30.0,
) -> Path:
    """Path to a verified local copy of ``remote``, downloading it into the data home if needed."""
    home = get_data_home(data_home)
    path = home / remote.filename
    if path.is_file():
        found = _sha256(path)
        if found == remote.sha256:
            return path
        raise DataError("data.corrupt", path=str(path), found=found, expected=remote.sha256)
    if not download_if_missing:
        raise DataError(
            "data.not_in_home", file=remote.filename, home=str(home), variable=ENV_DATA_HOME
        )
    try:
        home.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError("data.cannot_create_home", home=str(home), detail=str(exc)) from exc
    _download(remote, path, timeout)
    return path


def load_red_wine(data_home: str | os.PathLike | None = None, download_if_missing: bool = True):
    """The UCI red wine data (1,599 rows, 11 features and ``quality``) as a DataFrame."""
    import pandas as pd

    path = fetch_file(RED_WINE, data_home, download_if_missing)
    frame = pd.read_csv(path, sep=";")
    if frame.shape != (N_ROWS, 12) or TARGET not in frame.columns:
        raise DataError("data.bad_shape", path=str(path), shape=str(frame.shape), rows=N_ROWS)
    return frame


def split_indices(n_rows: int = N_ROWS) -> tuple[np.ndarray, np.ndarray]:
    """Row positions of the lesson-4 training and validation splits.

    Exactly what ``train_test_split(X, y, test_size=0.2, random_state=3)`` selects.
    """
    from sklearn.model_selection import train_test_split

    train, valid = train_test_split(
        np.arange(n_rows), test_size=TEST_SIZE, random_state=RANDOM_STATE
    )
    return train, valid


def shuffled_split(
    n_rows: int, *, test_size: float = TEST_SIZE, random_state: int
) -> tuple[np.ndarray, np.ndarray]:
    """The rows ``train_test_split(np.arange(n_rows), test_size=..., random_state=...)`` gives
    (without stratification), computed with NumPy alone: scikit-learn documents its shuffle
    split as one permutation of the rows by ``RandomState(random_state)``, the first
    ``ceil(test_size * n_rows)`` of them for the test part and the rest for training. The
    checkers search a student's own ``random_state`` with it without importing scikit-learn
    (2.5 s per grader process); ``tests/test_data.py`` compares it with scikit-learn for many
    seeds and sizes."""
    n_test = math.ceil(test_size * n_rows)
    permutation = np.random.RandomState(random_state).permutation(n_rows)
    return permutation[n_test:], permutation[:n_test]


def n_train(n_rows: int = N_ROWS) -> int:
    """Number of training rows in the lesson-4 split."""
    return n_rows - math.ceil(TEST_SIZE * n_rows)


def lesson4_split(frame=None, data_home=None):
    """``X_train, X_valid, y_train, y_valid`` as in lesson 4.2 (unscaled DataFrames/Series)."""
    frame = load_red_wine(data_home) if frame is None else frame
    train, valid = split_indices(len(frame))
    X = frame.drop(columns=[TARGET])
    y = frame[TARGET]
    return X.iloc[train], X.iloc[valid], y.iloc[train], y.iloc[valid]


def minmax_scale(train, *others):
    """Scale ``train`` and ``others`` with the **training** split's min and max (no leakage).

    Works on DataFrames, Series and arrays; returns the scaled ``train`` followed by the others.
    """
    low = train.min(axis=0)
    high = train.max(axis=0)
    span = high - low
    scaled = [(part - low) / span for part in (train, *others)]
    return scaled[0] if not others else tuple(scaled)


def lesson4_scaled_split(frame=None, data_home=None):
    """The lesson-4 split with features and target min-max scaled by the training split."""
    X_train, X_valid, y_train, y_valid = lesson4_split(frame, data_home)
    X_train, X_valid = minmax_scale(X_train, X_valid)
    y_train, y_valid = minmax_scale(y_train, y_valid)
    return X_train, X_valid, y_train, y_valid


SPLIT_FILE = "lesson4_split.json"  # train_test_split's rows, kept (tests/test_data.py)


@lru_cache(maxsize=1)
def lesson4_split_rows() -> tuple[np.ndarray, np.ndarray]:
    """``split_indices()`` as stored with the package: the checkers (and ``regrade``) then
    need neither scikit-learn nor pandas, about a second of imports per grader process."""
    import json
    from importlib import resources

    stored = json.loads((resources.files(__package__) / SPLIT_FILE).read_text(encoding="utf-8"))
    if (stored["n_rows"], stored["test_size"], stored["random_state"]) != (
        N_ROWS,
        TEST_SIZE,
        RANDOM_STATE,
    ):
        raise DataError("data.split_version", file=SPLIT_FILE)
    return np.asarray(stored["train_index"]), np.asarray(stored["valid_index"])


@lru_cache(maxsize=2)
def course_arrays(data_home: str | None = None) -> dict[str, np.ndarray]:
    """The red wine data and the lesson-4 split as read-only float64 arrays.

    ``raw_X``/``raw_y`` are the unscaled data set; ``train_index``/``valid_index`` the rows of
    the lesson-4 split; ``X_train`` ... ``y_valid`` that split scaled with the training split's
    min and max. The self-checks and the hidden checkers compare a student's split with these.
    Read with NumPy (the same values, bit for bit, as ``load_red_wine``: tests/test_data.py).
    """
    path = fetch_file(RED_WINE, data_home)
    table = np.loadtxt(path, delimiter=";", skiprows=1, dtype=np.float64, ndmin=2)
    if table.shape != (N_ROWS, 12):
        raise DataError("data.bad_shape", path=str(path), shape=str(table.shape), rows=N_ROWS)
    raw_x, raw_y = table[:, :-1], table[:, -1]
    train, valid = lesson4_split_rows()
    x_train, x_valid = minmax_scale(raw_x[train], raw_x[valid])
    y_train, y_valid = minmax_scale(raw_y[train], raw_y[valid])
    arrays = {
        "raw_X": np.ascontiguousarray(raw_x),
        "raw_y": np.ascontiguousarray(raw_y),
        "train_index": train,
        "valid_index": valid,
        "X_train": x_train,
        "X_valid": x_valid,
        "y_train": y_train,
        "y_valid": y_valid,
    }
    for array in arrays.values():
        array.setflags(write=False)
    return arrays
