"""Check stage: run an assignment's hidden pytest checkers on one submission's artifacts.

The checkers run in the grader's own process, on the plain data captured from the student's
kernel. Each ``test_*`` function becomes one ``CheckResult``; a cell's score is the sum of
the points of its passed checks. Nothing the student printed or returned is parsed.
"""

from __future__ import annotations

import contextlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from autograder import messages
from autograder.capture import Artifacts
from autograder.checkers.support import Fail, NotAttempted
from autograder.config import assignment_thresholds
from autograder.results import CellResult, CheckResult, Note
from autograder.untrusted import MAX_TEXT_CHARS, clean_text, plain_data

CHECKERS_DIR = Path(__file__).parent / "checkers"
VERDICT_KEY = pytest.StashKey[Any]()
# Set only when a session checks a single submission (kept for module-scoped fixtures that
# predate per-class sessions; new code should use the ``context`` fixture and ``context.cache``).
CONTEXT_KEY = pytest.StashKey["CheckContext"]()


class CheckerError(RuntimeError):
    """The checkers themselves could not run (a bug in the grader, not in the submission)."""


@dataclass
class CheckContext:
    """One submission as the checkers see it (the ``context`` fixture).

    Everything a checker needs from outside the submission comes from here: the assignment's
    thresholds (every declared one, resolved by ``autograder.config.assignment_thresholds``)
    and the data home. A checker never looks at the current directory, the environment or
    ``course_config.py``."""

    artifacts: Artifacts
    thresholds: dict[str, Any] = field(default_factory=dict)
    language: str = "es"
    student: str = "student"
    cache: dict[str, Any] = field(default_factory=dict)  # per-submission memo for checkers
    data_home: str = ""  # the folder holding the course data (``GradingSettings.data_home``)
    assignment: str = ""

    def wine_arrays(self) -> dict[str, Any]:
        """The course's data and split, read from this context's data home."""
        from autograder.checkers.support import wine_arrays

        return wine_arrays(self.data_home)


@dataclass
class _Raw:
    student: str
    check_id: str
    cell: str
    points: float
    outcome: str
    message_id: str
    params: dict[str, Any]


class _Collector:
    """pytest plugin: runs every check once per submission and turns each report into a
    ``_Raw`` outcome. One pytest session serves a whole class (regrading is then cheap)."""

    def __init__(self, contexts: list[CheckContext]):
        self.contexts = contexts
        self.raw: list[_Raw] = []
        self.errors: list[str] = []

    def pytest_configure(self, config: pytest.Config) -> None:
        config.addinivalue_line("markers", "grade_cell(grade_id, points): the graded cell checked")
        if len(self.contexts) == 1:
            config.stash[CONTEXT_KEY] = self.contexts[0]

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        # Direct parametrization overrides the ``context`` fixture: one item per submission.
        if "context" in metafunc.fixturenames:
            metafunc.parametrize(
                "context", self.contexts, ids=[f"s{i}" for i in range(len(self.contexts))]
            )

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self.errors.append(str(report.longrepr))

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        outcome = yield
        report = outcome.get_result()
        if report.when == "call" or (report.when == "setup" and not report.passed):
            self.raw.append(self._classify(item, call, report))

    def _classify(self, item: pytest.Item, call: pytest.CallInfo, report) -> _Raw:
        marker = item.get_closest_marker("grade_cell")
        if marker is None:
            raise CheckerError(f"{item.nodeid} has no @pytest.mark.grade_cell marker")
        cell = marker.args[0]
        points = float(marker.kwargs.get("points", 0))
        params = dict(getattr(item, "callspec", None).params) if hasattr(item, "callspec") else {}
        context = params.pop("context", None)
        if context is None:
            raise CheckerError(f"{item.nodeid} does not use the submission's fixtures")
        check_id = item.originalname.removeprefix("test_")  # type: ignore[attr-defined]
        if params:
            check_id += "[" + "-".join(str(v) for v in params.values()) + "]"
        student = context.student
        if report.passed:
            verdict = item.stash.get(VERDICT_KEY, None)
            message_id = verdict.message_id if verdict else "ok"
            args = verdict.params if verdict else {}
            return _Raw(student, check_id, cell, points, "passed", message_id, args)
        exc = call.excinfo.value if call.excinfo else None
        if isinstance(exc, Fail):
            return _Raw(student, check_id, cell, points, "failed", exc.message_id, exc.params)
        if isinstance(exc, NotAttempted):
            return _Raw(
                student, check_id, cell, points, "not_attempted", "not_attempted", exc.params
            )
        if isinstance(exc, AssertionError):
            return _Raw(
                student, check_id, cell, points, "failed", "assertion", {"text": str(exc)[:500]}
            )
        error = f"{type(exc).__name__}: {exc}"[:300] if exc else str(report.longrepr)[:300]
        self.errors.append(f"{item.nodeid}: {error}")
        return _Raw(student, check_id, cell, points, "error", "checker_error", {"error": error})


