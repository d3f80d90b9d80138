"""What the hidden checkers build on: the shared verdicts (``dlcourse.checking``), the pytest
``Verdict`` a passing check fills in, and the course data as the grader finds it."""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from dlcourse.checking import (
    Answers,
    CapturedSubmission,
    Fail,
    Memo,
    NotAttempted,
    Passed,
    as_letter,
    describe_found,
)

__all__ = [
    "Answers",
    "CapturedSubmission",
    "Fail",
    "Memo",
    "NotAttempted",
    "Passed",
    "Verdict",
    "as_letter",
    "describe_found",
    "wine_arrays",
]


class Verdict:
    """Lets a passing check say why it passed (the message shown in feedback)."""

    def __init__(self) -> None:
        self.message_id = "ok"
        self.params: dict[str, Any] = {}

    def ok(self, message_id: str, **params: Any) -> None:
        self.message_id = message_id
        self.params = params

    def accept(self, passed: Passed) -> None:
        """Record a shared check's ``Passed`` verdict."""
        self.ok(passed.message_id, **passed.params)


# --- the course data --------------------------------------------------------------------------


def wine_arrays(data_home: str | os.PathLike | None = None) -> dict[str, np.ndarray]:
    """The red wine data and the course's lesson-4 split (``dlcourse.data.course_arrays``) from
    ``data_home``. Checkers pass their context's (``context.wine_arrays()``); None is the data
    loader's own default, for tools and tests outside a grading run."""
    from dlcourse.data import course_arrays

    return course_arrays(str(data_home) if data_home else None)
