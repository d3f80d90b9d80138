"""Shared fixtures. Slow end-to-end tests grade each sample class once per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from autograder.config import Course, load_course

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


def pytest_configure(config):
    # Tests read the verified data copies; the loader never downloads in the test suite.
    if "COURSE_DATA_HOME" not in os.environ and SHARED_DATA.is_dir():
        os.environ["COURSE_DATA_HOME"] = str(SHARED_DATA)


@pytest.fixture(scope="session")
def data_home() -> Path:
    home = os.environ.get("COURSE_DATA_HOME")
    if not home or not (Path(home) / "winequality-red.csv").is_file():
        pytest.fail(
            "COURSE_DATA_HOME must point at a folder holding winequality-red.csv "
            "(e.g. ../shared/data)"
        )
    return Path(home)


def make_course(state_dir: Path) -> Course:
    """The real course (source/, release/, course_config.py) with grading state in a tmp dir."""
    return load_course(ROOT / "course_config.py", state_dir=state_dir)


@pytest.fixture
def course(tmp_path) -> Course:
    return make_course(tmp_path / "state")


class GradedClass:
    """A sample class graded once: the course, the results and the sample students' recipes."""

    def __init__(self, course: Course, assignment_id: str, results, students: list[str]):
        self.course = course
        self.assignment_id = assignment_id
        self.results = results
        self.students = students


def grade_sample_class(tmp_root: Path, assignment_id: str) -> GradedClass:
    from autograder.batch import grade_class
    from tests.sample_class import build_sample_class

    course = make_course(tmp_root)
    spec = course.assignment(assignment_id)
    students = build_sample_class(
        course.release_dir, course.submitted_dir, assignment_id, spec.notebook
    )
    # workers=None: the default an instructor gets (one worker per core); results are identical
    # to serial grading (tests/test_scale.py), and the slow suite takes about half the time
    results = grade_class(course, assignment_id, progress=False, workers=None)
    return GradedClass(course, assignment_id, results, students)


@pytest.fixture(scope="session")
def graded_class(tmp_path_factory, data_home):
    """``graded_class(assignment_id)``: the sample class of that assignment, graded once."""
    cache: dict[str, GradedClass] = {}

    def get(assignment_id: str) -> GradedClass:
        if assignment_id not in cache:
            cache[assignment_id] = grade_sample_class(
                tmp_path_factory.mktemp(f"class-{assignment_id}"), assignment_id
            )
        return cache[assignment_id]

    return get
