"""Does a kernel with more threads give the same grade, bit for bit? (issue 16, item 4)

Grades each assignment's reference solution (the source notebook) in the sandbox with 1 and 2
TensorFlow threads per kernel and compares every captured artifact (answers, training history,
weights) byte for byte. More threads for a short queue are allowed only if every lesson is
identical; the figures are written to benchmarks/results/kernel_threads.json.

Run: .venv/bin/python benchmarks/kernel_threads.py [ASSIGNMENT ...]  (about 4 minutes)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("COURSE_DATA_HOME", str(ROOT.parent / "shared" / "data"))
OUT = ROOT / "benchmarks" / "results" / "kernel_threads.json"

from autograder.config import load_course  # noqa: E402
from autograder.core import Assignment, GradingSettings, grade  # noqa: E402
from autograder.sandbox import choose_launcher  # noqa: E402

ADDRESS = re.compile(rb" at 0x[0-9a-f]+")  # an object's repr: where it sat in memory, run to run


def digest_tree(folder: Path) -> dict[str, str]:
    """A digest of every captured file, object addresses in reprs masked (they differ between
    any two runs); the grader's own execution record aside (it holds times)."""
    out = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.name != "execution.json":
            data = path.read_bytes()
            if path.suffix == ".json":
                data = ADDRESS.sub(b" at 0x", data)
            out[str(path.relative_to(folder))] = hashlib.sha256(data).hexdigest()
    return out


def compare(course, assignment_id: str, launcher, tmp: Path) -> dict:
    assignment = Assignment.from_course(course, assignment_id)
    source = next((course.source_dir / assignment_id).glob("*.ipynb"))
    runs = {}
    for threads in (1, 2):
        settings = replace(GradingSettings.from_course(course), kernel_threads=threads)
        work = tmp / f"{assignment_id}-{threads}"
        started = time.perf_counter()
        result = grade(
            source, assignment, settings, student=f"t{threads}", workdir=work, launcher=launcher
        )
        runs[threads] = {
            "score": result.score,
            "seconds": round(time.perf_counter() - started, 1),
            "digests": digest_tree(work / "artifacts"),
        }
    one, two = runs[1]["digests"], runs[2]["digests"]
    return {
        "assignment": assignment_id,
        "identical": one == two,
        "files_that_differ": sorted(k for k in one.keys() | two.keys() if one.get(k) != two.get(k)),
        "scores": [runs[1]["score"], runs[2]["score"]],
        "seconds": [runs[1]["seconds"], runs[2]["seconds"]],
    }


def main(argv: list[str] | None = None) -> int:
    ids = (argv if argv is not None else sys.argv[1:]) or [
        "lesson4_early_stopping",
        "lesson5_dropout_batchnorm",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        course = load_course(ROOT / "course_config.py", state_dir=Path(tmp) / "state")
        launcher = choose_launcher(course)
        figures = [compare(course, aid, launcher, Path(tmp)) for aid in ids]
    for row in figures:
        print(
            f"{row['assignment']:28s} identical={row['identical']} scores={row['scores']} "
            f"seconds={row['seconds']} differ={row['files_that_differ']}"
        )
    OUT.write_text(json.dumps(figures, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
