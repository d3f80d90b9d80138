"""Execute stage: restore the trusted notebook structure, then run it in a fresh kernel.

1. ``rebuild`` takes the instructor's source notebook as the skeleton: every locked or graded
   cell (setup, tests with their hidden part) comes from the source, every answer cell from the
   student, and the student's own extra cells stay where they were. Deleted, duplicated,
   reordered or retyped graded cells are repaired and reported; tags (``skip-execution``) and
   outputs are dropped, so nothing in the submission decides what runs.
2. ``run_notebook`` executes it with nbclient: per-cell timeout (the cell is interrupted and the
   rest still runs), per-notebook wall-clock limit (the kernel is killed), a clean environment
   and an artifacts folder for the capture. It returns an ``ExecutionRecord`` of plain data.

The kernel is started by a ``KernelLauncher``: ``LocalLauncher`` runs it as a local process;
the sandbox wraps the same seam.
"""

from __future__ import annotations

import asyncio
import atexit
import copy
import json
import os
import threading
import time
from collections.abc import Awaitable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import nbformat
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_raw_cell

from autograder.results import Note
from autograder.untrusted import UnsafeInput, read_bounded, remove_tree
from dlcourse import layout

ARTIFACTS_DIRNAME = layout.ARTIFACTS_DIRNAME
MAX_NOTEBOOK_BYTES = 50_000_000  # outputs included: they are read, then dropped
MAX_CELLS = 2_000  # the assignments have ~40; a student may add many, not 650,000
MAX_CELL_SOURCE_CHARS = 10_000_000  # a 5 MB literal is code; 50 MB is not
MAX_SOURCE_CHARS = 20_000_000
MAX_CELL_OUTPUT_BYTES = 1_000_000  # outputs kept per cell; the rest is dropped, with a note
MAX_NOTEBOOK_OUTPUT_BYTES = 5_000_000  # and per notebook (a print loop must not fill memory)


class SubmissionError(Exception):
    """The submission cannot be graded at all (not a notebook, unreadable...): a catalogue id
    and its parameters (``note``); ``str()`` is the English text, for logs."""

    def __init__(self, message_id: str, **params: Any):
        self.note = Note(message_id, params)
        super().__init__(self.note.text("en"))


# --- rebuild ---------------------------------------------------------------------------------


def cell_metadata(cell: NotebookNode) -> dict[str, Any]:
    meta = cell.get("metadata", {}) if isinstance(cell, dict) else {}
    return meta if isinstance(meta, dict) else {}  # a submission may hold any JSON here


def nbgrader_meta(cell: NotebookNode) -> dict[str, Any]:
    meta = cell_metadata(cell).get("nbgrader", {})
    return meta if isinstance(meta, dict) else {}


def grade_id(cell: NotebookNode) -> str | None:
    gid = nbgrader_meta(cell).get("grade_id")
    return gid if isinstance(gid, str) and gid else None


def is_answer_cell(cell: NotebookNode) -> bool:
    return bool(nbgrader_meta(cell).get("solution"))


def is_trusted_cell(cell: NotebookNode) -> bool:
    """Locked or graded-but-not-answer cells: restored from the instructor's version."""
    meta = nbgrader_meta(cell)
    return (
        bool(grade_id(cell))
        and not meta.get("solution")
        and (meta.get("locked") or meta.get("grade"))
    )


