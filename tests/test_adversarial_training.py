"""Forged training claims, graded end to end: real notebooks, real training, in the sandbox
(``tests/adversarial/training.py``). Each attack loses credit on the history cell with a message
naming the inconsistency; the honest students around them keep full marks."""

from __future__ import annotations

import pytest

from autograder.sandbox import BubblewrapLauncher, SandboxSettings, bubblewrap_problem
from tests.adversarial.training import (
    AID,
    CASES,
    HISTORY_CELL,
    HONEST,
    INCONSISTENCY_IDS,
    NOTEBOOK,
    build,
    honest,
)
from tests.conftest import make_course
from tests.sample_class import TIMESTAMP

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def forged(tmp_path_factory, data_home):
    import nbformat

    from autograder.batch import grade_class

    settings = SandboxSettings()
    problem = bubblewrap_problem(settings)
    if problem:
        pytest.skip(f"needs the bubblewrap sandbox: {problem}")
    course = make_course(tmp_path_factory.mktemp("forged") / "state")
    release = nbformat.read(course.release_dir / AID / NOTEBOOK, as_version=4)
    notebooks = {case.student: build(release, case) for case in CASES}
    notebooks.update({student: honest(release) for student in HONEST})
    for student, nb in notebooks.items():
        folder = course.submitted_dir / student / AID
        folder.mkdir(parents=True)
        nbformat.write(nb, folder / NOTEBOOK)
        (folder / "timestamp.txt").write_text(TIMESTAMP)
    return grade_class(
        course, AID, launcher=BubblewrapLauncher(settings), progress=False, workers=2
    )


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_forged_claim_earns_no_full_history_credit(forged, case):
    result = forged.students[case.student]
    assert result.status == "graded", result.error
    cell = result.cells[HISTORY_CELL]
    said = {c.message_id: c.message for c in cell.checks if not c.passed}
    assert cell.score < cell.max_score, (case.name, said)
    assert set(said) & INCONSISTENCY_IDS, (case.name, said)
    for message in said.values():
        assert message.strip()


def test_honest_students_keep_full_marks(forged):
    for student in HONEST:
        result = forged.students[student]
        assert result.status == "graded", result.error
        assert result.score == result.max_score, {
            g: [c.message_id for c in cell.checks if not c.passed]
            for g, cell in result.cells.items()
        }
