"""Before execution the trusted structure is restored: what runs is never the student's choice."""

import copy

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell

from autograder.execute import SubmissionError, grade_id, read_submission, rebuild
from tests.conftest import ROOT

SOURCE = ROOT / "source" / "lesson4_learning_rate" / "learning_rate.ipynb"
RELEASE = ROOT / "release" / "lesson4_learning_rate" / "learning_rate.ipynb"


@pytest.fixture(scope="module")
def notebooks():
    return nbformat.read(SOURCE, as_version=4), nbformat.read(RELEASE, as_version=4)


def cell(nb, gid):
    return next(c for c in nb.cells if grade_id(c) == gid)


def graded_ids(nb):
    return [grade_id(c) for c in nb.cells if grade_id(c)]


def answered(release):
    nb = copy.deepcopy(release)
    cell(nb, "ans_steps_lr_003").source = "steps_lr_003 = 45"
    return nb


def test_answers_kept_and_hidden_tests_restored(notebooks):
    source, release = notebooks
    out = rebuild(answered(release), source, release)
    assert cell(out.notebook, "ans_steps_lr_003").source == "steps_lr_003 = 45"
    assert "capture.answers" in cell(out.notebook, "test_steps_lr_003").source
    assert graded_ids(out.notebook) == graded_ids(source)
    assert out.problems == []


def test_skip_execution_tags_and_edited_tests_are_undone(notebooks):
    source, release = notebooks
    nb = answered(release)
    test = cell(nb, "test_steps_lr_003")
    test.metadata["tags"] = ["skip-execution"]
    test.source = "pass"
    out = rebuild(nb, source, release)
    restored = cell(out.notebook, "test_steps_lr_003")
    assert restored.source == cell(source, "test_steps_lr_003").source
    assert "tags" not in restored.metadata
    assert all("tags" not in c.metadata for c in out.notebook.cells)
    assert any("test_steps_lr_003 was modified" in p.text("en") for p in out.problems)


def test_deleted_cells(notebooks):
    source, release = notebooks
    nb = answered(release)
    nb.cells = [
        c for c in nb.cells if grade_id(c) not in ("ans_step_size", "test_step_size", "setup")
    ]
    out = rebuild(nb, source, release)
    assert graded_ids(out.notebook) == graded_ids(source)
    assert "NotImplementedError" in cell(out.notebook, "ans_step_size").source
    assert any("ans_step_size was deleted" in p.text("en") for p in out.problems)
    assert any("setup was missing" in p.text("en") for p in out.problems)


def test_duplicated_and_reordered_cells(notebooks):
    source, release = notebooks
    nb = answered(release)
    dup = copy.deepcopy(cell(nb, "ans_steps_lr_003"))
    dup.source = "steps_lr_003 = 999"
    fake_test = copy.deepcopy(cell(nb, "test_steps_lr_01"))
    nb.cells.insert(0, fake_test)  # a locked cell moved to the top (reordered)
    nb.cells.append(dup)
    out = rebuild(nb, source, release)
    assert graded_ids(out.notebook) == graded_ids(source)
    assert cell(out.notebook, "ans_steps_lr_003").source == "steps_lr_003 = 45"
    # the duplicate's code is kept as an ordinary cell, so the notebook still runs as written
    assert any(c.source == "steps_lr_003 = 999" and not grade_id(c) for c in out.notebook.cells)
    assert any("more than once" in p.text("en") for p in out.problems)
    assert any("reordered" in p.text("en") for p in out.problems)


def test_retyped_answer_cell_runs_as_code(notebooks):
    source, release = notebooks
    nb = answered(release)
    ans = cell(nb, "ans_steps_lr_003")
    index = nb.cells.index(ans)
    md = new_markdown_cell("steps_lr_003 = 45", metadata=copy.deepcopy(ans.metadata))
    nb.cells[index] = md
    out = rebuild(nb, source, release)
    assert cell(out.notebook, "ans_steps_lr_003").cell_type == "code"
    assert any("changed to markdown" in p.text("en") for p in out.problems)


def test_students_own_cells_stay_in_place(notebooks):
    source, release = notebooks
    nb = answered(release)
    index = nb.cells.index(cell(nb, "ans_steps_lr_003"))
    nb.cells.insert(index + 1, new_code_cell("scratch = 1"))
    out = rebuild(nb, source, release)
    ids = [grade_id(c) or c.source for c in out.notebook.cells]
    assert ids.index("scratch = 1") == ids.index("ans_steps_lr_003") + 1


def test_unknown_grade_ids_become_ordinary_cells(notebooks):
    source, release = notebooks
    nb = answered(release)
    nb.cells.append(
        new_code_cell(
            "x = 1",
            metadata={
                "nbgrader": {"grade": True, "points": 100, "grade_id": "bonus", "locked": True}
            },
        )
    )
    out = rebuild(nb, source, release)
    assert "bonus" not in graded_ids(out.notebook)
    assert any("unknown grade id" in p.text("en") for p in out.problems)


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"", "empty"),
        (b"\x89PNG\r\n\x1a\n\x00\x00binary", "not"),
        (b'{"cells": [', "not JSON"),
        (b'{"nbformat": 4, "nbformat_minor": 5, "metadata": {}, "cells": "nope"}', "not a valid"),
    ],
)
def test_unreadable_submissions(tmp_path, content, reason):
    path = tmp_path / "learning_rate.ipynb"
    path.write_bytes(content)
    with pytest.raises(SubmissionError, match=reason):
        read_submission(path)


def test_old_nbformat_is_upgraded(tmp_path, notebooks):
    _, release = notebooks
    path = tmp_path / "nb.ipynb"
    nbformat.write(release, path)
    assert read_submission(path).nbformat == 4


def test_course_config_gives_lesson5_its_own_cell_limit(course):
    from autograder.core import Assignment

    assert course.assignment("lesson5_dropout_batchnorm").cell_timeout == 300
    assert course.assignment("lesson4_learning_rate").cell_timeout is None
    assert Assignment.from_course(course, "lesson5_dropout_batchnorm").cell_timeout == 300


@pytest.mark.slow
def test_an_assignments_cell_limit_overrides_the_courses(course, notebooks, tmp_path):
    """A real kernel: a 6 s answer cell times out under the assignment's 2 s cell limit,
    although the course's (120 s) would let it run; the checker names the cell and the limit."""
    from dataclasses import replace

    from autograder.core import Assignment, GradingSettings, grade

    _source, release = notebooks
    nb = answered(release)
    cell(nb, "ans_steps_lr_003").source = "import time\ntime.sleep(6)\nsteps_lr_003 = 45"
    path = tmp_path / "learning_rate.ipynb"
    nbformat.write(nb, path)
    assignment = replace(Assignment.from_course(course, "lesson4_learning_rate"), cell_timeout=2)
    settings = GradingSettings.from_course(course)
    assert settings.cell_timeout == 120
    result = grade(path, assignment, settings, workdir=tmp_path / "work")
    check = next(c for c in result.cells["test_steps_lr_003"].checks if not c.passed)
    assert check.message_id == "answer_cell_timeout"
    assert check.params["seconds"] == 2