def read_submission(path: str | os.PathLike) -> NotebookNode:
    """Read a submitted notebook, or raise ``SubmissionError`` with a reason a student reads.

    Bounded before it is parsed: the file's size, then its cell count and each source's
    length. The notebook is not validated against nbformat's schema (a jsonschema pass over
    650,000 cells cost minutes): ``rebuild`` keeps only the sources, so nothing else in the
    file is ever used."""
    try:
        raw = read_bounded(path, MAX_NOTEBOOK_BYTES)
    except FileNotFoundError:
        raise SubmissionError("submission.missing") from None
    except UnsafeInput as exc:
        if exc.kind == "too_large":
            raise SubmissionError(
                "submission.too_large", mb=MAX_NOTEBOOK_BYTES // 1_000_000
            ) from None
        raise SubmissionError("submission.unreadable", detail=exc.note) from None
    if not raw.strip():
        raise SubmissionError("submission.empty")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SubmissionError("submission.not_text") from None
    try:
        data = json.loads(text)
    except RecursionError:
        raise SubmissionError("submission.too_deep") from None
    except ValueError:
        raise SubmissionError("submission.not_json") from None
    cells = _cells_of(data)
    if cells is None:
        raise SubmissionError("submission.no_cells")
    if len(cells) > MAX_CELLS:
        raise SubmissionError("submission.too_many_cells", n=len(cells), limit=MAX_CELLS)
    total = 0
    for index, cell in enumerate(cells):
        if not isinstance(cell, dict):
            raise SubmissionError("submission.not_a_cell", n=index + 1)
        source = cell.get("source", "")
        size = (
            sum(len(s) for s in source if isinstance(s, str))
            if isinstance(source, list)
            else (len(source) if isinstance(source, str) else 0)
        )
        total += size
        if size > MAX_CELL_SOURCE_CHARS or total > MAX_SOURCE_CHARS:
            raise SubmissionError(
                "submission.source_too_long",
                cell_limit=f"{MAX_CELL_SOURCE_CHARS:,}",
                total_limit=f"{MAX_SOURCE_CHARS:,}",
            )
    major = data.get("nbformat")
    try:
        nb = nbformat.from_dict(data)
        if major != 4:
            nb = nbformat.convert(nb, 4)
    except Exception as exc:  # noqa: BLE001 - nbformat raises many kinds for bad input
        raise SubmissionError(
            "submission.invalid", detail=f"{type(exc).__name__}: {str(exc)[:120]}"
        ) from None
    if not isinstance(nb.get("cells"), list):
        raise SubmissionError("submission.no_cells")
    return nb


def _cells_of(data: Any) -> list | None:
    """The cells of a notebook as parsed JSON (nbformat 4, or 3's worksheets), or None."""
    if not isinstance(data, dict):
        return None
    if data.get("nbformat") == 3 and isinstance(data.get("worksheets"), list):
        cells: list = []
        for sheet in data["worksheets"]:
            if not isinstance(sheet, dict) or not isinstance(sheet.get("cells"), list):
                return None
            cells += sheet["cells"]
        return cells
    return data["cells"] if isinstance(data.get("cells"), list) else None


def _clean_cell(
    cell: NotebookNode,
    cell_type: str | None = None,
    nbgrader: dict | None = None,
    cell_id: str | None = None,
) -> NotebookNode:
    """A fresh cell with only the source kept: no outputs, tags or other metadata."""
    source = cell.get("source", "")
    if isinstance(source, list):
        source = "".join(str(s) for s in source)
    if not isinstance(source, str):
        source = ""
    kind = cell_type or cell.get("cell_type", "code")
    factory = {"code": new_code_cell, "markdown": new_markdown_cell}.get(kind, new_raw_cell)
    new = factory(source=source)
    if nbgrader:
        new.metadata["nbgrader"] = copy.deepcopy(nbgrader)
    if cell_id:
        new["id"] = cell_id
    return new


def _text(cell: NotebookNode) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else str(source)


@dataclass
class Rebuilt:
    notebook: NotebookNode
    problems: list[Note] = field(default_factory=list)


