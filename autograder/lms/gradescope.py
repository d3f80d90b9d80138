"""Gradescope: build the autograder bundle, and the code its ``run_autograder`` runs.

``build_bundle(course, assignment)`` writes a zip with, at its root::

    setup.sh            installs Python >= 3.11, a venv in /autograder/venv, this package;
                        creates the unprivileged user the student's kernel runs as
    run_autograder      runs ``python -m autograder.lms.gradescope run`` under a hard time limit
    gradescope.json     the assignment, visibility, time limits, language
    package/            this package's source (pyproject.toml generated from the installed one)
    package/student/    the student distribution (dlcourse): all the kernel may import
    course/             a course_config.py for the bundle (no db_url, no LMS settings, no
                        secrets) and the assignment's source/ and release/ notebooks
    data/               the course data (verified copies), so grading needs no download

At run time Gradescope puts the student's files in ``/autograder/submission/``;
``run_autograder(root)`` picks the notebook, grades it with the same stateless core as the rest
of the package (``autograder.core.grade``) and writes ``/autograder/results/results.json``: one
test per graded cell (``score``, ``max_score``, ``status``, ``name``, ``number``, ``output`` as
markdown with the checker messages, ``visibility``). A provisional results file is written
first, and every time limit is set from Gradescope's own (``time_limit`` minus a margin), so a
slow notebook gets a clear message and its partial results instead of Gradescope's global
timeout (which scores 0 with no explanation).

Gradescope runs everything as root in its container. The student's kernel therefore runs as
the unprivileged ``student`` user (``setpriv``), in a work folder of its own, while the course
material (solutions, hidden tests, checkers) stays readable by root only.
"""

from __future__ import annotations

import argparse
import json
import os
import re
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
from autograder.sandbox import STUDENT_PACKAGE, student_package_dir

# The settings and their defaults are declared once: autograder.config.GradescopeSection.
VISIBILITIES = get_args(Visibility)
DEFAULT_TIME_LIMIT = GradescopeSection.time_limit  # Gradescope's default autograder timeout (s)
DEFAULT_MARGIN = GradescopeSection.margin  # kept free for kernel start, checks and results
RUN_AS = GradescopeSection.run_as
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
                f"Gradescope time_limit {time_limit:g} s minus margin {margin:g} s "
                "leaves less than a minute to run the notebook."
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
        )

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GradescopeSettings:
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


# --- the bundle -----------------------------------------------------------------------------------

SETUP_SH = r"""#!/usr/bin/env bash
# Gradescope runs this once, as root, when the autograder is built.
set -euxo pipefail
cd /autograder/source
export DEBIAN_FRONTEND=noninteractive

ok() { "$1" -c 'import sys; sys.exit(not ((3, 11) <= sys.version_info[:2] < (3, 13)))' 2>/dev/null; }
PY=""
for candidate in python3.12 python3.11 python3; do
  if command -v "$candidate" >/dev/null && ok "$candidate"; then PY="$(command -v "$candidate")"; break; fi
done
if [ -z "$PY" ]; then
  apt-get update
  apt-get install -y --no-install-recommends python3.11 python3.11-venv
  PY="$(command -v python3.11)"
fi
if ! "$PY" -m venv /autograder/venv; then
  apt-get update
  apt-get install -y --no-install-recommends "$(basename "$PY")-venv"
  rm -rf /autograder/venv
  "$PY" -m venv /autograder/venv
fi
/autograder/venv/bin/python -m pip install --upgrade pip
/autograder/venv/bin/python -m pip install /autograder/source/package/student /autograder/source/package
# the unprivileged user for the student's kernel; permissions on the course material
/autograder/venv/bin/python -m autograder.lms.gradescope setup --root /autograder
"""

