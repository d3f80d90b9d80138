"""Identical submissions executed once (``autograder.dedup``): the same scores, messages and
notes as executing each of them, every student under their own identity."""

from __future__ import annotations

import json
import shutil

import nbformat
import pytest

from autograder.batch import grade_class, regrade_class
from autograder.core import Assignment, GradingSettings
from autograder.dedup import SHARED_TIMING, execution_of
from autograder.execute import LocalLauncher
from autograder.record import gradebook_scores
from tests.conftest import make_course
from tests.sample_class import build_sample_class

AID = "lesson4_learning_rate"
NOTEBOOK = "learning_rate.ipynb"


def twin(course, of: str, name: str, touch_locked: bool) -> None:
    """``of``'s submission as another student handed it in: outputs cleared, other metadata,
    and (``touch_locked``) a locked cell edited, which the rebuild restores."""
    source = course.submitted_dir / of / AID
    target = course.submitted_dir / name / AID
    shutil.copytree(source, target)
    nb = nbformat.read(target / NOTEBOOK, as_version=4)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Mi Python"}
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    if touch_locked:
        locked = next(
            c for c in nb.cells if c.metadata.get("nbgrader", {}).get("locked") and c.source
        )
        locked.source += "\n# lo cambié"
    nbformat.write(nb, target / NOTEBOOK)
    (target / "timestamp.txt").write_text("2026-11-21 09:00:00.000000 UTC", encoding="utf-8")


def sample_with_twins(state):
    course = make_course(state)
    from autograder.release import release

    list(release(course, AID, self_test=False))
    build_sample_class(course.release_dir, course.submitted_dir, AID, NOTEBOOK)
    twin(course, "perfect", "twin_perfect", touch_locked=True)
    twin(course, "partial", "twin_partial", touch_locked=False)
    return course


@pytest.fixture(scope="session")
def both(tmp_path_factory):
    """The sample class plus two twins, graded with deduplication on and off."""
    on = sample_with_twins(tmp_path_factory.mktemp("dedup-on"))
    off = sample_with_twins(tmp_path_factory.mktemp("dedup-off"))
    off.deduplicate = False
    launcher = LocalLauncher()
    return (
        (on, grade_class(on, AID, progress=False, launcher=launcher, workers=1)),
        (off, grade_class(off, AID, progress=False, launcher=launcher, workers=1)),
    )


def graded_as(result) -> dict:
    return {
        "status": result.status,
        "score": result.score,
        "cells": {
            gid: [(c.id, c.passed, c.message_id, c.messages, c.points) for c in cell.checks]
            for gid, cell in result.cells.items()
        },
        "notes": [n["id"] for n in result.notes],
        "error": result.error_note,
    }


@pytest.mark.slow
def test_shared_runs_grade_exactly_as_executing_each(both):
    (on, with_dedup), (_, without) = both
    assert set(with_dedup.students) == set(without.students)
    for student in without.students:
        assert graded_as(with_dedup.students[student]) == graded_as(without.students[student]), (
            student
        )
    shared = {s for s, r in with_dedup.students.items() if r.timing.get(SHARED_TIMING)}
    # the twins, and skip_execution (its rebuilt notebook is blank's: the flag is metadata)
    assert shared == {"twin_perfect", "twin_partial", "skip_execution"}
    assert not any(r.timing.get(SHARED_TIMING) for r in without.students.values())
    assert with_dedup.students["twin_perfect"].score == with_dedup.students["perfect"].score == 8
    # each twin keeps its own notes: the edited locked cell is twin_perfect's alone
    assert "note.locked_modified" in graded_as(with_dedup.students["twin_perfect"])["notes"]
    assert "note.locked_modified" not in graded_as(with_dedup.students["perfect"])["notes"]


@pytest.mark.slow
def test_each_twin_has_its_own_row_artifacts_time_and_page(both):
    (on, results), _ = both
    booked = gradebook_scores(on.db_url, Assignment.from_course(on, AID))
    assert booked["twin_partial"] == booked["partial"]
    for name in ("twin_perfect", "twin_partial"):
        work = on.autograded_dir / name / AID
        assert (work / "artifacts" / "execution.json").is_file()
        assert (work / "timestamp.txt").read_text(encoding="utf-8").startswith("2026-11-21")
        assert (
            results.students[name].submission_sha256
            != results.students[name.removeprefix("twin_")].submission_sha256
        )
    regraded, changes = regrade_class(on, AID)
    assert not changes and not regraded.unchecked
    from autograder.feedback import write_feedback

    pages = {p.parts[-3] for p in write_feedback(on, AID, reference=False)}
    assert {"twin_perfect", "twin_partial"} <= pages
    stored = json.loads((on.results_dir / f"{AID}.json").read_text(encoding="utf-8"))
    assert stored["students"]["twin_partial"]["student"] == "twin_partial"


def test_the_key_ignores_outputs_and_metadata_but_not_answers(tmp_path):
    course = make_course(tmp_path / "state")
    assignment = Assignment.from_course(course, AID)
    settings = GradingSettings.from_course(course)
    release = nbformat.reads(assignment.release_json, as_version=4)
    first = tmp_path / "a.ipynb"
    nbformat.write(release, first)
    dressed = nbformat.reads(assignment.release_json, as_version=4)
    dressed.metadata["language_info"] = {"name": "python", "version": "3.12"}
    for cell in dressed.cells:
        if cell.cell_type == "code":
            cell.execution_count = 7
            cell.outputs = [nbformat.v4.new_output("stream", text="hola\n")]
    second = tmp_path / "b.ipynb"
    nbformat.write(dressed, second)
    answered = nbformat.reads(assignment.release_json, as_version=4)
    answer = next(c for c in answered.cells if c.metadata.get("nbgrader", {}).get("solution"))
    answer.source = "steps_lr_003 = 42"
    third = tmp_path / "c.ipynb"
    nbformat.write(answered, third)
    broken = tmp_path / "d.ipynb"
    broken.write_text("{", encoding="utf-8")

    keys = [execution_of(str(p), assignment, settings) for p in (first, second, third, broken)]
    assert keys[0].key == keys[1].key
    assert keys[2].key != keys[0].key
    assert keys[3] is None
    other = GradingSettings(**{**settings.__dict__, "kernel_threads": 2})
    assert execution_of(str(first), assignment, other).key != keys[0].key
