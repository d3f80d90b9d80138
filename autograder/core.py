"""The stateless grading core: ``grade(submission, assignment) -> StudentResult``.

It reads nothing but its arguments and writes nothing but its work folder, so the same call
runs serially, in a process pool or on a Dask worker. Recording in the gradebook, feedback and
exports all consume the ``StudentResult`` it returns.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from autograder import check
from autograder.capture import EXECUTION_RECORD
from autograder.config import Course
from autograder.execute import (
    ARTIFACTS_DIRNAME,
    MAX_NOTEBOOK_BYTES,
    KernelLauncher,
    RunSettings,
    SubmissionError,
    WarmKernel,
    grade_id,
    nbgrader_meta,
    read_submission,
    rebuild,
    run_notebook,
)
from autograder.results import CellResult, Note, StudentResult
from autograder.untrusted import (
    UnsafeInput,
    clean_text,
    neutralize_active_content,
    plain_data,
    read_bounded,
    remove_tree,
)
from dlcourse import layout


@dataclass(frozen=True)
class Assignment:
    """Everything needed to grade one assignment, as plain data (picklable, path-free)."""

    id: str
    notebook: str  # released file name, e.g. "learning_rate.ipynb"
    source_json: str  # the instructor's notebook (solutions and hidden tests)
    release_json: str  # the student's version (stubs in answer cells)
    cell_points: dict[str, float]
    timeout: float  # the whole notebook, seconds
    cell_timeout: float | None = None  # one cell; None: the course's (GradingSettings)

    @classmethod
    def from_course(cls, course: Course, assignment_id: str) -> Assignment:
        spec = course.assignment(assignment_id)
        source_path = course.source_dir / assignment_id / spec.notebook
        release_path = course.release_dir / assignment_id / spec.notebook
        source = source_path.read_text(encoding="utf-8")
        release = release_path.read_text(encoding="utf-8") if release_path.is_file() else source
        nb = nbformat.reads(source, as_version=4)
        points = {
            grade_id(c): float(nbgrader_meta(c).get("points", 0))
            for c in nb.cells
            if grade_id(c) and nbgrader_meta(c).get("grade")
        }
        return cls(
            assignment_id, spec.notebook, source, release, points, spec.timeout, spec.cell_timeout
        )

    @property
    def max_score(self) -> float:
        return float(sum(self.cell_points.values()))


@dataclass(frozen=True)
class GradingSettings:
    """The course settings the core needs (plain data, so it travels to workers)."""

    language: str = "es"
    cell_timeout: float = 120.0
    notebook_timeout: float | None = None  # None: the assignment's own limit
    data_home: str = ""
    thresholds: dict[str, Any] = field(default_factory=dict)
    # Threads of each student kernel (TensorFlow, BLAS). Fixed, whatever the number of workers,
    # so that a notebook trains the same way (bit for bit) serially, in a pool or on Dask.
    kernel_threads: int = 1

    @classmethod
    def from_course(cls, course: Course) -> GradingSettings:
        from dlcourse.data import get_data_home

        data_home = str(get_data_home(course.data_home or None).resolve())
        return cls(
            course.language,
            course.cell_timeout,
            None,
            data_home,
            dict(course.thresholds),
            course.kernel_threads,
        )

    def run_settings(self, **limits: float) -> RunSettings:
        """How a kernel runs for this course; ``limits``: the notebook's own time limits."""
        return RunSettings(data_home=self.data_home, extra_env=self.kernel_env(), **limits)

    def kernel_env(self) -> dict[str, str]:
        threads = str(max(1, int(self.kernel_threads)))
        return {
            "TF_NUM_INTRAOP_THREADS": threads,
            "TF_NUM_INTEROP_THREADS": threads,
            "OMP_NUM_THREADS": threads,
            "OPENBLAS_NUM_THREADS": threads,
            "MKL_NUM_THREADS": threads,
        }


