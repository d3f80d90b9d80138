"""Prestarted kernels (``autograder.prestart``): the next notebook's kernel starts while one
runs, has run nothing but the setup cell's imports, serves one student only, and grades
exactly as a cold kernel does."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_notebook

from autograder.batch import Job, grade_class, prestart_plan, warm_next
from autograder.core import Assignment, GradingSettings
from autograder.execute import LocalLauncher, RunSettings, kernel_runner, run_notebook
from autograder.prestart import PrestartPlan, prestarter, setup_imports
from autograder.sandbox import kernel_cgroups
from tests.conftest import make_course

ASSIGNMENTS = ("lesson4_learning_rate", "lesson4_early_stopping", "lesson5_dropout_batchnorm")


def source_of(course, aid: str) -> str:
    spec = course.assignment(aid)
    return (course.source_dir / aid / spec.notebook).read_text(encoding="utf-8")


@pytest.mark.parametrize("aid", ASSIGNMENTS)
def test_the_warm_up_is_the_setup_cells_imports_and_binds_no_name(course, aid):
    code = setup_imports(source_of(course, aid))
    lines = code.splitlines()
    assert lines and all(line.startswith("__import__(") for line in lines)
    assert "dlcourse.selfcheck" in code  # the course's own modules too, in the cell's order
    assert "%" not in code and "=" not in code  # no magic, no assignment: nothing is bound
    if aid != "lesson4_learning_rate":
        assert lines.index("__import__('tensorflow')") < lines.index("__import__('keras')")


def test_no_setup_cell_means_no_warm_up():
    nb = new_notebook(cells=[new_code_cell("import tensorflow")])
    assert setup_imports(nbformat.writes(nb)) == ""


def test_each_workers_last_job_prestarts_nothing():
    jobs = [Job(f"s{i}", f"/x/{i}", None, None, f"/w/{i}") for i in range(5)]
    assert [j.warm_next for j in warm_next(jobs, 1)] == [True] * 4 + [False]
    assert [j.warm_next for j in warm_next(jobs, 2)] == [True] * 3 + [False] * 2
    assert [j.warm_next for j in warm_next(jobs, None)] == [False] * 5


@pytest.mark.parametrize(
    ("mode", "workers", "cores", "scheduler", "prestarts"),
    [
        ("auto", 1, 2, None, True),  # a free core for the warm-up
        ("auto", 2, 2, None, False),  # every core runs a notebook: the warm-up would wait
        ("auto", 1, 1, None, False),
        ("always", 2, 2, None, True),
        ("never", 1, 8, None, False),
        ("always", 1, 8, "tcp://localhost:8786", False),  # a Dask worker's threads share it
    ],
)
def test_when_kernels_are_prestarted(
    course, monkeypatch, mode, workers, cores, scheduler, prestarts
):
    monkeypatch.setattr(os, "cpu_count", lambda: cores)
    course.prestart_kernels = mode
    assignment = Assignment.from_course(course, "lesson4_early_stopping")
    plan = prestart_plan(course, assignment, GradingSettings(), workers, scheduler)
    assert (plan is not None) is prestarts
    if plan is not None:
        assert Path(plan.folder) == course.kernels_dir
        assert plan.folder not in str(course.autograded_dir)


def test_no_prestart_when_every_kernel_runs_as_one_configured_uid(course, monkeypatch):
    from autograder.sandbox import BubblewrapLauncher, SandboxSettings

    monkeypatch.setattr(os, "cpu_count", lambda: 8)
    course.prestart_kernels = "always"
    assignment = Assignment.from_course(course, "lesson4_early_stopping")
    one_uid = BubblewrapLauncher(SandboxSettings(uid=4242))
    assert prestart_plan(course, assignment, GradingSettings(), 1, None, one_uid) is None
    own_uids = BubblewrapLauncher(SandboxSettings())
    assert prestart_plan(course, assignment, GradingSettings(), 1, None, own_uids) is not None


def test_a_running_kernel_and_the_prestarted_one_have_their_own_uids(monkeypatch):
    from autograder import sandbox

    monkeypatch.setattr(sandbox, "_is_root", lambda: True)
    settings = sandbox.SandboxSettings()
    first, second, third = (sandbox._sandbox_uid(settings, k) for k in range(3))
    assert first != second and first == third  # two at a time per process: never the same


def test_the_setting_is_validated(tmp_path):
    from autograder.config import ConfigError, course_settings

    assert course_settings({"prestart_kernels": "never"}).prestart_kernels == "never"
    with pytest.raises(ConfigError):
        course_settings({"prestart_kernels": "sometimes"})


# --- real kernels ------------------------------------------------------------------------------


def probe_notebook() -> nbformat.NotebookNode:
    # what a student's first cell could see of the warm-up
    return new_notebook(
        cells=[
            new_code_cell(
                "import sys, os\n"
                "print('colorsys' in sys.modules, 'colorsys' in dir(), len(In), os.getcwd())"
            )
        ]
    )


def plan_in(folder: Path, code: str) -> PrestartPlan:
    return PrestartPlan(str(folder), code, RunSettings(cell_timeout=30, notebook_timeout=60))


def started(plan: PrestartPlan, launcher) -> object:
    kernels = prestarter()
    kernels.begin(plan, launcher)
    return kernels.take(plan.key(launcher))


@pytest.mark.slow
def test_a_warm_kernel_has_run_only_imports_and_becomes_the_students_folder(tmp_path):
    launcher = LocalLauncher()
    plan = plan_in(tmp_path / "kernels", "__import__('colorsys')")
    warm = started(plan, launcher)
    nb = probe_notebook()
    workdir = tmp_path / "autograded" / "ana" / "a1"
    workdir.mkdir(parents=True)
    record = run_notebook(nb, workdir, plan.run, launcher, warm=warm)
    assert record.status == "completed"
    assert set(record.prestarted) == {"kernel_start", "setup_imports"}
    cell = nb.cells[0]
    assert cell.execution_count == 1  # the warm-up was silent: not counted, not in history
    seen = cell.outputs[0]["text"].split()
    assert seen[:3] == ["True", "False", "2"]  # imported, no name bound, In = ["", this cell]
    assert (workdir / "artifacts").is_dir()  # the kernel's folder is now the student's
    assert list((tmp_path / "kernels").iterdir()) == []


@pytest.mark.slow
def test_a_kernel_nobody_takes_is_shut_down(tmp_path):
    launcher = LocalLauncher()
    folder = tmp_path / "kernels"
    kernels = prestarter()
    kernels.begin(plan_in(folder, "__import__('colorsys')"), launcher)
    assert kernels.take("another assignment") is None  # not interchangeable: it goes
    assert list(folder.iterdir()) == []
    # handed to a notebook that never ran (an unreadable submission): it goes too
    warm = started(plan_in(folder, "__import__('colorsys')"), launcher)
    kernels.release(warm)
    assert list(folder.iterdir()) == []
    # still waiting when the class is done
    kernels.begin(plan_in(folder, "__import__('colorsys')"), launcher)
    kernels.discard()
    assert list(folder.iterdir()) == []


def assert_cold_start(tmp_path: Path, plan: PrestartPlan, launcher, warm) -> None:
    """The notebook handed ``warm`` ran in a kernel of its own, and no kernel folder is left."""
    nb = probe_notebook()
    workdir = tmp_path / "work"
    workdir.mkdir()
    record = run_notebook(nb, workdir, plan.run, launcher, warm=warm)
    assert record.status == "completed" and record.prestarted == {}
    assert nb.cells[0].outputs[0]["text"].split()[:3] == ["False", "False", "2"]
    assert list((tmp_path / "kernels").iterdir()) == []


@pytest.mark.slow
def test_a_warm_up_that_fails_means_a_cold_start(tmp_path):
    launcher = LocalLauncher()
    plan = plan_in(tmp_path / "kernels", "__import__('no_such_module_here')")
    warm = started(plan, launcher)
    assert_cold_start(tmp_path, plan, launcher, warm)


async def ready(task: asyncio.Task):
    return await asyncio.shield(task)


@pytest.mark.slow
def test_a_warm_kernel_that_died_while_waiting_means_a_cold_start(tmp_path):
    launcher = LocalLauncher()
    plan = plan_in(tmp_path / "kernels", "__import__('colorsys')")
    warm = started(plan, launcher)
    kernel = kernel_runner().run(ready(warm.task))  # started, and waiting for its notebook
    os.kill(kernel.km.provisioner.pid, signal.SIGKILL)  # e.g. the machine's OOM killer
    assert_cold_start(tmp_path, plan, launcher, warm)


def graded_as(result) -> dict:
    return {
        "status": result.status,
        "score": result.score,
        "checks": [
            (c.id, c.passed, c.message_id, c.messages, c.points)
            for cell in result.cells.values()
            for c in cell.checks
        ],
        "notes": [n["id"] for n in result.notes],
        "error": result.error_note,
    }


@pytest.mark.slow
@pytest.mark.parametrize("aid", ["lesson4_learning_rate", "lesson4_early_stopping"])
def test_prestarted_kernels_grade_as_cold_ones(graded_class, tmp_path, aid):
    """Three students graded one after another in sandboxed kernels prestarted for them get
    exactly what the class fixture (cold kernels, two workers) gave them."""
    cold = graded_class(aid)
    chosen = sorted(cold.results.students)[:3]
    course = make_course(tmp_path)
    shutil.copytree(cold.course.submitted_dir, course.submitted_dir)
    for folder in course.submitted_dir.iterdir():
        if folder.name not in chosen:
            shutil.rmtree(folder)
    course.prestart_kernels = "always"
    course.deduplicate = False
    before = set(kernel_cgroups())
    warm = grade_class(course, aid, progress=False, workers=1)
    assert sorted(warm.students) == chosen
    for sid in chosen:
        assert graded_as(warm.students[sid]) == graded_as(cold.results.students[sid]), sid
    timing = {s: warm.students[s].timing for s in chosen}
    executed = [s for s in chosen if "kernel_start" in timing[s]]  # not an unreadable file
    prestarted = [s for s in chosen if "prestarted_setup_imports" in timing[s]]
    assert prestarted == executed[1:]  # the first kernel is started cold, the others ahead
    assert not course.kernels_dir.exists()  # every kernel used or shut down, the folder gone
    assert set(kernel_cgroups()) <= before
