"""Gradescope: build the autograder bundle, and the code its ``run_autograder`` runs.

``build_bundle(course, assignment)`` writes a zip with, at its root::

    setup.sh            installs Python 3.11/3.12 (apt's python3.11 where the image has only
                        3.10, as Gradescope's Ubuntu 22.04 does), a venv in /autograder/venv,
                        this package; creates the unprivileged user the student's kernel runs as
    run_autograder      runs ``python -m autograder.lms.gradescope run`` under a hard time limit
    gradescope.json     the assignment, visibility, time limits, language
    package/            this package's source (pyproject.toml generated from the installed one)
    package/student/    the student distribution (dlcourse): all the kernel may import
    course/             a course_config.py for the bundle (no db_url, no LMS settings, no
                        secrets) and the assignment's source/ and release/ notebooks
    data/               the course data the assignment reads (verified copies), so grading
                        needs no download; absent when the assignment reads none

At run time Gradescope puts the student's files in ``/autograder/submission/``;
``run_autograder(root)`` picks the notebook, grades it with the same stateless core as the rest
of the package (``autograder.core.grade``) and writes ``/autograder/results/results.json``: one
test per graded cell (``score``, ``max_score``, ``status``, ``name`` (the question as the
notebook titles it, in the course language), ``number``, ``output`` as markdown with the
checker messages, ``visibility``); every text is in the course language. A provisional results file is written
first, and every time limit is set from Gradescope's own (``time_limit`` minus a margin), so a
slow notebook gets a clear message and its partial results instead of Gradescope's global
timeout (which scores 0 with no explanation).

At build time the bundle is checked against the container Gradescope gives it (``memory_mb``,
``cpus``, ``time_limit``: Gradescope's defaults unless set): what grading the reference
solution took (``autograder.reference.reference_resources``, measured by the release's
self-test) is compared with them, and each setting to raise is logged as a warning, with a value.

Gradescope runs everything as root in its container. The student's kernel therefore runs as
the unprivileged ``student`` user (``setpriv``), in a work folder of its own, while the course
material (solutions, hidden tests, checkers) stays readable by root only.
"""

from __future__ import annotations

import argparse
import inspect
import json
import logging
import math
import os
import re
import shlex
import shutil
import stat
import sys
import tempfile
import time
import uuid
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, get_args

from autograder.collect import STUDENT_ID
from autograder.config import Course, GradescopeSection, Visibility
from autograder.lms.collect import notebook_stem
from autograder.lms.common import LmsError, fmt_points, lms_config, per_assignment
from autograder.results import Note
from autograder.sandbox import STUDENT_PACKAGE, student_package_dir

log = logging.getLogger(__name__)

# The settings and their defaults are declared once: autograder.config.GradescopeSection.
VISIBILITIES = get_args(Visibility)
DEFAULT_TIME_LIMIT = GradescopeSection.time_limit  # Gradescope's default autograder timeout (s)
DEFAULT_MARGIN = GradescopeSection.margin  # kept free for kernel start, checks and results
RUN_AS = GradescopeSection.run_as
DEFAULT_MEMORY_MB = GradescopeSection.memory_mb  # Gradescope's default container memory
DEFAULT_CPUS = GradescopeSection.cpus  # and its default share of a virtual CPU
MAX_TIMEOUT = 2400.0  # the longest autograder timeout Gradescope allows (40 minutes)
SETTINGS_FILE = "gradescope.json"


