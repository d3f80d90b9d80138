"""Benchmark: `autograder grade lesson4_learning_rate` on the sample class, against the bare
execution of the same notebooks with nbclient (no rebuild, no capture, no checks, no gradebook).

Prints the figures and writes them to benchmarks/results/bench_grade_learning_rate.json.
Run: `make bench` or `.venv/bin/python benchmarks/bench_grade_learning_rate.py`.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
AID = "lesson4_learning_rate"


def bare_execution(notebooks: list[Path], env: dict[str, str]) -> float:
    import nbformat
    from nbclient import NotebookClient

    started = time.perf_counter()
    for path in notebooks:
        try:
            nb = nbformat.read(path, as_version=4)
        except Exception:  # noqa: BLE001 - the corrupt sample cannot be executed at all
            continue
        client = NotebookClient(
            nb,
            timeout=120,
            allow_errors=True,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        )
        client.execute(env=env)
    return time.perf_counter() - started


def main() -> dict[str, float]:
    from autograder.batch import grade_class
    from autograder.config import load_course
    from tests.sample_class import build_sample_class

    shared = ROOT.parent / "shared" / "data"
    os.environ.setdefault("COURSE_DATA_HOME", str(shared))
    with tempfile.TemporaryDirectory() as tmp:
        course = load_course(ROOT / "course_config.py", state_dir=tmp)
        spec = course.assignment(AID)
        students = build_sample_class(course.release_dir, course.submitted_dir, AID, spec.notebook)
        notebooks = [course.submitted_dir / s / AID / spec.notebook for s in students]

        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "NBGRADER_EXECUTION": "autograde"}
        bare = bare_execution(notebooks, env)
        started = time.perf_counter()
        results = grade_class(course, AID, progress=False)
        graded = time.perf_counter() - started
        checks = sum(r.timing.get("check", 0) for r in results.students.values())
    figures = {
        "submissions": len(students),
        "autograder_grade_seconds": round(graded, 2),
        "bare_nbclient_seconds": round(bare, 2),
        "ratio_grade_over_bare": round(graded / bare, 3),
        "checks_seconds_total": round(checks, 2),
    }
    for key, value in figures.items():
        print(f"{key:28s} {value}")
    out = ROOT / "benchmarks" / "results" / "bench_grade_learning_rate.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    main()
