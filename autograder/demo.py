"""The demo (``make demo`` / ``autograder demo``): release every assignment, grade its sample
class, write feedback and the class report, export a CSV and print the grade tables.

It runs in its own state folder (``demo/`` in the course directory by default), so it never
mixes with a real class's ``submitted/`` or gradebook.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from autograder import messages
from autograder.config import load_course
from autograder.results import StageError

DEMO_MARK = ".autograder-demo"  # left in a demo's folder: the only kind of folder it deletes


def run_demo(
    state_dir: str | Path | None = None,
    config: str | Path | None = None,
    assignments: list[str] | None = None,
    progress: bool = True,
) -> dict[str, object]:
    """Run the whole pipeline on the sample classes; returns the results per assignment."""
    from autograder.batch import format_table, grade_class
    from autograder.export import export
    from autograder.feedback import write_feedback
    from autograder.release import release
    from autograder.report import write_report
    from autograder.sandbox import choose_launcher

    course = load_course(config)
    state = Path(state_dir) if state_dir else course.root / "demo"
    _clear_demo_folder(state, own=state_dir is None)  # a demo starts from a clean slate
    course = load_course(config, state_dir=state)
    sys.path.insert(0, str(course.root))  # the sample classes live in tests/
    from tests.sample_class import build_sample_class

    # the demo grades our own sample notebooks: sandboxed when bubblewrap is there, else with a
    # visible warning (real classes are refused without the sandbox)
    launcher = choose_launcher(course, allow_unsandboxed=True)
    ids = assignments or sorted(course.assignments)
    outcome: dict[str, object] = {}
    language = course.language

    def say(message_id: str, **params) -> None:
        print(messages.render(message_id, params, language))

    for report in release(course):
        say(
            "cli.released",
            assignment=report.assignment,
            notebook=str(report.notebook),
            checked=True,
        )
    for aid in ids:
        spec = course.assignment(aid)
        students = build_sample_class(course.release_dir, course.submitted_dir, aid, spec.notebook)
        print()
        say("cli.demo_grading", assignment=aid, count=len(students))
        results = grade_class(course, aid, progress=progress, launcher=launcher, workers=None)
        print(format_table(results, language=language))
        feedback = write_feedback(course, aid)
        report_path = write_report(course, aid)
        say("cli.feedback_written", count=len(feedback), path=str(course.feedback_dir))
        say("cli.report_written", path=str(report_path))
        outcome[aid] = results
    csv_path = export(course, "csv")
    print()
    say("cli.exported", format="csv", path=str(csv_path))
    say("cli.gradebook_at", url=course.db_url)
    return outcome


def _clear_demo_folder(state: Path, own: bool) -> None:
    """Delete an earlier demo's folder (``own``: the course's ``demo/``, or one holding the
    demo's mark); refuse any other non-empty folder: ``--state-dir`` pointing at a real class
    must never cost its gradebook."""
    if state.is_dir() and any(state.iterdir()):
        if not own and not (state / DEMO_MARK).is_file():
            raise StageError("cli.demo_refuses", path=str(state))
        shutil.rmtree(state)
    state.mkdir(parents=True, exist_ok=True)
    (state / DEMO_MARK).write_text("made by `autograder demo`; deleted by the next one\n")
