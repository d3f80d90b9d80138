"""The reference solution, graded once: the checkers' self-test, and the curves feedback shows.

``release`` grades the instructor's source notebook like a submission, into
``<state>/reference/<assignment>/``, and fails when it scores below full marks: a checker, a
threshold or the solution itself is wrong, and no student should be graded by it. The result
is cached with a digest of everything it depends on (the source notebook, the assignment's
checker module and its thresholds), so feedback reuses it instead of training again while
it renders pages. Beside it, ``resources.json`` records what that grading took (seconds and
peak memory), the figures a Gradescope bundle is checked against.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

from autograder.check import checker_path
from autograder.config import Course, assignment_thresholds
from autograder.results import StudentResult, student_from_dict, student_to_dict
from dlcourse import layout

log = logging.getLogger(__name__)

REFERENCE_STUDENT = "__reference__"
RESULT_FILE = "reference.json"
DIGEST_FILE = "source.sha256"
RESOURCES_FILE = "resources.json"


class ReferenceBelowFullMarks(RuntimeError):
    """The reference solution does not get full marks: the checkers or the solution are wrong."""

    def __init__(self, assignment_id: str, result: StudentResult):
        self.result = result
        failing = [
            f"{gid} {cell.score:g}/{cell.max_score:g} "
            f"({', '.join(c.message_id for c in cell.checks if not c.passed) or '?'})"
            for gid, cell in result.cells.items()
            if cell.score < cell.max_score - 1e-9
        ]
        reason = f"; {result.error}" if result.error else ""
        super().__init__(
            f"the reference solution of {assignment_id} scores {result.score:g} of "
            f"{result.max_score:g}{reason}: {'; '.join(failing)}. Fix the checkers, the "
            "thresholds or the solution before releasing."
        )


def reference_dir(course: Course, assignment_id: str) -> Path:
    return course.state_dir / "reference" / assignment_id


def reference_digest(course: Course, assignment_id: str) -> str:
    """What the reference's grade depends on: its notebook, its checker, its thresholds."""
    spec = course.assignment(assignment_id)
    digest = hashlib.sha256()
    digest.update((course.source_dir / assignment_id / spec.notebook).read_bytes())
    digest.update(checker_path(assignment_id).read_bytes())
    thresholds = assignment_thresholds(assignment_id, course.thresholds)
    digest.update(json.dumps(thresholds, sort_keys=True).encode())
    return digest.hexdigest()


def cached_reference(course: Course, assignment_id: str) -> StudentResult | None:
    """The reference's result when it was graded with what it depends on today."""
    folder = reference_dir(course, assignment_id)
    try:
        stamp = (folder / DIGEST_FILE).read_text(encoding="utf-8").strip()
        if stamp != reference_digest(course, assignment_id):
            return None
        return student_from_dict(json.loads((folder / RESULT_FILE).read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, KeyError):
        return None


def reference_resources(course: Course, assignment_id: str) -> dict | None:
    """What grading the reference took (``seconds``; ``kernel_peak_mb`` and ``grader_peak_mb``,
    peak resident memory of the kernel and of the grading process), when measured with what it
    depends on today; None when it was not."""
    if cached_reference(course, assignment_id) is None:
        return None
    try:
        path = reference_dir(course, assignment_id) / RESOURCES_FILE
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError):
        return None


def _peak_rss_mb(children: bool) -> float:
    """Peak resident memory of this process, or of its largest reaped child (the kernel: an
    upper bound when an earlier child of this process was larger), in MB."""
    import resource

    who = resource.RUSAGE_CHILDREN if children else resource.RUSAGE_SELF
    return round(resource.getrusage(who).ru_maxrss / 1024, 1)  # KiB on Linux


def grade_reference(course: Course, assignment_id: str, *, force: bool = False) -> StudentResult:
    """Grade the source notebook (the instructor's own: no sandbox needed), or reuse the
    cached result; the cache is written only after a grading that finished."""
    if not force:
        cached = cached_reference(course, assignment_id)
        if cached is not None:
            return cached
    from autograder.core import Assignment, GradingSettings, grade

    spec = course.assignment(assignment_id)
    folder = reference_dir(course, assignment_id)
    (folder / DIGEST_FILE).unlink(missing_ok=True)
    (folder / RESOURCES_FILE).unlink(missing_ok=True)
    log.info("grading the reference solution of %s", assignment_id)
    result = grade(
        course.source_dir / assignment_id / spec.notebook,
        Assignment.from_course(course, assignment_id),
        GradingSettings.from_course(course),
        student=REFERENCE_STUDENT,
        workdir=folder,
    )
    (folder / RESULT_FILE).write_text(json.dumps(student_to_dict(result)), encoding="utf-8")
    resources = {
        "seconds": result.timing.get("total"),
        "kernel_peak_mb": _peak_rss_mb(children=True),
        "grader_peak_mb": _peak_rss_mb(children=False),
    }
    (folder / RESOURCES_FILE).write_text(json.dumps(resources), encoding="utf-8")
    (folder / DIGEST_FILE).write_text(reference_digest(course, assignment_id), encoding="utf-8")
    return result


def self_test(course: Course, assignment_id: str, *, force: bool = False) -> StudentResult:
    """``grade_reference``, raising ``ReferenceBelowFullMarks`` below full marks."""
    result = grade_reference(course, assignment_id, force=force)
    if result.status != "graded" or result.score < result.max_score - 1e-9:
        raise ReferenceBelowFullMarks(assignment_id, result)
    return result


def reference_artifacts(course: Course, assignment_id: str) -> Path:
    return reference_dir(course, assignment_id) / layout.ARTIFACTS_DIRNAME
