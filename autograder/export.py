"""Export stage: grades out of the gradebook into the formats instructors and LMSs take.

Scores come from nbgrader's gradebook (so a manual override in formgrader is exported too);
the per-student status (graded / error) comes from the results file.
"""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

from autograder.batch import load_results
from autograder.config import Course
from autograder.core import Assignment
from autograder.record import gradebook_scores
from autograder.spreadsheet import safe_row

EXPORTERS: dict[str, Callable[..., Path]] = {}


def exporter(name: str):
    """Register an export format (``autograder export --format NAME``)."""

    def register(func: Callable[..., Path]) -> Callable[..., Path]:
        EXPORTERS[name] = func
        return func

    return register


def _assignments(course: Course, assignment_id: str | None) -> list[str]:
    return [assignment_id] if assignment_id else sorted(course.assignments)


@exporter("csv")
def export_csv(
    course: Course, assignment_id: str | None = None, out: str | Path | None = None, **_options
) -> Path:
    """One row per student and assignment: per-cell scores, total, max and status."""
    out = Path(out) if out else course.exports_dir / "grades.csv"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    cell_columns: list[str] = []
    for aid in _assignments(course, assignment_id):
        if not (course.source_dir / aid).is_dir():
            continue
        assignment = Assignment.from_course(course, aid)
        scores = gradebook_scores(course.db_url, assignment)
        results = load_results(course, aid)
        for cell in assignment.cell_points:
            column = f"{aid}:{cell}"
            if column not in cell_columns:
                cell_columns.append(column)
        for student, cells in sorted(scores.items()):
            result = results.students.get(student)
            row = {
                "student_id": student,
                "assignment": aid,
                "score": round(sum(cells.values()), 6),
                "max_score": assignment.max_score,
                "status": result.status if result else "",
                "error": (result.error or "") if result else "",
            }
            row.update({f"{aid}:{cell}": score for cell, score in cells.items()})
            rows.append(row)
    fields = ["student_id", "assignment", *cell_columns, "score", "max_score", "status", "error"]
    with open(out, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(safe_row(fields))
        writer.writerows(safe_row([row.get(field, "") for field in fields]) for row in rows)
    return out


def export(
    course: Course,
    format: str = "csv",
    assignment_id: str | None = None,
    out: str | Path | None = None,
    **options,
) -> Path:
    """Export grades in ``format`` (see ``EXPORTERS``); returns the file written."""
    try:
        func = EXPORTERS[format]
    except KeyError:
        raise ValueError(f"Unknown export format {format!r}; known: {sorted(EXPORTERS)}") from None
    return func(course, assignment_id=assignment_id, out=out, **options)


from autograder.lms import canvas, lti, moodle  # noqa: E402,F401  (registers the LMS exporters)
