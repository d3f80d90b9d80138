"""The class report for the instructor: one self-contained HTML page per assignment.

``write_report(course, assignment_id)`` writes ``<state>/reports/report_<assignment>.html``:
the score distribution (histogram), per-question means, the pass rate of every check with the
most common mistakes first (and the messages behind them), a table of students linking to each
feedback page, the errors and timeouts, and the grading time of every submission.

The report lives outside ``feedback/`` on purpose: nbgrader releases that tree to students,
and this page holds every student's data.
"""

from __future__ import annotations

import math
import os
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

from autograder import messages as catalogue
from autograder.capture import Artifacts
from autograder.config import Course
from autograder.feedback import (
    Text,
    environment,
    feedback_path,
    fmt_percent,
    localized_message,
    questions_from_release,
    unrunnable,
    write_text_atomic,
)
from autograder.results import AssignmentResult, CheckResult, Note, StageError, StudentResult
from dlcourse import layout

MAX_EXAMPLE_CHARS = 240
MAX_MESSAGES_PER_CHECK = 3


def report_path(course: Course, assignment_id: str) -> Path:
    return course.state_dir / "reports" / f"report_{assignment_id}.html"


# --- statistics -----------------------------------------------------------------------------


@dataclass
class MessageStat:
    message_id: str
    count: int
    example: str
    outcome: str


@dataclass
class CheckStat:
    cell: str
    check: str
    counts: Counter = field(default_factory=Counter)  # outcome -> students
    messages: Counter = field(default_factory=Counter)  # (outcome, message id) -> students
    examples: dict[str, str] = field(default_factory=dict)  # message id -> one rendered text

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    @property
    def pass_rate(self) -> float:
        return self.counts["passed"] / self.total if self.total else 0.0

    def top_messages(self) -> list[MessageStat]:
        return [
            MessageStat(mid, n, self.examples[mid], outcome)
            for (outcome, mid), n in self.messages.most_common(MAX_MESSAGES_PER_CHECK)
        ]


def check_stats(results: AssignmentResult, language: str) -> list[CheckStat]:
    """Every check's outcomes over the gradable submissions, the most failed first."""
    stats: dict[tuple[str, str], CheckStat] = {}
    for sid in sorted(results.students):
        result = results.students[sid]
        if unrunnable(result):
            continue  # nothing was checked: it is listed under errors, not as mistakes
        for gid, cell in result.cells.items():
            for check in cell.checks:
                stat = stats.setdefault((gid, check.id), CheckStat(gid, check.id))
                stat.counts[check.outcome] += 1
                if check.outcome in ("failed", "error"):  # not attempted: a count is enough
                    stat.messages[(check.outcome, check.message_id)] += 1
                    if check.message_id not in stat.examples:
                        text = localized_message(check, language)
                        if len(text) > MAX_EXAMPLE_CHARS:
                            text = text[: MAX_EXAMPLE_CHARS - 1] + "…"
                        stat.examples[check.message_id] = text
    order = {key: i for i, key in enumerate(stats)}
    mistakes = lambda s: s.total - s.counts["passed"]  # noqa: E731
    return sorted(
        stats.values(), key=lambda s: (s.pass_rate, -mistakes(s), order[(s.cell, s.check)])
    )


@dataclass
class QuestionStat:
    grade_id: str
    name: str
    title: str | None
    max_score: float
    mean: float
    full: float  # share with full marks
    not_attempted: float  # share not attempted


def question_stats(results: AssignmentResult, release_notebook: Path | None) -> list[QuestionStat]:
    gradable = [r for r in results.students.values() if not unrunnable(r)]
    first = next(iter(results.students.values()))
    questions = questions_from_release(release_notebook, list(first.cells))
    out = []
    for q in questions:
        cells = [r.cells[q.grade_id] for r in gradable if q.grade_id in r.cells]
        n = len(cells) or 1
        max_score = first.cells[q.grade_id].max_score
        out.append(
            QuestionStat(
                q.grade_id,
                q.name,
                q.title,
                max_score,
                mean=sum(c.score for c in cells) / n,
                full=sum(1 for c in cells if c.score >= c.max_score - 1e-9) / n,
                not_attempted=sum(1 for c in cells if c.not_attempted) / n,
            )
        )
    return out


@dataclass
class Incident:
    student: str
    kind: str  # a report.kind_* string key
    detail: str


CHECK_INCIDENTS = {
    "answer_cell_timeout": "report.kind_timeout",
    "answer_cell_error": "report.kind_cell_error",
    "not_executed": "report.kind_not_executed",
    "checker_error": "report.kind_checker",
    "artifact_invalid": "report.kind_not_executed",
}
RUN_INCIDENTS = {
    "timeout": "report.kind_timeout",
    "kernel_died": "report.kind_kernel",
    "failed": "report.kind_notebook",
}


INSTRUCTOR_TEXTS = "report.instructor."


def for_instructor(message_id: str, params: dict, language: str, fallback: str) -> str:
    """A message told to the instructor: ``report.instructor.<message id>`` (the same facts
    and parameters as the student's text, which says "your cell", "fix it", "resubmit"), or
    ``fallback`` when the message is neutral already (no such id)."""
    key = INSTRUCTOR_TEXTS + message_id
    if key in catalogue.catalogue():
        try:
            text = catalogue.render(key, params, language).strip()
            return text[:1].upper() + text[1:]
        except Exception:  # noqa: BLE001 - parameters of an older results file
            pass
    return fallback


def _error_for_instructor(result: StudentResult, language: str) -> str:
    note = Note.from_dict(result.error_note)
    fallback = result.error_in(language) or ""
    return for_instructor(note.id, note.params, language, fallback) if note else fallback


