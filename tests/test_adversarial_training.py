"""Forged training claims, graded end to end: real notebooks, real training, in the sandbox
(``tests/adversarial/training.py``). Each attack loses credit on the history cell with a message
naming the inconsistency; the honest students around them keep full marks."""

from __future__ import annotations

import pytest

from autograder.sandbox import (
    BubblewrapLauncher,
    SandboxSettings,
    bubblewrap_problem,
    reason_text,
)
from tests.adversarial.training import (
    AID,
    CASES,
    HISTORY_CELL,
    HONEST,
    INCONSISTENCY_IDS,
    LESSON5_AID,
    LESSON5_CASES,
    LESSON5_HONEST,
    LESSON5_INCONSISTENCY_IDS,
    LESSON5_NOTEBOOK,
    NOTEBOOK,
    build,
    build_lesson5,
    honest,
    honest_lesson5,
)
from tests.conftest import make_course
from tests.sample_class import TIMESTAMP

pytestmark = pytest.mark.slow


def _grade_class(folder, aid, notebook, build_case, cases, build_honest, honest_ids):
    import nbformat

    from autograder.batch import grade_class

    settings = SandboxSettings()
    problem = bubblewrap_problem(settings)
    if problem:
        pytest.skip(f"needs the bubblewrap sandbox: {reason_text(problem)}")
    course = make_course(folder / "state")
    release = nbformat.read(course.release_dir / aid / notebook, as_version=4)
    notebooks = {case.student: build_case(release, case) for case in cases}
    notebooks.update({student: build_honest(release) for student in honest_ids})
    for student, nb in notebooks.items():
        target = course.submitted_dir / student / aid
        target.mkdir(parents=True)
        nbformat.write(nb, target / notebook)
        (target / "timestamp.txt").write_text(TIMESTAMP)
    return grade_class(
        course, aid, launcher=BubblewrapLauncher(settings), progress=False, workers=2
    )


@pytest.fixture(scope="session")
def forged(tmp_path_factory, data_home):
    return _grade_class(
        tmp_path_factory.mktemp("forged"), AID, NOTEBOOK, build, CASES, honest, HONEST
    )


@pytest.fixture(scope="session")
def forged5(tmp_path_factory, data_home):
    return _grade_class(
        tmp_path_factory.mktemp("forged5"),
        LESSON5_AID,
        LESSON5_NOTEBOOK,
        build_lesson5,
        LESSON5_CASES,
        honest_lesson5,
        LESSON5_HONEST,
    )


def _unearned_credit_refused(results, case, inconsistency_ids):
    result = results.students[case.student]
    assert result.status == "graded", result.error
    cell = result.cells[HISTORY_CELL]
    said = {c.message_id: c.message for c in cell.checks if not c.passed}
    assert cell.score < cell.max_score, (case.name, said)
    assert set(said) & inconsistency_ids, (case.name, said)
    for message in said.values():
        assert message.strip()


def _full_marks(results, students):
    for student in students:
        result = results.students[student]
        assert result.status == "graded", result.error
        assert result.score == result.max_score, {
            g: [c.message_id for c in cell.checks if not c.passed]
            for g, cell in result.cells.items()
        }


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_forged_claim_earns_no_full_history_credit(forged, case):
    _unearned_credit_refused(forged, case, INCONSISTENCY_IDS)


def test_honest_students_keep_full_marks(forged):
    _full_marks(forged, HONEST)


@pytest.mark.parametrize("case", LESSON5_CASES, ids=lambda c: c.name)
def test_a_forged_lesson5_claim_is_named_and_earns_no_fit_credit(forged5, case):
    _unearned_credit_refused(forged5, case, LESSON5_INCONSISTENCY_IDS)
    fit = next(
        c
        for c in forged5.students[case.student].cells[HISTORY_CELL].checks
        if c.id == "history_fit"
    )
    assert not fit.passed, fit.message_id


def test_honest_lesson5_students_keep_full_marks(forged5):
    _full_marks(forged5, LESSON5_HONEST)
