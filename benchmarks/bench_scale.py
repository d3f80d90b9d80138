"""Grading-speed figures, all in one run on this machine, written to benchmarks/results/:

(a) grading wall time / bare nbclient execution of the same notebooks;
(b) a 20-submission class: serial `nbgrader autograde` (nbgrader's own pipeline, not the
    course's plugin) vs `autograder grade --workers N`;
(c) regrade (checks on stored artifacts, no kernels) vs full grading, at 10 and 100 students
    (100: copies of the graded class's artifacts; its full grading is extrapolated from the
    measured serial time per notebook);
(d) peak memory per worker (worker process + its kernel), RSS and PSS, and the floor under it:
    a bare interpreter that imports what the setup cell imports;
(e) the cost breakdown per notebook (results JSON ``timing``): the student's own cells
    against everything else, in the parallel run (``breakdown_*``) and in the serial one
    (``breakdown_serial_*``), where each kernel but the first is prestarted during the previous
    notebook (``autograder.prestart``, ``prestart_kernels = "auto"``): its start and
    imports are then overlapped (``breakdown_serial_prestarted_*``, off the critical path);
(f) a class in which 30 % of the submissions are duplicates, deduplication on vs off.

(b)-(e) run with deduplication off: the class cycles through the sample class, so it repeats
students, and only (f) should show what executing duplicates once adds.

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
    """Polls the memory of each child process tree of this process (worker + kernel): RSS
    (pages shared between processes counted in each) and what the sandbox's watchdog counts
    (``sandbox.process_memory``: PSS, shared pages split between their users, plus page tables; every 25th poll, about every 5 s: reading
    it takes the process's memory-map lock, which a training kernel needs for its page faults)."""

    def __init__(self, interval: float = 0.2):
        import psutil

        from autograder.sandbox import process_memory

        self.psutil = psutil
        self.process_memory = process_memory
        self.interval = interval
        self.peak_per_tree = 0
        self.peak_kernel = 0
        self.peak_pss_per_tree = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        me = self.psutil.Process()
        polls = 0
        while not self._stop.is_set():
            try:
                for child in me.children():
                    tree = [child, *child.children(recursive=True)]
                    rss = [p.memory_info().rss for p in tree if p.is_running()]
                    self.peak_per_tree = max(self.peak_per_tree, sum(rss))
                    self.peak_kernel = max(self.peak_kernel, max(rss, default=0))
                    if polls % 25 == 0:
                        pss = sum(self.process_memory(p.pid) for p in tree)
                        self.peak_pss_per_tree = max(self.peak_pss_per_tree, pss)
            except self.psutil.Error:
                pass
            polls += 1
            time.sleep(self.interval)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def import_floor_mb() -> float:
    """Resident memory of a bare interpreter once it has imported what the lesson's setup cell
    imports (numpy, pandas, matplotlib, TensorFlow, Keras, scikit-learn) and ipykernel: the
    part of a kernel's memory that no student code and no grader setting can remove."""
    program = (
        "import os\n"
        "os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'\n"
        "os.environ['TF_ENABLE_ONEDNN_OPTS'] = '0'\n"
        "import numpy, pandas, matplotlib.pyplot, tensorflow, keras, sklearn.model_selection\n"
        "import ipykernel.kernelapp, psutil\n"
        "print(psutil.Process().memory_info().rss)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, check=True
    )
    return round(int(done.stdout.split()[-1]) / 2**20, 1)


def build_class(
    course, assignment_id: str, notebook: str, size: int, duplicates: float = 0.0
) -> list[str]:
    """``size`` submissions cycling through the sample class's readable students. With
    ``duplicates``, that share of them are exact copies of earlier ones and every other one is
    made unique (a comment in its first answer cell), so exactly that share can be shared."""
    import nbformat

    from tests.sample_class import build_sample_class

    with tempfile.TemporaryDirectory() as tmp:
        students = build_sample_class(course.release_dir, Path(tmp), assignment_id, notebook)
        readable = [s for s in students if s != "corrupt"]
        copies = round(size * duplicates)
        ids = []
        for i in range(size):
            name = readable[i % len(readable)]
            sid = f"s{i:03d}_{name}"
            target = course.submitted_dir / sid / assignment_id
            if duplicates and i >= size - copies:  # a copy of an earlier, unique submission
                shutil.copytree(course.submitted_dir / ids[i - (size - copies)], target.parent)
                ids.append(sid)
                continue
            shutil.copytree(Path(tmp) / name / assignment_id, target)
            if duplicates:
                nb = nbformat.read(target / notebook, as_version=4)
                answer = next(
                    (c for c in nb.cells if c.metadata.get("nbgrader", {}).get("solution")),
                    None,
                )
                if answer is not None:
                    answer.source = f"# submission {i}\n{answer.source}"
                    nbformat.write(nb, target / notebook)
            ids.append(sid)
    return ids


def breakdown(results) -> dict[str, float]:
    """(e) Mean seconds per executed notebook: the student's own cells, and the rest."""
    from autograder.execute import PHASES

    own = ("answer_cells", "given_cells")
    rest = (*(p for p in PHASES if p not in own), "read_rebuild", "write_notebook", "check")
    writer = ("gradebook", "journal")
    overlapped = ("prestarted_kernel_start", "prestarted_setup_imports")
    timed = [r.timing for r in results.students.values() if "kernel_start" in r.timing]
    if not timed:
        return {}
    keys = (*own, *rest, *writer, *overlapped)
    mean = {k: sum(t.get(k, 0.0) for t in timed) / len(timed) for k in keys}
    mean["own_cells"] = sum(mean[k] for k in own)
    mean["not_own_total"] = sum(mean[k] for k in (*rest, *writer))
    mean["prestarted_share"] = sum(overlapped[1] in t for t in timed) / len(timed)
    return {k: round(v, 3) for k, v in mean.items()}


def copies_for_regrade(course, assignment_id: str, times: int) -> list[str]:
    """The graded class ``times`` over (artifacts and results), for regrade at a larger size."""
    from autograder.results import ResultsFile
    from dlcourse import layout

    store = ResultsFile(course.results_dir, assignment_id)
    results = store.load()
    for k in range(1, times):
        for sid, result in list(results.students.items()):
            if sid.startswith("c"):
                continue
            copy = f"c{k:02d}_{sid}"
            shutil.copytree(
                layout.work_folder(course.autograded_dir, sid, assignment_id),
                layout.work_folder(course.autograded_dir, copy, assignment_id),
            )
            results.students[copy] = type(result)(**{**result.__dict__, "student": copy})
    store.save(results)
    return sorted(results.students)


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
        # nbgrader's own autograde: the course's nbgrader_config.py would route it through
        # the course pipeline (autograder.nbgrader_plugins)
        (root / "nbgrader_config.py").write_text('load_subconfig("course_config.py")\n')
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


def keep_first(course, assignment_id: str, count: int) -> None:
    """Only the first ``count`` students of the results (and their artifacts)."""
    from autograder.results import ResultsFile
    from autograder.untrusted import remove_tree
    from dlcourse import layout

    store = ResultsFile(course.results_dir, assignment_id)
    results = store.load()
    for sid in sorted(results.students)[count:]:
        del results.students[sid]
        remove_tree(layout.work_folder(course.autograded_dir, sid, assignment_id))
    store.save(results)


def timed_regrade(course, assignment_id: str) -> float:
    """``autograder regrade`` in a fresh interpreter, timed from its start to its end."""
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "autograder",
            "regrade",
            assignment_id,
            "--config",
            str(ROOT / "course_config.py"),
            "--state-dir",
            str(course.state_dir),
        ],
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

        def fresh(name: str):
            course = load_course(ROOT / "course_config.py", state_dir=Path(tmp) / name)
            course.deduplicate = False  # (b)-(e): every submission executed
            return course

        course = fresh("state")
        spec = course.assignment(args.assignment)
        ids = build_class(course, args.assignment, spec.notebook, args.size)
        paths = [course.submitted_dir / sid / args.assignment / spec.notebook for sid in ids]

        # (b) serial nbgrader vs our parallel grading, same submissions, same run
        figures["nbgrader_autograde_serial_s"] = round(
            nbgrader_autograde(course, args.assignment, ids, env), 2
        )
        with PeakMemory() as memory:
            started = time.perf_counter()
            graded = grade_class(course, args.assignment, workers=args.workers, progress=False)
            parallel = time.perf_counter() - started
        figures["autograder_parallel_s"] = round(parallel, 2)
        figures["speedup_vs_nbgrader"] = round(figures["nbgrader_autograde_serial_s"] / parallel, 2)
        # (d) peak memory per worker (the worker process and its kernel)
        figures["peak_mb_per_worker_tree"] = round(memory.peak_per_tree / 2**20, 1)
        figures["peak_mb_largest_process"] = round(memory.peak_kernel / 2**20, 1)
        figures["peak_pss_mb_per_worker_tree"] = round(memory.peak_pss_per_tree / 2**20, 1)
        # the floor under (d): what importing the setup cell's libraries costs by itself
        figures["kernel_floor_import_mb"] = import_floor_mb()
        # (e) where each notebook's time went
        for key, value in breakdown(graded).items():
            figures[f"breakdown_{key}_s"] = value

        # (c) regrade vs full grading, before this process ran any check itself (the workers
        # did), at 10 students (the first 10 graded) and at 100 (copies); and in a fresh
        # interpreter, as an instructor runs it
        regrade_seconds = {}
        for size in (10, 100):
            regrade_course = fresh(f"regrade{size}")
            shutil.copytree(course.autograded_dir, regrade_course.autograded_dir)
            shutil.copytree(course.results_dir, regrade_course.results_dir)
            shutil.copy(course.state_dir / "gradebook.db", regrade_course.state_dir)
            keep_first(regrade_course, args.assignment, 10)
            if size > 10:
                copies_for_regrade(regrade_course, args.assignment, size // 10)
            started = time.perf_counter()
            regrade_class(regrade_course, args.assignment)
            seconds = time.perf_counter() - started
            figures[f"regrade_{size}_s"] = round(seconds, 3)
            regrade_seconds[size] = seconds
            # what an instructor waits for: a fresh interpreter, its imports included
            figures[f"regrade_{size}_cli_s"] = round(
                timed_regrade(regrade_course, args.assignment), 2
            )

        # (a) serial grading vs bare nbclient execution of the same notebooks
        serial_course = fresh("serial")
        serial_course.prestart_kernels = "auto"  # (e): one worker leaves a core free for it
        for sid in ids:
            shutil.copytree(course.submitted_dir / sid, serial_course.submitted_dir / sid)
        started = time.perf_counter()
        serial_graded = grade_class(serial_course, args.assignment, workers=1, progress=False)
        serial = time.perf_counter() - started
        figures["autograder_serial_s"] = round(serial, 2)
        for key, value in breakdown(serial_graded).items():
            figures[f"breakdown_serial_{key}_s"] = value
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
        figures["parallel_speedup_vs_own_serial"] = round(serial / parallel, 2)

        per_notebook = serial / len(ids)
        for size, seconds in regrade_seconds.items():
            figures[f"regrade_{size}_speedup_vs_full_serial"] = round(
                per_notebook * size / seconds, 1
            )

    # (f) 30 % duplicates: deduplication on vs off, same submissions, identical results
    with tempfile.TemporaryDirectory() as tmp:
        timings, outcomes = {}, {}
        for dedup in (False, True):
            course = load_course(ROOT / "course_config.py", state_dir=Path(tmp) / f"d{dedup}")
            course.deduplicate = dedup
            build_class(course, args.assignment, spec.notebook, args.size, duplicates=0.3)
            started = time.perf_counter()
            result = grade_class(course, args.assignment, workers=args.workers, progress=False)
            timings[dedup] = time.perf_counter() - started
            outcomes[dedup] = {
                s: (
                    r.score,
                    [(c.id, c.passed, c.message_id) for g in r.cells.values() for c in g.checks],
                )
                for s, r in result.students.items()
            }
        figures["duplicates_share"] = 0.3
        figures["dedup_off_s"] = round(timings[False], 2)
        figures["dedup_on_s"] = round(timings[True], 2)
        figures["dedup_speedup"] = round(timings[False] / timings[True], 2)
        figures["dedup_identical_results"] = outcomes[False] == outcomes[True]
    for key, value in figures.items():
        print(f"{key:34s} {value}")
    out = ROOT / "benchmarks" / "results" / f"bench_scale_{args.assignment}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    main()