# pytest plugins the checkers never need; not loading them shortens every session.
_UNUSED_PLUGINS = (
    "doctest",
    "junitxml",
    "pastebin",
    "legacypath",
    "nose",
    "unittest",
    "stepwise",
    "lfplugin",
    "nfplugin",
    "setuponly",
    "setupplan",
    "cacheprovider",
    "faulthandler",
    "logging",
    "warnings",
    "debugging",
    "tmpdir",
    "monkeypatch",
    "recwarn",
    "capture",
    "unraisableexception",
    "threadexception",
)


def checker_path(assignment_id: str) -> Path:
    path = CHECKERS_DIR / f"{assignment_id}.py"
    if not path.is_file():
        raise CheckerError(f"No checker module for {assignment_id!r} ({path}).")
    return path


def run_checks(
    assignment_id: str,
    artifacts_dir: str | Path,
    cell_points: dict[str, float],
    thresholds: dict[str, Any] | None = None,
    language: str = "es",
    *,
    data_home: str | Path | None = None,
) -> dict[str, CellResult]:
    """Run the checkers of ``assignment_id`` on ``artifacts_dir``; one ``CellResult`` per cell.

    ``cell_points`` maps every graded cell of the notebook to its points; the checks of a cell
    must add up to exactly those points (else ``CheckerError``: the assignment is inconsistent).
    ``thresholds`` and ``data_home``: see ``run_checks_many``.
    """
    return run_checks_many(
        assignment_id,
        {"student": artifacts_dir},
        cell_points,
        thresholds,
        language,
        data_home=data_home,
    )["student"]


def run_checks_many(
    assignment_id: str,
    artifacts: dict[str, str | Path],
    cell_points: dict[str, float],
    thresholds: dict[str, Any] | None = None,
    language: str = "es",
    *,
    data_home: str | Path | None = None,
) -> dict[str, dict[str, CellResult]]:
    """``run_checks`` for several submissions (``{student: artifacts dir}``) in one pytest
    session: the session's start-up is paid once, which is what makes regrading cheap.

    ``thresholds``: the course's ``{assignment id: {name: value}}`` (``Course.thresholds``) or
    this assignment's ``{name: value}``; missing names take their declared defaults, unknown
    ones are a ``ConfigError``. ``data_home``: the folder holding the course data
    (``GradingSettings.data_home``); None: the data loader's default, resolved here once."""
    if not artifacts:
        return {}
    resolved = assignment_thresholds(assignment_id, thresholds)
    if not data_home:
        from dlcourse.data import get_data_home

        data_home = get_data_home()
    home = str(data_home)
    contexts = [
        CheckContext(
            Artifacts(folder),
            dict(resolved),
            language,
            student,
            data_home=home,
            assignment=assignment_id,
        )
        for student, folder in artifacts.items()
    ]
    collector = _Collector(contexts)
    args = [
        str(checker_path(assignment_id)),
        "-c",
        str(CHECKERS_DIR / "pytest.ini"),
        "-o",
        f"python_files={assignment_id}.py",
        "--rootdir",
        str(CHECKERS_DIR),
        # third-party plugins (anyio, timeout, ...) are the test suite's, not the checkers';
        # loading their entry points cost 0.5 s on the first session of every process
        "--disable-plugin-autoload",
        "--import-mode=importlib",
        "-q",
        "--tb=no",  # failures are verdicts, not bugs: formatting their tracebacks is costly
        *(arg for plugin in _UNUSED_PLUGINS for arg in ("-p", f"no:{plugin}")),
    ]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = pytest.main(args, plugins=[collector])
    if (
        code in (pytest.ExitCode.INTERNAL_ERROR, pytest.ExitCode.USAGE_ERROR)
        or (code == pytest.ExitCode.INTERRUPTED)
        or (collector.errors and not collector.raw)
    ):
        raise CheckerError(f"Checkers for {assignment_id} could not run: {collector.errors}")
    return {
        student: _aggregate(
            [r for r in collector.raw if r.student == student], cell_points, language
        )
        for student in artifacts
    }


