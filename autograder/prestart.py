"""Prestarting the next student's kernel while the current notebook runs (docs/scale.md).

Of a lesson-4 notebook's 16 s, about 5 s are the kernel's start and the TensorFlow import of
the locked setup cell: the same for every student, and none of it the student's own work. A
grading process that will grade another notebook starts that notebook's kernel while the
current one runs: a fresh sandbox and kernel process, in a fresh folder of its own, which runs
nothing but the imports of the assignment's setup cell (trusted code, taken from the source
notebook, executed silently: no execution count, no output, no name bound). The next notebook
graded in this process takes it; its setup cell then runs as always, finding the modules
imported. No kernel serves two students, and a kernel that did not start in time is dropped
for a cold start.

``PrestartPlan`` is plain data (it travels to pool workers with each job); ``Prestarter``
holds this process's one warm kernel at most, as a task of the thread's kernel loop
(``autograder.execute.kernel_runner``).
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing.util
import os
import tempfile
import threading
import time
from collections.abc import Hashable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autograder.execute import (
    PRESTART_TASK,
    KernelLauncher,
    RunSettings,
    cell_phase,
    kernel_runner,
    prepare_workdir,
    stop_kernel,
)
from autograder.untrusted import remove_tree

log = logging.getLogger(__name__)

# A kernel that has not imported the setup cell's modules by then is dropped (a cold start).
WARM_UP_SECONDS = 120.0


@dataclass(frozen=True)
class PrestartPlan:
    """What a grading process needs to prestart kernels for one assignment."""

    folder: str  # where the kernels' own folders are made (the work folders' file system)
    code: str  # the setup cell's imports, as ``__import__`` calls
    run: RunSettings = field(default_factory=RunSettings)

    def key(self, launcher: KernelLauncher | None) -> Hashable:
        """Two plans whose key is equal make interchangeable kernels."""
        settings = getattr(launcher, "settings", None)
        return (
            self.folder,
            self.code,
            self.run.data_home,
            tuple(sorted(self.run.extra_env.items())),
            type(launcher).__qualname__,
            repr(settings),
        )


def setup_imports(source_json: str) -> str:
    """The modules the assignment's locked setup cell imports, in its order, as a silent
    warm-up: ``__import__("tensorflow")`` binds no name in the student's namespace. Empty when
    the notebook has no setup cell or it imports nothing."""
    import ast

    import nbformat
    from IPython.core.inputtransformer2 import TransformerManager

    nb = nbformat.reads(source_json, as_version=4)
    modules: list[str] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or cell_phase(cell, index) != "setup_cell":
            continue
        try:  # magics (%matplotlib inline) become calls first
            tree = ast.parse(TransformerManager().transform_cell(cell.source))
        except SyntaxError:
            return ""
        for node in tree.body:
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            modules += [n for n in names if n not in modules]
    return "\n".join(f"__import__({name!r})" for name in modules)


@dataclass
class PrestartedKernel:
    """A started kernel that has run only the warm-up (``execute.WarmKernel``)."""

    workdir: Path
    env: dict[str, str]
    km: Any
    seconds: dict[str, float]  # its start and its imports, overlapped with another notebook


async def start_kernel(plan: PrestartPlan, launcher: KernelLauncher) -> PrestartedKernel | None:
    """Start a kernel in a fresh folder of ``plan.folder`` and run the warm-up in it; None
    (and nothing left behind) when anything fails or takes too long."""
    Path(plan.folder).mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="k-", dir=plan.folder))
    km = None
    try:
        env = prepare_workdir(workdir, plan.run, launcher)
        km = launcher.kernel_manager(workdir, env)
        began = time.perf_counter()
        async with asyncio.timeout(plan.run.startup_timeout + WARM_UP_SECONDS):
            # as nbclient starts its kernels: no history file
            await km.start_kernel(
                extra_arguments=["--HistoryManager.hist_file=:memory:"], env=env, cwd=str(workdir)
            )
            client = km.client()
            client.start_channels()
            try:
                await client.wait_for_ready(timeout=plan.run.startup_timeout)
                started = time.perf_counter()
                reply = await client.execute_interactive(
                    plan.code,
                    silent=True,
                    store_history=False,
                    allow_stdin=False,
                    output_hook=lambda _msg: None,
                )
            finally:
                client.stop_channels()
        if reply.get("content", {}).get("status") != "ok":
            raise RuntimeError("the setup cell's imports failed")
        imported = time.perf_counter()
        seconds = {"kernel_start": started - began, "setup_imports": imported - started}
        return PrestartedKernel(workdir, env, km, seconds)
    except BaseException as exc:  # noqa: BLE001 - a cold start instead; cancellation goes on
        await _close(km, workdir)
        if isinstance(exc, asyncio.CancelledError | KeyboardInterrupt | SystemExit):
            raise
        log.debug("no prestarted kernel: %s: %s", type(exc).__name__, exc)
        return None


async def _close(km: Any, workdir: Path) -> None:
    await stop_kernel(km)  # the sandbox too: its process tree, its cgroup
    remove_tree(workdir)


async def _dispose(task: asyncio.Task) -> None:
    if not task.done():
        task.cancel()
    try:
        kernel = await task
    except BaseException:  # noqa: BLE001 - cancelled: it cleaned up after itself
        return
    if kernel is not None:
        await _close(kernel.km, kernel.workdir)


class WarmHandle:
    """One prestarted kernel handed to one notebook (``execute.run_notebook(warm=...)``)."""

    def __init__(self, task: asyncio.Task):
        self.task = task
        self.claimed = False

    def __await__(self):
        self.claimed = True
        return self._claim().__await__()

    async def _claim(self) -> PrestartedKernel | None:
        kernel = await self.task
        # a kernel that died while it waited (the machine ran out of memory while another
        # student's notebook ran) is not this student's failure: a cold start instead
        if kernel is not None and not await kernel.km.is_alive():
            await _close(kernel.km, kernel.workdir)
            return None
        return kernel


class Prestarter:
    """This process's warm kernel: at most one, for the next notebook graded here."""

    def __init__(self) -> None:
        self._slot: tuple[Hashable, asyncio.Task] | None = None
        self._finalizer: multiprocessing.util.Finalize | None = None

    def take(self, key: Hashable) -> WarmHandle | None:
        """The kernel prestarted for ``key``, if one was; any other is shut down."""
        slot, self._slot = self._slot, None
        if slot is None:
            return None
        if slot[0] == key:
            return WarmHandle(slot[1])
        self._dispose(slot[1])
        return None

    def begin(self, plan: PrestartPlan, launcher: KernelLauncher) -> None:
        """Prestart a kernel for the next notebook; it starts when the kernel loop next runs
        (the current notebook's run) and waits in the slot."""
        if self._slot is not None:
            self._dispose(self._slot[1])
        loop = kernel_runner().get_loop()
        task = loop.create_task(start_kernel(plan, launcher), name=f"{PRESTART_TASK}-{os.getpid()}")
        self._slot = (plan.key(launcher), task)
        if self._finalizer is None:  # a pool worker's kernel goes when the worker exits
            self._finalizer = multiprocessing.util.Finalize(self, self.discard, exitpriority=50)

    def release(self, handle: WarmHandle | None) -> None:
        """After a notebook: a kernel it did not use (the submission was unreadable) goes."""
        if handle is not None and not handle.claimed:
            self._dispose(handle.task)

    def discard(self) -> None:
        """No more notebooks here: the waiting kernel, if any, is shut down."""
        slot, self._slot = self._slot, None
        if slot is not None:
            self._dispose(slot[1])

    @staticmethod
    def _dispose(task: asyncio.Task) -> None:
        kernel_runner().run(_dispose(task))


def usable_folder(folder: Path, workdirs: Path) -> bool:
    """Kernels' folders must be renamed into the work folders: one file system."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        workdirs.mkdir(parents=True, exist_ok=True)
        return folder.stat().st_dev == workdirs.stat().st_dev
    except OSError:
        return False


def tidy(plan: PrestartPlan) -> None:
    """After a class: the kernels' folder goes when no kernel is left in it."""
    try:
        Path(plan.folder).rmdir()
    except OSError:  # a kernel still waits (a pool worker's), or it is gone already
        pass


_THREAD = threading.local()


def prestarter() -> Prestarter:
    """This thread's prestarter (its kernels belong to the thread's kernel loop)."""
    found = getattr(_THREAD, "prestarter", None)
    if found is None:
        found = _THREAD.prestarter = Prestarter()
    return found
