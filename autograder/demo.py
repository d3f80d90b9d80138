"""The demo (``make demo`` / ``autograder demo``): release every assignment, grade its sample
class, write feedback and the class report, export a CSV and print the grade tables.

It runs in its own state folder (``demo/`` in the course directory by default), so it never
mixes with a real class's ``submitted/`` or gradebook.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from autograder.config import load_course


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
    if state.exists():
        shutil.rmtree(state)  # a demo always starts from a clean slate
    course = load_course(config, state_dir=state)
    sys.path.insert(0, str(course.root))  # the sample classes live in tests/
    from tests.sample_class import build_sample_class

    # the demo grades our own sample notebooks: sandboxed when bubblewrap is there, else with a
    # visible warning (real classes are refused without the sandbox)
    launcher = choose_launcher(course, allow_unsandboxed=True)
    ids = assignments or sorted(course.assignments)
    outcome: dict[str, object] = {}
    for report in release(course):
        print(f"released {report.assignment} -> {report.notebook.relative_to(course.root)}")
    for aid in ids:
        spec = course.assignment(aid)
        students = build_sample_class(course.release_dir, course.submitted_dir, aid, spec.notebook)
        print(f"\n== {aid}: grading the sample class ({len(students)} submissions) ==")
        results = grade_class(course, aid, progress=progress, launcher=launcher, workers=None)
        print(format_table(results))
        feedback = write_feedback(course, aid)
        report_path = write_report(course, aid)
        print(f"feedback: {len(feedback)} files under {course.feedback_dir}")
        print(f"class report: {report_path}")
        outcome[aid] = results
    csv_path = export(course, "csv")
    print(f"\nCSV export: {csv_path}")
    print(f"gradebook: {course.db_url}")
    return outcome
