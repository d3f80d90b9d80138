"""Benchmark: grading time of one ``lesson4_early_stopping`` submission, and the share of it
spent in the hidden checks (the goal: checks under 2 % of the time, never retraining a model).

A correct submission (the sample class's ``perfect`` student, generated from the release
notebook) is graded with ``autograder.core.grade`` in this fresh process:

* ``first``: the first submission a grading process sees; its checks include starting the
  checkers' pytest session and importing pandas/scikit-learn for the course's data split;
* ``next``: a second submission graded by the same process (what every further student of a
  class costs);
* ``regrade``: the checks alone re-run on the stored artifacts (``check.run_checks``), the
  median of several runs.

Prints the figures and writes ``benchmarks/results/bench_lesson4_early_stopping.json``.
Run: ``.venv/bin/python benchmarks/bench_lesson4_early_stopping.py`` (about a minute).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("COURSE_DATA_HOME", str(ROOT.parent / "shared" / "data"))
AID = "lesson4_early_stopping"
OUT = ROOT / "benchmarks" / "results" / "bench_lesson4_early_stopping.json"


def main() -> dict:
    import nbformat

    from autograder.check import run_checks
    from autograder.config import load_course
    from autograder.core import Assignment, GradingSettings, grade
    from autograder.record import ensure_alembic_on_path
    from tests.sample_class.lesson4_early_stopping import RECIPES

    ensure_alembic_on_path()
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        course = load_course(ROOT / "course_config.py", state_dir=tmp / "state")
        assignment = Assignment.from_course(course, AID)
        settings = GradingSettings.from_course(course)
        release = nbformat.read(course.release_dir / AID / assignment.notebook, as_version=4)
        submission = tmp / assignment.notebook
        nbformat.write(RECIPES["perfect"](release), submission)

        runs = {}
        for label in ("first", "next"):
            started = time.perf_counter()
            result = grade(submission, assignment, settings, workdir=tmp / label)
            wall = time.perf_counter() - started
            assert result.score == result.max_score, (label, result.score)
            runs[label] = {
                "total_s": round(wall, 3),
                "execute_s": result.timing["execute"],
                "check_s": result.timing["check"],
                "check_share_pct": round(100 * result.timing["check"] / wall, 3),
            }
        regrades = []
        for _ in range(5):
            started = time.perf_counter()
            cells = run_checks(
                AID,
                tmp / "next" / "artifacts",
                assignment.cell_points,
                settings.thresholds,
                settings.language,
            )
            regrades.append(time.perf_counter() - started)
            assert sum(c.score for c in cells.values()) == assignment.max_score
        regrade = statistics.median(regrades)

    figures = {
        "submission": "perfect (reference solution, 15/15)",
        "first_submission": runs["first"],
        "next_submission": runs["next"],
        "checks_only_regrade_s": round(regrade, 4),
        "checks_share_of_next_submission_pct": round(100 * regrade / runs["next"]["total_s"], 3),
        "cpu_count": os.cpu_count(),
    }
    for label in ("first", "next"):
        run = runs[label]
        print(
            f"{label:5s} submission: total {run['total_s']:6.2f} s = execute "
            f"{run['execute_s']:6.2f} s + checks {run['check_s']:5.3f} s "
            f"({run['check_share_pct']:.2f} % in the checks)"
        )
    print(
        f"checks alone on stored artifacts (median of 5): {regrade:.4f} s = "
        f"{figures['checks_share_of_next_submission_pct']:.2f} % of one submission's grading"
    )
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    main()