def _aggregate(
    raw: list[_Raw], cell_points: dict[str, float], language: str
) -> dict[str, CellResult]:
    cells: dict[str, CellResult] = {}
    for gid, points in cell_points.items():
        checks = [_to_result(r, language) for r in raw if r.cell == gid]
        declared = sum(r.points for r in raw if r.cell == gid)
        if abs(declared - points) > 1e-9:
            raise CheckerError(
                f"Cell {gid}: the checks are worth {declared} points but the notebook gives it "
                f"{points}. Make them agree."
            )
        score = sum(c.points for c in checks)
        cells[gid] = CellResult(score=round(score, 6), max_score=float(points), checks=checks)
    unknown = {r.cell for r in raw} - set(cell_points)
    if unknown:
        raise CheckerError(f"Checks name cells that the notebook does not have: {sorted(unknown)}")
    return cells


def _to_result(raw: _Raw, language: str) -> CheckResult:
    # a parameter that is itself a note ({"id", "params"}: why a cell never ran...) is
    # rendered in each language, so a Spanish message never quotes an English reason
    notes = {k: n for k, v in raw.params.items() if (n := Note.from_dict(v)) is not None}
    base = _plain({k: v for k, v in raw.params.items() if k not in notes})
    texts = {
        lang: messages.render(raw.message_id, _with(base, notes, lang), lang)
        for lang in messages.LANGUAGES
    }
    params = {**_with(base, notes, "en"), **{f"{k}_id": n.id for k, n in notes.items()}}
    passed = raw.outcome == "passed"
    hint = (
        None
        if passed
        else messages.render_hint(raw.message_id, _with(base, notes, language), language)
    )
    return CheckResult(
        id=raw.check_id,
        passed=passed,
        message=texts[language],
        message_id=raw.message_id,
        params=params,
        messages=texts,
        hint=hint,
        outcome=raw.outcome,  # type: ignore[arg-type]
        points=raw.points if passed else 0.0,
        max_points=raw.points,
    )


def _with(base: dict[str, Any], notes: dict[str, Note], language: str) -> dict[str, Any]:
    return {**base, **{k: clean_text(n.text(language)) for k, n in notes.items()}}


def _plain(params: dict[str, Any]) -> dict[str, Any]:
    """Parameters as JSON-able, printable scalars (they are stored in the results file and
    quoted in every page and table): see ``autograder.untrusted.plain_data``."""
    out = {}
    for key, value in params.items():
        if not isinstance(value, (str, int, float, bool, type(None))):
            value = clean_text(value if isinstance(value, str) else _short_str(value))
        out[clean_text(key, 100)] = plain_data(value)
    return out


def _short_str(value: Any) -> str:
    try:
        return str(value)[:MAX_TEXT_CHARS]
    except Exception:  # noqa: BLE001 - a value whose str() fails (too deep, hostile)
        return f"<{type(value).__name__}>"


def failed_cells(
    cell_points: dict[str, float],
    message_id: str,
    reason: Note | dict[str, Any],
    language: str = "es",
) -> dict[str, CellResult]:
    """Every cell at zero with one explanatory check (a submission that could not be graded).

    ``reason`` is a ``Note``: the message is rendered in each language with the reason's own
    text in that language (never an English reason inside a Spanish sentence)."""
    if isinstance(reason, Note):
        texts = {
            lang: messages.render(message_id, {"reason": reason.text(lang)}, lang)
            for lang in messages.LANGUAGES
        }
        params = _plain({"reason": reason.text("en"), "reason_id": reason.id})
    else:
        params = _plain(reason)
        texts = messages.render_all(message_id, params)
    return {
        gid: CellResult(
            score=0.0,
            max_score=float(points),
            checks=[
                CheckResult(
                    id="submission",
                    passed=False,
                    message=texts[language],
                    message_id=message_id,
                    params=params,
                    messages=texts,
                    outcome="error",
                    points=0.0,
                    max_points=float(points),
                )
            ],
        )
        for gid, points in cell_points.items()
    }
