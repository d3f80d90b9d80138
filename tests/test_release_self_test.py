"""``release`` grades the reference solution as a self-test of the checkers: it fails when the
reference scores below full marks, and caches the result that feedback then reuses."""

from __future__ import annotations

import shutil

import pytest

from autograder.config import load_course
from autograder.reference import cached_reference, reference_dir
from autograder.release import ReleaseError, release
from tests.conftest import ROOT

pytestmark = pytest.mark.slow

AID = "lesson4_learning_rate"
NOTEBOOK = "learning_rate.ipynb"


def _course(tmp_path, *, break_solution: bool = False):
    shutil.copytree(ROOT / "source" / AID, tmp_path / "source" / AID)
    if break_solution:  # the instructor's solution (or a checker) is wrong
        path = tmp_path / "source" / AID / NOTEBOOK
        path.write_text(
            path.read_text().replace('"steps_lr_003 = 45\\n"', '"steps_lr_003 = 44\\n"')
        )
    shutil.copy(ROOT / "course_config.py", tmp_path / "course_config.py")
    return load_course(tmp_path / "course_config.py", state_dir=tmp_path / "state")


def test_a_reference_below_full_marks_fails_the_release(tmp_path, data_home):
    course = _course(tmp_path, break_solution=True)
    with pytest.raises(ReleaseError, match=r"scores 7 of 8.*test_steps_lr_003 0/1") as info:
        release(course, AID)
    spanish = info.value.note.text("es")  # the CLI shows it in the course language
    assert "obtiene 7 de 8" in spanish and "test_steps_lr_003 0/1" in spanish, spanish
    assert "scores" not in spanish and "Fix the" not in spanish
    assert cached_reference(course, AID) is None or cached_reference(course, AID).score == 7


def test_a_full_marks_reference_is_cached_for_feedback(tmp_path, data_home, monkeypatch):
    course = _course(tmp_path)
    release(course, AID)
    cached = cached_reference(course, AID)
    assert cached is not None and cached.score == cached.max_score == 8
    assert (reference_dir(course, AID) / "artifacts").is_dir()

    import autograder.core

    def no_grading(*args, **kwargs):
        raise AssertionError("the cached reference must be reused")

    monkeypatch.setattr(autograder.core, "grade", no_grading)
    release(course, AID)  # the cache holds: no second grading
    from autograder.feedback import reference_trainings

    assert reference_trainings(course, AID) == {}  # no training in this assignment; no grading
    # a changed checker threshold (or notebook) makes the cache stale
    course.thresholds  # noqa: B018 - loaded
    (course.source_dir / AID / NOTEBOOK).write_text(
        (course.source_dir / AID / NOTEBOOK).read_text() + " "
    )
    assert cached_reference(course, AID) is None
