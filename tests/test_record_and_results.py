"""Scores are written explicitly into nbgrader's gradebook; the results JSON keeps its contract."""

import json

from nbgrader.api import Gradebook

from autograder.core import Assignment, error_result
from autograder.record import gradebook_scores, open_gradebook, record_result, sync_assignment
from autograder.results import AssignmentResult, CellResult, CheckResult, StudentResult


def make_result(student, assignment, scores):
    cells = {
        gid: CellResult(
            score=scores.get(gid, 0.0),
            max_score=pts,
            checks=[
                CheckResult(id=gid, passed=scores.get(gid, 0) == pts, message="m", message_id="ok")
            ],
        )
        for gid, pts in assignment.cell_points.items()
    }
    return StudentResult(
        student, assignment.id, "graded", None, sum(scores.values()), assignment.max_score, cells
    )


def test_scores_are_recorded_explicitly(course):
    assignment = Assignment.from_course(course, "lesson4_learning_rate")
    sync_assignment(course.db_url, assignment)
    sync_assignment(course.db_url, assignment)  # idempotent
    with open_gradebook(course.db_url) as gb:
        record_result(gb, assignment, make_result("ana", assignment, {"test_step_size": 1.0}))
        record_result(gb, assignment, make_result("ana", assignment, {"test_curve_labels": 1.5}))
        record_result(gb, assignment, make_result("bo", assignment, {}))
    scores = gradebook_scores(course.db_url, assignment)
    assert scores["ana"]["test_curve_labels"] == 1.5 and scores["ana"]["test_step_size"] == 0
    assert sum(scores["bo"].values()) == 0
    with Gradebook(course.db_url) as gb:  # nbgrader's own API sees the same scores
        sub = gb.find_submission("lesson4_learning_rate", "ana")
        assert sub.score == 1.5 and sub.max_score == 8
        assert not sub.needs_manual_grade


def test_result_json_contract(course, tmp_path):
    assignment = Assignment.from_course(course, "lesson4_learning_rate")
    results = AssignmentResult(assignment.id)
    results.students["ana"] = make_result("ana", assignment, {"test_step_size": 1.0})
    results.students["bad"] = error_result("bad", assignment, "the file is empty")
    path = results.write_json(tmp_path / "r.json")
    data = json.loads(path.read_text())
    assert data["assignment"] == "lesson4_learning_rate"
    for student in data["students"].values():
        assert student["status"] in ("graded", "error")
        assert isinstance(student["score"], float | int) and student["max_score"] == 8
        for cell in student["cells"].values():
            assert {"score", "max_score", "checks"} <= set(cell)
            for check in cell["checks"]:
                assert isinstance(check["id"], str) and isinstance(check["passed"], bool)
                assert isinstance(check["message"], str)
    assert data["students"]["bad"]["error"] == "the file is empty"
    assert AssignmentResult.read_json(path).to_dict() == data


def test_new_gradebook_is_stamped_with_the_revision_nbgrader_migrates_from(tmp_path):
    """The gradebook's schema revision is read in-process (not via the ``alembic`` command);
    it must be the head of nbgrader's migrations, as the ``alembic`` command itself reports."""
    import subprocess
    import sys
    from pathlib import Path

    from nbgrader.dbutil import _temp_alembic_ini
    from sqlalchemy import create_engine, text

    db = tmp_path / "gradebook.db"
    with open_gradebook(f"sqlite:///{db}"):
        pass
    with create_engine(f"sqlite:///{db}").connect() as conn:
        stamped = conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one()
    alembic = Path(sys.executable).parent / "alembic"
    with _temp_alembic_ini(f"sqlite:///{db}") as ini:
        current = subprocess.run(
            [str(alembic), "-c", ini, "current"], capture_output=True, text=True, check=True
        ).stdout
    # alembic itself reads the stamp and agrees it is the head: nothing to migrate
    assert current.split() == [stamped, "(head)"]


def test_results_journal_keeps_finished_students_across_a_crash(course, tmp_path):
    """Grading appends each finished student to a journal; a run killed before it saved the
    JSON loses nothing, a line cut short by the crash is ignored, and saving folds it in."""
    from autograder.results import ResultsFile

    assignment = Assignment.from_course(course, "lesson4_learning_rate")
    store = ResultsFile(tmp_path, assignment.id)
    earlier = AssignmentResult(assignment.id)
    earlier.students["ana"] = make_result("ana", assignment, {})
    store.save(earlier)
    store.append(make_result("ana", assignment, {"test_step_size": 1.0}))  # regraded: wins
    store.append(make_result("bo", assignment, {"test_curve_labels": 1.5}))
    store.close()
    with store.journal.open("a", encoding="utf-8") as torn:
        torn.write('{"student": "cy", "assignment": "lesson4_le')  # killed mid-write

    loaded = store.load()
    assert sorted(loaded.students) == ["ana", "bo"]
    assert loaded.students["ana"].score == 1.0 and loaded.students["bo"].score == 1.5
    assert (
        loaded.students["bo"].cells
        == make_result("bo", assignment, {"test_curve_labels": 1.5}).cells
    )

    store.save(loaded)
    assert not store.journal.exists()
    assert AssignmentResult.read_json(store.path).to_dict() == loaded.to_dict()
