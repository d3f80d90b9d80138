"""Build the adversarial corpus of ``lesson4_learning_rate``: one hostile or broken submission per
case, each made by code from the release notebook (never hand-edited JSON).

Every case says what it attacks, what holding proves, and what the grader must give: the status,
a reason the student can read (a pattern found in the error, the repair notes or the messages),
the exact score of each graded cell (cells not listed keep the full marks their correct answers
earn: unearned credit and lost honest credit are both failures), and, for the cases that try to
steal or damage something, an ``evidence.json`` the attack writes in its own work folder: every
attempt must have failed. An attack that *succeeds* also gives the student the right answer, so
a leak shows up as credit, not only as evidence.

Run it as a script to write the corpus in nbgrader's ``submitted/`` layout::

    python -m tests.adversarial.build OUT_DIR [--state-dir DIR]

The test (``tests/test_adversarial.py``) grades the corpus in one class, between honest students.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell

from tests.sample_class import TIMESTAMP
from tests.sample_class.lesson4_learning_rate import SOLUTIONS

AID = "lesson4_learning_rate"
NOTEBOOK = "learning_rate.ipynb"
FULL = {
    "test_steps_lr_003": 1.0,
    "test_steps_lr_01": 1.0,
    "test_lr_1_outcome": 1.0,
    "test_goldilocks_lr": 1.0,
    "test_step_size": 1.0,
    "test_steps_per_epoch": 1.0,
    "test_curve_labels": 2.0,
}
ORDER = list(FULL)  # the graded cells, in notebook order
WRONG_LABELS = (
    '{"A": "tasa_alta", "B": "tasa_correcta", "C": "tasa_baja", '
    '"D": "sobreajuste"}'
)  # every panel wrong
RIGHT_LABELS = SOLUTIONS["ans_curve_labels"].split("=", 1)[1].strip()
ORPHAN_MARKER = "987.654"  # `sleep 987.654`: no such process may outlive its sandbox
SECRET_ENV = "AUTOGRADER_TEST_SECRET"
HONEST = ("a_partial", "a_perfect")  # graded before the attackers (ids sort first)
LAST = "zz_perfect_last"  # graded after every attacker


@dataclass(frozen=True)
class Context:
    """Where things are: the attacks aim at real paths of the class being graded."""

    course_root: Path
    state_dir: Path
    honeypot: Path  # an instructor file outside every work folder: must never change
    pwned: Path  # what a pickle payload would create if anyone unpickled it

    @property
    def gradebook(self) -> Path:
        return self.state_dir / "gradebook.db"

    def submitted(self, student: str) -> Path:
        return self.state_dir / "submitted" / student / AID / NOTEBOOK

    def autograded(self, student: str) -> Path:
        return self.state_dir / "autograded" / student / AID


Build = Callable[[nbformat.NotebookNode, Context], object]


@dataclass(frozen=True)
class Case:
    name: str
    attack: str  # what the submission does
    proves: str  # what holding proves
    build: Build
    status: str | tuple[str, ...] = "graded"
    reason: str | None = None  # regex: in the error, a repair note, or a cell's message
    cells: dict[str, float] = field(default_factory=dict)  # exact scores; others: FULL
    messages: dict[str, tuple[str, ...]] = field(default_factory=dict)  # allowed message ids
    evidence: bool = False  # the attack logs its attempts in evidence.json: all must fail
    slow: bool = False  # waits for a time limit
    folder: Callable[[Path], None] | None = None  # writes more into the submission folder
    stages: bool = False  # graded again with --force in the stage tests (test_adversarial)

    @property
    def student(self) -> str:
        return "adv_" + self.name

    def expected_cells(self) -> dict[str, float]:
        return {**FULL, **self.cells}


# --- notebook surgery -------------------------------------------------------------------------


def gid_of(cell) -> str | None:
    meta = cell.get("metadata", {}).get("nbgrader", {})
    return meta.get("grade_id") if isinstance(meta, dict) else None


def index_of(nb, gid: str) -> int:
    return next(i for i, c in enumerate(nb.cells) if gid_of(c) == gid)


def perfect(nb) -> nbformat.NotebookNode:
    nb = copy.deepcopy(nb)
    for cell in nb.cells:
        if gid_of(cell) in SOLUTIONS:
            cell.source = SOLUTIONS[gid_of(cell)]
    return nb


def answer(nb, gid: str, source: str, **more: str):
    """Perfect answers, with ``source`` in the answer cell ``gid`` (and ``more`` likewise)."""
    nb = perfect(nb)
    for cell_id, text in {gid: source, **more}.items():
        nb.cells[index_of(nb, cell_id)].source = text
    return nb


def after(nb, gid: str, source: str):
    """Perfect answers, plus a cell of the student's own right after ``gid``."""
    nb = perfect(nb)
    nb.cells.insert(index_of(nb, gid) + 1, new_code_cell(source))
    return nb


EVIDENCE = '''
import json as _json, os as _os
def _attempt(label, action):
    """Run one attempt and log it in evidence.json; returns (succeeded, value)."""
    try:
        value, record = action(), {"label": label, "ok": True}
    except BaseException as exc:  # noqa
        value, record = None, {"label": label, "ok": False,
                               "error": (type(exc).__name__ + ": " + str(exc))[:200]}
    log = _json.load(open("evidence.json")) if _os.path.exists("evidence.json") else []
    _json.dump(log + [record], open("evidence.json", "w"))
    return record["ok"], value
'''


def fill(code: str, ctx: Context) -> str:
    """``code`` with ``{root}``, ``{state}``, ``{gradebook}``, ``{perfect_submitted}``,
    ``{partial_submitted}``, ``{perfect_autograded}`` and ``{honeypot}`` as string literals."""
    paths = {
        "root": ctx.course_root,
        "state": ctx.state_dir,
        "gradebook": ctx.gradebook,
        "perfect_submitted": ctx.submitted("a_perfect"),
        "partial_submitted": ctx.submitted("a_partial"),
        "perfect_autograded": ctx.autograded("a_perfect"),
        "honeypot": ctx.honeypot,
    }
    return code.format(**{k: repr(str(v)) for k, v in paths.items()})


def steal(target_gid: str, right: str, wrong: str, attempts: str, use: str = "") -> Build:
    """An answer cell that tries ``attempts``; any success earns ``right``, else ``wrong``."""
    name = target_gid.removeprefix("ans_")

    def build(nb, ctx):
        code = (
            EVIDENCE
            + fill(attempts, ctx)
            + "\n"
            + (use or f"{name} = {right} if any(ok for ok, _ in results) else {wrong}")
        )
        return answer(nb, target_gid, code)

    return build


# --- the cases --------------------------------------------------------------------------------


def _write(name: str, text: str | bytes, folder: str = "answers") -> str:
    mode = "wb" if isinstance(text, bytes) else "w"
    return (
        f"import os\nos.makedirs(os.path.join(os.environ['AUTOGRADER_ARTIFACTS'], "
        f"{folder!r}), exist_ok=True)\n"
        f"open(os.path.join(os.environ['AUTOGRADER_ARTIFACTS'], {folder!r}, {name!r}), "
        f"{mode!r}).write({text!r})\n"
    )


