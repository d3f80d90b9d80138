"""LMS integration: submissions in from Canvas and Moodle, grades and feedback out.

=====================  =====================================================================
``lms.canvas``         "Download submissions" zip in; gradebook import CSV out
``lms.moodle``         "Download all submissions" zip in; the grading worksheet filled in
``lms.gradescope``     the autograder bundle (``setup.sh``, ``run_autograder``) and its runner
``lms.lti``            LTI 1.3 Assignment and Grade Services score passback
``lms.roster``         who is who: LMS ids <-> the course's student ids
=====================  =====================================================================

Settings live in ``course_config.py`` under ``c.Course.lms`` (a dict, read defensively: every key
is optional until the feature that needs it is used). Secrets (the LTI private key) are never
read from there: only a path to a key file, or the environment.

Every step reports what it did and what it could not do; nothing is dropped silently.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from autograder.config import Course

STATE_DIRNAME = "lms"  # under the course's state dir: collect reports, unplaced files


class LmsError(RuntimeError):
    """An LMS file or setting is missing or not what it should be; the message says how to fix it."""


# --- settings ---------------------------------------------------------------------------------


def lms_settings(course: Course) -> dict[str, Any]:
    """``c.Course.lms`` as a plain dict (empty when not set)."""
    section = course.nbgrader_config.get("Course", None)
    raw = section.get("lms", {}) if section is not None else {}
    if not isinstance(raw, dict):
        raise LmsError(f"c.Course.lms must be a dict, not {type(raw).__name__}.")
    return raw


def lms_section(course: Course, name: str) -> dict[str, Any]:
    """One part of ``c.Course.lms`` (``canvas``, ``moodle``, ``gradescope``, ``lti``)."""
    raw = lms_settings(course).get(name, {})
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise LmsError(f"c.Course.lms[{name!r}] must be a dict, not {type(raw).__name__}.")
    return raw


def per_assignment(value: Any, assignment_id: str, default: Any = None) -> Any:
    """A setting given once for all assignments or as ``{assignment id: value}``."""
    if isinstance(value, dict):
        return value.get(assignment_id, value.get("*", default))
    return default if value is None else value


def resolve_path(course: Course, value: str | os.PathLike | None) -> Path | None:
    """A path from the settings: ``~`` expanded, relative paths from the course directory."""
    if value in (None, ""):
        return None
    path = Path(os.path.expandvars(str(value))).expanduser()
    return path if path.is_absolute() else (course.root / path)


def lms_state_dir(course: Course) -> Path:
    return course.state_dir / STATE_DIRNAME


def write_json_atomic(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile("w", dir=path.parent, delete=False, suffix=".tmp",
                                     encoding="utf-8") as tmp:
        json.dump(data, tmp, ensure_ascii=False, indent=1)
    Path(tmp.name).replace(path)
    return path


# --- grades of a class, as every exporter needs them --------------------------------------------


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

    @property
    def overridden(self) -> bool:
        return any(c.auto_score is not None and abs(c.auto_score - c.score) > 1e-9
                   for c in self.cells.values())


def class_grades(course: Course, assignment_id: str) -> list[GradeRow]:
    """Every student the gradebook holds for ``assignment_id`` (manual overrides win), with the
    status and messages of the results file. Sorted by student id."""
    from autograder.core import Assignment
    from autograder.record import gradebook_scores
    from autograder.results import AssignmentResult

    assignment = Assignment.from_course(course, assignment_id)
    scores = gradebook_scores(course.db_url, assignment)
    results_file = course.results_dir / f"{assignment_id}.json"
    results = (AssignmentResult.read_json(results_file) if results_file.is_file()
               else AssignmentResult(assignment_id))
    rows = []
    for student, cells in sorted(scores.items()):
        result = results.students.get(student)
        row = GradeRow(student=student, assignment=assignment_id,
                       score=round(sum(cells.values()), 6), max_score=assignment.max_score,
                       status=result.status if result else "",
                       error=result.error if result else None,
                       problems=list(result.problems) if result else [])
        for gid, points in assignment.cell_points.items():
            got = result.cells.get(gid) if result else None
            row.cells[gid] = CellGrade(
                score=float(cells.get(gid, 0.0)), max_score=points,
                auto_score=got.score if got else None,
                messages=[(c.passed, c.message) for c in got.checks] if got else [])
        rows.append(row)
    return rows


_WORDS = {
    "es": {"total": "Total", "overridden": "calificación revisada por el profesor",
           "error": "No se pudo calificar", "notes": "Notas"},
    "en": {"total": "Total", "overridden": "grade reviewed by the instructor",
           "error": "Could not be graded", "notes": "Notes"},
}


def words(language: str) -> dict[str, str]:
    return _WORDS.get(language, _WORDS["en"])


def fmt_points(value: float) -> str:
    """``8``, ``7.5``, ``0.33``: points as people write them."""
    return f"{round(float(value), 2):g}"


def feedback_text(row: GradeRow, language: str = "es", limit: int = 4000) -> str:
    """Plain-text feedback: total, then one line per graded cell with its messages.

    Used as the LTI ``comment`` (plain text by the spec) and, escaped, for Moodle.
    """
    w = words(language)
    lines = [f"{w['total']}: {fmt_points(row.score)}/{fmt_points(row.max_score)}"]
    if row.status == "error" and row.error:
        lines.append(f"{w['error']}: {row.error}")
    for gid, cell in row.cells.items():
        mark = "✓" if cell.score >= cell.max_score - 1e-9 else "✗"
        head = f"{mark} {gid}: {fmt_points(cell.score)}/{fmt_points(cell.max_score)}"
        if cell.auto_score is not None and abs(cell.auto_score - cell.score) > 1e-9:
            head += f" ({w['overridden']})"
        texts = [t for _, t in cell.messages if t]
        lines.append(head + (" — " + " ".join(texts) if texts else ""))
    if row.problems:
        lines.append(f"{w['notes']}: " + "; ".join(row.problems))
    text = "\n".join(lines)
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- collect: the report every LMS collector returns ------------------------------------------


@dataclass
class Placed:
    """A notebook laid out as ``submitted/<student>/<assignment>/<notebook>``."""

    student: str
    lms: str
    lms_id: str  # Canvas user id / anon id, Moodle participant id
    name: str
    source: str  # member of the archive
    matched_by: str  # "roster:canvas_id", "roster:name", "lms id (no roster)", ...
    late: bool = False
    renamed_from: str | None = None
    attachment_id: str | None = None


@dataclass
class Problem:
    """Something in the archive that was not laid out as a submission, and why."""

    kind: str  # unrecognized | not_notebook | unmatched | duplicate | ambiguous | too_large | unsafe
    source: str
    detail: str
    lms_id: str | None = None
    name: str | None = None
    kept_at: str | None = None  # where the file was saved for the instructor to look at


@dataclass
class CollectReport:
    assignment: str
    lms: str
    archive: str
    notebook: str
    placed: list[Placed] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    report_path: str | None = None

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def by_student(self) -> dict[str, Placed]:
        return {p.student: p for p in self.placed}

    def summary(self) -> str:
        lines = [f"collected {len(self.placed)} submission(s) of {self.assignment} from "
                 f"{Path(self.archive).name} ({self.lms})"]
        late = [p.student for p in self.placed if p.late]
        if late:
            lines.append(f"  late ({len(late)}): {', '.join(late)}")
        renamed = [p for p in self.placed if p.renamed_from]
        for p in renamed:
            lines.append(f"  {p.student}: {p.renamed_from} was taken as {self.notebook}")
        if self.problems:
            lines.append(f"  {len(self.problems)} problem(s), not laid out as submissions:")
            for p in self.problems:
                who = f" [{p.name or ''} {p.lms_id or ''}]".replace("[ ", "[").replace(" ]", "]")
                where = f" (kept at {p.kept_at})" if p.kept_at else ""
                lines.append(f"  - {p.kind}: {p.source}{who if p.lms_id or p.name else ''}: "
                             f"{p.detail}{where}")
        if self.report_path:
            lines.append(f"  report: {self.report_path}")
        return "\n".join(lines)


def collect_report_path(course: Course, assignment_id: str) -> Path:
    return lms_state_dir(course) / f"{assignment_id}.collect.json"


def load_placements(course: Course, assignment_id: str) -> dict[str, dict[str, Any]]:
    """student id -> what the collector recorded (LMS, LMS id, name, lateness), all runs merged."""
    path = collect_report_path(course, assignment_id)
    if not path.is_file():
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    return dict(data.get("students", {}))


def collect_archive(course: Course, assignment_id: str, archive: str | os.PathLike, lms: str,
                    roster: str | os.PathLike | None = None, dry_run: bool = False
                    ) -> CollectReport:
    """``autograder collect ASSIGNMENT ARCHIVE --lms canvas|moodle [--roster CSV]``."""
    if lms == "canvas":
        from autograder.lms.canvas import collect_canvas

        return collect_canvas(course, assignment_id, archive, roster=roster, dry_run=dry_run)
    if lms == "moodle":
        from autograder.lms.moodle import collect_moodle

        return collect_moodle(course, assignment_id, archive, roster=roster, dry_run=dry_run)
    raise LmsError(f"Unknown LMS {lms!r}: use 'canvas' or 'moodle'.")
