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
import os
from pathlib import Path

from autograder.check import checker_path
from autograder.config import Course, assignment_thresholds
from autograder.results import StageError, StudentResult, student_from_dict, student_to_dict
from autograder.sandbox import descendants, process_table
from dlcourse import layout

log = logging.getLogger(__name__)

REFERENCE_STUDENT = "__reference__"
RESULT_FILE = "reference.json"
DIGEST_FILE = "source.sha256"
RESOURCES_FILE = "resources.json"


class ReferenceBelowFullMarks(StageError):
    """The reference solution does not get full marks: the checkers or the solution are wrong
    (``release.reference_below``: each cell below its points and the checks that failed)."""

    def __init__(self, assignment_id: str, result: StudentResult):
        self.result = result
        failing = [
            {
                "cell": gid,
                "score": f"{cell.score:g}",
                "max": f"{cell.max_score:g}",
                "checks": ", ".join(c.message_id for c in cell.checks if not c.passed) or "?",
            }
            for gid, cell in result.cells.items()
            if cell.score < cell.max_score - 1e-9
        ]
        super().__init__(
            "release.reference_below",
            assignment=assignment_id,
            score=f"{result.score:g}",
            max=f"{result.max_score:g}",
            error=result.error_note or result.error or "",
            failing=failing,
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


class MemoryPeak:
    """Peak resident memory, sampled while a block runs: of the processes this process
    starts in it (the kernel and its children, together) and this process's own growth. The
    lifetime peaks (``getrusage``) would be those of a long-lived process (a test session, a
    formgrader server), not this grading's."""

    def __init__(self, interval: float = 0.1):
        import threading

        self.interval = interval
        self.kernel_mb = 0.0
        self.growth_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._before: set[int] = set()
        self._start_rss = 0.0

    def __enter__(self) -> MemoryPeak:
        self._before = set(descendants(process_table(), os.getpid()))
        self._start_rss = _rss_mb(os.getpid())
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        me = os.getpid()
        while not self._stop.is_set():
            started = [p for p in descendants(process_table(), me) if p not in self._before]
            self.kernel_mb = max(self.kernel_mb, sum(_rss_mb(p) for p in started))
            self.growth_mb = max(self.growth_mb, _rss_mb(me) - self._start_rss)
            self._stop.wait(self.interval)


def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except (OSError, ValueError, IndexError):
        return 0.0  # gone, or not Linux


def _fresh_grader_mb() -> float:
    """Resident memory of a new grader process once it has imported what grading needs (on
    Gradescope the grader is such a process), in MB; 0 when it cannot be measured."""
    import subprocess
    import sys

    program = (
        "import os, autograder.core, autograder.check, numpy\n"
        "print(int(open('/proc/self/statm').read().split()[1]) * os.sysconf('SC_PAGE_SIZE'))\n"
    )
    try:
        done = subprocess.run(
            [sys.executable, "-c", program], capture_output=True, text=True, timeout=120
        )
        return int(done.stdout.strip()) / 2**20
    except (OSError, ValueError, subprocess.SubprocessError):
        return 0.0


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
    with MemoryPeak() as memory:
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
        "kernel_peak_mb": round(memory.kernel_mb, 1),
        # a fresh grader's imports, plus what this grading added to this process
        "grader_peak_mb": round(_fresh_grader_mb() + memory.growth_mb, 1),
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
