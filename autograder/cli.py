"""The ``autograder`` command. Each subcommand is a thin wrapper over a Python function:

==========================  ===============================================
``autograder release``      ``autograder.release.release``
``autograder grade``        ``autograder.batch.grade_class``
``autograder regrade``      ``autograder.batch.regrade_class``
``autograder feedback``     ``autograder.feedback.write_feedback``
``autograder report``       ``autograder.report.write_report``
``autograder export``       ``autograder.export.export``
``autograder collect``      ``autograder.lms.collect.collect_archive``
``autograder gradescope``   ``autograder.lms.gradescope.build_bundle``
``autograder lti-key``      ``autograder.lms.lti.generate_key``
``autograder lti-roster``   ``autograder.lms.lti_nrps.lti_roster``
``autograder demo``         ``autograder.demo.run_demo``
==========================  ===============================================

Exit status: 0 done (even if some students failed: their results say why); 1 could not do it
(configuration, a missing folder, nothing to export, the grader failed); 2 usage; 3 done, but
some students could not be re-checked (``regrade`` without their artifacts). Every text it
prints comes from ``autograder/messages/cli.toml``, in the course language.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import textwrap
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from autograder.config import ConfigError, load_course
from autograder.results import StageError
from autograder.untrusted import clean_text

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}
EXIT_DONE, EXIT_FAILED, EXIT_USAGE, EXIT_ATTENTION = 0, 1, 2, 3
LOG_FILE_NAME = "autograder.log"  # in the state folder: what -v would have shown


def command(name: str):
    def register(func):
        COMMANDS[name] = func
        return func

    return register


def _course(args: argparse.Namespace):
    return load_course(args.config, state_dir=args.state_dir)


def _say(args: argparse.Namespace, message_id: str, **params) -> None:
    print(_text(args.language, message_id, **params))


def _text(language: str, message_id: str, **params) -> str:
    from autograder import messages

    return messages.render(message_id, params, language)


@command("release")
def _release(args: argparse.Namespace) -> int:
    from autograder.release import release

    for report in release(_course(args), args.assignment, self_test=not args.no_self_test):
        _say(
            args,
            "cli.released",
            assignment=report.assignment,
            notebook=str(report.notebook),
            checked=not args.no_self_test,
        )
    return EXIT_DONE


@command("grade")
def _grade(args: argparse.Namespace) -> int:
    from autograder.batch import format_table, grade_class, results_path

    course = _course(args)
    results = grade_class(
        course,
        args.assignment,
        submitted_dir=args.submitted,
        json_path=args.json,
        progress=not args.quiet,
        workers=args.workers,
        scheduler=args.scheduler,
        force=args.force,
        allow_unsandboxed=args.allow_unsandboxed,
        prune=args.prune,
    )
    print(format_table(_as_booked(course, args.assignment, results), language=args.language))
    for refusal in results.refused:
        _say(args, "cli.refused_folder", folder=refusal["folder"], reason=refusal["reason"])
    if results.pruned:
        _say(args, "cli.pruned", assignment=args.assignment, students=_listing(results.pruned))
    elif results.absent:
        _say(
            args,
            "cli.absent",
            count=len(results.absent),
            students=_listing(results.absent),
            assignment=args.assignment,
        )
    print()
    _say(args, "cli.results_at", path=str(args.json or results_path(course, args.assignment)))
    _say(args, "cli.gradebook_at", url=course.db_url)
    return EXIT_DONE


@command("regrade")
def _regrade(args: argparse.Namespace) -> int:
    from autograder.batch import format_table, regrade_class

    course = _course(args)
    results, changes = regrade_class(course, args.assignment, json_path=args.json)
    print(format_table(_as_booked(course, args.assignment, results), language=args.language))
    if not changes:
        print()
        _say(args, "cli.no_change")
    for change in changes:
        cells = ", ".join(f"{g}: {a:g} -> {b:g}" for g, (a, b) in change.cells.items())
        _say(
            args,
            "cli.changed",
            student=clean_text(change.student, 100, one_line=True),
            before=f"{change.before:g}",
            after=f"{change.after:g}",
            cells=cells,
        )
    if results.unchecked:
        print(
            _text(
                args.language,
                "cli.unchecked",
                count=len(results.unchecked),
                students=_listing(results.unchecked),
                assignment=args.assignment,
            ),
            file=sys.stderr,
        )
        return EXIT_ATTENTION
    return EXIT_DONE


@command("feedback")
def _feedback(args: argparse.Namespace) -> int:
    from autograder.feedback import write_feedback
    from autograder.nbgrader_plugins import beside_pages

    course = _course(args)
    paths = write_feedback(course, args.assignment)
    beside_pages(course, args.assignment, paths)  # so `nbgrader release_feedback` takes them
    _say(args, "cli.feedback_written", count=len(paths), path=str(course.feedback_dir))
    return EXIT_DONE


@command("report")
def _report(args: argparse.Namespace) -> int:
    from autograder.report import write_report

    _say(args, "cli.report_written", path=str(write_report(_course(args), args.assignment)))
    return EXIT_DONE


@command("export")
def _export(args: argparse.Namespace) -> int:
    from autograder.export import export

    options = {
        k: v
        for k, v in {
            "worksheet": args.worksheet,
            "roster": args.roster,
            "dry_run": args.dry_run,
        }.items()
        if v
    }
    path = export(
        _course(args), args.format, assignment_id=args.assignment, out=args.out, **options
    )
    _say(args, "cli.exported", format=args.format, path=str(path))
    return EXIT_DONE


@command("collect")
def _collect(args: argparse.Namespace) -> int:
    from autograder.lms.collect import collect_archive

    report = collect_archive(
        _course(args),
        args.assignment,
        args.archive,
        args.lms,
        roster=args.roster,
        dry_run=args.dry_run,
    )
    print(report.summary(args.language))
    return EXIT_DONE


@command("gradescope")
def _gradescope(args: argparse.Namespace) -> int:
    from autograder.lms.gradescope import build_bundle

    path = build_bundle(_course(args), args.assignment, args.out)
    _say(args, "cli.gradescope_written", path=str(path))
    return EXIT_DONE


@command("lti-key")
def _lti_key(args: argparse.Namespace) -> int:
    import json

    from autograder.lms.lti import generate_key

    print(json.dumps(generate_key(args.path, args.key_id), indent=1))
    return EXIT_DONE


@command("lti-roster")
def _lti_roster(args: argparse.Namespace) -> int:
    from autograder.lms.lti_nrps import lti_roster

    course = _course(args)
    sync, report = lti_roster(
        course,
        out=args.out,
        roster=args.roster,
        match=args.match,
        memberships_url=args.memberships_url,
        overwrite=args.overwrite,
        dry_run=args.dry_run,
    )
    print(sync.summary(args.language))
    _say(args, "cli.report_at", path=str(report))
    return EXIT_DONE


@command("demo")
def _demo(args: argparse.Namespace) -> int:
    from autograder.demo import run_demo

    run_demo(state_dir=args.state_dir, config=args.config)
    return EXIT_DONE


def _as_booked(course, assignment_id: str, results):
    """The results with the gradebook's scores: a formgrader override shows in the table."""
    from autograder.grades import class_grades, with_gradebook_scores

    try:
        return with_gradebook_scores(results, class_grades(course, assignment_id))
    except Exception:  # noqa: BLE001 - no gradebook (yet): the grader's own scores
        return results


