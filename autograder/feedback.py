"""Student feedback: one self-contained HTML page per student and assignment.

``write_feedback(course, assignment_id)`` renders every student of the results file into
nbgrader's layout, ``<state>/feedback/<student>/<assignment>/<notebook>.html``. A page shows the
score per question, every check with its outcome, message and hint, the student's own captured
answer, figures (learning curves beside the reference solution's, with a short diagnosis) and,
for a submission that could not be graded, the reason at the top.

What a page is built from, and what it never reads: the ``StudentResult`` (messages are already
free of hidden expected values), the student's captured artifacts (their own answers and
training history, plain data), the *release* notebook (question headings) and the reference
solution's captured history. Never the executed notebook, which holds the hidden tests
(nbgrader issue #917), never the source notebook's text, never the checkers.

Pages are readable offline: CSS inline, images as ``data:`` URIs, no script, and a
Content-Security-Policy that forbids loading anything else.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

import jinja2
from markupsafe import Markup, escape

from autograder import messages as catalogue
from autograder.capture import ArtifactError, Artifacts
from autograder.config import Course
from autograder.results import CellResult, CheckResult, Note, StageError, StudentResult
from autograder.untrusted import UnsafeInput, clean_text, read_bounded
from dlcourse import layout
from dlcourse.artifacts import short_summary

log = logging.getLogger(__name__)

TEMPLATES_DIR = Path(__file__).parent / "templates"
LANGUAGES = ("es", "en")
MAX_ANSWER_CHARS = 160

# --- UI strings -----------------------------------------------------------------------------


def ui_strings() -> dict[str, dict[str, str]]:
    """The pages' words: the catalogue's ``common.*``, ``feedback.*``, ``report.*``... ids."""
    return {k: v for k, v in catalogue.catalogue().items() if k.split(".", 1)[0] in UI_SECTIONS}


UI_SECTIONS = ("common", "outcome", "cell", "feedback", "diagnosis", "plot", "report")


class Text:
    """``text("feedback.title", assignment="x")``: a page's word in one language (from the
    one message catalogue, ``autograder/messages/ui.toml``)."""

    def __init__(self, language: str):
        if language not in LANGUAGES:
            raise ValueError(f"language must be one of {LANGUAGES}, not {language!r}")
        self.language = language

    def __call__(self, key: str, **params: Any) -> str:
        return catalogue.render(key, params, self.language)


# --- templates ------------------------------------------------------------------------------

_CODE = re.compile(r"`([^`\n]+)`")
_BOLD = re.compile(r"\*\*([^*\n]+)\*\*")


def md(text: Any) -> Markup:
    """Escape ``text``, then render its ```code``` and ``**bold**`` (the catalogue's markup)."""
    html = str(escape("" if text is None else str(text)))
    html = _CODE.sub(r"<code>\1</code>", html)
    html = _BOLD.sub(r"<strong>\1</strong>", html)
    return Markup(html)


def fmt_points(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{round(float(value), 2):g}"


def fmt_percent(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f} %" if whole else "–"


@lru_cache(maxsize=1)
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES_DIR)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = md
    env.filters["points"] = fmt_points
    return env


def write_text_atomic(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8"
    ) as tmp:
        tmp.write(text)
    Path(tmp.name).replace(path)
    return path


# --- questions ------------------------------------------------------------------------------


@dataclass
class Question:
    """A graded cell as students know it: ``test_<name>`` checks the answer ``<name>``."""

    grade_id: str
    name: str
    number: int
    title: str | None = None  # the notebook's heading above the answer cell


_EMPHASIS = re.compile(r"(\*\*|\*|__)")


def questions_from_release(release_notebook: Path | None, grade_ids: list[str]) -> list[Question]:
    """Number the graded cells and title them with the *release* notebook's headings.

    Only markdown headings of the released notebook are read: it holds no solution and no
    hidden test, so nothing read here can leak.
    """
    headings: dict[str, str] = {}
    if release_notebook is not None and release_notebook.is_file():
        import nbformat

        try:
            nb = nbformat.read(release_notebook, as_version=4)
        except Exception:  # noqa: BLE001 - titles are a nicety; ids are enough
            nb = None
        current = None
        for cell in nb.cells if nb else []:
            if cell.cell_type == "markdown":
                fenced = False
                for line in cell.source.splitlines():
                    if line.lstrip().startswith(("```", "~~~")):
                        fenced = not fenced  # a "# comment" in a code block is no heading
                    elif line.startswith("#") and not fenced:
                        current = _EMPHASIS.sub("", line.lstrip("#").strip())
            gid = cell.get("metadata", {}).get("nbgrader", {}).get("grade_id")
            if isinstance(gid, str) and current:
                if gid.startswith("ans_"):
                    headings[gid.removeprefix("ans_")] = current
                elif gid.startswith("test_"):  # a task with no answer cell of its own
                    headings.setdefault(gid.removeprefix("test_"), current)
    out = []
    for position, gid in enumerate(grade_ids, start=1):
        name = gid.removeprefix("test_")
        number, title = _heading_parts(headings.get(name))
        # the notebook's own numbering when its heading has one ("Pregunta 1: el modelo" above
        # two graded cells: both are question 1), so the page and the notebook agree
        out.append(Question(gid, name, number or position, title))
    return out


_NUMBERED = re.compile(r"(?:pregunta|question|ejercicio|exercise)\s+(\d+)\s*[:.\-–]?\s*", re.I)
_POINTS = re.compile(r"\s*\(\s*\d+(?:[.,]\d+)?\s*(?:puntos?|points?)\s*\)\s*$", re.I)


def _heading_parts(heading: str | None) -> tuple[int | None, str | None]:
    """``"Pregunta 1: el modelo (5 puntos)"`` -> ``(1, "el modelo")``: the page says
    "Pregunta 1" and the points itself, so the title never repeats them."""
    if not heading:
        return None, None
    number = None
    match = _NUMBERED.match(heading)
    if match:
        number, heading = int(match.group(1)), heading[match.end() :]
    heading = _POINTS.sub("", heading).strip()
    return number, heading or None


def answer_text(artifacts: Artifacts, name: str) -> str | None:
    """The student's own captured value of ``name``, short (None when there is none)."""
    try:
        answer = artifacts.answer(name)
    except Exception:  # noqa: BLE001 - unreadable or hostile: the page shows no answer
        return None
    if answer is None or not answer.present or answer.kind == "placeholder":
        return None
    try:
        value = answer.value
    except Exception:  # noqa: BLE001 - a malformed capture shows no answer, never a crash
        return None
    text = short_summary(value, MAX_ANSWER_CHARS)  # "DataFrame 1279 × 11", never a repr
    return text if len(text) <= MAX_ANSWER_CHARS else text[: MAX_ANSWER_CHARS - 1] + "…"


# --- view model -----------------------------------------------------------------------------


@dataclass
class CheckView:
    outcome: str
    outcome_label: str
    message: str
    hint: str | None
    count: int = 1  # identical verdicts of one question are shown once, "×4"


def check_views(checks: list[CheckResult], text: Text) -> list[CheckView]:
    views: list[CheckView] = []
    for c in checks:
        view = CheckView(
            c.outcome,
            text(f"outcome.{c.outcome}"),
            localized_message(c, text.language),
            localized_hint(c, text.language),
        )
        last = views[-1] if views else None
        if last and (last.outcome, last.message, last.hint) == (
            view.outcome,
            view.message,
            view.hint,
        ):
            last.count += 1
        else:
            views.append(view)
    return views


@dataclass
class FigureView:
    """A figure of the page: a title, its panels (``plots.Plot``: PNG, alt text, size) laid
    out side by side on a wide screen and stacked on a phone, a caption, facts, diagnosis."""

    title: str
    caption: str
    plots: list  # list[autograder.plots.Plot]
    facts: list[str] = field(default_factory=list)
    diagnosis: list[str] = field(default_factory=list)
    diagnosis_none: str | None = None


@dataclass
class QuestionView:
    question: Question
    score: float
    max_score: float
    status: str  # full | partial | zero | not_attempted | error
    status_label: str
    answer: str | None
    checks: list[CheckView]
    figures: list[FigureView] = field(default_factory=list)
    reviewed: bool = False  # the instructor changed this score in formgrader

    @property
    def anchor(self) -> str:
        return "q-" + re.sub(r"[^A-Za-z0-9_-]", "-", self.question.grade_id)


# --- messages in the reader's language ----------------------------------------------------------


def localized_message(check: CheckResult, language: str) -> str:
    """The check's message in ``language``: as rendered at grading time (every language is
    stored), else rendered again from the catalogue."""
    if check.messages.get(language):
        return check.messages[language]
    try:
        return catalogue.render(check.message_id, check.params, language)
    except Exception:  # noqa: BLE001 - an old results file: fall back to its own text
        return check.message


def localized_hint(check: CheckResult, language: str) -> str | None:
    if check.outcome == "passed":
        return None
    try:
        return catalogue.render_hint(check.message_id, check.params, language)
    except Exception:  # noqa: BLE001
        return check.hint


def cell_status(cell: CellResult, unrunnable: bool) -> str:
    if unrunnable:
        return "error"
    if cell.not_attempted:
        return "not_attempted"
    if cell.max_score and cell.score >= cell.max_score - 1e-9:
        return "full"
    return "partial" if cell.score > 0 else "zero"


def unrunnable(result: StudentResult) -> bool:
    """True when nothing was checked: the submission itself could not be graded."""
    checks = [c for cell in result.cells.values() for c in cell.checks]
    return result.status == "error" and all(c.message_id == "submission_error" for c in checks)


# Figures for particular questions: (assignment id, grade id) -> builder.
FigureBuilder = Callable[[CellResult, Artifacts, Text], "FigureView | None"]


def _curve_labels_figure(cell: CellResult, artifacts: Artifacts, text: Text) -> FigureView | None:
    """lesson4_learning_rate, ``curve_labels``: the published curves with the student's labels
    and a tick or a cross each. The expected label is never drawn."""
    from autograder.plots import labelled_panels
    from dlcourse.playground import PANELS, learning_curves

    verdicts = {str(c.params.get("panel")): c.outcome for c in cell.checks if c.params.get("panel")}
    if not verdicts or all(v in ("not_attempted", "error") for v in verdicts.values()):
        return None
    given: dict[str, str] = {}
    try:
        answer = artifacts.answer("curve_labels")
        value = answer.value if answer and answer.present else None
    except (ArtifactError, OSError):
        value = None
    if isinstance(value, dict):
        for key, label in value.items():
            given[str(key).strip().upper()] = str(label).strip()[:20]
    labels = {
        p: (given.get(p, "—"), {"passed": True, "failed": False}.get(verdicts.get(p, ""), None))
        for p in PANELS
    }
    return FigureView(
        title=text("feedback.labels_title"),
        caption=text("feedback.labels_caption"),
        plots=labelled_panels(learning_curves(), labels, text),
    )


FIGURES: dict[tuple[str, str], FigureBuilder] = {
    ("lesson4_learning_rate", "test_curve_labels"): _curve_labels_figure,
}


def training_figure(curves, reference, text: Text) -> FigureView:
    from autograder.plots import diagnose, learning_curves_plots

    best = curves.marked_best_epoch
    lowest = min((v for v in (curves.val_loss or []) if v == v), default=None)
    facts = [
        text(
            "feedback.training_facts",
            epochs=curves.epochs,
            best=best or "–",
            val=f"{lowest:.4g}" if lowest is not None else "–",
        )
    ]
    stop = curves.marked_stop_epoch
    if stop is not None:
        facts.append(text("feedback.training_facts_stop", stop=stop))
    elif curves.epochs_limit:
        facts.append(text("feedback.training_facts_nostop"))
    found = diagnose(curves, reference)
    return FigureView(
        title=text("feedback.training_title"),
        caption=text(
            "feedback.training_caption" if reference else "feedback.training_caption_alone"
        ),
        plots=learning_curves_plots(curves, reference, text),
        facts=facts,
        diagnosis=[text(f"diagnosis.{d.id}", **d.params) for d in found],
        diagnosis_none=None if found else text("feedback.diagnosis_none"),
    )


def render_feedback(
    result: StudentResult,
    *,
    language: str,
    questions: list[Question] | None = None,
    artifacts_dir: str | Path | None = None,
    reference: dict | None = None,
    course_id: str = "",
    notebook: str | None = None,
    timestamp: str | None = None,
    generated: datetime | None = None,
) -> str:
    """The HTML page of one student (a pure function of its arguments)."""
    text = Text(language)
    artifacts = Artifacts(artifacts_dir) if artifacts_dir else None
    questions = questions or questions_from_release(None, list(result.cells))
    by_id = {q.grade_id: q for q in questions}
    nothing_ran = unrunnable(result)
    trainings = {}
    if artifacts is not None and artifacts.folder.is_dir() and not nothing_ran:
        from autograder.plots import read_trainings

        trainings = read_trainings(artifacts.folder)
    reference = reference or {}

    views: list[QuestionView] = []
    for number, (gid, cell) in enumerate(result.cells.items(), start=1):
        question = by_id.get(gid) or Question(gid, gid.removeprefix("test_"), number)
        status = cell_status(cell, nothing_ran)
        checks = [] if nothing_ran else check_views(cell.checks, text)
        figures = []
        if artifacts is not None and not nothing_ran:
            builder = FIGURES.get((result.assignment, gid))
            if builder is not None:
                try:
                    figure = builder(cell, artifacts, text)
                except Exception:  # noqa: BLE001 - a figure must never cost the feedback
                    log.exception("figure for %s/%s failed", result.student, gid)
                    figure = None
                if figure is not None:
                    figures.append(figure)
            if question.name in trainings:
                figures.append(
                    training_figure(
                        trainings.pop(question.name), reference.get(question.name), text
                    )
                )
        views.append(
            QuestionView(
                question=question,
                score=cell.score,
                max_score=cell.max_score,
                reviewed=cell.reviewed,
                status=status,
                status_label=text("outcome.error") if status == "error" else text(f"cell.{status}"),
                answer=None
                if (artifacts is None or nothing_ran)
                else answer_text(artifacts, question.name),
                checks=checks,
                figures=figures,
            )
        )
    # training runs that belong to no graded cell still get shown
    extra_figures = [training_figure(c, reference.get(name), text) for name, c in trainings.items()]

    generated = generated or datetime.now(UTC)
    return (
        environment()
        .get_template("feedback.html.j2")
        .render(
            t=text,
            lang=language,
            result=result,
            course_id=course_id,
            notebook=notebook or result.notebook or "",
            timestamp=timestamp,
            generated=generated.strftime("%Y-%m-%d %H:%M UTC"),
            percent=fmt_percent(result.score, result.max_score),
            fraction=(result.score / result.max_score) if result.max_score else 0.0,
            questions=views,
            extra_figures=extra_figures,
            nothing_ran=nothing_ran,
            show_error=result.status == "error",
            error_text=result.error_in(text.language) or "",
            notes=result.notes_in(text.language),
        )
    )


# --- the reference solution's training curves -----------------------------------------------


def reference_trainings(course: Course, assignment_id: str) -> dict:
    """The reference solution's captured training runs, by answer name, from its grading
    (``autograder.reference``: done by ``release``, cached; graded now only if the cache is
    stale). Returns ``{}`` (and logs why) when that grading fails."""
    from autograder.plots import read_trainings
    from autograder.reference import grade_reference, reference_artifacts

    try:
        grade_reference(course, assignment_id)
    except Exception as exc:  # noqa: BLE001 - feedback goes on without the reference
        note = getattr(exc, "note", None)  # a StageError says why as data
        detail = (
            note.to_dict()
            if isinstance(note, Note)
            else clean_text(str(exc) or type(exc).__name__, 500, one_line=True)
        )
        params = {"assignment": assignment_id, "detail": detail}
        log.warning("%s", catalogue.render("log.feedback.no_reference", params, course.language))
        return {}
    return read_trainings(reference_artifacts(course, assignment_id))


# --- writing --------------------------------------------------------------------------------


def feedback_path(feedback_dir: Path, student: str, assignment_id: str, notebook: str) -> Path:
    """nbgrader's layout: ``feedback/<student>/<assignment>/<notebook>.html``."""
    for part in (student, assignment_id):
        if not part or part.startswith(".") or "/" in part or os.sep in part:
            raise ValueError(f"unsafe path component {part!r}")
    return feedback_dir / student / assignment_id / (Path(notebook).stem + ".html")


def _timestamp(course: Course, student: str, assignment_id: str) -> str | None:
    path = layout.work_folder(course.autograded_dir, student, assignment_id) / layout.TIMESTAMP_FILE
    try:
        text = read_bounded(path, 256).decode("utf-8")[:64].strip()
    except (OSError, UnsafeInput, UnicodeDecodeError):
        return None
    return re.sub(r"\.\d+", "", text) or None  # "2026-11-20 10:00:00.000000 UTC" -> seconds


def write_feedback(
    course: Course,
    assignment_id: str,
    *,
    students: list[str] | None = None,
    language: str | None = None,
    feedback_dir: str | Path | None = None,
    reference: bool = True,
) -> list[Path]:
    """Write the feedback page of every graded student; returns the files written.

    ``language`` defaults to ``course.language`` (``c.Course.language``); ``feedback_dir`` to
    the course's ``feedback/``. ``reference=False`` skips the reference solution's curves.
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
    language = language or course.language
    out_dir = Path(feedback_dir) if feedback_dir else course.feedback_dir
    release = course.release_dir / assignment_id / spec.notebook
    first = next(iter(results.students.values()))
    questions = questions_from_release(release, list(first.cells))
    chosen = sorted(results.students) if students is None else students

    references: dict | None = None  # graded lazily: only when some student trained a model
    written = []
    for sid in chosen:
        result = results.students.get(sid)
        if result is None:
            params = {"student": clean_text(sid, 100, one_line=True), "assignment": assignment_id}
            log.warning("%s", catalogue.render("log.feedback.no_results", params, course.language))
            continue
        artifacts = layout.artifacts_folder(course.autograded_dir, sid, assignment_id)
        if reference and references is None and _has_training(artifacts):
            references = _reference_or_nothing(course, assignment_id)
        page = dict(
            language=language,
            questions=questions,
            course_id=course.course_id,
            notebook=spec.notebook,
            timestamp=_timestamp(course, sid, assignment_id),
        )
        try:
            html = render_feedback(
                result, artifacts_dir=artifacts, reference=references or {}, **page
            )
        except Exception:  # noqa: BLE001 - one student's artifacts must not cost the class
            # what the student's kernel wrote broke the page: give the scores and messages,
            # without the figures and answers read from those artifacts
            log.exception("feedback of %s: artifacts unusable, page written without them", sid)
            try:
                html = render_feedback(result, artifacts_dir=None, reference={}, **page)
            except Exception:  # noqa: BLE001
                log.exception("feedback of %s could not be written", sid)
                continue
        path = feedback_path(out_dir, sid, assignment_id, spec.notebook)
        written.append(write_text_atomic(path, html))
    return written


def _reference_or_nothing(course: Course, assignment_id: str) -> dict:
    try:
        return reference_trainings(course, assignment_id)
    except Exception:  # noqa: BLE001 - the reference curves are a comparison, not the grade
        log.exception("the reference solution of %s could not be graded", assignment_id)
        return {}


def _has_training(artifacts: Path) -> bool:
    from autograder.plots import read_trainings

    try:
        return artifacts.is_dir() and bool(read_trainings(artifacts))
    except Exception:  # noqa: BLE001 - unreadable artifacts train nothing worth comparing
        return False
