"""The adversarial corpus, graded in one sandboxed class run between honest students.

For every case (``tests/adversarial/build.py``): the student gets a clear reason and exactly the
credit their correct answers earn (no more); the batch goes on; the honest students' grades are
unchanged; nothing outside the work folders changed. The class runs with small limits (cell 10 s,
notebook 20 s, 1 GB of memory...) so that the whole corpus takes a few minutes on 2 cores.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import stat
import sys
import time
from pathlib import Path

import pytest

from autograder.capture import ArtifactError, Artifacts
from autograder.record import gradebook_scores
from autograder.sandbox import BubblewrapLauncher, SandboxSettings, bubblewrap_problem
from tests.adversarial.build import (
    AID,
    CASES,
    FULL,
    HONEST,
    LAST,
    NOTEBOOK,
    ORPHAN_MARKER,
    SECRET_ENV,
    Context,
    build_corpus,
    build_honest,
)
from tests.conftest import make_course
from tests.sample_class import expected

pytestmark = pytest.mark.slow

CELL_TIMEOUT = 10
NOTEBOOK_TIMEOUT = 20
LIMITS = SandboxSettings(
    memory_mb=1024,
    address_space_mb=4096,
    processes=64,
    file_size_mb=32,
    disk_mb=128,
    max_files=500,
    tmp_mb=16,
    cpu_seconds=60,
)
SECRET = "hunter2-do-not-leak"


def _digest(paths: list[Path], base: Path) -> dict[str, str]:
    """``{relative path: sha256}`` of every file (and link) under ``paths``."""
    found = {}
    for top in paths:
        if not top.exists():
            continue
        files = (
            [top]
            if top.is_file()
            else sorted(p for p in top.rglob("*") if "__pycache__" not in p.parts)
        )
        for path in files:
            rel = str(path.relative_to(base))
            if path.is_symlink():
                found[rel] = "link:" + os.readlink(path)
            elif path.is_file():
                found[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
    return found


def _outside_the_work_folders(course, ctx: Context) -> dict[str, str]:
    """What the corpus attacks outside the work folders: this assignment's source, release and
    checkers, the package the kernels import, the configuration, the other
    students' submissions, an instructor file, the environment and a few system files. (Only
    these: other engineers may be editing the rest of the tree while the suite runs.)"""
    root, state = course.root, course.state_dir
    tree = _digest(
        [
            root / "source" / AID,
            root / "release" / AID,
            root / "student" / "src" / "dlcourse",
            root / "autograder" / "__init__.py",
            root / "course_config.py",
            root / "autograder" / "checkers" / f"{AID}.py",
        ],
        root,
    )
    state_files = _digest([state / "submitted", ctx.honeypot], state)
    site = sorted(Path(sys.prefix).glob("lib/python*/site-packages/*"))
    listing = {f"venv:{p.name}": str(p.stat().st_size) for p in site}
    tops = {
        f"state-entry:{p.name}": ""
        for p in state.iterdir()
        if p.name not in ("autograded", "results", "gradebook.db", "feedback")
    }
    system = {
        f"system:{p}": (
            hashlib.sha256(Path(p).read_bytes()).hexdigest() if Path(p).is_file() else "absent"
        )
        for p in ("/etc/profile", "/usr/lib/evil", "/tmp/fake.json")
    }
    return {
        **tree,
        **{f"state:{k}": v for k, v in state_files.items()},
        **listing,
        **tops,
        **system,
    }


def _written_by_a_sandbox(folders: list[Path]) -> list[str]:
    """Files under ``folders`` owned by anyone but the grader: kernels run as their own uid,
    so anything they managed to create or take over outside a work folder shows up here.
    (``autograded/`` holds the work folders; the virtualenv is checked by its listing.)"""
    me, found = os.getuid(), []
    for folder in folders:
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if d not in (".git", ".venv", "autograded")]
            found += [
                os.path.join(root, n)
                for n in dirs + files
                if os.lstat(os.path.join(root, n)).st_uid != me
            ]
    return found


@dataclasses.dataclass
class Graded:
    course: object
    ctx: Context
    results: object
    before: dict[str, str]
    after: dict[str, str]
    seconds: float
    started: float


@pytest.fixture(scope="session")
def adversarial(tmp_path_factory, data_home) -> Graded:
    problem = bubblewrap_problem(LIMITS)
    if problem:
        pytest.skip(
            f"the adversarial corpus runs in the bubblewrap sandbox, unavailable here: "
            f"{problem} (install it: apt-get install bubblewrap; CI does)"
        )
    from autograder.batch import grade_class

    base = tmp_path_factory.mktemp("adversarial")
    course = make_course(base / "state")
    spec = course.assignment(AID)
    course = dataclasses.replace(
        course,
        cell_timeout=CELL_TIMEOUT,
        assignments={
            **course.assignments,
            AID: dataclasses.replace(spec, timeout=NOTEBOOK_TIMEOUT),
        },
    )
    course.state_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(
        course.root, course.state_dir, course.state_dir / "instructor_notes.txt", base / "PWNED"
    )
    ctx.honeypot.write_text("grading notes: nobody may change this file\n")
    build_honest(course.release_dir, course.submitted_dir)
    build_corpus(course.release_dir, course.submitted_dir, ctx)
    before = _outside_the_work_folders(course, ctx)
    os.environ[SECRET_ENV] = SECRET
    started = time.time()
    try:
        results = grade_class(
            course, AID, launcher=BubblewrapLauncher(LIMITS), progress=False, workers=1
        )
    finally:
        os.environ.pop(SECRET_ENV, None)
    seconds = time.time() - started
    print(f"\nadversarial class: {len(results.students)} notebooks graded in {seconds:.0f} s")
    return Graded(
        course, ctx, results, before, _outside_the_work_folders(course, ctx), seconds, started
    )


def _said(result) -> str:
    """Everything the student is told: the error, repair notes, message ids and texts."""
    parts = [result.error or "", *result.problems]
    for cell in result.cells.values():
        for check in cell.checks:
            parts += [check.message_id, check.message, check.messages.get("en", "")]
    return "\n".join(parts)


@pytest.mark.parametrize("name", sorted(CASES))
def test_case_holds(adversarial, name):
    case = CASES[name]
    got = adversarial.results.students[case.student]
    statuses = (case.status,) if isinstance(case.status, str) else case.status
    assert got.status in statuses, (got.status, got.error)
    # exactly the credit the correct answers earn: nothing unearned, nothing honest lost
    assert {g: c.score for g, c in got.cells.items()} == case.expected_cells(), _said(got)
    assert got.max_score == sum(FULL.values())
    if case.reason:
        assert re.search(case.reason, _said(got)), _said(got)
    for gid, ids in case.messages.items():
        seen = {c.message_id for c in got.cells[gid].checks}
        assert seen & set(ids), (gid, seen, ids)
    # a clear reason: an error says why; every cell short of full marks carries a message
    if got.status == "error":
        assert got.error and len(got.error) > 10
    for gid, cell in got.cells.items():
        if cell.score < cell.max_score:
            assert any(not c.passed and c.message.strip() for c in cell.checks), gid
    if case.evidence:
        log = json.loads((adversarial.ctx.autograded(case.student) / "evidence.json").read_text())
        assert log, "the attack logged no attempt"
        assert not [e for e in log if e["ok"]], [e for e in log if e["ok"]]


def test_the_batch_went_on(adversarial):
    students = set(adversarial.results.students)
    assert students == {c.student for c in CASES.values()} | set(HONEST) | {LAST}
    assert len(CASES) >= 30


def test_honest_students_grades_are_unchanged(adversarial):
    results = adversarial.results.students
    partial = expected(AID)["partial"]["cells"]
    for student, want in (("a_perfect", FULL), ("a_partial", partial), (LAST, FULL)):
        got = results[student]
        assert got.status == "graded", (student, got.error)
        assert {g: c.score for g, c in got.cells.items()} == want, student
        assert not got.problems, (student, got.problems)


def test_honest_artifacts_were_not_touched(adversarial):
    """Re-checking the honest students' stored artifacts gives the recorded scores: no attacker
    graded after them reached their work folders."""
    from autograder.check import run_checks
    from autograder.core import Assignment, GradingSettings

    course = adversarial.course
    assignment = Assignment.from_course(course, AID)
    settings = GradingSettings.from_course(course)
    for student in (*HONEST, LAST):
        cells = run_checks(
            AID,
            adversarial.ctx.autograded(student) / "artifacts",
            assignment.cell_points,
            settings.thresholds,
            settings.language,
        )
        recorded = adversarial.results.students[student]
        assert {g: c.score for g, c in cells.items()} == {
            g: c.score for g, c in recorded.cells.items()
        }, student


def test_gradebook_holds_exactly_the_recorded_scores(adversarial):
    from autograder.core import Assignment

    assignment = Assignment.from_course(adversarial.course, AID)
    book = gradebook_scores(adversarial.course.db_url, assignment)
    for student, result in adversarial.results.students.items():
        assert book[student] == {g: c.score for g, c in result.cells.items()}, student


def test_nothing_outside_the_work_folders_changed(adversarial):
    before, after = adversarial.before, adversarial.after
    changed = sorted(k for k in set(before) | set(after) if before.get(k) != after.get(k))
    assert not changed, changed
    course = adversarial.course
    assert not _written_by_a_sandbox([course.root, course.state_dir])
    assert adversarial.ctx.honeypot.read_text().startswith("grading notes")
    assert not adversarial.ctx.pwned.exists(), "a pickle payload ran"
    autograded = {p.name for p in (adversarial.course.state_dir / "autograded").iterdir()}
    assert autograded <= set(adversarial.results.students), autograded
    for stray in ("/tmp/fill", "/dev/shm/fill"):
        path = Path(stray)
        assert not path.exists() or path.stat().st_mtime < adversarial.started, stray


def test_no_process_outlives_its_sandbox(adversarial):
    survivors = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if ORPHAN_MARKER in cmd and "sleep" in cmd:
                survivors.append((entry.name, cmd))
    assert not survivors


def test_work_folders_hold_no_links_or_special_files(adversarial):
    bad = []
    for root, dirs, files in os.walk(adversarial.course.state_dir / "autograded"):
        for name in dirs + files:
            mode = os.lstat(os.path.join(root, name)).st_mode
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                bad.append(os.path.join(root, name))
    assert not bad
    executed = adversarial.ctx.autograded("adv_symlinks_for_grader") / NOTEBOOK
    assert executed.is_file() and not executed.is_symlink()


def test_pickled_artifacts_are_never_loaded(adversarial):
    artifacts = Artifacts(adversarial.ctx.autograded("adv_forge_pickle") / "artifacts")
    with pytest.raises(ArtifactError):
        artifacts.read_npz("model/weights.npz")
    with pytest.raises(ArtifactError):
        artifacts.answer("steps_lr_003")
    assert not adversarial.ctx.pwned.exists()


def test_outputs_are_capped(adversarial):
    for student in ("adv_huge_output", "adv_huge_single_output"):
        executed = adversarial.ctx.autograded(student) / NOTEBOOK
        assert executed.stat().st_size < 8_000_000, (student, executed.stat().st_size)


def test_the_corpus_stays_fast_enough(adversarial):
    # ~50 sandboxed notebooks, a few of them waiting for a time limit
    assert adversarial.seconds < 330, adversarial.seconds
