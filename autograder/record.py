"""Record stage: write scores explicitly into nbgrader's gradebook (the system of record).

Scores are set on each ``Grade`` as ``auto_score``; nothing is parsed from cell outputs. The
assignment's structure (notebook, grade cells, locked cells) is synchronised from the source
notebook with nbgrader's own ``SaveCells``, so formgrader and nbgrader's commands keep working,
whatever gradebook (SQLite file or PostgreSQL ``db_url``) the course uses.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import nbformat
import nbgrader.api
from alembic.config import Config as AlembicConfig
from alembic.script import ScriptDirectory
from nbgrader.api import Gradebook, MissingEntry
from nbgrader.dbutil import ALEMBIC_DIR
from nbgrader.preprocessors import SaveCells
from sqlalchemy.exc import SAWarning

from autograder.core import Assignment
from autograder.results import StudentResult

# nbgrader's add_submission trips SQLAlchemy autoflush warnings; they are noise for instructors.
warnings.filterwarnings("ignore", category=SAWarning, module=r"nbgrader\.api")


@cache
def alembic_head() -> str:
    """The schema revision nbgrader stamps on a new gradebook, read in this process.

    nbgrader asks for it by running ``alembic heads`` as a command, which costs about 2.5 s
    (a fresh interpreter importing nbgrader) every time a gradebook is created; the answer is
    the head of nbgrader's own migration scripts, which alembic's API reads in milliseconds.
    """
    config = AlembicConfig()
    config.set_main_option("script_location", ALEMBIC_DIR)
    heads = ScriptDirectory.from_config(config).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"nbgrader's migrations have {len(heads)} heads: {heads}")
    return heads[0]


def use_inprocess_alembic_head() -> None:
    """Make nbgrader stamp new gradebooks with ``alembic_head`` instead of the ``alembic``
    command (which also had to be on PATH). Gradebook() looks the function up in its module
    at call time, so replacing it there is enough; idempotent."""
    nbgrader.api.get_alembic_version = alembic_head


@contextmanager
def open_gradebook(db_url: str) -> Iterator[Gradebook]:
    use_inprocess_alembic_head()
    if db_url.startswith("sqlite:///"):
        Path(db_url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    gb = Gradebook(db_url)
    try:
        yield gb
    finally:
        gb.close()


def sync_assignment(db_url: str, assignment: Assignment) -> None:
    """Create or update the assignment, its notebook and cells in the gradebook."""
    with open_gradebook(db_url) as gb:
        gb.update_or_create_assignment(assignment.id)
        try:
            notebook = gb.find_notebook(assignment.notebook.removesuffix(".ipynb"), assignment.id)
            known = {c.name for c in notebook.grade_cells}
            has_submissions = len(notebook.submissions) > 0
        except MissingEntry:
            known, has_submissions = set(), False
    if has_submissions and known == set(assignment.cell_points):
        return  # structure already recorded; SaveCells refuses to touch graded notebooks
    nb = nbformat.reads(assignment.source_json, as_version=4)
    resources = {
        "nbgrader": {
            "db_url": db_url,
            "assignment": assignment.id,
            "notebook": assignment.notebook.removesuffix(".ipynb"),
        }
    }
    SaveCells().preprocess(nb, resources)


def record_result(
    gb: Gradebook, assignment: Assignment, result: StudentResult, timestamp: str | None = None
) -> None:
    """Store one student's scores in an open gradebook (one transaction)."""
    notebook_id = assignment.notebook.removesuffix(".ipynb")
    try:
        gb.update_or_create_student(result.student)
        kwargs = {"timestamp": timestamp} if timestamp else {}
        try:
            gb.find_submission(assignment.id, result.student)
            if kwargs:
                gb.update_or_create_submission(assignment.id, result.student, **kwargs)
        except MissingEntry:
            gb.add_submission(assignment.id, result.student, **kwargs)
        for gid, cell in result.cells.items():
            grade = gb.find_grade(gid, notebook_id, assignment.id, result.student)
            grade.auto_score = float(cell.score)
            grade.needs_manual_grade = False
        gb.db.commit()
    except Exception:
        gb.db.rollback()
        raise


def gradebook_scores(db_url: str, assignment: Assignment) -> dict[str, dict[str, float]]:
    """Per student, per graded cell, the score the gradebook holds (manual overrides win)."""
    notebook_id = assignment.notebook.removesuffix(".ipynb")
    scores: dict[str, dict[str, float]] = {}
    with open_gradebook(db_url) as gb:
        try:
            submissions = gb.assignment_submissions(assignment.id)
        except MissingEntry:
            return {}
        for submission in submissions:
            row = {}
            for nb in submission.notebooks:
                if nb.name != notebook_id:
                    continue
                for grade in nb.grades:
                    row[grade.name] = float(grade.score)
            scores[submission.student.id] = row
    return scores


def remove_submissions(db_url: str, assignment_id: str, students: list[str]) -> list[str]:
    """Remove these students' submissions of ``assignment_id`` from the gradebook (grades,
    comments and formgrader's overrides with them); the students themselves stay, since they
    may have other assignments. Returns those that were there."""
    removed = []
    with open_gradebook(db_url) as gb:
        for student in students:
            try:
                gb.remove_submission(assignment_id, student)
            except MissingEntry:
                continue
            removed.append(student)
    return removed
