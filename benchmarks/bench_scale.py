"""Benchmarks of issue 8, all in one run on this machine, written to benchmarks/results/:

(a) grading wall time / bare nbclient execution of the same notebooks (goal <= 1.05);
(b) a 20-submission class: serial `nbgrader autograde` vs `autograder grade --workers N`
    (goal >= 1.5x faster on 2 cores);
(c) regrade (checks on stored artifacts, no kernels) vs full grading (goal >= 100x faster);
(d) peak memory per worker (worker process + its kernel).

Run: .venv/bin/python benchmarks/bench_scale.py [--assignment ID] [--size 20] [--workers 2]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


class PeakMemory:
    """Polls the RSS of each child process tree of this process (worker + kernel)."""

    def __init__(self, interval: float = 0.2):
        import psutil

        self.psutil = psutil
        self.interval = interval
        self.peak_per_tree = 0
        self.peak_kernel = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = self.psutil.Process()
        while not self._stop.is_set():
            try:
                for child in me.children():
                    tree = [child, *child.children(recursive=True)]
                    rss = [p.memory_info().rss for p in tree if p.is_running()]
                    self.peak_per_tree = max(self.peak_per_tree, sum(rss))
                    self.peak_kernel = max(self.peak_kernel, max(rss, default=0))
            except self.psutil.Error:
                pass
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def build_class(course, assignment_id: str, notebook: str, size: int) -> list[str]:
    """``size`` submissions cycling through the sample class's readable students."""
    from tests.sample_class import build_sample_class

    with tempfile.TemporaryDirectory() as tmp:
        students = build_sample_class(course.release_dir, Path(tmp), assignment_id, notebook)
        readable = [s for s in students if s != "corrupt"]
        ids = []
        for i in range(size):
            source = Path(tmp) / readable[i % len(readable)] / assignment_id
            sid = f"s{i:03d}_{readable[i % len(readable)]}"
            shutil.copytree(source, course.submitted_dir / sid / assignment_id)
            ids.append(sid)
    return ids


def bare_nbclient(paths: list[Path], env: dict[str, str]) -> float:
    import nbformat
    from nbclient import NotebookClient

    started = time.perf_counter()
    for path in paths:
        nb = nbformat.read(path, as_version=4)
        NotebookClient(
            nb,
            timeout=600,
            allow_errors=True,
            kernel_name="python3",
            resources={"metadata": {"path": str(path.parent)}},
        ).execute(env=env)
    return time.perf_counter() - started


def nbgrader_autograde(course, assignment_id: str, ids: list[str], env: dict[str, str]) -> float:
    """Serial `nbgrader autograde` of the same submissions in a scratch nbgrader course."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        shutil.copytree(course.source_dir / assignment_id, root / "source" / assignment_id)
        shutil.copy(ROOT / "course_config.py", root)
        shutil.copy(ROOT / "nbgrader_config.py", root)
        for sid in ids:
            shutil.copytree(course.submitted_dir / sid, root / "submitted" / sid)
        nbgrader = [str(Path(sys.executable).parent / "nbgrader")]
        subprocess.run(
            [*nbgrader, "generate_assignment", assignment_id, "--force"],
            cwd=root,
            env=env,
            check=True,
            capture_output=True,
        )
        started = time.perf_counter()
        subprocess.run(
            [*nbgrader, "autograde", assignment_id, "--force", "--Execute.timeout=600"],
            cwd=root,
            env=env,
            check=True,
            capture_output=True,
        )
        return time.perf_counter() - started


def main() -> dict:
    from autograder.batch import grade_class, regrade_class
    from autograder.config import load_course

    parser = argparse.ArgumentParser()
    parser.add_argument("--assignment", default="lesson4_early_stopping")
    parser.add_argument("--size", type=int, default=20)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    args = parser.parse_args()
    os.environ.setdefault("COURSE_DATA_HOME", str(ROOT.parent / "shared" / "data"))
    env = {
        **os.environ,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
    }
    figures: dict = {
        "assignment": args.assignment,
        "size": args.size,
        "workers": args.workers,
        "cores": os.cpu_count(),
    }
    with tempfile.TemporaryDirectory() as tmp:
        course = load_course(ROOT / "course_config.py", state_dir=Path(tmp) / "state")
        spec = course.assignment(args.assignment)
        ids = build_class(course, args.assignment, spec.notebook, args.size)
        paths = [course.submitted_dir / sid / args.assignment / spec.notebook for sid in ids]

        # (b) serial nbgrader vs our parallel grading, same submissions, same run
        figures["nbgrader_autograde_serial_s"] = round(
            nbgrader_autograde(course, args.assignment, ids, env), 2
        )
        with PeakMemory() as memory:
            started = time.perf_counter()
            grade_class(course, args.assignment, workers=args.workers, progress=False)
            parallel = time.perf_counter() - started
        figures["autograder_parallel_s"] = round(parallel, 2)
        figures["speedup_vs_nbgrader"] = round(figures["nbgrader_autograde_serial_s"] / parallel, 2)
        # (d) peak memory per worker (the worker process and its kernel)
        figures["peak_mb_per_worker_tree"] = round(memory.peak_per_tree / 2**20, 1)
        figures["peak_mb_largest_process"] = round(memory.peak_kernel / 2**20, 1)

        # (c) regrade vs full grading
        started = time.perf_counter()
        regrade_class(course, args.assignment)
        regrade = time.perf_counter() - started
        figures["regrade_s"] = round(regrade, 3)

        # (a) serial grading vs bare nbclient execution of the same notebooks
        serial_course = load_course(ROOT / "course_config.py", state_dir=Path(tmp) / "serial")
        for sid in ids:
            shutil.copytree(course.submitted_dir / sid, serial_course.submitted_dir / sid)
        started = time.perf_counter()
        grade_class(serial_course, args.assignment, workers=1, progress=False)
        serial = time.perf_counter() - started
        figures["autograder_serial_s"] = round(serial, 2)
        # the same kernel settings as grading: one thread, and NBGRADER_EXECUTION (which nbgrader
        # sets too) so the playground draws no widget
        bare_env = {
            **env,
            "NBGRADER_EXECUTION": "autograde",
            **{
                k: "1"
                for k in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS")
            },
        }
        bare = bare_nbclient(paths, bare_env)
        figures["bare_nbclient_s"] = round(bare, 2)
        figures["ratio_serial_grade_over_bare"] = round(serial / bare, 3)
        figures["regrade_speedup_vs_full_serial"] = round(serial / regrade, 1)
    for key, value in figures.items():
        print(f"{key:34s} {value}")
    out = ROOT / "benchmarks" / "results" / f"bench_scale_{args.assignment}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    main()