# --- settings -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GradescopeSettings:
    assignment: str
    notebook: str
    language: str
    visibility: str = "visible"
    stdout_visibility: str = "hidden"
    test_visibility: dict[str, str] | None = None
    time_limit: float = DEFAULT_TIME_LIMIT
    margin: float = DEFAULT_MARGIN
    run_as: str | None = RUN_AS
    memory_mb: int = DEFAULT_MEMORY_MB
    cpus: float = DEFAULT_CPUS
    # {grade id: test name}: the questions as the release notebook titles them, in ``language``
    test_names: dict[str, str] | None = None

    @classmethod
    def from_course(cls, course: Course, assignment_id: str) -> GradescopeSettings:
        section = lms_config(course).gradescope
        spec = course.assignment(assignment_id)

        def setting(name: str, default: Any) -> Any:
            return per_assignment(getattr(section, name), assignment_id, default)

        visibility = setting("visibility", GradescopeSection.visibility)
        stdout_visibility = setting("stdout_visibility", GradescopeSection.stdout_visibility)
        tests = setting("test_visibility", None) or {}
        time_limit = float(setting("time_limit", DEFAULT_TIME_LIMIT))
        margin = float(setting("margin", DEFAULT_MARGIN))
        if time_limit - margin < 60:
            raise LmsError(
                "lms.gradescope.short_time_limit",
                time_limit=f"{time_limit:g}",
                margin=f"{margin:g}",
            )
        run_as = setting("run_as", RUN_AS)
        return cls(
            assignment_id,
            spec.notebook,
            course.language,
            visibility,
            stdout_visibility,
            dict(tests),
            time_limit,
            margin,
            run_as or None,
            int(setting("memory_mb", DEFAULT_MEMORY_MB)),
            float(setting("cpus", DEFAULT_CPUS)),
            question_names(course, assignment_id),
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GradescopeSettings:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})

    def test_name(self, grade_id: str) -> str:
        return (self.test_names or {}).get(grade_id) or grade_id


def question_names(course: Course, assignment_id: str) -> dict[str, str]:
    """``{grade id: "Pregunta 4: La tasa justa"}``: each graded cell as the release notebook
    numbers and titles it (the feedback pages' questions), in the course language; the answer's
    name is added where two cells share a number and a title."""
    from autograder.core import Assignment
    from autograder.feedback import questions_from_release

    try:
        grade_ids = list(Assignment.from_course(course, assignment_id).cell_points)
    except Exception:  # noqa: BLE001 - no notebooks yet: build_bundle says which one is missing
        return {}
    release = course.release_dir / assignment_id / course.assignment(assignment_id).notebook
    questions = questions_from_release(release, grade_ids)
    shared = [(q.number, q.title) for q in questions]
    return {
        q.grade_id: Note(
            "lms.gradescope.test_name",
            {
                "number": q.number,
                "title": q.title or "",
                "name": q.name if shared.count((q.number, q.title)) > 1 else "",
            },
        ).text(course.language)
        for q in questions
    }


# --- the bundle -----------------------------------------------------------------------------------

SETUP_SH = r"""#!/usr/bin/env bash
# Gradescope runs this once, as root, when the autograder is built. The grader needs Python
# 3.11 or 3.12; Gradescope's Ubuntu 22.04 image has 3.10, so apt's python3.11 is installed.
# AUTOGRADER_ROOT (default /autograder) only serves to try this script elsewhere.
set -euxo pipefail
ROOT="${AUTOGRADER_ROOT:-/autograder}"
cd "$ROOT/source"
export DEBIAN_FRONTEND=noninteractive

ok() { "$1" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 13)))' 2>/dev/null; }
find_python() {
  for candidate in python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null && ok "$candidate"; then command -v "$candidate"; return 0; fi
  done
  return 1
}
if ! PY="$(find_python)"; then
  echo "setup.sh: $(python3 --version 2>&1 || echo 'no python3') here; installing python3.11" >&2
  apt-get update
  apt-get install -y --no-install-recommends python3.11 python3.11-venv
  hash -r
  if ! PY="$(find_python)"; then
    echo "setup.sh: apt installed no usable python3.11; the grader needs Python 3.11 or 3.12" >&2
    exit 1
  fi
fi
if ! "$PY" -m venv "$ROOT/venv"; then
  apt-get update
  apt-get install -y --no-install-recommends "$(basename "$PY")-venv"
  rm -rf "$ROOT/venv"
  "$PY" -m venv "$ROOT/venv"
fi
"$ROOT/venv/bin/python" -m pip install --upgrade pip
"$ROOT/venv/bin/python" -m pip install "$ROOT/source/package/student" "$ROOT/source/package"
# the unprivileged user for the student's kernel; permissions on the course material
"$ROOT/venv/bin/python" -m autograder.lms.gradescope setup --root "$ROOT"
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this for every submission. The grader keeps its own time limits (see
# gradescope.json); this outer limit only stops a grader that hangs, before Gradescope's does.
ROOT="${AUTOGRADER_ROOT:-/autograder}"
LIMIT=$("$ROOT/venv/bin/python" -c 'import json, sys; print(int(json.load(open(sys.argv[1]))["time_limit"]))' "$ROOT/source/gradescope.json")
exec timeout --kill-after=10 $((LIMIT - 20)) "$ROOT/venv/bin/python" -m autograder.lms.gradescope run --root "$ROOT"
"""

