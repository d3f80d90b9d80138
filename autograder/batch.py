"""Grade a whole class: the stateless core over every submission, one writer for the gradebook.

Where the core runs is a choice of *runner*: serially in this process, in a local process pool
(``workers``), or on an existing Dask cluster (``scheduler``). Whatever the runner, results come
back here and only this process writes: each finished student is committed to the gradebook and
the results file at once, so an interrupted run loses nothing it had finished, and running the
same command again grades only the students still missing (unless ``force``).
"""

from __future__ import annotations

import io
import logging
import os
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import asdict, dataclass, replace
from functools import partial
from itertools import islice
from multiprocessing import get_context
from pathlib import Path

from tqdm import tqdm

from autograder.capture import EXECUTION_RECORD
from autograder.check import CheckerError, run_checks_many
from autograder.collect import STUDENT_ID, TIMESTAMP_FILE, Scan, Submission, scan_submissions
from autograder.config import Course
from autograder.core import (
    Assignment,
    GradingSettings,
    add_notes,
    clean_note,
    error_result,
    grade,
    submission_digest,
)
from autograder.dedup import Execution, execution_of, follow, shareable
from autograder.execute import ARTIFACTS_DIRNAME, MAX_NOTEBOOK_BYTES, KernelLauncher
from autograder.prestart import PrestartPlan, prestarter, setup_imports, tidy, usable_folder
from autograder.record import (
    gradebook_scores,
    open_gradebook,
    record_result,
    remove_submissions,
    sync_assignment,
)
from autograder.results import AssignmentResult, Note, ResultsFile, StudentResult
from autograder.untrusted import UnsafeInput, clean_text, read_bounded, read_json, remove_tree
from dlcourse import layout

log = logging.getLogger(__name__)


def results_file(course: Course, assignment_id: str) -> ResultsFile:
    return ResultsFile(course.results_dir, assignment_id)


def results_path(course: Course, assignment_id: str) -> Path:
    return results_file(course, assignment_id).path


def load_results(course: Course, assignment_id: str) -> AssignmentResult:
    """The assignment's results, including students an interrupted run had finished."""
    return results_file(course, assignment_id).load()