def grade(
    submission: str | Path,
    assignment: Assignment,
    settings: GradingSettings | None = None,
    *,
    student: str = "student",
    workdir: str | Path | None = None,
    launcher: KernelLauncher | None = None,
    warm: Awaitable[WarmKernel | None] | None = None,
) -> StudentResult:
    """Grade one submitted notebook. Never raises for a bad submission: the result says why.

    ``workdir`` receives the executed notebook and the captured artifacts (a temporary folder,
    removed afterwards, when not given). ``warm``: a kernel prestarted for this notebook
    (``autograder.prestart``); the scores are the same with or without it.
    """
    settings = settings or GradingSettings()
    if workdir is None:
        with tempfile.TemporaryDirectory(prefix="autograder-") as tmp:
            return grade(
                submission,
                assignment,
                settings,
                student=student,
                workdir=tmp,
                launcher=launcher,
                warm=warm,
            )
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    digest = submission_digest(submission)
    try:
        nb = read_submission(submission)
    except SubmissionError as exc:
        result = error_result(
            student,
            assignment,
            exc.note,
            settings.language,
            {"total": time.perf_counter() - started},
        )
        result.submission_sha256 = digest
        return result

    rebuilt = rebuild(
        nb,
        nbformat.reads(assignment.source_json, as_version=4),
        nbformat.reads(assignment.release_json, as_version=4),
    )
    del nb  # the submission as read may be large; only the rebuilt notebook runs
    notebook_timeout = settings.notebook_timeout or assignment.timeout
    # reading and rebuilding count against the notebook's own time budget
    remaining = notebook_timeout - (time.perf_counter() - started)
    if remaining <= 1:
        result = error_result(
            student,
            assignment,
            Note("submission.read_timeout", {"seconds": f"{notebook_timeout:.0f}"}),
            settings.language,
            {"total": time.perf_counter() - started},
        )
        result.submission_sha256 = digest
        return result
    run = settings.run_settings(
        # an assignment whose training cell is long (lesson 5) sets its own cell limit
        cell_timeout=min(assignment.cell_timeout or settings.cell_timeout, remaining),
        notebook_timeout=remaining,
    )
    prepared = time.perf_counter()
    record = run_notebook(rebuilt.notebook, workdir, run, launcher, warm=warm)
    executed = time.perf_counter()
    artifacts = workdir / ARTIFACTS_DIRNAME
    _write_execution_record(artifacts, record.to_dict())
    # formgrader shows this notebook in the instructor's browser: nothing in it may run there
    neutralize_active_content(rebuilt.notebook)
    _replace_with_file(workdir / assignment.notebook)
    nbformat.write(rebuilt.notebook, workdir / assignment.notebook)

    checked = time.perf_counter()
    cells = check.run_checks(
        assignment.id,
        artifacts,
        assignment.cell_points,
        settings.thresholds,
        settings.language,
        data_home=settings.data_home or None,
    )
    # where the time went (docs/scale.md): the grader's own share is all but the student's
    # answer and given cells
    timing = {
        "read_rebuild": prepared - started,
        **record.phases,
        # a prestarted kernel's start and imports, overlapped with the previous notebook
        **{f"prestarted_{k}": v for k, v in record.prestarted.items()},
        "execute": record.seconds,
        "write_notebook": checked - executed,
        "check": time.perf_counter() - checked,
        "total": time.perf_counter() - started,
    }
    status, error = "graded", None
    if record.status != "completed":
        status, error = "error", record.reason
    result = _student_result(student, assignment, status, error, cells, rebuilt.problems, timing)
    result.submission_sha256 = digest
    return result


def submission_digest(path: str | Path) -> str | None:
    """sha256 of the submitted file: a rerun skips students whose file has not changed."""
    try:
        # bounded like the read itself: a file past the limit is refused, its digest unneeded
        return hashlib.sha256(read_bounded(path, MAX_NOTEBOOK_BYTES)).hexdigest()
    except (OSError, UnsafeInput):
        return None


def _replace_with_file(target: Path) -> None:
    """Clear ``target`` for a file the grader writes after the kernel is gone: whatever the
    student's code left there (a folder, a link, a file) is removed."""
    if target.is_symlink() or target.exists():
        remove_tree(target)


def _write_execution_record(artifacts: Path, record: dict[str, Any]) -> None:
    target = artifacts / EXECUTION_RECORD
    artifacts.mkdir(parents=True, exist_ok=True)
    _replace_with_file(target)
    record = {**record, "layout_version": layout.LAYOUT_VERSION}
    target.write_text(json.dumps(plain_data(record, max_depth=6)), encoding="utf-8")


def as_note(value: Note | str) -> Note:
    """A note as data; a plain text (from an older caller) is carried as it is."""
    return value if isinstance(value, Note) else Note("plain", {"text": str(value)})


def clean_note(note: Note) -> Note:
    # parameters quote the kernel and the notebook: printable, bounded text only
    return Note(note.id, plain_data(dict(note.params), max_depth=3, limit=300))


def _student_result(
    student: str,
    assignment: Assignment,
    status: str,
    error: Note | str | None,
    cells: dict[str, CellResult],
    problems: list[Note | str],
    timing: dict[str, float],
) -> StudentResult:
    error_note = clean_note(as_note(error)) if error else None
    notes = [clean_note(as_note(p)) for p in problems[:50]]
    return StudentResult(
        student=student,
        assignment=assignment.id,
        status=status,  # type: ignore[arg-type]
        error=clean_text(error_note.text("en"), 500) if error_note else None,
        score=round(sum(c.score for c in cells.values()), 6),
        max_score=assignment.max_score,
        cells=cells,
        notebook=assignment.notebook,
        problems=[clean_text(n.text("en"), 300) for n in notes],
        timing={k: round(v, 3) for k, v in timing.items()},
        error_note=error_note.to_dict() if error_note else None,
        notes=[n.to_dict() for n in notes],
    )


def add_notes(result: StudentResult, notes: list[Note] | tuple[Note, ...]) -> None:
    """Append notes found around the grading (collect's, the batch's) to ``result``."""
    for note in map(clean_note, map(as_note, notes)):
        result.problems.append(clean_text(note.text("en"), 300))
        result.notes.append(note.to_dict())


def error_result(
    student: str,
    assignment: Assignment,
    reason: Note | str,
    language: str = "es",
    timing: dict[str, float] | None = None,
) -> StudentResult:
    """A submission that could not be graded at all: every cell at zero, with the reason."""
    note = clean_note(as_note(reason))
    cells = check.failed_cells(assignment.cell_points, "submission_error", note, language)
    return _student_result(student, assignment, "error", note, cells, [], timing or {})