PYPROJECT = """[build-system]
requires = ["setuptools>=68", "wheel"]
build-backend = "setuptools.build_meta"

[project]
name = {name}
version = {version}
requires-python = {requires_python}
dependencies = {dependencies}

[tool.setuptools]
include-package-data = true

[tool.setuptools.packages.find]
include = ["{package}*"]
"""

MANIFEST = """recursive-include {package} *
global-exclude *.py[cod] __pycache__
"""

CONFIG = '''"""course_config.py of a Gradescope autograder bundle (generated; edit the course's own)."""
c = get_config()  # noqa: F821
c.CourseDirectory.course_id = {course_id!r}
c.Execute.timeout = {cell_timeout!r}
c.Course.language = {language!r}
c.Course.assignments = {assignments!r}
c.Course.notebook_timeout = {notebook_timeout!r}
c.Course.thresholds = {thresholds!r}
'''


def _package_requirements(package: str = "autograder") -> tuple[str, str, list[str]]:
    """(version, requires-python, dependencies) of a distribution (``autograder`` or the student
    ``dlcourse``), from its pyproject.toml when running from a source checkout, else from the
    installed distribution's metadata."""
    import importlib
    import tomllib
    from importlib import metadata

    folder = Path(importlib.import_module(package).__file__).resolve().parent
    for pyproject in (folder.parent / "pyproject.toml", folder.parent.parent / "pyproject.toml"):
        if pyproject.is_file():
            project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
            if project.get("name") == package:
                return (
                    project["version"],
                    project.get("requires-python", ">=3.11"),
                    list(project.get("dependencies", [])),
                )
    dist = metadata.distribution(package)
    deps = [r for r in (dist.requires or []) if "extra ==" not in r]
    return dist.version, dist.metadata.get("Requires-Python") or ">=3.11", deps


def _add_package(zf: zipfile.ZipFile, package: str, arcroot: str) -> None:
    """An installable source tree of ``package`` (pyproject, manifest, the package folder)."""
    import importlib

    version, requires_python, dependencies = _package_requirements(package)
    _add_text(
        zf,
        f"{arcroot}/pyproject.toml",
        PYPROJECT.format(
            name=json.dumps(package),
            package=package,
            version=json.dumps(version),
            requires_python=json.dumps(requires_python),
            dependencies=json.dumps(dependencies, indent=4),
        ),
    )
    _add_text(zf, f"{arcroot}/MANIFEST.in", MANIFEST.format(package=package))
    folder = Path(importlib.import_module(package).__file__).resolve().parent
    _add_tree(zf, folder, f"{arcroot}/{package}")


# where the course's data is read: the data module's loaders, the checkers' accessor, the
# captures that load it; ``data_readers`` finds every function of these calling another reader
DATA_MODULES = (
    "dlcourse.data",
    "autograder.checkers.support",
    "dlcourse.keras_capture",
    "dlcourse.checking",
)


def _code_names(code) -> set[str]:
    names = set(code.co_names)
    for const in code.co_consts:
        if inspect.iscode(const):
            names |= _code_names(const)
    return names


