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
from autograder.sandbox import (
    BubblewrapLauncher,
    SandboxSettings,
    bubblewrap_problem,
    reason_text,
)
from tests.adversarial.build import (
    AID,
    CASES,
    FULL,
    HONEST,
    LAST,
    NOTEBOOK,
    ORPHAN_MARKER,
    REFUSED_FOLDERS,
    SECRET_ENV,
    STAGE_CASES,
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
            f"{reason_text(problem)} (install it: apt-get install bubblewrap; CI does)"
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
    assert len(CASES) >= 70


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


# --- every later stage, for everyone ---------------------------------------------------------

ESCAPE_OR_CONTROL = re.compile(
    "[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)


@dataclasses.dataclass
class Stages:
    forced: object  # results of `grade --force` on the stage cases and the honest students
    rerun: object  # results of a plain rerun (nothing changed: nobody graded again)
    regraded: object
    changes: list
    feedback: list[Path]
    report: Path
    csv: Path
    canvas: Path
    comments: dict[str, tuple[str, str]]  # LMS comments per student: (plain text, Moodle HTML)
    grader_rss_mb: float  # the grader's peak memory after all of it


@pytest.fixture(scope="session")
def stages(adversarial) -> Stages:
    """After the first grading: --force on the cases that attack the later stages, a rerun,
    a regrade, feedback, the report, every export and the LMS comments, for the whole class."""
    import resource

    from autograder.batch import grade_class, regrade_class
    from autograder.export import export
    from autograder.feedback import write_feedback
    from autograder.grades import class_grades
    from autograder.lms.common import feedback_text
    from autograder.lms.moodle import feedback_html
    from autograder.report import write_report

    course = adversarial.course
    launcher = BubblewrapLauncher(LIMITS)
    chosen = [c.student for c in STAGE_CASES if c.stages] + [*HONEST, LAST]
    forced = grade_class(
        course, AID, students=chosen, launcher=launcher, progress=False, workers=1, force=True
    )
    rerun = grade_class(course, AID, launcher=launcher, progress=False, workers=1)
    regraded, changes = regrade_class(course, AID)
    feedback = write_feedback(course, AID)
    report = write_report(course, AID)
    roster = course.state_dir / "roster.csv"
    students = sorted(regraded.students)
    roster.write_text(
        "student_id,name,sortable_name,canvas_id,email\n"
        + "".join(f'{s},N {i},"{i}, N",{5000 + i},{s}@uni.es\n' for i, s in enumerate(students)),
        encoding="utf-8",
    )
    course.nbgrader_config.Course.lms = {
        "roster": str(roster),
        "canvas": {"assignments": {AID: {"id": 7001, "name": "Lección 4"}}},
    }
    csv_path = export(course, "csv", AID)
    canvas = export(course, "canvas", AID)
    comments = {
        row.student: (feedback_text(row, course.language), feedback_html(row, course.language))
        for row in class_grades(course, AID)
    }
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return Stages(
        forced, rerun, regraded, changes, feedback, report, csv_path, canvas, comments, rss
    )


def test_every_stage_went_on_for_everyone(adversarial, stages):
    everyone = set(adversarial.results.students)
    stage_students = {c.student for c in STAGE_CASES if c.stages} | set(HONEST) | {LAST}
    assert set(stages.forced.students) == everyone  # the file keeps the others too
    assert set(stages.rerun.students) == everyone
    assert set(stages.regraded.students) == everyone
    for student in stage_students:
        before, after = adversarial.results.students[student], stages.forced.students[student]
        case = CASES.get(student.removeprefix("adv_"))
        allowed = (
            (case.status,)
            if case and isinstance(case.status, str)
            else case.status
            if case
            else ("graded",)
        )
        assert after.status in allowed, (student, after.status, after.error)
        assert {g: c.score for g, c in after.cells.items()} == {
            g: c.score for g, c in before.cells.items()
        }, student
    # nothing changed, so a rerun grades nobody and a regrade changes nothing
    for student, result in stages.rerun.students.items():
        assert result.cells.keys() == stages.forced.students[student].cells.keys()
    assert not stages.changes, stages.changes
    written = {p.parent.parent.name for p in stages.feedback}
    assert written == everyone, everyone - written
    assert stages.report.is_file()
    page = stages.report.read_text(encoding="utf-8")
    for student in everyone:
        assert student in page, student


def test_invalid_ids_are_refused_and_reach_nothing(adversarial, stages):
    refused = {r["folder"] for r in adversarial.results.refused}
    assert refused == {ascii(name) for name in REFUSED_FOLDERS}
    book = gradebook_scores(adversarial.course.db_url, _assignment(adversarial.course))
    exported = stages.csv.read_text(encoding="utf-8") + stages.canvas.read_text(encoding="utf-8")
    for name in REFUSED_FOLDERS:
        assert name not in adversarial.results.students and name not in book
        assert name not in exported
    assert "HYPERLINK" not in exported


def test_nothing_a_kernel_printed_reaches_people_raw(adversarial, stages):
    texts = {"results": (adversarial.course.results_dir / f"{AID}.json").read_text("utf-8")}
    texts["csv"] = stages.csv.read_text("utf-8")
    texts["canvas"] = stages.canvas.read_text("utf-8")
    texts["report"] = stages.report.read_text("utf-8")
    for path in stages.feedback:
        texts[str(path)] = path.read_text("utf-8")
    for student, (plain, rich) in stages.comments.items():
        texts[f"comment:{student}"] = plain + rich
    for student, result in stages.regraded.students.items():
        texts[f"said:{student}"] = _said(result)
    from autograder.batch import format_table

    texts["table"] = format_table(stages.regraded)
    bad = {
        name: ESCAPE_OR_CONTROL.findall(text.replace("\n", "").replace("\t", ""))
        for name, text in texts.items()
    }
    assert not {k: v for k, v in bad.items() if v}
    json.loads(texts["results"])  # still JSON, and UTF-8 (read_text would have failed)
    fake = stages.regraded.students["adv_fake_bwrap_line"].error
    assert "\x1b" not in fake and "\r" not in fake


def test_escape_reason_is_quoted_as_text(stages):
    result = stages.regraded.students["adv_escapes_in_error"]
    said = _said(result)
    assert "ValueError" in said or "error" in said.lower()
    assert "\x1b" not in said


def test_executed_notebooks_are_inert(adversarial):
    """What formgrader renders as HTML (outputs, Markdown cells) holds no active content; code
    is shown as text, so it may mention anything."""
    import nbformat

    for student in adversarial.results.students:
        executed = adversarial.ctx.autograded(student) / NOTEBOOK
        if not executed.is_file():
            continue
        nb = nbformat.read(executed, as_version=4)
        rendered = [c.source for c in nb.cells if c.cell_type == "markdown"]
        for cell in nb.cells:
            for output in cell.get("outputs", []):
                for mime, value in output.get("data", {}).items():
                    assert "javascript" not in mime and mime != "image/svg+xml", (student, mime)
                    if mime != "text/plain":
                        rendered.append(value if isinstance(value, str) else "".join(value))
        text = "\n".join(rendered).lower()
        for needle in ("<script", "onerror=", "onload=", "javascript:", "<iframe"):
            assert needle not in text, (student, needle)
    active = nbformat.read(adversarial.ctx.autograded("adv_active_outputs") / NOTEBOOK, 4)
    html = [
        o["data"]["text/html"]
        for c in active.cells
        for o in c.get("outputs", [])
        if "text/html" in o.get("data", {})
    ]
    assert any("<b>hola</b>" in h for h in html), html  # the honest part is kept


def test_submission_folder_files_decide_nothing(adversarial):
    results = adversarial.results.students
    for name in ("timestamp_free_text", "timestamp_is_folder"):
        result = results[f"adv_{name}"]
        assert any("timestamp.txt" in p for p in result.problems), result.problems
        stamp = adversarial.ctx.autograded(f"adv_{name}") / "timestamp.txt"
        assert not stamp.exists()  # no time is known: none is written
    assert results["adv_forged_lms_note"].lateness == {}


def test_bombs_are_refused_by_the_bounded_readers(adversarial):
    import resource

    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    artifacts = Artifacts(adversarial.ctx.autograded("adv_npz_bomb") / "artifacts")
    with pytest.raises(ArtifactError):
        artifacts.read_npz("model/weights.npz")
    deep = Artifacts(adversarial.ctx.autograded("adv_deep_answer_file") / "artifacts")
    with pytest.raises(ArtifactError, match="nested"):
        deep.answer("steps_lr_003")
    grew_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grew_mb < 200, grew_mb


def test_the_grader_stayed_small(stages):
    # the 650,000-cell notebook, the bombs and the deep files are refused unread
    assert stages.grader_rss_mb < 2_000, stages.grader_rss_mb


def _assignment(course):
    from autograder.core import Assignment

    return Assignment.from_course(course, AID)