def rebuild(submission: NotebookNode, source: NotebookNode, release: NotebookNode) -> Rebuilt:
    """The notebook to execute: trusted cells from ``source``, answers from ``submission``."""
    problems: list[Note] = []
    source_ids = {grade_id(c): c for c in source.cells if grade_id(c)}
    release_ids = {grade_id(c): c for c in release.cells if grade_id(c)}

    answers: dict[str, NotebookNode] = {}
    extras: dict[str | None, list[NotebookNode]] = {None: []}
    anchor: str | None = None
    seen: set[str] = set()
    for index, cell in enumerate(submission.cells):
        if not isinstance(cell, dict):
            problems.append(Note("note.not_a_cell", {"n": index + 1}))
            continue
        gid = grade_id(cell)
        if gid in source_ids:
            if (
                is_trusted_cell(source_ids[gid])
                and gid not in seen
                and (
                    _text(cell) != _text(release_ids.get(gid, source_ids[gid]))
                    or cell_metadata(cell).get("tags")
                )
            ):
                problems.append(Note("note.locked_modified", {"cell": gid}))
            if gid in seen:
                problems.append(Note("note.duplicate", {"cell": gid}))
                if is_answer_cell(source_ids[gid]):  # keep the code, as an ordinary cell
                    extras.setdefault(anchor, []).append(_clean_cell(cell, "code"))
                continue
            seen.add(gid)
            anchor = gid
            if is_answer_cell(source_ids[gid]):
                answers[gid] = cell
            continue
        if gid:
            problems.append(Note("note.unknown_id", {"n": index + 1, "gid": repr(gid)}))
        extras.setdefault(anchor, []).append(_clean_cell(cell))

    cells = list(extras[None])
    position = {
        gid: i
        for i, gid in enumerate(
            g for g in (grade_id(c) for c in submission.cells if isinstance(c, dict)) if g
        )
    }
    order = [grade_id(c) for c in source.cells if grade_id(c)]
    student_order = sorted((g for g in order if g in position), key=position.get)
    if student_order != [g for g in order if g in position]:
        problems.append(Note("note.reordered"))
    for src in source.cells:
        gid = grade_id(src)
        if gid is None:
            continue  # instructor's plain cells: the student's copy (an extra) is what runs
        meta = nbgrader_meta(src)
        if is_answer_cell(src):
            if gid in answers:
                student = answers[gid]
                if student.get("cell_type") != src.cell_type:
                    problems.append(
                        Note(
                            "note.retyped",
                            {
                                "cell": gid,
                                "found": str(student.get("cell_type")),
                                "kind": src.cell_type,
                            },
                        )
                    )
                cells.append(_clean_cell(student, src.cell_type, meta, src.get("id")))
            else:
                problems.append(Note("note.deleted", {"cell": gid}))
                stub = release_ids.get(gid, src)
                cells.append(_clean_cell(stub, src.cell_type, meta, src.get("id")))
        else:
            if is_trusted_cell(src) and gid not in seen:
                problems.append(Note("note.locked_missing", {"cell": gid}))
            cells.append(_clean_cell(src, src.cell_type, meta, src.get("id")))
        cells.extend(extras.get(gid, []))

    nb = new_notebook(cells=cells, metadata=copy.deepcopy(source.metadata))
    return Rebuilt(nb, problems)


# --- run --------------------------------------------------------------------------------------


class KernelLauncher(Protocol):
    """The seam where kernels are started: local process, or a sandbox around it."""

    def kernel_manager(self, workdir: Path, env: dict[str, str]):  # -> AsyncKernelManager
        ...

    def kernel_env(self, workdir: Path, base: dict[str, str]) -> dict[str, str]: ...