def data_readers() -> set[str]:
    """Names of the functions that read the course data: ``fetch_file`` and, transitively,
    every function of ``DATA_MODULES`` that calls one (``load_red_wine``, ``course_arrays``,
    ``wine_arrays``, ``capture_split``...)."""
    import importlib

    functions: list[tuple[str, Any]] = []
    for module_name in DATA_MODULES:
        module = importlib.import_module(module_name)
        for name, obj in vars(module).items():
            members = vars(obj).items() if inspect.isclass(obj) else [(name, obj)]
            for member, value in members:
                value = inspect.unwrap(value) if callable(value) else value
                if inspect.isfunction(value) and value.__module__ == module_name:
                    functions.append((member, value))
    readers = {"fetch_file"}
    while True:
        found = {n for n, f in functions if _code_names(f.__code__) & readers} - readers
        if not found:
            return readers
        readers |= found


def needs_data(course: Course, assignment_id: str) -> bool:
    """Whether grading the assignment reads the course data: its source notebook (whose hidden
    tests run in the kernel) or its checker module names one of the ``data_readers``."""
    import nbformat

    from autograder.check import checker_path

    spec = course.assignment(assignment_id)
    nb = nbformat.read(course.source_dir / assignment_id / spec.notebook, as_version=4)
    code = [c.source for c in nb.cells if c.cell_type == "code"]
    checker = checker_path(assignment_id)
    if checker.is_file():
        code.append(checker.read_text(encoding="utf-8"))
    words = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", "\n".join(code)))
    return bool(words & data_readers())


def _data_files(course: Course, assignment_id: str) -> list[Path]:
    """The data files the assignment reads (every ``RemoteFile`` the data module declares),
    from the instructor's data home; none when it reads no data. Raises ``LmsError``, naming
    the command that fetches them, when they are needed and missing."""
    from autograder.core import GradingSettings
    from dlcourse import data

    if not needs_data(course, assignment_id):
        return []
    home = Path(GradingSettings.from_course(course).data_home)
    files = {n: v for n, v in vars(data).items() if isinstance(v, data.RemoteFile)}
    missing = [n for n, f in files.items() if not (home / f.filename).is_file()]
    if missing:
        fetches = "; ".join(f"data.fetch_file(data.{n}, {json.dumps(str(home))})" for n in missing)
        code = f"from dlcourse import data; {fetches}"
        raise LmsError(
            "lms.gradescope.data_missing",
            assignment=assignment_id,
            files=", ".join(files[n].filename for n in missing),
            home=str(home),
            command=f"python -c {shlex.quote(code)}",
        )
    return [home / f.filename for f in files.values()]


# --- the container's resources -------------------------------------------------------------------

MEMORY_HEADROOM = 1.25  # on top of the measured peaks: page cache, a student's extra copy
MEMORY_STEP_MB = 256  # suggestions are rounded up to this
TIME_SAFETY = 1.5  # Gradescope's CPUs are shared and may be slower than the one measured on


def check_resources(course: Course, assignment_id: str, settings: GradescopeSettings) -> list[Note]:
    """What to raise in Gradescope (Settings > Autograder Settings) for the assignment to run:
    the reference solution's measured memory and time (``autograder release`` records them)
    against ``memory_mb``, ``cpus`` and ``time_limit``. One note per setting to raise, with the
    value; a note saying so when nothing was measured."""
    from autograder.reference import reference_resources

    measured = reference_resources(course, assignment_id)
    if not measured or measured.get("seconds") is None:
        return [Note("lms.gradescope.not_measured", {"assignment": assignment_id})]
    notes = []
    memory = float(measured.get("kernel_peak_mb") or 0) + float(measured.get("grader_peak_mb") or 0)
    need_mb = int(math.ceil(memory * MEMORY_HEADROOM / MEMORY_STEP_MB) * MEMORY_STEP_MB)
    if memory and need_mb > settings.memory_mb:
        notes.append(
            Note(
                "lms.gradescope.memory",
                {
                    "assignment": assignment_id,
                    "measured": f"{memory:.0f}",
                    "limit": settings.memory_mb,
                    "suggest": need_mb,
                },
            )
        )
    # the kernel runs kernel_threads threads: fewer CPUs than that slow it down in proportion
    threads = max(1, int(course.kernel_threads))
    seconds = float(measured["seconds"])

    def need_s(cpus: float) -> float:
        return seconds * TIME_SAFETY * max(1.0, threads / cpus) + settings.margin

    cpus = settings.cpus
    if need_s(cpus) > settings.time_limit:
        if cpus < threads:
            notes.append(
                Note(
                    "lms.gradescope.cpus",
                    {"assignment": assignment_id, "limit": f"{cpus:g}", "suggest": threads},
                )
            )
            cpus = threads
        if need_s(cpus) > settings.time_limit:
            suggest = int(math.ceil(need_s(cpus) / 60) * 60)
            notes.append(
                Note(
                    "lms.gradescope.timeout",
                    {
                        "assignment": assignment_id,
                        "measured": f"{seconds:.0f}",
                        "cpus": f"{cpus:g}",
                        "limit": f"{settings.time_limit:g}",
                        "suggest": suggest,
                        "too_long": suggest > MAX_TIMEOUT,
                    },
                )
            )
    return notes