def _listing(students: list[str], limit: int = 30) -> str:
    shown = [clean_text(s, 100, one_line=True) for s in students[:limit]]
    return ", ".join(shown) + (f", … (+{len(students) - limit})" if len(students) > limit else "")


# --- the parser ---------------------------------------------------------------------------------


def _what_the_course_is() -> tuple[str, str]:
    """The course's language and its assignment ids, for the help; the help still works
    without a course (a language from $DLCOURSE_LANGUAGE, else Spanish)."""
    from dlcourse.catalogue import ENV_LANGUAGE, course_language

    try:
        course = load_course(None)
    except Exception:  # noqa: BLE001 - no course here: help all the same
        return course_language(), ""
    language = course_language(os.environ.get(ENV_LANGUAGE) or course.language)
    return language, ", ".join(sorted(course.assignments))


def _global_options(parser: argparse.ArgumentParser, say, suppress: bool) -> None:
    """The options every subcommand takes, before or after its name. After it, their default
    is SUPPRESS, so an option given before the name is not reset by the subparser."""
    default = {"default": argparse.SUPPRESS} if suppress else {}
    parser.add_argument("--config", help=say("cli.arg.config"), **default)
    parser.add_argument("--state-dir", help=say("cli.arg.state_dir"), **default)
    parser.add_argument(
        "-v", "--verbose", action="store_true", help=say("cli.arg.verbose"), **default
    )


