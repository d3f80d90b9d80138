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
``autograder demo``         ``autograder.demo.run_demo``
==========================  ===============================================

Exit status: 0 when the grader worked (even if students failed), 1 when it could not run.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable

from autograder.config import ConfigError, load_course
from autograder.sandbox import SandboxUnavailable
from autograder.untrusted import clean_text

COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {}


def command(name: str):
    def register(func):
        COMMANDS[name] = func
        return func

    return register


def _course(args: argparse.Namespace):
    return load_course(args.config, state_dir=args.state_dir)


@command("release")
def _release(args: argparse.Namespace) -> int:
    from autograder.release import release

    for report in release(_course(args), args.assignment, self_test=not args.no_self_test):
        checked = "" if args.no_self_test else "; the reference solution scores full marks"
        print(
            f"released {report.assignment}: {report.notebook} "
            f"(no solution or hidden test leaked{checked})"
        )
    return 0


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
    )
    print(format_table(results))
    for refusal in results.refused:
        print(f"refused folder {refusal['folder']}: {refusal['reason']}")
    print(f"\nresults: {args.json or results_path(course, args.assignment)}")
    print(f"gradebook: {course.db_url}")
    return 0


@command("regrade")
def _regrade(args: argparse.Namespace) -> int:
    from autograder.batch import format_table, regrade_class

    results, changes = regrade_class(_course(args), args.assignment, json_path=args.json)
    print(format_table(results))
    if not changes:
        print("\nregrade: no score changed")
    for change in changes:
        cells = ", ".join(f"{g}: {a:g} -> {b:g}" for g, (a, b) in change.cells.items())
        print(f"changed {change.student}: {change.before:g} -> {change.after:g} ({cells})")
    return 0


@command("feedback")
def _feedback(args: argparse.Namespace) -> int:
    from autograder.feedback import write_feedback

    course = _course(args)
    paths = write_feedback(course, args.assignment)
    print(f"wrote {len(paths)} feedback files under {course.feedback_dir}")
    return 0


@command("report")
def _report(args: argparse.Namespace) -> int:
    from autograder.report import write_report

    print(f"class report: {write_report(_course(args), args.assignment)}")
    return 0


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
    print(f"exported {args.format}: {path}")
    return 0


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
    print(report.summary())
    return 0


@command("gradescope")
def _gradescope(args: argparse.Namespace) -> int:
    from autograder.lms.gradescope import build_bundle

    print(f"Gradescope autograder: {build_bundle(_course(args), args.assignment, args.out)}")
    return 0


@command("lti-key")
def _lti_key(args: argparse.Namespace) -> int:
    import json

    from autograder.lms.lti import generate_key

    print(json.dumps(generate_key(args.path, args.key_id), indent=1))
    return 0


@command("demo")
def _demo(args: argparse.Namespace) -> int:
    from autograder.demo import run_demo

    run_demo(state_dir=args.state_dir, config=args.config)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="autograder", description=__doc__.split("\n")[0])
    parser.add_argument("--config", help="path to course_config.py (default: nearest one)")
    parser.add_argument(
        "--state-dir",
        help="where submitted/, autograded/, feedback/, the "
        "gradebook and exports live (default: the course directory)",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser(
        "release",
        help="generate release/ from source/, check for leaks, grade the reference solution",
    )
    p.add_argument("assignment", nargs="?")
    p.add_argument(
        "--no-self-test",
        action="store_true",
        help="skip grading the reference solution (it must score full marks)",
    )

    p = sub.add_parser("grade", help="grade every submission of an assignment")
    p.add_argument("assignment")
    p.add_argument("--submitted", help="nbgrader submitted/ folder (default: the course's)")
    p.add_argument("--json", help="also write the results JSON here")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="parallel worker processes (default: course_config.py, else one per core)",
    )
    p.add_argument("--scheduler", help="grade on a Dask cluster, e.g. tcp://host:8786")
    p.add_argument(
        "--force",
        action="store_true",
        help="regrade students already graded (default: only new or changed files)",
    )
    p.add_argument(
        "--allow-unsandboxed",
        action="store_true",
        help="grade even when the bubblewrap sandbox is unavailable (trusted code only)",
    )

    p = sub.add_parser("regrade", help="re-run the checkers on stored artifacts (no kernels)")
    p.add_argument("assignment")
    p.add_argument("--json", help="also write the results JSON here")

    p = sub.add_parser("feedback", help="per-student HTML feedback")
    p.add_argument("assignment")

    p = sub.add_parser("report", help="class report (HTML) for the instructor")
    p.add_argument("assignment")

    p = sub.add_parser("export", help="export grades (csv, canvas, moodle, lti)")
    p.add_argument("--format", default="csv", choices=["csv", "canvas", "moodle", "lti"])
    p.add_argument("--assignment", help="one assignment (default: all)")
    p.add_argument("--out", help="output file")
    p.add_argument("--worksheet", help="moodle: the grading worksheet downloaded from Moodle")
    p.add_argument("--roster", help="roster CSV mapping LMS ids to student ids")
    p.add_argument("--dry-run", action="store_true", help="lti: show what would be sent")

    p = sub.add_parser("collect", help="lay an LMS submissions download out in submitted/")
    p.add_argument("assignment")
    p.add_argument("archive")
    p.add_argument("--lms", choices=["canvas", "moodle"], required=True)
    p.add_argument("--roster", help="roster CSV mapping LMS ids to student ids")
    p.add_argument("--dry-run", action="store_true")

    p = sub.add_parser("gradescope", help="build a Gradescope autograder zip")
    p.add_argument("assignment")
    p.add_argument("--out", help="zip file (default: exports/<assignment>_gradescope.zip)")

    p = sub.add_parser("lti-key", help="generate the tool's LTI 1.3 signing key and print its JWK")
    p.add_argument("path")
    p.add_argument("--key-id")

    sub.add_parser("demo", help="release, grade the sample class, feedback and export")
    return parser


class PrintableFormatter(logging.Formatter):
    """Log lines quote submissions (a reason, a kernel's last words, a file name): nothing in
    them may reach the terminal as an escape sequence or a control character."""

    def format(self, record: logging.LogRecord) -> str:
        return clean_text(super().format(record), None)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = logging.StreamHandler()
    handler.setFormatter(PrintableFormatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, handlers=[handler])
    try:
        return COMMANDS[args.command](args)
    except ConfigError as exc:
        print(f"autograder: configuration error: {exc}", file=sys.stderr)
        return 1
    except SandboxUnavailable as exc:
        print(f"autograder: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # noqa: BLE001 - the grader itself failed: say so, exit 1
        logging.getLogger("autograder").debug("failure", exc_info=True)
        failure = clean_text(f"{type(exc).__name__}: {exc}", 1000)
        print(f"autograder: {args.command} failed: {failure}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
