"""Release: nbgrader's ``generate_assignment`` from ``source/`` into ``release/``, then a leak
check that no solution or hidden test reached the students' notebooks."""

from __future__ import annotations

import hashlib
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import nbformat

from autograder import reference
from autograder.checkers.answer_key import practice_key
from autograder.config import Course
from autograder.record import use_inprocess_alembic_head
from autograder.results import StageError
from dlcourse import practice

SOLUTION = re.compile(r"### BEGIN SOLUTION(.*?)### END SOLUTION", re.S)
HIDDEN = re.compile(r"### BEGIN HIDDEN TESTS(.*?)### END HIDDEN TESTS", re.S)
MARKERS = ("BEGIN SOLUTION", "END SOLUTION", "BEGIN HIDDEN TESTS", "END HIDDEN TESTS")


class ReleaseError(StageError):
    """nbgrader could not generate the assignment, the release leaks a solution, or the
    reference solution is below full marks: a catalogue message (``release.*``)."""


@dataclass
class ReleaseReport:
    assignment: str
    notebook: Path
    leaks: list[str]


def generate_release(course: Course, assignment_id: str, root: Path | None = None) -> Path:
    """Run nbgrader's generate_assignment for ``assignment_id`` with the course's config.

    ``root`` is the course directory holding ``source/`` (default: the course root); the release
    goes to ``root/release/<assignment_id>/``. Returns that folder.
    """
    from nbgrader.apps import NbGraderAPI
    from nbgrader.coursedir import CourseDirectory
    from traitlets.config import Config

    root = Path(root or course.root)
    config = Config(course.nbgrader_config)
    config.CourseDirectory.root = str(root)
    # a throwaway gradebook and exchange: the release must not depend on (or touch) the
    # grading state, and nbgrader's API looks for an exchange as it starts (without one it
    # logs "CRITICAL Unwritable directory"; releasing to students is release_assignment's job)
    with tempfile.TemporaryDirectory() as tmp:
        config.CourseDirectory.db_url = f"sqlite:///{Path(tmp) / 'release.db'}"
        config.Exchange.root = str(Path(tmp) / "exchange")
        Path(config.Exchange.root).mkdir()
        use_inprocess_alembic_head()
        api = NbGraderAPI(coursedir=CourseDirectory(config=config), config=config)
        outcome = api.generate_assignment(assignment_id, force=True, create=True)
    if not outcome.get("success"):
        raise ReleaseError(
            "release.generate_failed",
            assignment=assignment_id,
            detail=f"{outcome.get('error') or ''}\n{outcome.get('log') or ''}".strip(),
        )
    return root / "release" / assignment_id


def leaked_lines(source_nb: nbformat.NotebookNode, release_nb: nbformat.NotebookNode) -> list[str]:
    """Solution and hidden-test lines of ``source_nb`` that appear in ``release_nb``."""
    secret = set()
    for cell in source_nb.cells:
        for pattern in (SOLUTION, HIDDEN):
            for block in pattern.findall(cell.source):
                for line in block.splitlines():
                    line = line.strip()
                    if len(line) >= 8 and not line.startswith("#"):
                        secret.add(line)
    released = "\n".join(c.source for c in release_nb.cells)
    leaks = [f"{m!r}" for m in MARKERS if m in released]  # a marker left in the release
    leaks += [f"{line!r}" for line in sorted(secret) if line in released]
    return leaks


def release(
    course: Course, assignment_id: str | None = None, *, self_test: bool = True
) -> list[ReleaseReport]:
    """Generate ``release/`` for one assignment (or all) and check it leaks nothing; then
    (``self_test``) grade the reference solution, which must score full marks
    (``autograder.reference``: a ``ReleaseError`` otherwise; its result is cached for the
    feedback's reference curves)."""
    ids = [assignment_id] if assignment_id else sorted(course.assignments)
    reports = []
    for aid in ids:
        spec = course.assignment(aid)
        folder = generate_release(course, aid)
        shutil.rmtree(folder / ".ipynb_checkpoints", ignore_errors=True)
        release_path = folder / spec.notebook
        source_nb = nbformat.read(course.source_dir / aid / spec.notebook, as_version=4)
        release_nb = nbformat.read(release_path, as_version=4)
        leaks = leaked_lines(source_nb, release_nb)
        if leaks:
            raise ReleaseError("release.leaks", path=str(release_path), leaks=leaks)
        write_practice_key(course, aid, folder)
        if self_test:
            try:
                reference.self_test(course, aid)
            except reference.ReferenceBelowFullMarks as exc:
                raise ReleaseError(exc.note.id, **exc.note.params) from None
        reports.append(ReleaseReport(aid, release_path, leaks))
    return reports


def write_practice_key(course: Course, assignment_id: str, folder: Path) -> Path | None:
    """In practice mode, ``practice.json`` beside the release notebook (the hidden checkers'
    answer key, as salted digests: ``dlcourse.practice``); in graded mode, make sure there is
    none (an assignment switched back to graded must not keep shipping its answers)."""
    path = folder / practice.FILENAME
    if course.assignment(assignment_id).mode != "practice":
        path.unlink(missing_ok=True)
        return None
    salt = hashlib.sha256(f"{course.course_id}/{assignment_id}".encode()).hexdigest()[:16]
    return practice.write(folder, practice_key(assignment_id), salt)