class LocalLauncher:
    """Run the kernel as a plain local process (no sandbox)."""

    sandboxed = False

    def kernel_manager(self, workdir: Path, env: dict[str, str]):
        import shutil
        import tempfile
        import weakref

        from jupyter_client.manager import AsyncKernelManager

        # ZeroMQ over ipc sockets in a private folder, as in the sandbox: no TCP port on
        # localhost for other users to reach, and no "running over TCP without encryption"
        # warning from the kernel. A short folder: socket paths are limited to 108 bytes.
        sockets = tempfile.mkdtemp(prefix="agk-ipc-")

        class QuietKernelManager(AsyncKernelManager):
            # the kernel's own stdout/stderr (TensorFlow's C++ start-up lines) go to a file
            # beside its sockets, not to the instructor's terminal; cell errors are in the
            # notebook's outputs anyway
            async def _async_launch_kernel(self, kernel_cmd, **kw):
                log = open(Path(sockets) / "kernel.log", "ab")  # noqa: SIM115 - the kernel's
                kw["stdout"] = kw["stderr"] = log
                try:
                    await super()._async_launch_kernel(kernel_cmd, **kw)
                finally:
                    log.close()  # the kernel process holds its own copy

            _launch_kernel = _async_launch_kernel

        manager = QuietKernelManager(
            kernel_name="python3",
            transport="ipc",
            ip=str(Path(sockets) / "k"),
            connection_file=str(Path(sockets) / "kernel.json"),
        )
        weakref.finalize(manager, shutil.rmtree, sockets, True)
        return manager

    def kernel_env(self, workdir: Path, base: dict[str, str]) -> dict[str, str]:
        return base


@dataclass
class RunSettings:
    cell_timeout: float = 120.0
    notebook_timeout: float = 600.0
    data_home: str = ""
    startup_timeout: float = 60.0
    extra_env: dict[str, str] = field(default_factory=dict)


@dataclass
class ExecutionRecord:
    """How the notebook ran, as plain data (saved as ``artifacts/execution.json``)."""

    status: str  # "completed" | "timeout" | "kernel_died" | "failed"
    reason: Note | None
    seconds: float
    cells: dict[str, dict[str, Any]]
    # where the seconds went (``PHASES``): the kernel's start, each kind of cell, the shutdown
    phases: dict[str, float] = field(default_factory=dict)
    # a kernel prestarted during the previous notebook (``autograder.prestart``): what its
    # start and its setup imports took, overlapped with that notebook; empty for a cold start
    prestarted: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason.text("en") if self.reason else None,
            "reason_note": self.reason.to_dict() if self.reason else None,
            "seconds": self.seconds,
            "cells": self.cells,
            "phases": self.phases,
            "prestarted": self.prestarted,
        }


# The phases of one execution, in the order they happen. "answer_cells" and "given_cells" are
# the student's own computation (what they ran in their notebook); "setup_cell" is the locked
# imports (TensorFlow), "capture_cells" the graded cells' capture and visible checks,
# "between_cells" nbclient's own work from one cell's reply to the next cell's request.
PHASES = (
    "kernel_start",
    "setup_cell",
    "answer_cells",
    "given_cells",
    "capture_cells",
    "between_cells",
    "kernel_shutdown",
)


def cell_phase(cell: NotebookNode, index: int) -> str:
    """Which phase a code cell's time counts in (``PHASES``)."""
    meta = nbgrader_meta(cell)
    if meta.get("solution"):
        return "answer_cells"
    if meta.get("grade"):
        return "capture_cells"
    if meta.get("locked") and grade_id(cell) == "setup":
        return "setup_cell"
    return "given_cells"


class PhaseClock:
    """nbclient's hooks, timing each phase of one execution (plain floats, seconds)."""

    def __init__(self) -> None:
        self.phases = dict.fromkeys(PHASES, 0.0)
        self.started = time.perf_counter()
        self._mark = self.started
        self._cell: str | None = None
        self.kernel_ready = False  # the kernel answered and the first cell may run

    def lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.phases[phase] += now - self._mark
        self._mark = now

    def notebook_start(self, **_hook) -> None:
        self.kernel_ready = True
        self.lap("kernel_start")

    def cell_execute(self, cell=None, cell_index: int = 0, **_hook) -> None:
        self.lap("between_cells")
        self._cell = cell_phase(cell, cell_index) if cell is not None else "given_cells"

    def cell_executed(self, **_hook) -> None:
        if self._cell is not None:
            self.lap(self._cell)
            self._cell = None

    def stop(self) -> None:
        """The kernel is being shut down: a cell cut short (a timeout) counts as its kind."""
        self.cell_executed()
        self.lap("kernel_shutdown")

    def rounded(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.phases.items()}