class _CourseParser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose own words (the usage prefix, the section headings, the
    error line) come from the catalogue, in ``language``: argparse's are English only. The
    detail of a usage error (which argument) is argparse's, quoted."""

    def __init__(self, *args, language: str = "es", **kwargs):
        self.language = language
        formatter = kwargs.pop("formatter_class", argparse.HelpFormatter)
        kwargs["formatter_class"] = _localized_formatter(formatter, language)
        super().__init__(*args, **kwargs)
        self._positionals.title = _text(language, "cli.heading.positional")
        self._optionals.title = _text(language, "cli.heading.options")

    def error(self, message: str):
        self.print_usage(sys.stderr)
        detail = clean_text(message, 500)
        self.exit(
            EXIT_USAGE,
            _text(self.language, "cli.usage_error", prog=self.prog, detail=detail) + "\n",
        )


def _localized_formatter(base: type, language: str) -> type:
    heading = _text(language, "cli.heading.usage") + " "

    class Localized(base):
        def add_usage(self, usage, actions, groups, prefix=None):
            super().add_usage(usage, actions, groups, heading if prefix is None else prefix)

    return Localized


def build_parser(
    language: str | None = None, assignments: str | None = None
) -> argparse.ArgumentParser:
    if language is None or assignments is None:
        found_language, found_assignments = _what_the_course_is()
        language = language or found_language
        assignments = found_assignments if assignments is None else assignments
    shown = assignments or _text(language, "cli.no_course")

    def say(message_id: str, **params) -> str:
        # argparse formats help with "%": a literal percent sign must be doubled
        return _text(language, message_id, **params).replace("%", "%%")

    parser = _CourseParser(
        prog="autograder",
        description=textwrap.fill(_text(language, "cli.description"), 88),
        epilog=_text(language, "cli.epilog", assignments=shown),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        add_help=False,
        language=language,
    )
    parser.add_argument("-h", "--help", action="help", help=say("cli.arg.help"))
    parser.set_defaults(language=language)
    _global_options(parser, say, suppress=False)
    parser.add_argument(
        "--version",
        action="version",
        version=f"autograder {metadata.version('autograder')}",
        help=say("cli.arg.version"),
    )
    sub = parser.add_subparsers(
        dest="command",
        required=True,
        metavar=_text(language, "cli.heading.command"),
        title=_text(language, "cli.heading.commands"),
    )

    def subcommand(name: str, help_id: str) -> argparse.ArgumentParser:
        p = sub.add_parser(
            name, help=say(help_id), description=say(help_id), add_help=False, language=language
        )
        p.add_argument("-h", "--help", action="help", help=say("cli.arg.help"))
        _global_options(p, say, suppress=True)
        return p

    def assignment(p: argparse.ArgumentParser, optional: bool = False) -> None:
        if optional:
            p.add_argument(
                "assignment", nargs="?", help=say("cli.arg.assignment_optional", assignments=shown)
            )
        else:
            p.add_argument("assignment", help=say("cli.arg.assignment", assignments=shown))

    p = subcommand("release", "cli.cmd.release")
    assignment(p, optional=True)
    p.add_argument("--no-self-test", action="store_true", help=say("cli.arg.no_self_test"))

    p = subcommand("grade", "cli.cmd.grade")
    assignment(p)
    p.add_argument("--submitted", help=say("cli.arg.submitted"))
    p.add_argument("--json", help=say("cli.arg.json"))
    p.add_argument("-q", "--quiet", action="store_true", help=say("cli.arg.quiet"))
    p.add_argument("--workers", type=int, default=None, help=say("cli.arg.workers"))
    p.add_argument("--scheduler", help=say("cli.arg.scheduler"))
    p.add_argument("--force", action="store_true", help=say("cli.arg.force"))
    p.add_argument("--prune", action="store_true", help=say("cli.arg.prune"))
    p.add_argument(
        "--allow-unsandboxed", action="store_true", help=say("cli.arg.allow_unsandboxed")
    )

    p = subcommand("regrade", "cli.cmd.regrade")
    assignment(p)
    p.add_argument("--json", help=say("cli.arg.json"))

    p = subcommand("feedback", "cli.cmd.feedback")
    assignment(p)

    p = subcommand("report", "cli.cmd.report")
    assignment(p)

    p = subcommand("export", "cli.cmd.export")
    p.add_argument(
        "--format",
        default="csv",
        choices=["csv", "canvas", "moodle", "lti"],
        help=say("cli.arg.format"),
    )
    p.add_argument("--assignment", help=say("cli.arg.assignment_optional", assignments=shown))
    p.add_argument("--out", help=say("cli.arg.out"))
    p.add_argument("--worksheet", help=say("cli.arg.worksheet"))
    p.add_argument("--roster", help=say("cli.arg.roster"))
    p.add_argument("--dry-run", action="store_true", help=say("cli.arg.dry_run_lti"))

    p = subcommand("collect", "cli.cmd.collect")
    assignment(p)
    p.add_argument("archive", help=say("cli.arg.archive"))
    p.add_argument("--lms", choices=["canvas", "moodle"], required=True, help=say("cli.arg.lms"))
    p.add_argument("--roster", help=say("cli.arg.roster"))
    p.add_argument("--dry-run", action="store_true", help=say("cli.arg.dry_run_collect"))

    p = subcommand("gradescope", "cli.cmd.gradescope")
    assignment(p)
    p.add_argument("--out", help=say("cli.arg.gradescope_out"))

    p = subcommand("lti-key", "cli.cmd.lti_key")
    p.add_argument("path", help=say("cli.arg.key_path"))
    p.add_argument("--key-id", help=say("cli.arg.key_id"))

    p = subcommand("lti-roster", "cli.cmd.lti_roster")
    p.add_argument(
        "--match",
        choices=["email", "email_local", "lis_person_sourcedid"],
        help=say("cli.arg.lti_match"),
    )
    p.add_argument("--roster", help=say("cli.arg.roster"))
    p.add_argument("--out", help=say("cli.arg.lti_user_ids_out"))
    p.add_argument("--memberships-url", help=say("cli.arg.memberships_url"))
    p.add_argument("--overwrite", action="store_true", help=say("cli.arg.lti_overwrite"))
    p.add_argument("--dry-run", action="store_true", help=say("cli.arg.dry_run_collect"))

    subcommand("demo", "cli.cmd.demo")
    return parser