RUN_AUTOGRADER = r"""#!/usr/bin/env bash
# Gradescope runs this for every submission. The grader keeps its own time limits (see
# gradescope.json); this outer limit only stops a grader that hangs, before Gradescope's does.
LIMIT=$(/autograder/venv/bin/python -c 'import json; print(int(json.load(open("/autograder/source/gradescope.json"))["time_limit"]))')
exec timeout --kill-after=10 $((LIMIT - 20)) /autograder/venv/bin/python -m autograder.lms.gradescope run --root /autograder
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


def _data_files(course: Course) -> list[Path]:
    """The course's data files (every ``RemoteFile`` the data module declares) found in the
    instructor's data home."""
    from autograder.core import GradingSettings
    from dlcourse import data

    home = Path(GradingSettings.from_course(course).data_home)
    files = [v for v in vars(data).values() if isinstance(v, data.RemoteFile)]
    return [home / f.filename for f in files if (home / f.filename).is_file()]


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
        raise LmsError(f"{source / spec.notebook} does not exist.")
    release = course.release_dir / assignment_id
    if not (release / spec.notebook).is_file():
        raise LmsError(
            f"{release / spec.notebook} does not exist: run `autograder release "
            f"{assignment_id}` first."
        )
    data_files = _data_files(course)
    if not data_files:
        raise LmsError(
            "The course data is not in the data home: run the course's data fetch "
            "(or set COURSE_DATA_HOME) before building the bundle, so grading on "
            "Gradescope needs no download."
        )
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


def setup(root: str | Path = "/autograder", user: str = RUN_AS) -> None:
    """``python -m autograder.lms.gradescope setup``: run by setup.sh as root."""
    import subprocess

    root = Path(root)
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
            raise LmsError("setpriv (util-linux) is not installed")

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


def find_notebook(submission_dir: Path, notebook: str) -> tuple[Path | None, str | None]:
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
        return None, (
            f"No notebook was submitted: upload {notebook} (the .ipynb file, not a "
            "PDF or a zip of it)."
        )
    want = notebook_stem(notebook)
    exact = [p for p in found if p.name == notebook] or [
        p for p in found if notebook_stem(p.name) == want
    ]
    if exact:
        note = None if exact[0].name == notebook else f"{exact[0].name} was graded as {notebook}."
        if len(exact) > 1:
            note = (
                (note + " " if note else "")
                + f"{len(exact)} copies were submitted; {exact[0].relative_to(submission_dir)} was graded."
            )
        return exact[0], note
    if len(found) == 1:
        return found[0], f"{found[0].name} was graded as {notebook} (rename it next time)."
    names = ", ".join(str(p.relative_to(submission_dir)) for p in found)
    return None, f"{len(found)} notebooks were submitted ({names}) and none is named {notebook}."


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
    """A graded cell's checks as a markdown list (the checker messages, hints in italics)."""
    lines = []
    for check in cell.checks:
        mark = "✅" if check.passed else ("➖" if check.outcome == "not_attempted" else "❌")
        line = f"- {mark} {_md_escape(check.message)}"
        if check.hint:
            line += f"  \n  _{_md_escape(check.hint)}_"
        lines.append(line)
    return "\n".join(lines)


def gradescope_results(
    result, settings: GradescopeSettings, execution_time: float, notes: list[str] | None = None
) -> dict[str, Any]:
    """``results.json`` for one ``StudentResult`` (Gradescope's autograder specification)."""
    from autograder.lms.common import words

    w = words(settings.language)
    tests = []
    per_test = settings.test_visibility or {}
    for number, (gid, cell) in enumerate(result.cells.items(), start=1):
        tests.append(
            {
                "name": gid,
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
    for note in [*(notes or []), *result.notes_in(settings.language)]:
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


def _launcher(settings: GradescopeSettings, notes: list[str]):
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
        "output": (
            "The grader did not finish within the time limit. Make sure the notebook "
            "runs from top to bottom in a few minutes, then resubmit."
        ),
        "visibility": settings.visibility,
        "stdout_visibility": settings.stdout_visibility,
        "tests": [],
    }
    _write_results(results_path, provisional)
    if os.geteuid() == 0:
        results_path.parent.chmod(0o755)  # the student's kernel must not write results
    notes: list[str] = []
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
            result = error_result(student, assignment, note or "no notebook", course.language)
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
        results["output"] = (
            f"The autograder itself failed ({type(exc).__name__}: {exc}). "
            "This is not your fault: your instructor will grade this "
            "submission by hand."
        )[:2000]
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
    p.add_argument("--user", default=RUN_AS)
    args = parser.parse_args(argv)
    if args.command == "run":
        results = run_autograder(args.root)
        print(f"score {results.get('score')}: {len(results.get('tests', []))} tests")
        return 0
    setup(args.root, args.user)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