def kernel_environment(workdir: Path, artifacts: Path, settings: RunSettings) -> dict[str, str]:
    """A clean environment: nothing of the grader's (secrets, tokens) leaks into the kernel."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "HOME": str(workdir / ".home"),
        "IPYTHONDIR": str(workdir / ".home" / ".ipython"),
        "MPLCONFIGDIR": str(workdir / ".home" / ".matplotlib"),
        "PYTHONHASHSEED": "0",
        "PYTHONDONTWRITEBYTECODE": "1",
        "TF_CPP_MIN_LOG_LEVEL": "3",  # TensorFlow's C++ log lines go to stderr otherwise
        "TF_ENABLE_ONEDNN_OPTS": "0",
        "NBGRADER_EXECUTION": "autograde",
        "AUTOGRADER_ARTIFACTS": str(artifacts),
    }
    if settings.data_home:
        env["COURSE_DATA_HOME"] = settings.data_home
    env.update(settings.extra_env)
    return env


def _cell_status(cell: NotebookNode) -> dict[str, Any]:
    if cell.cell_type != "code":
        return {"status": "ok"}
    if cell.get("execution_count") is None and not cell.get("outputs"):
        if not cell.source.strip():
            return {"status": "ok"}
        return {"status": "not_run"}
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            error = {
                "ename": str(output.get("ename", ""))[:100],
                "evalue": str(output.get("evalue", ""))[:300],
            }
            if error["ename"] == "KeyboardInterrupt":
                return {"status": "timeout", "error": error}
            return {"status": "error", "error": error}
    return {"status": "ok"}


def summarize_cells(nb: NotebookNode, cell_timeout: float, reason: Note | None) -> dict[str, dict]:
    cells = {}
    for cell in nb.cells:
        gid = grade_id(cell)
        if not gid:
            continue
        info = _cell_status(cell)
        if info["status"] == "timeout":
            info["timeout"] = cell_timeout
        if info["status"] == "not_run" and reason:
            info["reason"] = reason.text("en")
            info["reason_note"] = reason.to_dict()
        cells[gid] = info
    return cells


class WarmKernel(Protocol):
    """A kernel started ahead of its notebook (``autograder.prestart.PrestartedKernel``)."""

    workdir: Path
    env: dict[str, str]
    km: Any
    seconds: dict[str, float]


async def _execute(
    nb: NotebookNode,
    workdir: Path,
    settings: RunSettings,
    launcher: KernelLauncher,
    clock: PhaseClock,
    warm: Awaitable[WarmKernel | None] | None,
    prestarted: dict[str, float],
) -> tuple[str, Note | None]:
    # the wait for a prestarted kernel counts as the kernel's start; it is bounded by the
    # prestart's own time limits (its task ends with None when they are reached)
    kernel = await warm if warm is not None else None
    if kernel is not None:
        outcome = await _run_client(nb, kernel.workdir, kernel.env, kernel.km, settings, clock)
        if clock.kernel_ready:  # the kernel is gone: its folder becomes this student's
            prestarted.update(kernel.seconds)
            move_folder(kernel.workdir, workdir)
            return outcome
        # it died before it answered (nothing of this student's ran): a cold start instead
        remove_tree(kernel.workdir)
    env = prepare_workdir(workdir, settings, launcher)
    km = launcher.kernel_manager(workdir, env)
    return await _run_client(nb, workdir, env, km, settings, clock)


async def _run_client(
    nb: NotebookNode,
    workdir: Path,
    env: dict[str, str],
    km: Any,
    settings: RunSettings,
    clock: PhaseClock,
) -> tuple[str, Note | None]:
    from nbclient import NotebookClient
    from nbclient.exceptions import DeadKernelError

    client = _bounded_client_class(NotebookClient)(
        nb,
        km=km,
        timeout=settings.cell_timeout,
        startup_timeout=settings.startup_timeout,
        allow_errors=True,
        interrupt_on_timeout=True,
        record_timing=False,
        skip_cells_with_tag="",  # tags were stripped anyway; nothing is skipped
        resources={"metadata": {"path": str(workdir)}},
        on_notebook_start=clock.notebook_start,
        on_cell_execute=clock.cell_execute,
        on_cell_executed=clock.cell_executed,
    )
    loop = asyncio.get_running_loop()
    deadline = loop.time() + settings.notebook_timeout
    timed_out = ("timeout", Note("run.timeout", {"seconds": f"{settings.notebook_timeout:.0f}"}))
    try:
        await asyncio.wait_for(
            client.async_execute(env=env, cwd=str(workdir)), timeout=settings.notebook_timeout
        )
        return "completed", None
    except TimeoutError:
        return timed_out
    except DeadKernelError:
        if loop.time() >= deadline:  # nbclient turns wait_for's cancellation into this error
            return timed_out
        return "kernel_died", _stop_note(km) or Note("run.kernel_died")
    except Exception as exc:  # noqa: BLE001 - any kernel failure is this student's alone
        return "failed", _stop_note(km) or Note(
            "run.not_executed", {"detail": f"{type(exc).__name__}: {exc}"[:250]}
        )
    finally:
        clock.stop()
        await stop_kernel(km)
        clock.lap("kernel_shutdown")
        # nbclient registers each client for a cleanup at exit and unregisters it only once
        # the kernel answered: a client whose kernel died first would stay referenced until
        # the grader exits, and fail there noisily
        atexit.unregister(client._cleanup_kernel)
        await _cancel_leftovers()


async def stop_kernel(km: Any) -> None:
    """Shut the kernel down now; a sandbox then kills its process tree and cleans up."""
    try:
        if km is not None and km.has_kernel:
            await km.shutdown_kernel(now=True)
    except Exception:  # noqa: BLE001 - the kernel may be gone already
        pass
    finish = getattr(km, "finish", None)
    if finish is not None:
        finish()


async def _cancel_leftovers() -> None:
    """Tasks this notebook's kernel client left in the loop are cancelled, as closing a loop
    would: the loop outlives the notebook (``kernel_runner``), nothing of one student's run may
    outlive it. A prestarted kernel's own task (``PRESTART_TASK``) is the next student's."""
    current = asyncio.current_task()
    left = [
        t
        for t in asyncio.all_tasks()
        if t is not current and not t.get_name().startswith(PRESTART_TASK)
    ]
    for task in left:
        task.cancel()
    if left:
        await asyncio.wait(left, timeout=5)


_OUTPUT_MESSAGES = {
    "stream",
    "display_data",
    "execute_result",
    "update_display_data",
    "error",
    "comm_open",
    "comm_msg",
}


def _content_size(content: Any) -> int:
    if isinstance(content, str):
        return len(content)
    if isinstance(content, dict):
        return sum(_content_size(v) for v in content.values())
    if isinstance(content, list):
        return sum(_content_size(v) for v in content)
    return 8


def _bounded_client_class(base):
    """nbclient's client, keeping at most ``MAX_CELL_OUTPUT_BYTES`` of outputs per cell and
    ``MAX_NOTEBOOK_OUTPUT_BYTES`` per notebook: a cell printing without end must fill neither
    the grader's memory nor the executed notebook. Errors are always kept (shortened), since
    they say how the cell ended."""

    class BoundedClient(base):
        def process_message(self, msg, cell, cell_index):
            kind = msg.get("msg_type")
            if kind in _OUTPUT_MESSAGES:
                budget = self.__dict__.setdefault("_output_budget", {"total": 0, "cells": {}})
                size = _content_size(msg.get("content"))
                budget["total"] += size
                budget["cells"][cell_index] = budget["cells"].get(cell_index, 0) + size
                if kind == "error":
                    content = msg["content"]
                    content["evalue"] = str(content.get("evalue", ""))[:1000]
                    content["traceback"] = [
                        str(t)[:2000] for t in content.get("traceback", [])[-30:]
                    ]
                elif (
                    budget["cells"][cell_index] > MAX_CELL_OUTPUT_BYTES
                    or budget["total"] > MAX_NOTEBOOK_OUTPUT_BYTES
                ):
                    if cell_index not in budget.setdefault("noted", set()) and "outputs" in cell:
                        budget["noted"].add(cell_index)
                        cell.outputs.append(
                            nbformat.v4.new_output(
                                "stream",
                                name="stdout",
                                text="\n[output truncated by the grader: too much output]\n",
                            )
                        )
                    return None
            return super().process_message(msg, cell, cell_index)

    return BoundedClient


def _stop_note(km) -> Note | None:
    """Why the launcher stopped the kernel (a sandbox limit, a crash), when it knows."""
    note = getattr(km, "stop_note", None)
    return note if isinstance(note, Note) else None


# A prestarted kernel's task keeps this name prefix: the only task that may outlive a notebook.
PRESTART_TASK = "autograder-prestart"

_THREAD = threading.local()


def kernel_runner() -> asyncio.Runner:
    """This thread's event loop for kernels, kept from one notebook to the next: a kernel
    prestarted during one notebook (``autograder.prestart``) is driven, and later used, by the
    loop that started it (its ZeroMQ sockets belong to that loop)."""
    runner = getattr(_THREAD, "runner", None)
    if runner is None:
        runner = _THREAD.runner = asyncio.Runner()
    return runner


def prepare_workdir(workdir: Path, settings: RunSettings, launcher: KernelLauncher) -> dict:
    """Make ``workdir`` ready for a kernel (an empty artifacts folder, a home) and return the
    kernel's environment."""
    artifacts = workdir / ARTIFACTS_DIRNAME
    remove_tree(artifacts)
    artifacts.mkdir(parents=True)
    (workdir / ".home").mkdir(exist_ok=True)
    return launcher.kernel_env(workdir, kernel_environment(workdir, artifacts, settings))