class PrintableFormatter(logging.Formatter):
    """Log lines quote submissions (a reason, a kernel's last words, a file name): nothing in
    them may reach the terminal as an escape sequence or a control character."""

    def format(self, record: logging.LogRecord) -> str:
        return clean_text(super().format(record), None)


class OursOnly(logging.Filter):
    """The terminal hears the grader's own warnings; the dependencies' (traitlets, nbgrader,
    jupyter_client, TensorFlow, Python warnings) go to the log file unless ``-v``."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name == "autograder" or record.name.startswith("autograder.")


def configure_logging(args: argparse.Namespace) -> Path | None:
    """Terminal and log file; returns the log file (None when it cannot be written)."""
    terminal = logging.StreamHandler()
    terminal.setFormatter(PrintableFormatter("%(levelname)s %(name)s: %(message)s"))
    handlers: list[logging.Handler] = [terminal]
    log_file = _log_file(args)
    if args.verbose:
        level = logging.INFO
    else:
        level = logging.WARNING
        terminal.addFilter(OursOnly())
    if log_file is not None:
        to_file = logging.FileHandler(log_file, encoding="utf-8", delay=True)
        to_file.setFormatter(PrintableFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handlers.append(to_file)
    logging.captureWarnings(True)  # DeprecationWarning & co: records of "py.warnings"
    logging.basicConfig(level=level, handlers=handlers, force=True)
    return log_file


def _log_file(args: argparse.Namespace) -> Path | None:
    from autograder.config import find_config_file

    try:
        if args.state_dir:
            folder = Path(args.state_dir)
        else:
            folder = Path(args.config).parent if args.config else find_config_file().parent
    except Exception:  # noqa: BLE001 - no course here: the terminal only
        return None
    return folder / LOG_FILE_NAME if folder.is_dir() and os.access(folder, os.W_OK) else None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configure_logging(args)
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(_text(args.language, "cli.config_error", detail=exc.note.to_dict()), file=sys.stderr)
        return EXIT_FAILED
    except StageError as exc:
        print(
            _text(args.language, "cli.stopped", detail=exc.note.text(args.language)),
            file=sys.stderr,
        )
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - the grader itself failed: say so, exit 1
        logging.getLogger("autograder").debug("failure", exc_info=True)
        failure = clean_text(f"{type(exc).__name__}: {exc}", 1000)
        print(
            _text(
                args.language,
                "cli.failed",
                command=args.command,
                detail=failure,
                verbose=args.verbose,
            ),
            file=sys.stderr,
        )
        return EXIT_FAILED


if __name__ == "__main__":
    raise SystemExit(main())
