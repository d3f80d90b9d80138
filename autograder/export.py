"""Export stage: grades out of the gradebook into the formats instructors and LMSs take.

Grades come from the grades layer (``autograder.grades``): nbgrader's gradebook scores (a
manual override in formgrader is exported too) with the results file's status and reasons.
The LMS formats are found by name and imported when asked for (``EXPORTERS``).
"""

from __future__ import annotations

import csv
import importlib
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

from autograder.config import Course
from autograder.core import Assignment
from autograder.grades import class_grades
from autograder.results import StageError
from autograder.spreadsheet import safe_row


class _Exporters(Mapping):
    """Export formats by name. The LMS formats are named by where they live and imported only
    when asked for (Otter-Grader's lazy runners), so this module imports no exporter and no
    exporter imports it: registering never makes an import circle."""

    def __init__(self, lazy: dict[str, str]):
        self._lazy = dict(lazy)  # name -> "module:function"
        self._loaded: dict[str, Callable[..., Path]] = {}

    def __getitem__(self, name: str) -> Callable[..., Path]:
        if name not in self._loaded:
            module, _, attr = self._lazy[name].partition(":")  # KeyError: unknown format
            self._loaded[name] = getattr(importlib.import_module(module), attr)
        return self._loaded[name]

    def __iter__(self) -> Iterator[str]:
        return iter(sorted({*self._lazy, *self._loaded}))

    def __len__(self) -> int:
        return len({*self._lazy, *self._loaded})

    def add(self, name: str, func: Callable[..., Path]) -> None:
        self._loaded[name] = func
        self._lazy.pop(name, None)


EXPORTERS = _Exporters(
    {
        "canvas": "autograder.lms.canvas:export_canvas",
        "moodle": "autograder.lms.moodle:export_moodle",
        "lti": "autograder.lms.lti:export_lti",
    }
)


def exporter(name: str):
    """Register an export format of your own (``autograder export --format NAME``)."""

    def register(func: Callable[..., Path]) -> Callable[..., Path]:
        EXPORTERS.add(name, func)
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
    for aid in _graded(course, assignment_id):
        grades = class_grades(course, aid)  # the grades layer: overrides win, as everywhere
        for cell in Assignment.from_course(course, aid).cell_points:
            column = f"{aid}:{cell}"
            if column not in cell_columns:
                cell_columns.append(column)
        for grade in grades:
            row = {
                "student_id": grade.student,
                "assignment": aid,
                "score": grade.score,
                "max_score": grade.max_score,
                "status": grade.status,
                "error": grade.error_in(course.language) or "",
            }
            row.update({f"{aid}:{gid}": cell.score for gid, cell in grade.cells.items()})
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
    """Export grades in ``format`` (see ``EXPORTERS``); returns the file written.

    Raises ``StageError`` when the gradebook holds no grade to export: an empty file that
    looks like a successful export would be uploaded and overwrite nothing, silently."""
    try:
        func = EXPORTERS[format]
    except KeyError:
        raise ValueError(f"Unknown export format {format!r}; known: {sorted(EXPORTERS)}") from None
    if assignment_id:
        course.assignment(assignment_id)  # a misspelt id names the nearest one
    if not any(class_grades(course, aid) for aid in _graded(course, assignment_id)):
        raise StageError("cli.nothing_exported", assignment=assignment_id or "", url=course.db_url)
    return func(course, assignment_id=assignment_id, out=out, **options)


def _graded(course: Course, assignment_id: str | None) -> list[str]:
    return [a for a in _assignments(course, assignment_id) if (course.source_dir / a).is_dir()]
