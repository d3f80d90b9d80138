"""Grade a whole class: the core over every submission, one writer for the gradebook.

Each finished student is recorded in the gradebook and in the results file at once, so an
interrupted run loses nothing it had finished. A broken or hostile submission fails alone.
"""

from __future__ import annotations

import logging
import shutil
import sys
import time
from pathlib import Path

from tqdm import tqdm

from autograder.check import CheckerError
from autograder.collect import Submission, find_submissions
from autograder.config import Course
from autograder.core import Assignment, GradingSettings, error_result, grade
from autograder.execute import KernelLauncher
from autograder.record import open_gradebook, record_result, sync_assignment
from autograder.results import AssignmentResult, StudentResult

log = logging.getLogger(__name__)


def results_path(course: Course, assignment_id: str) -> Path:
    return course.results_dir / f"{assignment_id}.json"


def load_results(course: Course, assignment_id: str) -> AssignmentResult:
    path = results_path(course, assignment_id)
    if path.is_file():
        return AssignmentResult.read_json(path)
    return AssignmentResult(assignment_id)


def grade_submission(course: Course, assignment: Assignment, settings: GradingSettings,
                     submission: Submission, launcher: KernelLauncher | None = None
                     ) -> StudentResult:
    """Grade one collected submission into ``autograded/<student>/<assignment>/``."""
    if submission.path is None:
        return error_result(submission.student, assignment, submission.problem or "no notebook",
                            settings.language)
    workdir = course.autograded_dir / submission.student / assignment.id
    if workdir.exists():
        shutil.rmtree(workdir)
    try:
        result = grade(submission.path, assignment, settings, student=submission.student,
                       workdir=workdir, launcher=launcher)
    except CheckerError:
        raise  # the grader is broken for everyone: stop and say so
    except Exception as exc:  # noqa: BLE001 - one student's failure must not stop the class
        log.exception("grading %s failed", submission.student)
        result = error_result(submission.student, assignment,
                              f"internal grader error ({type(exc).__name__}: {exc})"[:300],
                              settings.language)
    if submission.timestamp:
        (workdir / "timestamp.txt").write_text(submission.timestamp, encoding="utf-8")
    return result


def grade_class(
    course: Course,
    assignment_id: str,
    submitted_dir: str | Path | None = None,
    json_path: str | Path | None = None,
    students: list[str] | None = None,
    progress: bool = True,
    launcher: KernelLauncher | None = None,
) -> AssignmentResult:
    """Grade every submission of ``assignment_id`` and record the scores in the gradebook."""
    assignment = Assignment.from_course(course, assignment_id)
    settings = GradingSettings.from_course(course)
    submissions = find_submissions(submitted_dir or course.submitted_dir, assignment_id,
                                   assignment.notebook, students)
    sync_assignment(course.db_url, assignment)
    results = load_results(course, assignment_id)
    bar = tqdm(submissions, desc=f"grading {assignment_id}", unit="nb", disable=not progress,
               file=sys.stderr)
    with open_gradebook(course.db_url) as gb:  # the one writer
        for submission in bar:
            bar.set_postfix_str(submission.student)
            started = time.perf_counter()
            result = grade_submission(course, assignment, settings, submission, launcher)
            result.timing["wall"] = round(time.perf_counter() - started, 3)
            record_result(gb, assignment, result, submission.timestamp)
            results.students[submission.student] = result
            results.write_json(results_path(course, assignment_id))
    if json_path:
        results.write_json(json_path)
    return results


def format_table(results: AssignmentResult, student_ids: list[str] | None = None) -> str:
    """A plain-text grade table: one row per student, one column per graded cell."""
    ids = student_ids or sorted(results.students)
    if not ids:
        return "(no submissions)"
    cells = list(next(iter(results.students.values())).cells)
    short = [c.removeprefix("test_") for c in cells]
    header = ["student", *short, "total", "status"]
    rows = []
    for sid in ids:
        r = results.students[sid]
        rows.append([sid, *(f"{r.cells[c].score:g}" for c in cells),
                     f"{r.score:g}/{r.max_score:g}",
                     r.status if not r.error else f"{r.status}: {r.error[:60]}"])
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]
    line = lambda row: "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=False))  # noqa: E731
    return "\n".join([line(header), line(["-" * w for w in widths]), *map(line, rows)])