def _check_for_instructor(check: CheckResult, language: str) -> str:
    return for_instructor(
        check.message_id, check.params, language, localized_message(check, language)
    )


def incidents(course: Course, results: AssignmentResult, language: str) -> list[Incident]:
    """Errors, timeouts and repaired notebooks, student by student."""
    out: list[Incident] = []
    for sid in sorted(results.students):
        result = results.students[sid]
        seen: set[tuple[str, str]] = set()

        def add(kind: str, detail: str, sid: str = sid, seen: set = seen) -> None:
            if (kind, detail) not in seen:
                seen.add((kind, detail))
                out.append(Incident(sid, kind, detail))

        if unrunnable(result):
            add("report.kind_submission", _error_for_instructor(result, language))
            continue
        if result.status == "error":
            run = Artifacts(layout.artifacts_folder(course.autograded_dir, sid, result.assignment))
            try:
                status = run.execution().get("status", "")
            except Exception:  # noqa: BLE001 - an unreadable record is still an error
                status = ""
            add(
                RUN_INCIDENTS.get(status, "report.kind_notebook"),
                _error_for_instructor(result, language) or status,
            )
        for gid, cell in result.cells.items():
            for check in cell.checks:
                kind = CHECK_INCIDENTS.get(check.message_id)
                if kind:
                    add(kind, f"{gid}: {_check_for_instructor(check, language)}")
        if result.problems or result.notes:
            add("report.kind_repaired", " ".join(f"{n}." for n in result.notes_in(language)))
    return out


@dataclass
class StudentRow:
    student: str
    result: StudentResult
    link: str | None
    percent: str
    wall: float | None
    execute: float | None
    check: float | None


def _seconds(result: StudentResult, *keys: str) -> float | None:
    for key in keys:
        value = result.timing.get(key)
        if isinstance(value, (int, float)):
            return float(value)
    return None


# --- rendering ------------------------------------------------------------------------------


def render_report(
    course: Course,
    results: AssignmentResult,
    *,
    language: str,
    report_file: Path,
    feedback_dir: Path,
    notebook: str,
    generated: datetime | None = None,
) -> str:
    from autograder.plots import score_histogram

    text = Text(language)
    students = [results.students[sid] for sid in sorted(results.students)]
    max_score = max((r.max_score for r in students), default=0.0)
    scores = [r.score for r in students]
    release = course.release_dir / results.assignment / notebook

    rows = []
    for r in students:
        target = feedback_path(feedback_dir, r.student, results.assignment, notebook)
        link = None
        if target.is_file():
            link = quote(Path(os.path.relpath(target, report_file.parent)).as_posix())
        rows.append(
            StudentRow(
                r.student,
                r,
                link,
                fmt_percent(r.score, r.max_score),
                _seconds(r, "wall", "total"),
                _seconds(r, "execute"),
                _seconds(r, "check"),
            )
        )
    # the slowest first; a student who never ran (no notebook, unreadable) has no time
    timed = sorted(
        (row for row in rows if row.wall is not None and math.isfinite(row.wall)),
        key=lambda row: (-row.wall, row.student),
    )
    slowest = timed[0] if timed else None
    timing_summary = (
        text(
            "report.timing_summary",
            total=f"{sum(row.wall for row in timed):.1f}",
            mean=f"{statistics.fmean(row.wall for row in timed):.2f}",
            max=f"{slowest.wall:.2f}",
            student=slowest.student,
        )
        if slowest
        else None
    )

    cells = list(students[0].cells) if students else []
    generated = generated or datetime.now(UTC)
    return (
        environment()
        .get_template("report.html.j2")
        .render(
            t=text,
            lang=language,
            course_id=course.course_id,
            assignment=results.assignment,
            notebook=notebook,
            generated=generated.strftime("%Y-%m-%d %H:%M UTC"),
            n_students=len(students),
            n_graded=sum(1 for r in students if r.status == "graded"),
            n_errors=sum(1 for r in students if r.status == "error"),
            mean=statistics.fmean(scores) if scores else 0.0,
            median=statistics.median(scores) if scores else 0.0,
            n_full=sum(1 for r in students if r.max_score and r.score >= r.max_score - 1e-9),
            max_score=max_score,
            histogram=score_histogram(scores, max_score, text) if students else None,
            questions=question_stats(results, release) if students else [],
            checks=check_stats(results, language),
            cells=cells,
            rows=rows,
            timed_rows=timed,
            incidents=incidents(course, results, language),
            timing_summary=timing_summary,
            fmt_percent=fmt_percent,
        )
    )


def write_report(
    course: Course,
    assignment_id: str,
    *,
    language: str | None = None,
    path: str | Path | None = None,
    feedback_dir: str | Path | None = None,
) -> Path:
    """Write the class report of ``assignment_id``; returns its path.

    Links to the students' feedback pages are relative, so the report and ``feedback/`` can be
    moved or zipped together. Run ``write_feedback`` first for the links to exist.
    """
    from autograder.batch import results_path
    from autograder.grades import reviewed_results

    spec = course.assignment(assignment_id)  # a misspelt id: the nearest one, not "grade it"
    results = reviewed_results(course, assignment_id)  # formgrader's overrides win
    if not results.students:
        raise StageError(
            "cli.not_graded",
            assignment=assignment_id,
            path=str(results_path(course, assignment_id)),
        )
    target = Path(path) if path else report_path(course, assignment_id)
    html = render_report(
        course,
        results,
        language=language or course.language,
        report_file=target.resolve(),
        feedback_dir=(Path(feedback_dir) if feedback_dir else course.feedback_dir).resolve(),
        notebook=spec.notebook,
    )
    return write_text_atomic(target, html)