def default_workers(course: Course) -> int:
    if course.workers > 0:
        return course.workers
    return max(1, (os.cpu_count() or 1) // max(1, course.kernel_threads))


# --- one submission ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Job:
    """One submission to grade, as plain data (it travels to pool and Dask workers)."""

    student: str
    path: str | None
    problem: Note | None
    timestamp: str | None
    workdir: str
    notes: tuple[Note, ...] = ()  # from collect: problems around the notebook
    warm_next: bool = False  # another notebook follows in this process: prestart its kernel


def grade_job(
    job: Job,
    assignment: Assignment,
    settings: GradingSettings,
    launcher: KernelLauncher | None = None,
    prestart: PrestartPlan | None = None,
) -> StudentResult:
    """Grade one job into ``job.workdir`` (the core, plus the class-level error handling).

    Never raises for anything the submission controls: whatever goes wrong around the core
    (a work folder the last run left 1,100 levels deep, a folder where ``timestamp.txt`` goes)
    becomes this student's error, and the class goes on."""
    try:
        result = _grade_job(job, assignment, settings, launcher, prestart)
    except CheckerError:
        raise  # the grader is broken for everyone: stop and say so
    except Exception as exc:  # noqa: BLE001 - one student's failure must not stop the class
        log.exception("grading %s failed", job.student)
        result = internal_error(job, assignment, settings, exc)
    add_notes(result, job.notes)
    return result


def internal_error(
    job: Job, assignment: Assignment, settings: GradingSettings, exc: BaseException
) -> StudentResult:
    result = error_result(
        job.student,
        assignment,
        Note("submission.internal", {"detail": f"{type(exc).__name__}: {exc}"[:250]}),
        settings.language,
    )
    result.submission_sha256 = submission_digest(job.path) if job.path else None
    return result


def _grade_job(
    job: Job,
    assignment: Assignment,
    settings: GradingSettings,
    launcher: KernelLauncher | None,
    prestart: PrestartPlan | None = None,
) -> StudentResult:
    if job.path is None:
        return error_result(
            job.student,
            assignment,
            job.problem or Note("submission.missing"),
            settings.language,
        )
    workdir = Path(job.workdir)
    remove_tree(workdir)  # whatever an earlier run's kernel left, however deep
    warm, kernels = None, prestarter() if prestart is not None else None
    if kernels is not None:
        warm = kernels.take(prestart.key(launcher))
        if job.warm_next:
            kernels.begin(prestart, launcher)
    try:
        result = grade(
            job.path,
            assignment,
            settings,
            student=job.student,
            workdir=workdir,
            launcher=launcher,
            warm=warm,
        )
    finally:
        if kernels is not None:
            kernels.release(warm)
    # for nbgrader's feedback and ours, written after the kernel is gone; whatever the kernel
    # left at this path (a folder, a link, a forged time) goes, known time or not
    stamp = workdir / TIMESTAMP_FILE
    if stamp.is_symlink() or stamp.exists():
        remove_tree(stamp)
    if job.timestamp:
        stamp.write_text(job.timestamp, encoding="utf-8")
    return result


def grade_remote(
    notebook: bytes | None,
    job: Job,
    assignment: Assignment,
    settings: GradingSettings,
    launcher: KernelLauncher | None = None,
) -> tuple[StudentResult, bytes]:
    """What a Dask worker runs: no shared file system, the notebook travels as bytes and the
    executed notebook and artifacts come back as a tar archive. The launcher (the sandbox)
    is plain data too: it starts the kernel with the worker's own bubblewrap."""
    from dlcourse.data import get_data_home

    if settings.data_home and not Path(settings.data_home).is_dir():
        # the grader's data home is a path on its own machine; use the worker's
        settings = replace(settings, data_home=str(get_data_home()))
    with tempfile.TemporaryDirectory(prefix="autograder-remote-") as tmp:
        path = None
        if notebook is not None:
            path = Path(tmp) / "submission.ipynb"
            path.write_bytes(notebook)
        local = replace(job, path=str(path) if path else None, workdir=str(Path(tmp) / "work"))
        result = grade_job(local, assignment, settings, launcher)
        buffer = io.BytesIO()
        work = Path(local.workdir)
        with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
            if work.exists():
                tar.add(work, arcname=".")
        return result, buffer.getvalue()


# --- runners ----------------------------------------------------------------------------------


def run_serial(
    jobs: list[Job],
    assignment: Assignment,
    settings: GradingSettings,
    launcher: KernelLauncher | None,
    prestart: PrestartPlan | None = None,
) -> Iterator[StudentResult]:
    try:
        for job in warm_next(jobs, 1 if prestart else None):
            yield grade_job(job, assignment, settings, launcher, prestart)
    finally:
        if prestart is not None:
            prestarter().discard()


def warm_next(jobs: list[Job], workers: int | None) -> list[Job]:
    """Mark the jobs after which another follows in the same process (so its kernel is
    prestarted): all but the last ``workers`` (each worker's last); none when ``None``."""
    if workers is None:
        return jobs
    last = max(0, len(jobs) - workers)
    return [replace(job, warm_next=i < last) for i, job in enumerate(jobs)]


def run_pool(
    jobs: list[Job],
    assignment: Assignment,
    settings: GradingSettings,
    launcher: KernelLauncher | None,
    workers: int,
    prestart: PrestartPlan | None = None,
) -> Iterator[StudentResult]:
    """Grade in a local process pool. A worker that dies (killed, out of memory) breaks the
    pool for every job in flight; those jobs are graded again, each in a pool of its own, so
    only the one that kills its worker again gets an error. A worker's prestarted kernel
    (``prestart``) is shut down when the worker exits."""
    broken: list[Job] = []
    jobs = warm_next(jobs, workers if prestart else None)
    yield from _pool_round(jobs, assignment, settings, launcher, workers, broken, prestart)
    for job in broken:
        again: list[Job] = []
        job = replace(job, warm_next=False)
        yield from _pool_round([job], assignment, settings, launcher, 1, again)
        for lost in again:
            result = error_result(
                lost.student, assignment, Note("submission.worker_died"), settings.language
            )
            add_notes(result, lost.notes)
            yield result


def _pool_round(
    jobs: list[Job],
    assignment: Assignment,
    settings: GradingSettings,
    launcher: KernelLauncher | None,
    workers: int,
    broken: list[Job],
    prestart: PrestartPlan | None = None,
) -> Iterator[StudentResult]:
    # "spawn": workers start clean (no inherited threads, sockets or gradebook connection)
    with ProcessPoolExecutor(
        max_workers=workers,
        mp_context=get_context("spawn"),
        initializer=die_with_grader,
        initargs=(os.getpid(),),
    ) as pool:
        futures = {
            pool.submit(grade_job, job, assignment, settings, launcher, prestart): job
            for job in jobs
        }
        for future in as_completed(futures):
            job = futures[future]
            try:
                result = future.result()
            except CheckerError:
                raise
            except BrokenProcessPool:
                broken.append(job)
                continue
            except Exception as exc:  # noqa: BLE001 - e.g. a result that would not unpickle
                result = internal_error(job, assignment, settings, exc)
            yield result


PR_SET_PDEATHSIG = 1  # prctl(2)


def die_with_grader(grader: int) -> None:
    """A pool worker's initializer: the worker is killed when the grader dies, however it dies
    (``kill -9``, the out-of-memory killer), instead of grading on into the work folders that a
    rerun of the grader is writing (its kernel's sandbox dies with it)."""
    import ctypes
    import signal

    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the pool's own checks remain
        return
    if os.getppid() != grader:  # the grader died before the request took effect
        os._exit(1)


def run_dask(
    jobs: list[Job],
    assignment: Assignment,
    settings: GradingSettings,
    launcher: KernelLauncher | None,
    scheduler: str,
) -> Iterator[StudentResult]:
    """Grade on a Dask cluster, keeping a bounded number of submissions in flight.

    The assignment (both notebooks as text) is sent to the workers once, not once per task;
    at most two submissions per worker thread are queued at a time, and each result is
    released as soon as it is unpacked, so 10,000 notebooks and their artifacts never sit in
    the scheduler's or the workers' memory at once.
    """
    from distributed import Client
    from distributed import as_completed as dask_completed

    with Client(scheduler, timeout="30s") as client:
        shared_assignment = client.scatter(assignment, broadcast=True)
        in_flight = max(4, 2 * sum(client.nthreads().values()))
        waiting = iter(jobs)

        def submit(job: Job):
            payload = None
            if job.path:
                try:  # bounded as the core bounds it: the worker would refuse it anyway
                    payload = read_bounded(job.path, MAX_NOTEBOOK_BYTES)
                except (OSError, UnsafeInput) as exc:
                    why = (
                        exc
                        if isinstance(exc, UnsafeInput)
                        else UnsafeInput("unreadable", detail=exc.strerror or type(exc).__name__)
                    )
                    job = replace(
                        job, path=None, problem=Note("submission.unreadable", {"detail": why.note})
                    )
            return client.submit(
                grade_remote,
                payload,
                job,
                shared_assignment,
                settings,
                launcher,
                pure=False,
                key=f"grade-{assignment.id}-{job.student}-{time.time_ns()}",
            )

        futures = {submit(job): job for job in islice(waiting, in_flight)}
        running = dask_completed(list(futures))
        for future in running:
            job = futures.pop(future)
            try:
                result, archive = future.result()
                _unpack(archive, Path(job.workdir))
            except CheckerError:
                raise
            except Exception as exc:  # noqa: BLE001 - this student's alone
                result = internal_error(job, assignment, settings, exc)
            future.release()
            following = next(waiting, None)
            if following is not None:
                new = submit(following)
                futures[new] = following
                running.add(new)
            yield result


def _unpack(archive: bytes, workdir: Path) -> None:
    remove_tree(workdir)
    workdir.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        tar.extractall(workdir, filter="data")  # refuses links and paths outside workdir


# --- the class --------------------------------------------------------------------------------


def _already_graded(
    results: AssignmentResult, submission: Submission, course: Course, assignment_id: str
) -> bool:
    """Finished in an earlier run, and the submitted file has not changed since."""
    done = results.students.get(submission.student)
    if done is None or done.submission_sha256 is None or submission.path is None:
        return False
    workdir = layout.work_folder(course.autograded_dir, submission.student, assignment_id)
    return done.submission_sha256 == submission_digest(submission.path) and (
        done.status == "error" or (workdir / ARTIFACTS_DIRNAME).is_dir()
    )


def grade_class(
    course: Course,
    assignment_id: str,
    submitted_dir: str | Path | None = None,
    json_path: str | Path | None = None,
    students: list[str] | None = None,
    progress: bool = True,
    launcher: KernelLauncher | None = None,
    workers: int | None = 1,
    scheduler: str | None = None,
    force: bool = False,
    allow_unsandboxed: bool = False,
    prune: bool = False,
) -> AssignmentResult:
    """Grade every submission of ``assignment_id`` and record the scores in the gradebook.

    Students recorded earlier whose submission is gone are listed in ``results.absent``; with
    ``prune`` they are removed from the results, the gradebook and ``autograded/`` too
    (``results.pruned``), so no export sends a grade for a submission that no longer exists.

    ``workers``: processes on this machine (``None``: the course's default); ``scheduler``: a
    Dask scheduler address (``tcp://host:8786``) to grade on a cluster instead. Students whose
    submission was already graded (same file) are skipped unless ``force``. Kernels run in the
    bubblewrap sandbox; without it grading is refused unless ``allow_unsandboxed`` (or the
    course setting) says otherwise (``autograder.sandbox.choose_launcher``).
    """
    if launcher is None:
        from autograder.sandbox import choose_launcher

        launcher = choose_launcher(course, allow_unsandboxed)
    assignment = Assignment.from_course(course, assignment_id)
    settings = GradingSettings.from_course(course)
    scan = scan_submissions(
        submitted_dir or course.submitted_dir, assignment_id, assignment.notebook, students
    )
    submissions = scan.submissions
    for refusal in scan.refused:  # the folder is escaped; the reason is a note
        refused = Note(
            "log.grade.refused_folder", {"folder": refusal.folder, "reason": refusal.reason}
        )
        log.warning("%s", refused.text(course.language))
    sync_assignment(course.db_url, assignment)
    results = load_results(course, assignment_id)
    results.refused = [asdict(r) for r in scan.refused]
    for stale in [sid for sid in results.students if not STUDENT_ID.fullmatch(sid)]:
        del results.students[stale]  # recorded by an older version that admitted such ids
    if not students:
        results.absent = _absent(course, assignment, results, scan)
        if prune and results.absent:
            results.pruned = _prune(course, assignment_id, results, results.absent)
    placements = _placements(course, assignment_id)
    todo = [
        s for s in submissions if force or not _already_graded(results, s, course, assignment_id)
    ]
    jobs = [
        Job(
            s.student,
            str(s.path) if s.path else None,
            s.problem,
            s.timestamp,
            str(layout.work_folder(course.autograded_dir, s.student, assignment_id)),
            s.notes,
        )
        for s in todo
    ]
    workers = default_workers(course) if workers is None else max(1, workers)
    total = len(jobs)
    followers: dict[str, list[tuple[Job, Execution]]] = {}
    workdirs = {j.student: j.workdir for j in jobs}
    if course.deduplicate:
        jobs, followers = _leaders_and_followers(jobs, assignment, settings)
    timestamps = {s.student: s.timestamp for s in todo}
    bar = tqdm(
        total=total,
        desc=f"grading {assignment_id}",
        unit="nb",
        disable=not progress,
        file=sys.stderr,
    )
    store = results_file(course, assignment_id)
    try:
        with open_gradebook(course.db_url) as gb, bar:  # the one writer

            def keep(result: StudentResult) -> None:
                result.lateness = placements.get(result.student, {})
                began = time.perf_counter()
                result = _record(gb, assignment, result, timestamps.get(result.student), settings)
                recorded = time.perf_counter()
                result.timing["gradebook"] = round(recorded - began, 4)
                store.append(result)  # on disk now: a crash after this loses nothing
                result.timing["journal"] = round(time.perf_counter() - recorded, 4)
                results.students[result.student] = result
                bar.set_postfix_str(result.student)
                bar.update()

            again: list[Job] = []  # followers of a leader whose run is not shareable
            run = partial(
                _results_of,
                assignment=assignment,
                settings=settings,
                launcher=launcher,
                prestart=prestart_plan(course, assignment, settings, workers, scheduler, launcher),
            )
            for result in run(jobs, workers=workers, scheduler=scheduler):
                keep(result)
                for job, execution in followers.pop(result.student, []):
                    shared = _shared(result, Path(workdirs[result.student]), job, execution)
                    if shared is None:
                        again.append(job)
                    else:
                        keep(shared)
            for result in run(again, workers=workers, scheduler=scheduler):
                keep(result)
    finally:
        store.save(results)  # after kill -9 this never runs; the journal holds the work
    if json_path:
        results.write_json(json_path)
    return results


def _results_of(
    jobs: list[Job],
    *,
    assignment: Assignment,
    settings: GradingSettings,
    launcher: KernelLauncher | None,
    workers: int,
    scheduler: str | None,
    prestart: PrestartPlan | None = None,
) -> Iterator[StudentResult]:
    """Every job's result, as each finishes: serially, in a pool or on Dask."""
    # nothing to execute (no notebook, a misplaced one): an error result at once, here
    yield from run_serial([j for j in jobs if j.path is None], assignment, settings, launcher)
    runs = [j for j in jobs if j.path is not None]
    try:
        if scheduler and runs:
            yield from run_dask(runs, assignment, settings, launcher, scheduler)
        elif workers > 1 and len(runs) > 1:
            workers = min(workers, len(runs))
            yield from run_pool(runs, assignment, settings, launcher, workers, prestart)
        else:
            yield from run_serial(runs, assignment, settings, launcher, prestart)
    finally:
        if prestart is not None:
            tidy(prestart)


def prestart_plan(
    course: Course,
    assignment: Assignment,
    settings: GradingSettings,
    workers: int,
    scheduler: str | None,
    launcher: KernelLauncher | None = None,
) -> PrestartPlan | None:
    """Whether this run prestarts kernels (``c.Course.prestart_kernels``, docs/scale.md).

    "auto": when a core is free for it, that is when the workers and their kernel threads
    leave half the cores or more idle (one worker on two cores): a warm-up on a busy core only
    takes the time from another notebook. Never on Dask (a worker's threads share it), and
    never when the sandbox runs every kernel as one configured uid (two students' kernels at
    once would share its process limit)."""
    mode = course.prestart_kernels
    if scheduler or mode == "never":
        return None
    if getattr(getattr(launcher, "settings", None), "uid", None) is not None:
        return None
    cores = os.cpu_count() or 1
    if mode == "auto" and 2 * workers * max(1, settings.kernel_threads) > cores:
        return None
    code = setup_imports(assignment.source_json)
    folder = course.kernels_dir
    if not code or not usable_folder(folder, course.autograded_dir):
        return None
    return PrestartPlan(str(folder), code, settings.run_settings())


def _leaders_and_followers(
    jobs: list[Job], assignment: Assignment, settings: GradingSettings
) -> tuple[list[Job], dict[str, list[tuple[Job, Execution]]]]:
    """The jobs to execute, and per leader the jobs that would execute the same notebook."""
    leaders: list[Job] = []
    followers: dict[str, list[tuple[Job, Execution]]] = {}
    first: dict[str, str] = {}  # execution key -> leader's student id
    for job in jobs:
        try:
            execution = execution_of(job.path, assignment, settings) if job.path else None
        except Exception:  # noqa: BLE001 - its own job will say what is wrong with it
            execution = None
        if execution is None or execution.key not in first:
            leaders.append(job)
            if execution is not None:
                first[execution.key] = job.student
            continue
        followers.setdefault(first[execution.key], []).append((job, execution))
    return leaders, followers


def _shared(
    leader: StudentResult, leader_workdir: Path, job: Job, execution: Execution
) -> StudentResult | None:
    """The leader's grade for ``job``'s student, or None when it must be executed itself."""
    if not shareable(leader):
        return None
    workdir = Path(job.workdir)
    try:
        result = follow(
            leader,
            leader_workdir,
            job.student,
            workdir,
            execution.problems,
            submission_digest(job.path) if job.path else None,
        )
        if job.timestamp:
            (workdir / TIMESTAMP_FILE).write_text(job.timestamp, encoding="utf-8")
    except Exception:  # noqa: BLE001 - copying failed: execute this one after all
        log.exception("sharing %s's run with %s failed", leader.student, job.student)
        return None
    add_notes(result, job.notes)
    return result


def _absent(
    course: Course, assignment: Assignment, results: AssignmentResult, scan: Scan
) -> list[str]:
    """Students the results or the gradebook hold for the assignment, without a submission."""
    present = {s.student for s in scan.submissions}
    recorded = set(results.students) | set(gradebook_scores(course.db_url, assignment))
    return sorted(recorded - present)


def _prune(
    course: Course, assignment_id: str, results: AssignmentResult, absent: list[str]
) -> list[str]:
    """Forget ``absent`` students for this assignment: results, gradebook, work folders."""
    remove_submissions(course.db_url, assignment_id, absent)
    for student in absent:
        results.students.pop(student, None)
        remove_tree(layout.work_folder(course.autograded_dir, student, assignment_id))
        log.info("pruned %s from %s", student, assignment_id)
    return list(absent)


def _record(
    gb, assignment: Assignment, result: StudentResult, timestamp: str | None, settings
) -> StudentResult:
    """Record one result in the gradebook; if that fails, the student gets an error result
    saying so (recorded without the timestamp), and the class goes on."""
    try:
        record_result(gb, assignment, result, timestamp)
        return result
    except Exception as exc:  # noqa: BLE001 - this student's alone
        log.exception("recording %s failed", result.student)
        failed = error_result(
            result.student,
            assignment,
            Note("submission.not_recorded", {"detail": f"{type(exc).__name__}: {exc}"[:250]}),
            settings.language,
        )
        failed.submission_sha256 = None  # graded again on the next run
        try:
            record_result(gb, assignment, failed)
        except Exception:  # noqa: BLE001
            log.exception("recording the error of %s failed too", result.student)
        return failed


def _placements(course: Course, assignment_id: str) -> dict[str, dict]:
    """What ``autograder collect`` recorded per student (LMS id, lateness), from the
    instructor's own collect report: never from a file in the student's submission folder."""
    from autograder.lms.collect import load_placements

    try:
        return load_placements(course, assignment_id)
    except (OSError, ValueError):
        unreadable = Note("log.grade.collect_report_unreadable", {"assignment": assignment_id})
        log.warning("%s", unreadable.text(course.language))
        return {}


@dataclass
class Change:
    student: str
    before: float
    after: float
    cells: dict[str, tuple[float, float]]


def regrade_class(
    course: Course,
    assignment_id: str,
    students: list[str] | None = None,
    json_path: str | Path | None = None,
) -> tuple[AssignmentResult, list[Change]]:
    """Re-run only the checkers on the stored artifacts (no kernels), e.g. after a checker or
    threshold change in course_config.py; returns the new results and what changed.

    All students are checked in one pytest session, and only changed scores are written to the
    gradebook, so a regrade costs a fraction of a second per student.
    """
    assignment = Assignment.from_course(course, assignment_id)
    settings = GradingSettings.from_course(course)
    results = load_results(course, assignment_id)
    folders = {
        student: layout.artifacts_folder(course.autograded_dir, student, assignment_id)
        for student in sorted(results.students)
        if not students or student in students
    }
    records = {
        s: _execution_record(f) for s, f in folders.items() if (f / EXECUTION_RECORD).is_file()
    }
    # Executed once, but the artifacts are gone (``nbgrader autograde --force`` empties the
    # folder) or of a layout this version cannot read: their old result stands, and the
    # instructor is told, since "no score changed" would be a lie for them.
    results.unchecked = sorted(
        s
        for s in folders
        if (s not in records and results.students[s].status == "graded")
        or (s in records and not layout.readable(records[s].get("layout_version")))
    )
    for student in results.unchecked:
        unreadable = Note(
            "log.regrade.no_artifacts", {"student": clean_text(student, 100, one_line=True)}
        )
        log.warning("%s", unreadable.text(course.language))
    # never executed (an unreadable file): nothing to re-check, the old result stands
    folders = {s: f for s, f in folders.items() if s in records and s not in results.unchecked}
    started = time.perf_counter()
    checked = run_checks_many(
        assignment.id,
        folders,
        assignment.cell_points,
        settings.thresholds,
        settings.language,
        data_home=settings.data_home or None,
    )
    per_student = (time.perf_counter() - started) / max(1, len(checked))
    changes: list[Change] = []
    for student, cells in checked.items():
        old = results.students[student]
        record = records[student]
        reason = record.get("reason")
        note = Note.from_dict(record.get("reason_note"))
        if note is None and isinstance(reason, str) and reason:
            note = Note("plain", {"text": clean_text(reason, 500)})  # an older record
        new = replace(
            old,
            cells=cells,
            score=round(sum(c.score for c in cells.values()), 6),
            max_score=assignment.max_score,
            status="graded" if record.get("status") == "completed" else "error",
            error=clean_text(note.text("en"), 500) if note else None,
            error_note=clean_note(note).to_dict() if note else None,
            timing={**old.timing, "regrade_check": round(per_student, 4)},
        )
        diff = {
            g: (old.cells[g].score if g in old.cells else 0.0, c.score)
            for g, c in cells.items()
            if g not in old.cells or old.cells[g].score != c.score
        }
        if diff or new.status != old.status:
            changes.append(Change(student, old.score, new.score, diff))
        results.students[student] = new
    if changes:  # the gradebook only hears about what changed
        sync_assignment(course.db_url, assignment)
        with open_gradebook(course.db_url) as gb:
            for change in changes:
                result = results.students[change.student]
                results.students[change.student] = _record(gb, assignment, result, None, settings)
    results_file(course, assignment_id).save(results)
    if json_path:
        results.write_json(json_path)
    return results, changes


def _execution_record(artifacts: Path) -> dict:
    """How the notebook ran (written by the grader, read bounded all the same)."""
    try:
        record = read_json(artifacts / EXECUTION_RECORD, max_bytes=2_000_000, max_depth=8)
    except (OSError, ValueError):
        record = None
    if not isinstance(record, dict):
        return {"status": "failed", "reason": "the record of how the notebook ran is unreadable"}
    return record


def format_table(
    results: AssignmentResult, student_ids: list[str] | None = None, language: str = "en"
) -> str:
    """A plain-text grade table: one row per student, one column per graded cell. A score that
    the instructor changed in formgrader (``CellResult.reviewed``, see
    ``grades.with_gradebook_scores``) is marked with ``*``."""
    from autograder import messages

    def say(message_id: str) -> str:
        return messages.render(message_id, None, language)

    ids = student_ids or sorted(results.students)
    if not ids:
        return say("cli.table.empty")
    cells = list(next(iter(results.students.values())).cells)
    short = [c.removeprefix("test_") for c in cells]
    header = [say("cli.table.student"), *short, say("cli.table.total"), say("cli.table.status")]
    rows = []
    for sid in ids:
        r = results.students[sid]
        status = say("cli.table.graded" if r.status == "graded" else "cli.table.error")
        error = r.error_in(language)
        rows.append(
            [
                clean_text(sid, 100, one_line=True),
                *(_cell_text(r.cells[c]) if c in r.cells else "-" for c in cells),
                f"{r.score:g}/{r.max_score:g}",
                f"{status}: {clean_text(error, 60, one_line=True)}" if error else status,
            ]
        )
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=False)]

    def line(row: list[str]) -> str:
        return "  ".join(str(x).ljust(w) for x, w in zip(row, widths, strict=False))

    table = [line(header), line(["-" * w for w in widths]), *map(line, rows)]
    if any(c.reviewed for sid in ids for c in results.students[sid].cells.values()):
        table.append(say("cli.table.reviewed"))
    return "\n".join(table)


def _cell_text(cell) -> str:
    return f"{cell.score:g}*" if cell.reviewed else f"{cell.score:g}"
