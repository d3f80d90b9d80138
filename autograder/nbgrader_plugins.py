"""nbgrader's own commands, made to agree with the course package (``nbgrader_config.py``).

nbgrader keeps working as the system of record (DESIGN.md, decision 1), but three of its
commands would undo what the course package does; ``nbgrader_config.py`` routes them here:

* ``nbgrader autograde`` (and formgrader's *Autograde* button) would empty
  ``autograded/<student>/<assignment>/``, where the grader keeps each run's artifacts, then
  score cells by parsing their output. ``c.Autograde.exporter_class = CourseAutograde`` makes
  it grade with the course's pipeline instead (``autograder.batch``): new or changed
  submissions are executed in the sandbox, already graded ones are checked again on their
  stored artifacts (``autograder regrade``); nothing nbgrader would delete is touched. When
  the course's pipeline cannot run (a gradebook or folder that is not the course's, no
  sandbox...), it refuses, deletes nothing, and names the ``autograder grade`` command.
* ``nbgrader generate_feedback`` would overwrite the course's pages with nbgrader's, which
  show the hidden tests (nbgrader issue #917). ``c.GenerateFeedback.exporter_class =
  CourseFeedback`` writes the course's pages instead (``autograder.feedback``).
* ``nbgrader validate`` runs only the checks the notebook holds (the visible ones) and says
  "Success! Your notebook passes all the tests". ``install`` makes it use ``CourseValidator``,
  which says that these are only the visible checks.

How the first two work: nbgrader builds a converter (``Autograde``, ``GenerateFeedback``)
whose ``start`` finds the notebooks, builds the configured exporter, then calls
``convert_notebooks``, which is where it deletes and rewrites folders. The exporter classes
here, when built, hand the converter's ``convert_notebooks`` to the course's stage, so nothing
of nbgrader's runs after the exporter is built. Every text a person reads comes from the
catalogue (``nbgrader.*`` in ``autograder/messages/pipeline.toml``), in the course language.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import textwrap
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from logging import ERROR, INFO, WARNING
from pathlib import Path
from typing import Any

from nbconvert.exporters import NotebookExporter
from nbgrader.converters import BaseConverter, NbGraderException
from nbgrader.validator import Validator

from autograder import messages
from autograder.untrusted import clean_text
from dlcourse import layout

DEFAULT_LANGUAGE = "es"


def course_language(config: Any) -> str:
    """``c.Course.language`` from an nbgrader configuration (the catalogue's default without)."""
    try:
        language = config.Course.get("language", DEFAULT_LANGUAGE)
    except AttributeError:
        return DEFAULT_LANGUAGE
    return language if language in messages.LANGUAGES else DEFAULT_LANGUAGE


class Refused(Exception):
    """The course's stage cannot run for nbgrader: a reason as a catalogue id and parameters."""

    def __init__(self, message_id: str, **params: Any):
        self.message_id = message_id
        self.params = params
        super().__init__(message_id)

    def text(self, language: str) -> str:
        return messages.render(self.message_id, self.params, language)


def say(converter: Any, level: int, message_id: str, params: dict, language: str) -> str:
    """Log a catalogue message on nbgrader's log (formgrader shows it), as printable text:
    student ids and reasons quote submissions, which never reach a terminal as escapes."""
    text = clean_text(messages.render(message_id, params, language), 4000)
    converter.log.log(level, text)
    return text


# --- the converter's view -----------------------------------------------------------------


def selected(converter: BaseConverter, step: str) -> dict[str, list[str]]:
    """``{assignment id: [student ids]}`` of the folders the converter found under ``step``
    (nbgrader's ``submitted`` or ``autograded`` folder), as its own path format names them."""
    coursedir = converter.coursedir
    pattern = coursedir.format_path(
        step, "(?P<student_id>.*)", "(?P<assignment_id>.*)", escape=True
    )
    found: dict[str, set[str]] = {}
    for folder in converter.assignments:
        match = re.fullmatch(pattern, str(folder))
        if match is None:
            raise Refused("nbgrader.reason_folder", folder=str(folder))
        found.setdefault(match["assignment_id"], set()).add(match["student_id"])
    return {aid: sorted(students) for aid, students in sorted(found.items())}


def every_student(converter: BaseConverter, students: list[str]) -> list[str] | None:
    """``None`` (every student the course's stage finds, including a folder without a
    notebook, which nbgrader skips) when nbgrader was not asked for particular students."""
    return None if converter.coursedir.student_id in ("", "*") else students


def same_gradebook(url: str, other: str) -> bool:
    """The same database (two spellings of one SQLite file's path are the same file)."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and other.startswith(prefix):
        return (
            Path(url.removeprefix(prefix)).resolve() == Path(other.removeprefix(prefix)).resolve()
        )
    return url == other


def load_for(converter: BaseConverter):
    """The course, as nbgrader sees it: its configuration file in nbgrader's course directory,
    its grading state there too; refused unless the gradebook and the folders nbgrader uses
    are the ones the course package uses."""
    from autograder.config import CONFIG_FILE, ConfigError, find_config_file, load_course

    coursedir = converter.coursedir
    root = Path(coursedir.root)
    try:
        config_file = root / CONFIG_FILE if (root / CONFIG_FILE).is_file() else find_config_file()
        course = load_course(config_file, state_dir=root)
    except ConfigError as exc:
        raise Refused("nbgrader.reason_config", detail=exc.note.to_dict()) from None
    if not same_gradebook(coursedir.db_url, course.db_url):
        raise Refused("nbgrader.reason_gradebook", nbgrader=coursedir.db_url, course=course.db_url)
    ours = {
        coursedir.submitted_directory: course.submitted_dir,
        coursedir.autograded_directory: course.autograded_dir,
        coursedir.feedback_directory: course.feedback_dir,
    }
    for step, folder in ours.items():
        theirs = Path(coursedir.format_path(step, "s", "a"))
        if theirs.resolve() != layout.work_folder(folder, "s", "a").resolve():
            raise Refused(
                "nbgrader.reason_layout", nbgrader=str(theirs.parent.parent), course=str(folder)
            )
    return course


def outside_event_loop(work: Callable[[], None]) -> None:
    """Run ``work`` here, or in a thread of its own when this thread runs an event loop (the
    Jupyter server behind formgrader's buttons): the grader runs its kernels with
    ``asyncio.run``, which cannot start inside a running loop. The button waits either way,
    as it does for nbgrader's own autograde."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        work()
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="autograder-stage") as pool:
        pool.submit(work).result()


def take_over(converter: Any, stage: Callable[[BaseConverter, str], None], refusal: str) -> None:
    """Make ``converter.start`` run ``stage(converter, language)`` where nbgrader would convert
    (and first delete) the folders it found. A refusal is logged in the course language and
    ends the command as nbgrader's own failures do (``NbGraderException``)."""
    if not isinstance(converter, BaseConverter):
        raise TypeError(
            f"{type(converter).__name__} is not an nbgrader converter: set the course's "
            "exporter classes on c.Autograde and c.GenerateFeedback only"
        )
    language = course_language(converter.config)

    def convert_notebooks() -> None:
        assignment = converter.coursedir.assignment_id
        try:
            outside_event_loop(lambda: stage(converter, language))
        except Refused as exc:
            params = {"assignment": assignment, "reason": exc.text(language)}
            raise NbGraderException(say(converter, ERROR, refusal, params, language)) from None
        except NbGraderException:
            raise
        except Exception as exc:  # noqa: BLE001 - say what failed and how to go on
            converter.log.debug("the course's stage failed", exc_info=True)
            reason = messages.render(
                "nbgrader.reason_failed", {"detail": f"{type(exc).__name__}: {exc}"}, language
            )
            params = {"assignment": assignment, "reason": reason}
            raise NbGraderException(say(converter, ERROR, refusal, params, language)) from None

    converter.convert_notebooks = convert_notebooks


class _TakeOver(NotebookExporter):
    """An exporter that, when nbgrader's converter builds it, takes the conversion over."""

    refusal = ""

    def stage(self, converter: BaseConverter, language: str) -> None:
        raise NotImplementedError

    def __init__(self, config=None, **kwargs):
        super().__init__(config=config, **kwargs)
        take_over(self.parent, self.stage, self.refusal)

    def from_notebook_node(self, nb, resources=None, **kwargs):
        # never reached: the converter's conversion is ours (a guard, should that change)
        raise NbGraderException(messages.render("nbgrader.not_converted", {}, "en"))


# --- nbgrader autograde -------------------------------------------------------------------


class CourseAutograde(_TakeOver):
    """``c.Autograde.exporter_class``: nbgrader's autograde grades with the course's pipeline.

    New or changed submissions are executed and checked (``autograder grade``); submissions
    graded before are checked again on their stored artifacts (``autograder regrade``), so
    formgrader's button never deletes a run. ``--no-execute`` only re-checks. Re-executing an
    unchanged submission is ``autograder grade <assignment> --force``."""

    refusal = "nbgrader.autograde_refused"

    def stage(self, converter: BaseConverter, language: str) -> None:
        from autograder.batch import grade_class, load_results, regrade_class

        course = load_for(converter)
        execute = bool(converter.config.Execute.get("enabled", True))
        for aid, students in selected(converter, converter.coursedir.submitted_directory).items():
            if aid not in course.assignments:
                raise Refused(
                    "nbgrader.reason_assignment", known=", ".join(sorted(course.assignments))
                )
            graded_before = set(load_results(course, aid).students) & set(students)
            if graded_before and (converter.force or not execute):
                regrade_class(course, aid, students=sorted(graded_before))
            if execute:
                chosen = every_student(converter, students)
                results = grade_class(course, aid, students=chosen, progress=False, workers=None)
                students = sorted(results.students) if chosen is None else students
            else:
                results = load_results(course, aid)
            for sid in students:
                result = results.students.get(sid)
                if result is None:
                    say(converter, WARNING, "nbgrader.not_graded", {"student": sid}, language)
                    continue
                params = {
                    "student": sid,
                    "score": f"{result.score:g}",
                    "max_score": f"{result.max_score:g}",
                    "reason": result.error_in(language) or "",
                }
                if result.status == "graded":
                    say(converter, INFO, "nbgrader.graded", params, language)
                else:
                    say(converter, WARNING, "nbgrader.graded_error", params, language)
            say(
                converter,
                INFO,
                "nbgrader.autograde_done" if execute else "nbgrader.recheck_done",
                {"assignment": aid, "count": len(students), "gradebook": course.db_url},
                language,
            )


# --- nbgrader generate_feedback -----------------------------------------------------------


class CourseFeedback(_TakeOver):
    """``c.GenerateFeedback.exporter_class``: nbgrader's feedback writes the course's pages
    (``autograder feedback``), which never show a hidden test."""

    refusal = "nbgrader.feedback_refused"

    def stage(self, converter: BaseConverter, language: str) -> None:
        from autograder.feedback import write_feedback
        from autograder.results import StageError

        course = load_for(converter)
        for aid, students in selected(converter, converter.coursedir.autograded_directory).items():
            if aid not in course.assignments:
                raise Refused(
                    "nbgrader.reason_assignment", known=", ".join(sorted(course.assignments))
                )
            try:
                paths = write_feedback(course, aid, students=every_student(converter, students))
            except StageError as exc:
                raise Refused(exc.note.id, **exc.note.params) from None
            beside_pages(course, aid, paths)
            say(
                converter,
                INFO,
                "nbgrader.feedback_done",
                {"assignment": aid, "count": len(paths), "path": str(course.feedback_dir)},
                language,
            )


SUBMISSION_SECRET = "submission_secret.txt"  # written by nbgrader submit, read by release_feedback


def _small_file(path: Path) -> bool:
    return path.is_file() and not path.is_symlink() and path.stat().st_size < 1000


def beside_pages(course, assignment_id: str, pages: list[Path]) -> None:
    """What ``nbgrader release_feedback`` reads beside each page, as nbgrader's own feedback
    leaves it in ``feedback/<student>/<assignment>/``: the submission time (the one the grader
    wrote in the work folder, never one a kernel left) and the secret ``nbgrader submit`` put
    in the submission (only submissions through the exchange have one)."""
    for page in pages:
        student = page.parent.parent.name
        sources = {
            layout.TIMESTAMP_FILE: layout.work_folder(
                course.autograded_dir, student, assignment_id
            ),
            SUBMISSION_SECRET: course.submitted_dir / student / assignment_id,
        }
        for name, folder in sources.items():
            target = page.parent / name
            if _small_file(folder / name):
                target.unlink(missing_ok=True)
                shutil.copyfile(folder / name, target)


# --- nbgrader validate --------------------------------------------------------------------


class CourseValidator(Validator):
    """nbgrader's validator, saying plainly what it checks: the notebook's own (visible)
    checks only; the hidden ones run when the instructor grades."""

    def _text(self, message_id: str, **params: Any) -> str:
        return messages.render(message_id, params, course_language(self.config))

    def _wrapped(self, text: str) -> str:
        return "\n".join(textwrap.fill(p, width=self.width) for p in text.split("\n")) + "\n"

    def _print_num_failed(self, num_failed: int) -> None:
        if num_failed == 0:
            self.stream.write(self._wrapped(self._text("nbgrader.validate_passed")))
        else:
            self.stream.write(
                self._wrapped(self._text("nbgrader.validate_failed", num_failed=num_failed))
            )

    def validate_and_print(self, filename: str) -> None:
        super().validate_and_print(filename)
        self.stream.write("\n" + self._wrapped(self._text("nbgrader.validate_scope")))


def install(config: Any = None) -> None:
    """Make ``nbgrader validate`` use ``CourseValidator`` (called by ``nbgrader_config.py``).

    nbgrader has no setting for the validator's class: its validate command builds the class
    its module names ``Validator``, so that name is pointed at the subclass (idempotent)."""
    from nbgrader.apps import validateapp

    if isinstance(getattr(validateapp, "Validator", None), type) and issubclass(
        validateapp.Validator, Validator
    ):
        validateapp.Validator = CourseValidator