def move_folder(source: Path, target: Path) -> None:
    """Move a prestarted kernel's folder, with all the kernel left in it, to ``target``: one
    rename on one file system (``autograder.prestart`` makes sure of it), so nothing in it is
    read, followed or copied."""
    if target.is_symlink() or target.exists():
        remove_tree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(source, target)


def run_notebook(
    nb: NotebookNode,
    workdir: Path,
    settings: RunSettings,
    launcher: KernelLauncher | None = None,
    *,
    warm: Awaitable[WarmKernel | None] | None = None,
) -> ExecutionRecord:
    """Execute ``nb`` in ``workdir`` (modified in place); capture goes to ``workdir/artifacts``.

    ``warm``: a kernel prestarted for it (``autograder.prestart``), awaited in this thread's
    kernel loop; it runs in its own folder, which becomes ``workdir`` once the kernel is gone.
    When it did not start, the notebook gets a kernel of its own as usual.
    """
    launcher = launcher or LocalLauncher()
    workdir = Path(workdir)
    clock = PhaseClock()
    prestarted: dict[str, float] = {}
    status, reason = kernel_runner().run(
        _execute(nb, workdir, settings, launcher, clock, warm, prestarted)
    )
    seconds = time.perf_counter() - clock.started
    return ExecutionRecord(
        status,
        reason,
        round(seconds, 3),
        summarize_cells(nb, settings.cell_timeout, reason),
        clock.rounded(),
        {k: round(v, 3) for k, v in prestarted.items()},
    )