def _pickle_bomb(ctx: Context) -> str:
    return f"""import os, pickle
class Payload:
    def __reduce__(self):
        return (os.system, ("touch " + {str(ctx.pwned)!r},))
blob = pickle.dumps({{"weights": Payload()}})
folder = os.environ["AUTOGRADER_ARTIFACTS"]
os.makedirs(os.path.join(folder, "model"), exist_ok=True)
open(os.path.join(folder, "model", "weights.npz"), "wb").write(blob)
open(os.path.join(folder, "answers", "steps_lr_003.json"), "wb").write(blob)
"""


def _symlinks(ctx: Context) -> str:
    return """import os, json
folder = os.path.join(os.environ["AUTOGRADER_ARTIFACTS"], "answers")
fake = {"name": "steps_lr_01", "present": True, "value": {"kind": "int", "value": 12}}
json.dump(fake, open("/tmp/fake.json", "w"))
for name, target in (("steps_lr_003.json", "/etc/passwd"), ("steps_lr_01.json", "/tmp/fake.json")):
    path = os.path.join(folder, name)
    if os.path.exists(path):
        os.remove(path)
    os.symlink(target, path)
"""


def _grader_write_links(ctx: Context) -> str:
    return f"""import os
for name in ({NOTEBOOK!r}, "timestamp.txt", os.path.join("artifacts", "execution.json")):
    if os.path.lexists(name):
        os.remove(name)
    os.symlink({str(ctx.honeypot)!r}, name)
os.symlink("/", "root-link")
"""


def _grader_write_fifos(ctx: Context) -> str:
    return f"""import os
for name in ({NOTEBOOK!r}, "timestamp.txt", os.path.join("artifacts", "execution.json")):
    if os.path.lexists(name):
        os.remove(name)
    os.mkfifo(name)
"""


def _orphans(ctx: Context) -> str:
    return f"""import os, subprocess
subprocess.Popen(["setsid", "sleep", {ORPHAN_MARKER!r}], stdout=subprocess.DEVNULL,
                 stderr=subprocess.DEVNULL, start_new_session=True)
if os.fork() == 0:  # a classic double-fork daemon
    os.setsid()
    if os.fork() == 0:
        os.execvp("sleep", ["sleep", {ORPHAN_MARKER!r}])
    os._exit(0)
os.system("nohup sleep {ORPHAN_MARKER} >/dev/null 2>&1 &")
"""


def _fake_checkers(ctx: Context) -> str:
    fake = (
        "import pytest\n@pytest.fixture(autouse=True)\ndef _win():\n    pass\n"
        "def pytest_runtest_makereport(item, call):\n    call.excinfo = None\n"
    )
    return f"""import os, sys, types
os.makedirs("autograder/checkers", exist_ok=True)
open("autograder/__init__.py", "w").write("")
open("autograder/checkers/__init__.py", "w").write("")
open("autograder/checkers/lesson4_learning_rate.py", "w").write("def test_all():\\n    pass\\n")
for folder in (".", os.environ["AUTOGRADER_ARTIFACTS"]):
    open(os.path.join(folder, "conftest.py"), "w").write({fake!r})
sys.modules["autograder.checkers"] = types.ModuleType("autograder.checkers")
open(os.path.join(os.environ["AUTOGRADER_ARTIFACTS"], "score.json"), "w").write('{{"score": 8}}')
"""


def _patched_capture(ctx: Context) -> str:
    return """from dlcourse import capture
import json, os
def forged(namespace, *names):
    folder = os.path.join(os.environ["AUTOGRADER_ARTIFACTS"], "answers")
    os.makedirs(folder, exist_ok=True)
    for name in names:
        json.dump({"name": name, "present": True, "passed": True, "score": 100,
                   "value": {"kind": "int", "value": 1}}, open(os.path.join(folder, name + ".json"), "w"))
    open(os.path.join(os.environ["AUTOGRADER_ARTIFACTS"], "execution.json"), "w").write(
        json.dumps({"status": "completed", "cells": {}, "score": 8}))
capture.answers = forged
"""


def _remove_cells(nb, ctx):
    nb = perfect(nb)
    nb.cells = [c for c in nb.cells if gid_of(c) not in ("test_steps_lr_003", "ans_steps_lr_01")]
    return nb


def _duplicate_cells(nb, ctx):
    nb = perfect(nb)
    i = index_of(nb, "test_step_size")
    hacked = copy.deepcopy(nb.cells[i])
    hacked.source = "pass"
    nb.cells.insert(i + 1, hacked)
    j = index_of(nb, "ans_steps_lr_003")
    nb.cells.insert(j + 1, copy.deepcopy(nb.cells[j]))
    return nb


def _retype_cells(nb, ctx):
    nb = perfect(nb)
    i = index_of(nb, "ans_step_size")
    cell = nb.cells[i]
    nb.cells[i] = new_markdown_cell(cell.source, metadata=cell.metadata)
    j = index_of(nb, "test_lr_1_outcome")
    test = nb.cells[j]
    nb.cells[j] = nbformat.v4.new_raw_cell("nothing to see", metadata=test.metadata)
    return nb


def _reorder_cells(nb, ctx):
    nb = perfect(nb)
    a, b = index_of(nb, "ans_steps_lr_003"), index_of(nb, "ans_steps_per_epoch")
    block_a, block_b = nb.cells[a : a + 2], nb.cells[b : b + 2]
    nb.cells[a : a + 2], nb.cells[b : b + 2] = block_b, block_a
    return nb


def _edit_metadata(nb, ctx):
    nb = perfect(nb)
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader")
        if not meta:
            continue
        if meta.get("grade"):
            meta["points"] = 100
            meta["locked"] = False
            cell.metadata["tags"] = ["skip-execution", "raises-exception"]
        if gid_of(cell) == "test_curve_labels":
            meta["solution"] = True
            cell.source = "pass"
        if gid_of(cell) == "setup":
            cell.source += "\nimport os\nos.environ['NBGRADER_EXECUTION'] = 'student'"
    nb.metadata["kernelspec"] = {"name": "bash", "display_name": "Bash", "language": "bash"}
    nb.metadata["nbgrader"] = {"total_points": 1000}
    return nb


def _edit_checksums(nb, ctx):
    nb = perfect(nb)
    for i, cell in enumerate(nb.cells):
        meta = cell.get("metadata", {}).get("nbgrader")
        if meta:
            meta["checksum"] = "0" * 32
            meta["schema_version"] = 99
        cell["id"] = f"forged-{i}"
    return nb


def _renamed(nb, ctx):
    return "learning_rate (1).ipynb", perfect(nb)


def _nbformat_99(nb, ctx):
    data = json.loads(nbformat.writes(perfect(nb)))
    data["nbformat"] = 99
    return json.dumps(data)


def _nbformat_v3(nb, ctx):
    return nbformat.writes(nbformat.convert(perfect(nb), 3), version=3)