def _add_tree(zf: zipfile.ZipFile, folder: Path, arcroot: str) -> None:
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if (
            path.is_dir()
            or path.is_symlink()
            or path.suffix in (".pyc", ".pyo")
            or any(part == "__pycache__" or part.startswith(".") for part in rel.parts)
        ):
            continue  # caches, checkpoints, editor and tool litter
        zf.write(path, f"{arcroot}/{rel.as_posix()}")


def _add_text(zf: zipfile.ZipFile, name: str, text: str, executable: bool = False) -> None:
    info = zipfile.ZipInfo(name, date_time=time.localtime()[:6])
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = ((0o755 if executable else 0o644) | stat.S_IFREG) << 16
    zf.writestr(info, text)


def build_bundle(course: Course, assignment_id: str, out: str | Path | None = None) -> Path:
    """``autograder gradescope ASSIGNMENT --out autograder.zip``: the zip to upload as the
    assignment's autograder (Gradescope: Configure Autograder > Zip file upload)."""
    settings = GradescopeSettings.from_course(course, assignment_id)
    spec = course.assignment(assignment_id)
    source = course.source_dir / assignment_id
    if not (source / spec.notebook).is_file():
        missing = {"path": str(source / spec.notebook), "assignment": ""}
        raise LmsError("lms.gradescope.no_file", **missing)
    release = course.release_dir / assignment_id
    if not (release / spec.notebook).is_file():
        missing = {"path": str(release / spec.notebook), "assignment": assignment_id}
        raise LmsError("lms.gradescope.no_file", **missing)
    data_files = _data_files(course, assignment_id)
    for note in check_resources(course, assignment_id, settings):
        log.warning("%s", note.text(course.language))
    out = Path(out) if out else course.exports_dir / f"gradescope_{assignment_id}.zip"
    out.parent.mkdir(parents=True, exist_ok=True)
    config = CONFIG.format(
        course_id=course.course_id,
        cell_timeout=course.cell_timeout,
        language=course.language,
        assignments={
            assignment_id: {
                "notebook": spec.notebook,
                "timeout": spec.timeout,
                **({"cell_timeout": spec.cell_timeout} if spec.cell_timeout else {}),
            }
        },
        notebook_timeout=course.notebook_timeout,
        thresholds={assignment_id: dict(course.thresholds.get(assignment_id, {}))},
    )
    tmp = out.with_name(out.name + ".tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        _add_text(zf, "setup.sh", SETUP_SH, executable=True)
        _add_text(zf, "run_autograder", RUN_AUTOGRADER, executable=True)
        _add_text(zf, SETTINGS_FILE, json.dumps(settings.to_dict(), indent=1))
        _add_package(zf, "autograder", "package")
        _add_package(zf, STUDENT_PACKAGE, "package/student")
        _add_text(zf, "course/course_config.py", config)
        _add_tree(zf, source, f"course/source/{assignment_id}")
        _add_tree(zf, release, f"course/release/{assignment_id}")
        for path in data_files:
            zf.write(path, f"data/{path.name}")
    tmp.replace(out)
    return out


# --- at build time on Gradescope: user and permissions -------------------------------------------


def protect_material(root: Path, user_readable: list[Path]) -> None:
    """Course material readable by root only; ``user_readable`` paths (data, the kernel's own
    imports) stay readable by everyone."""
    source = root / "source"
    for path in (source / "course", source / "package", source / SETTINGS_FILE):
        if path.exists():
            _chmod_tree(path, remove=0o077)
    if source.exists():
        source.chmod(0o711)  # traversable, not listable
    for path in user_readable:
        if path.exists():
            _chmod_tree(path, add=0o055)


def _chmod_tree(path: Path, remove: int = 0, add: int = 0) -> None:
    for p in [path, *(path.rglob("*") if path.is_dir() else [])]:
        if p.is_symlink():
            continue
        mode = stat.S_IMODE(p.stat().st_mode)
        grant = add
        if p.is_file() and not mode & 0o100:
            grant &= ~0o111  # no execute bit on a file its owner cannot execute
        p.chmod((mode & ~remove) | grant)


def installed_package_dir() -> Path:
    import autograder

    return Path(autograder.__file__).resolve().parent


def setup(root: str | Path = "/autograder", user: str | None = None) -> None:
    """``python -m autograder.lms.gradescope setup``: run by setup.sh as root. ``user``: the
    kernel's (default: the bundle's ``run_as``; none when it runs the kernel as root)."""
    import subprocess

    root = Path(root)
    if user is None:
        settings_file = root / "source" / SETTINGS_FILE
        user = json.loads(settings_file.read_text(encoding="utf-8")).get("run_as")
    if user:
        try:
            import pwd

            pwd.getpwnam(user)
        except KeyError:
            subprocess.run(
                ["useradd", "--create-home", "--shell", "/usr/sbin/nologin", user], check=True
            )
    # The kernel imports only the student distribution; the whole grader (checkers, hidden
    # messages, thresholds) becomes root-only.
    _chmod_tree(installed_package_dir(), remove=0o077)
    protect_material(root, [root / "source" / "data", student_package_dir()])


# --- at run time: pick the notebook, grade it, write results.json --------------------------------


class UserLauncher:
    """Start the kernel as an unprivileged user (``setpriv``); the grader stays root.

    The work folder is handed to the user before the kernel starts, so the kernel can write its
    artifacts there and nowhere the grader keeps anything.
    """

    sandboxed = False

    def __init__(self, user: str):
        import pwd

        entry = pwd.getpwnam(user)
        self.user, self.uid, self.gid = user, entry.pw_uid, entry.pw_gid
        self.setpriv = shutil.which("setpriv")
        if self.setpriv is None:
            raise LmsError("lms.gradescope.no_setpriv")

    def kernel_env(self, workdir: Path, base: dict[str, str]) -> dict[str, str]:
        for path in [workdir, *workdir.rglob("*")]:
            os.lchown(path, self.uid, self.gid)
        return base

    def kernel_manager(self, workdir: Path, env: dict[str, str]):
        from jupyter_client.manager import AsyncKernelManager

        uid, gid, setpriv = self.uid, self.gid, self.setpriv

        class _Manager(AsyncKernelManager):
            def format_kernel_cmd(self, extra_arguments=None):
                cmd = super().format_kernel_cmd(extra_arguments)
                return [
                    setpriv,
                    f"--reuid={uid}",
                    f"--regid={gid}",
                    "--clear-groups",
                    "--no-new-privs",
                    "--",
                    *cmd,
                ]

            def write_connection_file(self, **kwargs):
                super().write_connection_file(**kwargs)
                os.chown(self.connection_file, uid, gid)

        manager = _Manager(kernel_name="python3")
        manager.connection_file = str(Path(workdir) / ".home" / f"kernel-{uuid.uuid4().hex}.json")
        return manager


def find_notebook(submission_dir: Path, notebook: str) -> tuple[Path | None, Note | None]:
    """The submitted notebook: the released name (copy suffixes forgiven), else the only
    notebook. Returns ``(path, note)``; ``path`` is None when there is no clear choice."""
    found = sorted(
        (
            p
            for p in submission_dir.rglob("*.ipynb")
            if p.is_file()
            and not p.is_symlink()
            and not {".ipynb_checkpoints", "__MACOSX"} & set(p.relative_to(submission_dir).parts)
        ),
        key=lambda p: (len(p.relative_to(submission_dir).parts), str(p)),
    )
    if not found:
        return None, Note("lms.gradescope.no_notebook", {"notebook": notebook})
    want = notebook_stem(notebook)
    exact = [p for p in found if p.name == notebook] or [
        p for p in found if notebook_stem(p.name) == want
    ]
    if exact:
        renamed = exact[0].name != notebook
        if len(exact) == 1:
            note = {"found": exact[0].name, "notebook": notebook} if renamed else None
            return exact[0], Note("lms.gradescope.renamed", note) if note else None
        return exact[0], Note(
            "lms.gradescope.copies",
            {
                "n": len(exact),
                "graded": str(exact[0].relative_to(submission_dir)),
                "notebook": notebook if renamed else "",
            },
        )
    if len(found) == 1:
        return found[0], Note(
            "lms.gradescope.only_notebook", {"found": found[0].name, "notebook": notebook}
        )
    names = ", ".join(str(p.relative_to(submission_dir)) for p in found)
    return None, Note(
        "lms.gradescope.ambiguous", {"n": len(found), "names": names, "notebook": notebook}
    )


def _student_id(root: Path) -> str:
    try:
        meta = json.loads((root / "submission_metadata.json").read_text(encoding="utf-8"))
        user = (meta.get("users") or [{}])[0]
        raw = str(user.get("email") or user.get("sid") or user.get("id") or "student")
    except (OSError, ValueError, AttributeError, IndexError):
        raw = "student"
    cleaned = re.sub(r"[^A-Za-z0-9_.@+-]", "-", raw)[:100].lstrip("_.@+-")
    return cleaned if STUDENT_ID.fullmatch(cleaned) else "student"


def _md_escape(text: str) -> str:
    return text.replace("\r", "")


def cell_output(cell, language: str) -> str:
    """A graded cell's checks as a markdown list (the checker messages, hints in italics), in
    ``language``."""
    from autograder.feedback import localized_hint, localized_message

    lines = []
    for check in cell.checks:
        mark = "✅" if check.passed else ("➖" if check.outcome == "not_attempted" else "❌")
        line = f"- {mark} {_md_escape(localized_message(check, language))}"
        hint = localized_hint(check, language)
        if hint:
            line += f"  \n  _{_md_escape(hint)}_"
        lines.append(line)
    return "\n".join(lines)


def gradescope_results(
    result, settings: GradescopeSettings, execution_time: float, notes: list[Note] | None = None
) -> dict[str, Any]:
    """``results.json`` for one ``StudentResult`` (Gradescope's autograder specification)."""
    from autograder.lms.common import words

    w = words(settings.language)
    tests = []
    per_test = settings.test_visibility or {}
    for number, (gid, cell) in enumerate(result.cells.items(), start=1):
        tests.append(
            {
                "name": settings.test_name(gid),
                "number": str(number),
                "score": float(cell.score),
                "max_score": float(cell.max_score),
                "status": "passed" if cell.score >= cell.max_score - 1e-9 else "failed",
                "output": cell_output(cell, settings.language),
                "output_format": "md",
                "tags": [gid],
                "visibility": per_test.get(gid, settings.visibility),
            }
        )
    summary = [f"**{w['total']}: {fmt_points(result.score)}/{fmt_points(result.max_score)}**"]
    error = result.error_in(settings.language)
    if result.status == "error" and error:
        summary.append(f"{w['error']}: {_md_escape(error)}")
    texts = [n.text(settings.language) for n in notes or []]
    for note in [*texts, *result.notes_in(settings.language)]:
        summary.append(f"- {_md_escape(note)}")
    return {
        "score": float(result.score),
        "execution_time": max(0, int(round(execution_time))),
        "output": "\n\n".join(summary),
        "output_format": "md",
        "visibility": settings.visibility,
        "stdout_visibility": settings.stdout_visibility,
        "tests": tests,
        "extra_data": {
            "status": result.status,
            "error": result.error,
            "timing": dict(result.timing),
        },
    }


def _write_results(path: Path, results: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(
        "w", dir=path.parent, delete=False, suffix=".tmp", encoding="utf-8"
    ) as tmp:
        json.dump(results, tmp, ensure_ascii=False, indent=1)
    os.chmod(tmp.name, 0o644)
    Path(tmp.name).replace(path)


def _launcher(settings: GradescopeSettings, notes: list[Note]):
    """The kernel runs as ``run_as`` when the grader is root and that user exists."""
    if not settings.run_as or os.geteuid() != 0:
        return None
    try:
        return UserLauncher(settings.run_as)
    except (KeyError, LmsError) as exc:
        print(f"autograder: kernel runs as root ({settings.run_as}: {exc})", file=sys.stderr)
        return None


def run_autograder(root: str | Path = "/autograder", launcher=None) -> dict[str, Any]:
    """Grade ``<root>/submission`` and write ``<root>/results/results.json``; returns it."""
    from autograder.config import load_course
    from autograder.core import Assignment, GradingSettings, error_result, grade

    started = time.monotonic()
    root = Path(root)
    source = root / "source"
    results_path = root / "results" / "results.json"
    settings = GradescopeSettings.from_dict(
        json.loads((source / SETTINGS_FILE).read_text(encoding="utf-8"))
    )
    provisional = {
        "score": 0.0,
        "execution_time": 0,
        "output_format": "md",
        "output": Note("lms.gradescope.unfinished").text(settings.language),
        "visibility": settings.visibility,
        "stdout_visibility": settings.stdout_visibility,
        "tests": [],
    }
    _write_results(results_path, provisional)
    if os.geteuid() == 0:
        results_path.parent.chmod(0o755)  # the student's kernel must not write results
    notes: list[Note] = []
    work = root / "work" / uuid.uuid4().hex
    work.mkdir(parents=True)
    (root / "work").chmod(0o755)
    work.chmod(0o755)
    try:
        course = load_course(source / "course" / "course_config.py", state_dir=work / "state")
        assignment = Assignment.from_course(course, settings.assignment)
        elapsed = time.monotonic() - started
        budget = max(10.0, settings.time_limit - settings.margin - elapsed)
        notebook_timeout = min(assignment.timeout, budget)
        grading = GradingSettings(
            language=course.language,
            cell_timeout=min(course.cell_timeout, notebook_timeout),
            notebook_timeout=notebook_timeout,
            data_home=str(source / "data"),
            thresholds=dict(course.thresholds),
        )
        student = _student_id(root)
        path, note = find_notebook(root / "submission", assignment.notebook)
        if note:
            notes.append(note)
        if path is None:
            reason = note or Note("lms.gradescope.no_notebook", {"notebook": assignment.notebook})
            notes = []  # the reason is the error itself, not a note beside it
            result = error_result(student, assignment, reason, course.language)
        else:
            copy = work / "submission.ipynb"
            shutil.copyfile(path, copy)
            launcher = launcher if launcher is not None else _launcher(settings, notes)
            result = grade(
                copy,
                assignment,
                grading,
                student=student,
                workdir=work / "grade",
                launcher=launcher,
            )
        results = gradescope_results(result, settings, time.monotonic() - started, notes)
    except Exception as exc:  # noqa: BLE001 - the grader broke: say so instead of a blank page
        results = dict(provisional)
        detail = f"{type(exc).__name__}: {exc}"[:1500]
        results["output"] = Note("lms.gradescope.internal", {"detail": detail}).text(
            settings.language
        )
        results["execution_time"] = int(time.monotonic() - started)
        print(f"autograder: internal error: {exc!r}", file=sys.stderr)
    _write_results(results_path, results)
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m autograder.lms.gradescope")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="grade /autograder/submission (run_autograder)")
    p.add_argument("--root", default="/autograder")
    p = sub.add_parser("setup", help="create the kernel's user, protect the material (setup.sh)")
    p.add_argument("--root", default="/autograder")
    p.add_argument("--user", help="the kernel's user (default: the bundle's run_as)")
    args = parser.parse_args(argv)
    if args.command == "run":
        results = run_autograder(args.root)
        print(f"score {results.get('score')}: {len(results.get('tests', []))} tests")
        return 0
    setup(args.root, args.user)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
