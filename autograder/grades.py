"""The grades layer: one student's grade for one assignment as every consumer needs it.

It joins the three sources once: the results file (status, messages, notes), nbgrader's
gradebook (the scores, with formgrader's manual overrides winning) and the assignment's
cells. Exporters (CSV, Canvas, Moodle, LTI), the LMS comments, the feedback pages and the
class report all read grades from here, so an override is the same grade everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from autograder.config import Course
from autograder.results import AssignmentResult, ResultsFile, error_text, note_texts


@dataclass
class CellGrade:
    score: float
    max_score: float
    auto_score: float | None  # what the grader gave (differs when overridden in formgrader)
    messages: list[tuple[bool, str]] = field(default_factory=list)  # (passed, text)


@dataclass
class GradeRow:
    """One student's grade for one assignment: gradebook scores plus the grader's messages."""

    student: str
    assignment: str
    score: float
    max_score: float
    status: str  # "graded" | "error" | "" (in the gradebook, not in the results file)
    error: str | None
    cells: dict[str, CellGrade] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    error_note: dict | None = None  # the same texts as data (``autograder.results.Note``)
    notes: list[dict] = field(default_factory=list)

    def error_in(self, language: str) -> str | None:
        return error_text(self.error_note, self.error, language)

    def notes_in(self, language: str) -> list[str]:
        return note_texts(self.notes, self.problems, language)

    @property
    def overridden(self) -> bool:
        return any(
            c.auto_score is not None and abs(c.auto_score - c.score) > 1e-9
            for c in self.cells.values()
        )


def class_grades(course: Course, assignment_id: str) -> list[GradeRow]:
    """Every student the gradebook holds for ``assignment_id`` (manual overrides win), with the
    status and messages of the results file. Sorted by student id."""
    from autograder.core import Assignment
    from autograder.record import gradebook_scores

    assignment = Assignment.from_course(course, assignment_id)
    scores = gradebook_scores(course.db_url, assignment)
    results = ResultsFile(course.results_dir, assignment_id).load()
    rows = []
    for student, cells in sorted(scores.items()):
        result = results.students.get(student)
        row = GradeRow(
            student=student,
            assignment=assignment_id,
            score=round(sum(cells.values()), 6),
            max_score=assignment.max_score,
            status=result.status if result else "",
            error=result.error if result else None,
            problems=list(result.problems) if result else [],
            error_note=result.error_note if result else None,
            notes=list(result.notes) if result else [],
        )
        for gid, points in assignment.cell_points.items():
            got = result.cells.get(gid) if result else None
            row.cells[gid] = CellGrade(
                score=float(cells.get(gid, 0.0)),
                max_score=points,
                auto_score=got.score if got else None,
                messages=[(c.passed, c.message) for c in got.checks] if got else [],
            )
        rows.append(row)
    return rows


def with_gradebook_scores(results: AssignmentResult, grades: list[GradeRow]) -> AssignmentResult:
    """``results`` with every cell's score as the gradebook holds it (a formgrader override
    wins) and ``reviewed`` set where it differs from the grader's: what the feedback pages
    and the report show, so they say the grade every export sends."""
    by_student = {g.student: g for g in grades}
    out = AssignmentResult(results.assignment, refused=list(results.refused))
    for sid, result in results.students.items():
        grade = by_student.get(sid)
        if grade is None:
            out.students[sid] = result
            continue
        cells = {}
        for gid, cell in result.cells.items():
            booked = grade.cells.get(gid)
            if booked is not None and abs(booked.score - cell.score) > 1e-9:
                cell = replace(cell, score=booked.score, reviewed=True)
            cells[gid] = cell
        out.students[sid] = replace(
            result, cells=cells, score=round(sum(c.score for c in cells.values()), 6)
        )
    return out


def reviewed_results(course: Course, assignment_id: str) -> AssignmentResult:
    """The results file with the gradebook's scores (``with_gradebook_scores``)."""
    results = ResultsFile(course.results_dir, assignment_id).load()
    try:
        grades = class_grades(course, assignment_id)
    except Exception:  # noqa: BLE001 - no gradebook yet (results copied in): show the grader's
        return results
    return with_gradebook_scores(results, grades)