def _binary_junk(nb, ctx):
    return b"\xff\xfe\x00\x89PNG\r\n\x1a\n" + bytes(range(256)) * 64


def _json_not_notebook(nb, ctx):
    return json.dumps({"cells": "nope", "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def _huge_notebook(nb, ctx):
    nb = perfect(nb)
    nb.cells.append(new_markdown_cell("x" * 51_000_000))
    return nb


def _non_dict_cells(nb, ctx):
    data = json.loads(nbformat.writes(perfect(nb)))
    data["cells"][3:3] = [1, "a string", None, []]
    return json.dumps(data)


def _strange_cells(nb, ctx):
    data = json.loads(nbformat.writes(perfect(nb)))
    data["cells"][3:3] = [
        {"cell_type": "code", "source": 42, "metadata": {}, "outputs": [], "execution_count": 1},
        {"cell_type": "weird", "source": "raise SystemExit", "metadata": {}},
        {
            "cell_type": "code",
            "source": "pass",
            "outputs": [],
            "execution_count": None,
            "metadata": {"nbgrader": "not a dict", "tags": ["skip-execution"]},
        },
    ]
    return json.dumps(data)


RESOURCE_CASES = [
    Case(
        "infinite_loop",
        "an answer cell loops forever",
        "a cell time limit interrupts the cell; the rest of the notebook still runs",
        lambda nb, ctx: answer(nb, "ans_steps_lr_003", "while True:\n    pass"),
        cells={"test_steps_lr_003": 0},
        messages={"test_steps_lr_003": ("answer_cell_timeout",)},
        slow=True,
    ),
    Case(
        "loop_ignoring_interrupt",
        "the last answer ignores SIGINT and loops forever",
        "the notebook's wall-clock limit kills the sandbox; captured answers still count",
        lambda nb, ctx: answer(
            nb,
            "ans_curve_labels",
            "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n    pass",
        ),
        status="error",
        reason=r"exceeded its \d+ s time limit",
        cells={"test_curve_labels": 0},
        messages={"test_curve_labels": ("not_executed",)},
        slow=True,
    ),
    Case(
        "memory_bomb",
        "the last answer allocates memory without end",
        "the sandbox's memory limit stops the kernel, with the reason",
        lambda nb, ctx: answer(
            nb, "ans_curve_labels", "hog = []\nwhile True:\n    hog.append(bytearray(64 * 2**20))"
        ),
        status="error",
        reason=r"more than \d+ MB of memory",
        cells={"test_curve_labels": 0},
    ),
    Case(
        "memory_one_allocation",
        "an answer asks for 64 GB at once",
        "the address-space limit turns it into a MemoryError in that cell only",
        lambda nb, ctx: answer(nb, "ans_steps_lr_01", "hog = bytearray(64 * 2**30)"),
        cells={"test_steps_lr_01": 0},
        messages={"test_steps_lr_01": ("answer_cell_error",)},
    ),
    Case(
        "fork_bomb",
        "the last answer forks without end",
        "the process limit and the watchdog stop it; no process survives",
        lambda nb, ctx: answer(nb, "ans_curve_labels", "import os\nwhile True:\n    os.fork()"),
        status="error",
        reason=r"processes or threads",
        cells={"test_curve_labels": 0},
    ),
    Case(
        "orphan_processes",
        "a cell starts daemons (setsid, double fork, nohup)",
        "the whole process tree dies with the sandbox",
        lambda nb, ctx: after(nb, "setup", _orphans(ctx)),
    ),
    Case(
        "huge_output",
        "the last answer prints without end",
        "outputs are capped: the grader's memory and the executed notebook stay small",
        lambda nb, ctx: answer(nb, "ans_curve_labels", "while True:\n    print('x' * 10_000)"),
        status=("graded", "error"),
        reason=r"output truncated|memory|time",
        cells={"test_curve_labels": 0},
        slow=True,
    ),
    Case(
        "huge_single_output",
        "an answer prints one 100 MB string, then answers",
        "the oversized message is dropped; the answer still counts",
        lambda nb, ctx: answer(nb, "ans_steps_lr_01", "print('x' * 100_000_000)\nsteps_lr_01 = 12"),
    ),
    Case(
        "fill_disk",
        "the last answer writes files until the disk is full",
        "the disk quota of the work folder stops it",
        lambda nb, ctx: answer(
            nb,
            "ans_curve_labels",
            "i = 0\nwhile True:\n    open(f'junk{i}', 'wb').write(b'0' * 16 * 2**20)\n    i += 1",
        ),
        status="error",
        reason=r"more than \d+ MB to disk",
        cells={"test_curve_labels": 0},
    ),
    Case(
        "big_file",
        "an answer writes one 64 MB file",
        "the file-size limit makes that write fail in that cell only",
        lambda nb, ctx: answer(
            nb,
            "ans_steps_lr_01",
            "open('big.bin', 'wb').write(b'0' * 64 * 2**20)\nsteps_lr_01 = 12",
        ),
        cells={"test_steps_lr_01": 0},
        messages={"test_steps_lr_01": ("answer_cell_error",)},
    ),
    Case(
        "many_files",
        "the last answer creates files without end",
        "the file-count limit of the work folder stops it",
        lambda nb, ctx: answer(
            nb,
            "ans_curve_labels",
            "import os\nos.makedirs('d', exist_ok=True)"
            "\nfor i in range(10**6):\n    open(f'd/{i}', 'w').close()",
        ),
        status="error",
        reason=r"more than \d+ files",
        cells={"test_curve_labels": 0},
    ),
    Case(
        "fill_tmp",
        "an answer fills /tmp and /dev/shm",
        "the private /tmp is small and thrown away; only that cell fails",
        lambda nb, ctx: answer(
            nb,
            "ans_steps_lr_01",
            "for d in ('/tmp', '/dev/shm'):\n"
            "    with open(d + '/fill', 'wb') as f:\n"
            "        for _ in range(10**4):\n"
            "            f.write(b'0' * 2**20)",
        ),
        cells={"test_steps_lr_01": 0},
        messages={"test_steps_lr_01": ("answer_cell_error",)},
    ),
    Case(
        "os_exit",
        "an answer calls os._exit(0): the kernel vanishes",
        "a dead kernel is an error with a reason; answers captured before it still count",
        lambda nb, ctx: answer(nb, "ans_goldilocks_lr", "import os\nos._exit(0)"),
        status="error",
        reason=r"kernel exited",
        cells=dict.fromkeys(ORDER[3:], 0),
        messages=dict.fromkeys(ORDER[3:], ("not_executed",)),
    ),
    Case(
        "segfault",
        "an answer dereferences NULL (ctypes.string_at(0))",
        "a crashed kernel is an error saying so; earlier answers still count",
        lambda nb, ctx: answer(nb, "ans_goldilocks_lr", "import ctypes\nctypes.string_at(0)"),
        status="error",
        reason=r"segmentation fault",
        cells=dict.fromkeys(ORDER[3:], 0),
    ),
    Case(
        "kill_everything",
        "an answer sends SIGKILL to every process it can (kill -1)",
        "it can only reach its own sandbox: the batch and the grader live on",
        lambda nb, ctx: answer(
            nb, "ans_goldilocks_lr", "import os, signal\nos.kill(-1, signal.SIGKILL)"
        ),
        status="error",
        reason=r"killed|exited",
        cells=dict.fromkeys(ORDER[3:], 0),
    ),
]

THEFT_CASES = [
    Case(
        "network",
        "the last answer downloads the labels (HTTP, DNS, raw TCP, loopback)",
        "the kernel has no network at all",
        steal(
            "ans_curve_labels",
            RIGHT_LABELS,
            WRONG_LABELS,
            """import socket, urllib.request
results = [
    _attempt("https", lambda: urllib.request.urlopen("https://pypi.org/simple/", timeout=3).read(10)),
    _attempt("dns", lambda: socket.getaddrinfo("pypi.org", 443)),
    _attempt("tcp 1.1.1.1:53", lambda: socket.create_connection(("1.1.1.1", 53), timeout=3)),
    _attempt("loopback ssh", lambda: socket.create_connection(("127.0.0.1", 22), timeout=3)),
]""",
        ),
        cells={"test_curve_labels": 0},
        evidence=True,
    ),
    Case(
        "read_checkers",
        "the last answer reads the hidden checker module's source",
        "the checkers are not in the sandbox",
        steal(
            "ans_curve_labels",
            "None",
            WRONG_LABELS,
            """results = [_attempt("checker source", lambda: open({root}
    + "/autograder/checkers/lesson4_learning_rate.py").read())]""",
            use=(
                "curve_labels = eval(results[0][1].split('CURVE_TRUTH = ')[1].splitlines()[0]) "
                "if results[0][0] else " + WRONG_LABELS
            ),
        ),
        cells={"test_curve_labels": 0},
        evidence=True,
    ),
    Case(
        "import_checkers",
        "the last answer imports autograder.checkers / autograder.check",
        "the checker package cannot be imported inside",
        steal(
            "ans_curve_labels",
            "None",
            WRONG_LABELS,
            """import importlib
results = [
    _attempt("import checkers", lambda: importlib.import_module(
        "autograder.checkers.lesson4_learning_rate").CURVE_TRUTH),
    _attempt("import check", lambda: importlib.import_module("autograder.check")),
]""",
            use="curve_labels = dict(results[0][1]) if results[0][0] else " + WRONG_LABELS,
        ),
        cells={"test_curve_labels": 0},
        evidence=True,
    ),
    Case(
        "read_source",
        "an answer reads the instructor's source notebook (the solutions)",
        "source/ is not in the sandbox",
        steal(
            "ans_steps_lr_003",
            "None",
            "3",
            """import re
results = [_attempt("source notebook", lambda: open({root}
    + "/source/lesson4_learning_rate/learning_rate.ipynb").read())]""",
            use=(
                "steps_lr_003 = int(re.search(r'steps_lr_003 = (\\d+)', results[0][1]).group(1)) "
                "if results[0][0] else 3"
            ),
        ),
        cells={"test_steps_lr_003": 0},
        evidence=True,
    ),
    Case(
        "read_gradebook",
        "the last answer opens gradebook.db (read, then write a score)",
        "the gradebook is not in the sandbox",
        steal(
            "ans_curve_labels",
            RIGHT_LABELS,
            WRONG_LABELS,
            """import sqlite3
def _read():
    con = sqlite3.connect("file:" + {gradebook} + "?mode=ro", uri=True)
    return con.execute("select count(*) from grade").fetchone()
def _write():
    con = sqlite3.connect({gradebook})
    con.execute("update grade set manual_score = 100")
    con.commit()
results = [_attempt("read gradebook", _read), _attempt("write gradebook", _write)]""",
        ),
        cells={"test_curve_labels": 0},
        evidence=True,
    ),
    Case(
        "read_other_student",
        "the last answer copies an honest student's submitted answers",
        "other students' folders are not in the sandbox",
        steal(
            "ans_curve_labels",
            "None",
            WRONG_LABELS,
            """import json
results = [_attempt("other submission", lambda: json.load(open({perfect_submitted})))]""",
            use=(
                "curve_labels = eval([c['source'] for c in results[0][1]['cells'] "
                "if 'curve_labels =' in ''.join(c['source'])][-1].split('=', 1)[1]) "
                "if results[0][0] else " + WRONG_LABELS
            ),
        ),
        cells={"test_curve_labels": 0},
        evidence=True,
    ),
    Case(
        "write_other_student",
        "a cell rewrites another student's submission, artifacts and "
        "results, the results file and an instructor file",
        "nothing outside the work folder can be written",
        lambda nb, ctx: after(
            nb,
            "setup",
            EVIDENCE
            + fill(
                """import json
def _overwrite(path, text):
    def act():
        with open(path, "w") as handle:
            handle.write(text)
    return act
targets = [
    {partial_submitted},
    {perfect_autograded} + "/artifacts/answers/steps_lr_003.json",
    {perfect_autograded} + "/learning_rate.ipynb",
    {state} + "/results/lesson4_learning_rate.json",
    {honeypot},
]
results = [_attempt("write " + t, _overwrite(t, "{{}}")) for t in targets]
results.append(_attempt("hard link", lambda: __import__("os").link(targets[-1], "stolen")))
results.append(_attempt("mkdir sibling", lambda: __import__("os").makedirs(
    {state} + "/autograded/adv_evil_twin")))""",
                ctx,
            ),
        ),
        evidence=True,
    ),
    Case(
        "env_secrets",
        "the last answer looks for the grader's secrets in its environment",
        "the kernel's environment is clean",
        steal(
            "ans_curve_labels",
            RIGHT_LABELS,
            WRONG_LABELS,
            """import os
def _find():
    if "{secret}" in os.environ:
        return os.environ["{secret}"]
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                if b"{secret}" in open("/proc/" + pid + "/environ", "rb").read():
                    return pid
            except OSError:
                pass
    raise LookupError("no secret")
results = [_attempt("secret", _find)]""".replace("{secret}", SECRET_ENV),
        ),
        cells={"test_curve_labels": 0},
        evidence=True,
    ),
    Case(
        "proc_escape",
        "the last answer tries to leave through /proc (PID 1's root, cwd, fds)",
        "the sandbox's PID 1 belongs to another user; the host is not reachable",
        steal(
            "ans_curve_labels",
            RIGHT_LABELS,
            WRONG_LABELS,
            """import os
results = [
    _attempt("/proc/1/root", lambda: os.listdir("/proc/1/root/work")),
    _attempt("/proc/1/cwd", lambda: os.listdir("/proc/1/cwd")),
    _attempt("/proc/1/environ", lambda: open("/proc/1/environ", "rb").read()),
    _attempt("/proc/1/fd", lambda: os.listdir("/proc/1/fd")),
    _attempt("parent fds", lambda: [os.readlink("/proc/%d/fd/%s" % (os.getppid(), f))
                                    for f in os.listdir("/proc/%d/fd" % os.getppid())
                                    if "gradebook" in os.readlink("/proc/%d/fd/%s" % (os.getppid(), f))] or 1/0),
]""",
        ),
        cells={"test_curve_labels": 0},
        evidence=True,
    ),
    Case(
        "poison_package",
        "a cell rewrites the course package and the venv for later students",
        "the package and the environment are read-only",
        lambda nb, ctx: after(
            nb,
            "setup",
            EVIDENCE
            + """import dlcourse.capture as _cap, sys
def _write(path):
    return lambda: open(path, "a").write("\\nraise SystemExit")
results = [
    _attempt("capture.py", _write(_cap.__file__)),
    _attempt("sitecustomize", _write(sys.prefix + "/lib/python3.11/site-packages/sitecustomize.py")),
    _attempt("stdlib", _write(sys.base_prefix + "/lib/python3.11/os.py")),
    _attempt("/usr", _write("/usr/lib/evil")),
    _attempt("/etc", _write("/etc/profile")),
]""",
        ),
        evidence=True,
    ),
]

FORGERY_CASES = [
    Case(
        "monkeypatch_capture_noop",
        "a cell replaces capture.answers with a no-op",
        "without a capture there is nothing to credit, and the student is told why",
        lambda nb, ctx: after(
            nb,
            "setup",
            "from dlcourse import capture\ncapture.answers = lambda *args, **kwargs: None",
        ),
        cells=dict.fromkeys(ORDER, 0),
        messages=dict.fromkeys(ORDER, ("not_executed",)),
    ),
    Case(
        "monkeypatch_capture_forge",
        "blank answers; the capture is patched to write "
        "'passed'/'score' fields, and a forged execution.json",
        "only plain values are read, and the grader writes execution.json itself",
        lambda nb, ctx: _blank_after_setup(nb, _patched_capture(ctx)),
        cells=dict.fromkeys(ORDER, 0),
    ),
    Case(
        "fake_checkers",
        "blank answers; fake checker modules, conftest.py and score.json are "
        "written into the work folder and artifacts",
        "the checkers run in the grader, from the package, never from the work folder",
        lambda nb, ctx: _blank_after_setup(nb, _fake_checkers(ctx)),
        cells=dict.fromkeys(ORDER, 0),
        messages=dict.fromkeys(ORDER, ("not_attempted",)),
    ),
    Case(
        "forge_invalid_json",
        "a cell overwrites a captured answer with invalid JSON",
        "a broken artifact is rejected with a reason",
        lambda nb, ctx: after(nb, "test_steps_lr_003", _write("steps_lr_003.json", "{not json")),
        cells={"test_steps_lr_003": 0},
        messages={"test_steps_lr_003": ("artifact_invalid",)},
    ),
    Case(
        "forge_enormous_json",
        "a cell overwrites a captured answer with a 5 MB JSON",
        "oversized artifacts are refused unread",
        lambda nb, ctx: after(
            nb,
            "test_steps_lr_01",
            _write(
                "steps_lr_01.json",
                json.dumps(
                    {
                        "name": "steps_lr_01",
                        "present": True,
                        "value": {"kind": "int", "value": 12},
                        "pad": "x" * 5_000_000,
                    }
                ),
            ),
        ),
        cells={"test_steps_lr_01": 0},
        messages={"test_steps_lr_01": ("artifact_invalid",)},
    ),
    Case(
        "forge_nan",
        "a cell rewrites a captured answer as JSON with NaN",
        "non-standard JSON constants are refused",
        lambda nb, ctx: after(
            nb,
            "test_goldilocks_lr",
            _write(
                "goldilocks_lr.json",
                '{"name": "goldilocks_lr", "present": true, '
                '"value": {"kind": "float", "value": NaN}}',
            ),
        ),
        cells={"test_goldilocks_lr": 0},
        messages={"test_goldilocks_lr": ("artifact_invalid",)},
    ),
    Case(
        "answers_nan_inf",
        "answers are NaN and infinity",
        "non-finite numbers are wrong answers, with a clear message",
        lambda nb, ctx: answer(
            nb,
            "ans_goldilocks_lr",
            "goldilocks_lr = float('nan')",
            ans_step_size="step_size = float('inf')",
        ),
        cells={"test_goldilocks_lr": 0, "test_step_size": 0},
        messages={"test_goldilocks_lr": ("wrong_type",), "test_step_size": ("wrong_type",)},
    ),
    Case(
        "forge_pickle",
        "a cell writes a pickle (with an os.system payload) where JSON and .npz are expected",
        "nothing is ever unpickled: the payload never runs",
        lambda nb, ctx: after(nb, "test_steps_lr_003", _pickle_bomb(ctx)),
        cells={"test_steps_lr_003": 0},
        messages={"test_steps_lr_003": ("artifact_invalid",)},
    ),
    Case(
        "forge_symlinks",
        "captured answers are replaced by symlinks to /etc/passwd and to a "
        "forged file outside the work folder",
        "artifacts are plain files or nothing",
        lambda nb, ctx: after(nb, "test_steps_lr_01", _symlinks(ctx)),
        cells={"test_steps_lr_003": 0, "test_steps_lr_01": 0},
        messages={
            "test_steps_lr_003": ("artifact_invalid",),
            "test_steps_lr_01": ("artifact_invalid",),
        },
    ),
    Case(
        "symlinks_for_grader",
        "the last cell plants symlinks where the grader writes (executed "
        "notebook, timestamp.txt, execution.json) aiming at an instructor file",
        "the grader never follows a link out of the work folder",
        lambda nb, ctx: after(nb, "test_curve_labels", _grader_write_links(ctx)),
    ),
    Case(
        "fifos_for_grader",
        "the last cell plants FIFOs where the grader writes",
        "the grader never blocks on them; the batch goes on",
        lambda nb, ctx: after(nb, "test_curve_labels", _grader_write_fifos(ctx)),
    ),
]

STRUCTURE_CASES = [
    Case(
        "delete_graded_cells",
        "a test cell and an answer cell are deleted",
        "locked cells are restored; a deleted answer is not attempted",
        _remove_cells,
        reason=r"was missing and has been restored",
        cells={"test_steps_lr_01": 0},
        messages={"test_steps_lr_01": ("not_attempted",)},
    ),
    Case(
        "duplicate_graded_cells",
        "a test cell is duplicated (the copy emptied) and an answer cell is duplicated",
        "only the first copy of a graded cell counts",
        _duplicate_cells,
        reason=r"appears more than once",
    ),
    Case(
        "retype_cells",
        "an answer cell is turned into markdown, a test cell into raw",
        "cell types come from the assignment",
        _retype_cells,
        reason=r"was changed to markdown",
    ),
    Case(
        "reorder_cells",
        "two answer+test blocks are swapped",
        "graded cells run in the assignment's order",
        _reorder_cells,
        reason=r"reordered",
    ),
    Case(
        "edit_metadata",
        "points set to 100, locks removed, a test cell marked as a solution and "
        "emptied, skip-execution tags, kernelspec changed to bash",
        "metadata, points and kernel come from the instructor's notebook",
        _edit_metadata,
        reason=r"was modified; the original was restored",
    ),
    Case(
        "edit_checksums",
        "nbgrader checksums, schema versions and cell ids forged",
        "checksums and ids are not trusted",
        _edit_checksums,
    ),
    Case(
        "renamed_notebook",
        "the notebook is submitted under a browser's copy name (learning_rate (1).ipynb)",
        "it is graded as the released notebook, and the student is told so",
        _renamed,
        reason=r"learning_rate \(1\)\.ipynb was graded as learning_rate\.ipynb",
    ),
    Case(
        "wrong_nbformat",
        "the notebook claims nbformat 99",
        "an unknown format is refused",
        _nbformat_99,
        status="error",
        reason=r"not a valid Jupyter notebook",
        cells=dict.fromkeys(ORDER, 0),
    ),
    Case(
        "nbformat_v3",
        "the notebook is saved in the old nbformat 3",
        "an old but valid format is upgraded and graded normally",
        _nbformat_v3,
    ),
    Case(
        "empty_file",
        "an empty file",
        "an empty upload gets a clear reason",
        lambda nb, ctx: b"",
        status="error",
        reason=r"empty",
        cells=dict.fromkeys(ORDER, 0),
    ),
    Case(
        "binary_junk",
        "random bytes",
        "a non-text upload gets a clear reason",
        _binary_junk,
        status="error",
        reason=r"not UTF-8|not a valid",
        cells=dict.fromkeys(ORDER, 0),
    ),
    Case(
        "json_not_notebook",
        "valid JSON whose cells are not a list",
        "the structure is checked before anything runs",
        _json_not_notebook,
        status="error",
        reason=r"not a valid Jupyter notebook",
        cells=dict.fromkeys(ORDER, 0),
    ),
    Case(
        "huge_notebook",
        "a 51 MB notebook",
        "oversized uploads are refused unread",
        _huge_notebook,
        status="error",
        reason=r"larger than 50 MB",
        cells=dict.fromkeys(ORDER, 0),
    ),
    Case(
        "non_dict_cells",
        "numbers, strings, nulls and lists among the cells",
        "a malformed notebook gets a clear reason",
        _non_dict_cells,
        status="error",
        reason=r"not a valid Jupyter notebook",
        cells=dict.fromkeys(ORDER, 0),
    ),
    Case(
        "strange_cells",
        "a cell with a numeric source, a cell of an unknown type, a cell with "
        "non-dict nbgrader metadata",
        "odd cells are neutralised, the rest is graded",
        _strange_cells,
    ),
]


# --- one submission against the later stages (feedback, report, exports, --force, regrade) -----

AFTER_LAST = "test_curve_labels"  # code placed after it runs once every answer was captured


def _nested_folders(levels: int) -> str:
    return f"""import os
fd = os.open(".", os.O_RDONLY)
for _ in range({levels}):  # deeper than recursion (and PATH_MAX) allow
    try:
        os.mkdir("n" * 120, dir_fd=fd)
        inner = os.open("n" * 120, os.O_RDONLY, dir_fd=fd)
    except OSError:
        break
    os.close(fd)
    fd = inner
"""


def _deep_answer_file(name: str, depth: int) -> str:
    return f"""import os
path = os.path.join(os.environ["AUTOGRADER_ARTIFACTS"], "answers", {name + ".json"!r})
deep = "[" * {depth} + "]" * {depth}
open(path, "w").write('{{"name": "x", "present": true, "value": ' + deep + "}}")
"""


def _history(values: list) -> str:
    data = {
        "history": {"loss": values, "val_loss": values[::-1]},
        "params": {"epochs": 10**300},
        "early_stopping": {"best_epoch": 10**300, "stopped_epoch": -(10**300)},
    }
    return _write("training.json", json.dumps(data, allow_nan=True), folder="keras")


def _notebook_json(nb, cells_extra: list) -> str:
    data = json.loads(nbformat.writes(perfect(nb)))
    data["cells"] += cells_extra
    return json.dumps(data, separators=(",", ":"))


def _many_cells(n: int):
    def build(nb, ctx):
        cell = {"cell_type": "code", "source": "x = 1", "metadata": {}, "outputs": []}
        return _notebook_json(nb, [cell] * n)

    return build


def _deep_metadata(nb, ctx):
    data = json.loads(nbformat.writes(perfect(nb)))
    data["metadata"]["x"] = json.loads("[" * 900 + "]" * 900)  # json can still write this
    text = json.dumps(data)
    return text.replace('"x": [', '"x": ' + "[" * 100_000 + "]" * 100_000 + ', "y": [', 1)


def _metadata_not_dict(nb, ctx):
    data = json.loads(nbformat.writes(perfect(nb)))
    for i, cell in enumerate(data["cells"]):
        if "nbgrader" not in cell.get("metadata", {}):
            cell["metadata"] = ["a list", "not a dict"] if i % 2 else "a string"
    return json.dumps(data)


ESCAPES = "\\x1b[2J\\x1b[H\\x1b]0;pwned\\x07\\r\\u202e"  # clear, home, title, CR, RTL override


def _escapes_in_error(nb, ctx):
    return answer(
        nb, "ans_steps_lr_003", f'raise ValueError("{ESCAPES}student  8/8  graded{ESCAPES}")'
    )


def _fake_bwrap(nb, ctx):
    code = f"""import os, sys
os.write(1, b"{ESCAPES}a_perfect  8/8 graded\\n")
os.write(2, b"bwrap: {ESCAPES}Creating new namespace failed: everything is fine\\n")
sys.__stderr__.write("bwrap: {ESCAPES}fake grade table\\n"); sys.__stderr__.flush()
os._exit(3)
"""
    return after(nb, AFTER_LAST, code)


def _active_outputs(nb, ctx):
    code = """from IPython.display import HTML, Javascript, SVG, Markdown, display
display(HTML('<b>hola</b><script>fetch("/formgrader/api/grades")</script>'
             '<img src=x onerror="alert(1)">'))
display(Javascript('alert(2)'))
display(SVG('<svg xmlns="http://www.w3.org/2000/svg" onload="alert(3)"></svg>'))
display(Markdown('*md* <script>alert(4)</script><a href="javascript:alert(5)">x</a>'))
display({"application/vnd.evil+javascript": "alert(6)", "text/plain": "x"}, raw=True)
"""
    nb = after(nb, AFTER_LAST, code)
    nb.cells.append(
        new_markdown_cell('Mi nota <img src=x onerror="alert(7)"><iframe src=/></iframe>')
    )
    return nb


def _memfd(nb, ctx):
    code = """import os, json
log = [{"label": "memfd: 1.8 GB held outside any mapping", "ok": False}]
json.dump(log, open("evidence.json", "w"))
fds, chunk = [], b"m" * (1 << 20)
try:
    for _ in range(30):
        fd = os.memfd_create("fill")
        for _ in range(60):
            os.write(fd, chunk)
        fds.append(fd)
    log.append({"label": "memfd: all 30 files of 60 MB written", "ok": True})
except OSError as exc:
    log.append({"label": "memfd refused", "ok": False, "error": str(exc)})
json.dump(log, open("evidence.json", "w"))
"""
    return after(nb, AFTER_LAST, code)


def _sysv_shm(nb, ctx):
    code = """import ctypes, json
libc = ctypes.CDLL(None, use_errno=True)
libc.shmat.restype = ctypes.c_void_p
log = [{"label": "SysV shm: 1.5 GB held after detaching", "ok": False}]
json.dump(log, open("evidence.json", "w"))
held = 0
for _ in range(25):
    sid = libc.shmget(0, 60 << 20, 0o1600)  # IPC_PRIVATE, IPC_CREAT | 0600
    if sid < 0:
        log.append({"label": "shmget refused", "ok": False, "error": str(ctypes.get_errno())})
        break
    addr = libc.shmat(sid, None, 0)
    if addr in (None, ctypes.c_void_p(-1).value):
        break
    ctypes.memset(addr, 1, 60 << 20)
    libc.shmdt(ctypes.c_void_p(addr))
    held += 60
if held >= 1500:
    log.append({"label": "SysV shm: 1.5 GB written and detached", "ok": True})
json.dump(log, open("evidence.json", "w"))
"""
    return after(nb, AFTER_LAST, code)


def _write_npz_bomb(target: str) -> str:
    return f"""import io, os, zipfile
folder = os.environ["AUTOGRADER_ARTIFACTS"]
os.makedirs(os.path.join(folder, os.path.dirname({target!r})), exist_ok=True)
header = b"\\x93NUMPY\\x01\\x00" + (118).to_bytes(2, "little")
text = "{{'descr': '<f8', 'fortran_order': False, 'shape': (250000000,), }}"
header += (text + " " * (117 - len(text)) + "\\n").encode()
with zipfile.ZipFile(os.path.join(folder, {target!r}), "w", zipfile.ZIP_DEFLATED) as z:
    with z.open("w.npy", "w", force_zip64=True) as member:  # 2 GB of zeros, ~2 MB on disk
        member.write(header)
        block = bytes(1 << 24)
        for _ in range(64):
            member.write(block)
"""


def _perfect(nb, ctx):
    return perfect(nb)


def _timestamp_text(folder: Path) -> None:
    (folder / "timestamp.txt").write_text("entregado ayer\x1b[2J, de verdad", encoding="utf-8")


def _timestamp_folder(folder: Path) -> None:
    stamp = folder / "timestamp.txt"
    stamp.unlink()
    (stamp / "deeper").mkdir(parents=True)


def _forged_lms_note(folder: Path) -> None:
    (folder / "lms.json").write_text(
        '{"late": false, "lms": "canvas", "x": ' + "[" * 50_000 + "]" * 50_000 + "}"
    )


STAGE_CASES = [
    Case(
        "mkdir_timestamp",
        "an answer cell makes timestamp.txt a folder (where the grader writes the time)",
        "what the kernel leaves at a grader-written path is replaced; the class goes on",
        lambda nb, ctx: after(nb, AFTER_LAST, "import os\nos.makedirs('timestamp.txt/x/y')"),
        stages=True,
    ),
    Case(
        "notebook_path_is_folder",
        "the executed notebook's own path and execution.json are made folders",
        "the grader clears its own paths before writing them",
        lambda nb, ctx: after(
            nb,
            AFTER_LAST,
            f"import os\nos.makedirs({NOTEBOOK!r} + '/x')\n"
            "os.makedirs(os.path.join(os.environ['AUTOGRADER_ARTIFACTS'], 'execution.json', 'x'))",
        ),
        stages=True,
    ),
    Case(
        "nested_folders",
        "1,100 nested folders in the work folder (deeper than recursion and PATH_MAX allow)",
        "the next --force removes them and grades again; nothing stops the class",
        lambda nb, ctx: after(nb, AFTER_LAST, _nested_folders(1100)),
        status=("graded", "error"),  # the file-count limit may stop the kernel first
        stages=True,
    ),
    Case(
        "surrogate_answers",
        "answers hold lone surrogates (\\udc80), in a value and in a dict key",
        "results, feedback and exports are written; the answers earn nothing",
        lambda nb, ctx: answer(
            nb,
            "ans_lr_1_outcome",
            'lr_1_outcome = "\\udc80"',
            ans_curve_labels='curve_labels = {"A\\udc80": "tasa_baja\\udfff", "B": "\\ud800"}',
        ),
        cells={"test_lr_1_outcome": 0, "test_curve_labels": 0},
        stages=True,
    ),
    Case(
        "deep_answer_value",
        "an answer nested 100,000 levels deep",
        "capture and grader bound the depth; the answer earns nothing",
        lambda nb, ctx: answer(
            nb,
            "ans_steps_lr_01",
            "steps_lr_01 = []\nx = steps_lr_01\nfor _ in range(100_000):\n"
            "    x.append([])\n    x = x[0]",
        ),
        cells={"test_steps_lr_01": 0},
        stages=True,
    ),
    Case(
        "deep_answer_file",
        "a captured answer rewritten as JSON nested 100,000 levels deep",
        "the depth is measured before parsing; the artifact is refused with a reason",
        lambda nb, ctx: after(nb, "test_steps_lr_003", _deep_answer_file("steps_lr_003", 100_000)),
        cells={"test_steps_lr_003": 0},
        messages={"test_steps_lr_003": ("artifact_invalid",)},
        reason=r"nested",
        stages=True,
    ),
    Case(
        "history_1e308",
        "a training history of ±1e308, NaN and epochs of 10^300, where feedback reads curves",
        "feedback draws what is drawable and writes every page",
        lambda nb, ctx: after(nb, AFTER_LAST, _history([1e308, -1e308, "nan", 1e-308, 2.0])),
        stages=True,
    ),
    Case(
        "history_deep",
        "a training history nested 60,000 levels deep and 2 MB of epochs",
        "bounded reads: feedback shows no curve and goes on",
        lambda nb, ctx: after(
            nb,
            AFTER_LAST,
            """import os, json
folder = os.path.join(os.environ["AUTOGRADER_ARTIFACTS"], "keras")
os.makedirs(folder, exist_ok=True)
deep = "[" * 60_000 + "]" * 60_000
open(os.path.join(folder, "training.json"), "w").write('{"history": {"loss": ' + deep + "}}")
json.dump({"loss": [1.0] * 300_000}, open(os.path.join(folder, "training_2.json"), "w"))
""",
        ),
        stages=True,
    ),
    Case(
        "npz_bomb",
        "a 1 GB deflate bomb (about 1 MB) where the grader reads model weights",
        "every member's inflated size is checked against its header before inflating",
        lambda nb, ctx: after(nb, AFTER_LAST, _write_npz_bomb("model/weights.npz")),
        stages=True,
    ),
    Case(
        "many_cells",
        "a notebook of 650,000 cells (about 44 MB)",
        "the cell count is bounded before anything is rebuilt: refused at once",
        _many_cells(650_000),
        status="error",
        reason=r"6500\d\d cells",
        cells=dict.fromkeys(ORDER, 0),
    ),
    Case(
        "cells_over_the_limit",
        "a notebook of 2,001 extra cells",
        "the cell bound holds just past it",
        _many_cells(2_001),
        status="error",
        reason=r"cells \(at most",
        cells=dict.fromkeys(ORDER, 0),
    ),
    Case(
        "giant_source",
        "one cell of 11,000,000 characters of code",
        "each source is bounded",
        lambda nb, ctx: _notebook_json(
            nb, [{"cell_type": "code", "source": "#" * 11_000_000, "metadata": {}, "outputs": []}]
        ),
        status="error",
        reason=r"too long",
        cells=dict.fromkeys(ORDER, 0),
    ),
    Case(
        "deep_notebook_json",
        "notebook metadata nested 100,000 levels deep",
        "the parser's depth limit is this student's error, not a crash",
        _deep_metadata,
        status="error",
        reason=r"not a valid Jupyter notebook",
        cells=dict.fromkeys(ORDER, 0),
    ),
    Case(
        "metadata_not_dict",
        "every plain cell's metadata is a list or a string",
        "odd metadata is ignored, the answers are graded",
        _metadata_not_dict,
    ),
    Case(
        "escapes_in_error",
        "an answer cell raises an error whose text clears the screen and fakes a grade row",
        "reasons and messages are printable text: no escape or control character",
        _escapes_in_error,
        cells={"test_steps_lr_003": 0},
        stages=True,
    ),
    Case(
        "fake_bwrap_line",
        "the kernel prints a fake `bwrap:` line with escape codes, then exits",
        "the stop reason quotes it only as printable text",
        _fake_bwrap,
        status="error",
        reason=r"kernel exited \(status 3\)",
        stages=True,
    ),
    Case(
        "active_outputs",
        "outputs with scripts, JavaScript, SVG onload, event handlers; a Markdown cell too",
        "the executed notebook kept for formgrader is inert",
        _active_outputs,
        stages=True,
    ),
    Case(
        "memfd_fill",
        "30 memfd_create files of 60 MB (1.8 GB, never mapped) against a 1 GB limit",
        "memory is counted as the kernel counts it (cgroup), or memfd is refused (seccomp)",
        _memfd,
        status=("graded", "error"),
        evidence=True,
    ),
    Case(
        "sysv_shm_fill",
        "SysV shared memory segments, written then detached: 1.5 GB held by no process",
        "the cgroup counts them, or shmget is refused (seccomp)",
        _sysv_shm,
        status=("graded", "error"),
        evidence=True,
    ),
    Case(
        "timestamp_free_text",
        "timestamp.txt in the submission folder holds free text; the kernel writes a forged one",
        "the time is unknown, with a note; the notebook is graded",
        lambda nb, ctx: after(  # and the kernel forges one where the grader keeps it
            nb, AFTER_LAST, "open('timestamp.txt', 'w').write('2020-01-01 00:00:00 UTC')"
        ),
        reason=r"timestamp\.txt",
        folder=_timestamp_text,
        stages=True,
    ),
    Case(
        "timestamp_is_folder",
        "timestamp.txt in the submission folder is a folder",
        "the time is unknown, with a note; the notebook is graded",
        _perfect,
        reason=r"timestamp\.txt",
        folder=_timestamp_folder,
    ),
    Case(
        "forged_lms_note",
        "an lms.json in the submission folder, 50,000 levels deep, claiming not late",
        "lateness comes only from the instructor's collect report, never from the submission",
        _perfect,
        folder=_forged_lms_note,
    ),
    Case(
        "other_notebook_name",
        "the notebook is submitted under another name (entrega_final.ipynb)",
        "a clear reason; the report, feedback and exports still cover everyone",
        lambda nb, ctx: ("entrega_final.ipynb", perfect(nb)),
        status="error",
        reason=r"renamed",
        cells=dict.fromkeys(ORDER, 0),
        stages=True,
    ),
]

# Folders of submitted/ that are not valid student ids: refused at collect, never a student.
REFUSED_FOLDERS = (
    "ana\n",
    '=HYPERLINK("evil.example","y")',
    "\x1b[2Jbob",
    "-rm",
    "@SUM(1)",
)


def _blank_after_setup(nb, source: str):
    nb = copy.deepcopy(nb)
    nb.cells.insert(index_of(nb, "setup") + 1, new_code_cell(source))
    return nb


CASES: dict[str, Case] = {
    c.name: c for c in RESOURCE_CASES + THEFT_CASES + FORGERY_CASES + STRUCTURE_CASES + STAGE_CASES
}


# --- writing the corpus -----------------------------------------------------------------------


def write_submission(folder: Path, produced: object) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / NOTEBOOK
    if isinstance(produced, tuple):  # (file name, notebook): a renamed submission
        name, nb = produced
        target = folder / name
        nbformat.write(nb, target)
    elif isinstance(produced, (bytes, str)):
        target.write_bytes(produced.encode() if isinstance(produced, str) else produced)
    else:
        nbformat.write(produced, target)
    (folder / "timestamp.txt").write_text(TIMESTAMP, encoding="utf-8")
    return target


def build_corpus(
    release_dir: Path, submitted_dir: Path, ctx: Context, names: list[str] | None = None
) -> dict[str, Case]:
    """Write every case (or ``names``) as ``submitted/adv_<name>/<aid>/``; returns the cases."""
    release = nbformat.read(Path(release_dir) / AID / NOTEBOOK, as_version=4)
    chosen = {n: CASES[n] for n in (names or CASES)}
    for case in chosen.values():
        folder = Path(submitted_dir) / case.student / AID
        write_submission(folder, case.build(release, ctx))
        if case.folder is not None:
            case.folder(folder)
    if names is None:
        for name in REFUSED_FOLDERS:
            write_submission(Path(submitted_dir) / name / AID, perfect(release))
    return chosen


def build_honest(release_dir: Path, submitted_dir: Path) -> list[str]:
    """The honest students around the corpus: a perfect and a partial one graded before the
    attackers, and a perfect one graded after all of them."""
    from tests.sample_class.lesson4_learning_rate import partial

    release = nbformat.read(Path(release_dir) / AID / NOTEBOOK, as_version=4)
    recipes = {"a_perfect": perfect, "a_partial": partial, LAST: perfect}
    for student, recipe in recipes.items():
        write_submission(Path(submitted_dir) / student / AID, recipe(release))
    return list(recipes)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("out", help="state folder to write submitted/ into")
    parser.add_argument("--course-root", default=str(Path(__file__).resolve().parents[2]))
    args = parser.parse_args(argv)
    state = Path(args.out).resolve()
    root = Path(args.course_root).resolve()
    ctx = Context(root, state, state / "instructor_notes.txt", state / "PWNED")
    cases = build_corpus(root / "release", state / "submitted", ctx)
    honest = build_honest(root / "release", state / "submitted")
    print(
        f"wrote {len(cases)} adversarial cases and {len(honest)} honest students under "
        f"{state / 'submitted'}"
    )
    for case in cases.values():
        print(f"  {case.student:32} {case.attack}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
