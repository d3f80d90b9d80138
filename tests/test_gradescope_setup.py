"""The Gradescope bundle's ``setup.sh`` and ``run_autograder`` as Gradescope runs them, on an
image whose Python is 3.10 (Gradescope's Ubuntu 22.04): the script must install a Python the
grader runs on (apt's python3.11), a venv with the package and TensorFlow (from PyPI), and the
runner must then grade a submission into a correct ``results.json``.

Nothing outside a temporary folder is touched: the bundle's root is ``AUTOGRADER_ROOT`` instead
of ``/autograder``, ``apt-get`` is a stand-in that "installs" python3.11 by making it appear on
the PATH (as Ubuntu's package would in /usr/bin), and the kernel runs as the current user.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import nbformat
import pytest

from autograder.lms import gradescope as gs
from tests.conftest import make_course
from tests.test_gradescope import validate_results
from tests.test_lms_export import AID

PYENV_310 = Path("/root/.pyenv/versions/3.10.13/bin/python3.10")


def _version(python: Path | str) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [str(python), "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = out.stdout.split()
    return (int(parts[0]), int(parts[1])) if out.returncode == 0 and len(parts) == 2 else None


def python310() -> Path:
    """A real Python 3.10 (pyenv's on this machine and CI); skipped elsewhere, failed on CI."""
    for candidate in (PYENV_310, shutil.which("python3.10")):
        if candidate and _version(candidate) == (3, 10):
            return Path(candidate)
    reason = (
        f"no Python 3.10 ({PYENV_310} or python3.10 on PATH): the test of setup.sh on "
        "Gradescope's Python 3.10 image cannot run"
    )
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def python311() -> Path:
    """The interpreter apt's python3.11 stands for: the base Python running these tests."""
    base = Path(sys.base_prefix) / "bin" / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    return base if base.is_file() else Path(sys.executable)


def _stub(path: Path, body: str) -> None:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)


def image_like_gradescopes(bin_dir: Path, py310: Path, py311: Path) -> Path:
    """A PATH prefix that makes this machine look like Gradescope's image: ``python3`` is 3.10,
    no python3.11/3.12 until ``apt-get install python3.11`` runs; no ``useradd``."""
    bin_dir.mkdir()
    installed = bin_dir / "apt-installed-python3.11"
    for name in ("python3", "python3.10"):
        _stub(bin_dir / name, f'exec {py310} "$@"\n')
    _stub(
        bin_dir / "python3.11",
        f'[ -e {installed} ] && exec {py311} "$@"\necho "python3.11: not installed" >&2\nexit 127\n',
    )
    for name in ("python3.12", "python3.13"):
        _stub(bin_dir / name, f'echo "{name}: not installed" >&2\nexit 127\n')
    _stub(
        bin_dir / "apt-get",
        f'echo "$*" >> {bin_dir / "apt-get.log"}\n'
        f'if [ "$1" = install ] && [[ " $* " == *" python3.11 "* ]]; then touch {installed}; fi\n',
    )
    _stub(bin_dir / "useradd", 'echo "useradd $* (unexpected in this test)" >&2\nexit 1\n')
    return bin_dir


@pytest.mark.slow
def test_setup_sh_on_python_310_then_run_autograder(tmp_path, monkeypatch):
    py310 = python310()
    monkeypatch.delenv("COURSE_DATA_HOME", raising=False)  # the assignment needs no data
    course = make_course(tmp_path / "state")
    course.nbgrader_config.Course.lms = {"gradescope": {"run_as": ""}}  # kernel as this user
    root = tmp_path / "autograder"
    (root / "submission").mkdir(parents=True)
    (root / "results").mkdir()
    bundle = gs.build_bundle(course, AID, tmp_path / "autograder.zip")
    with zipfile.ZipFile(bundle) as zf:
        zf.extractall(root / "source")
        assert not [n for n in zf.namelist() if n.startswith("data/")]
    for script in ("setup.sh", "run_autograder"):
        (root / "source" / script).chmod(0o755)  # Gradescope keeps the zip's modes

    stubs = image_like_gradescopes(tmp_path / "bin", py310, python311())
    env = {
        "PATH": f"{stubs}:{os.environ['PATH']}",
        "HOME": os.environ.get("HOME", str(tmp_path)),
        "LANG": "C.UTF-8",
        "AUTOGRADER_ROOT": str(root),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
    }
    setup = subprocess.run(
        ["bash", "./setup.sh"],
        cwd=root / "source",
        env=env,
        capture_output=True,
        text=True,
        timeout=3600,
    )
    assert setup.returncode == 0, setup.stderr[-6000:]
    apt = (stubs / "apt-get.log").read_text().splitlines()
    assert "install -y --no-install-recommends python3.11 python3.11-venv" in apt
    assert _version(root / "venv" / "bin" / "python")[0:2] >= (3, 11)

    release = nbformat.read(course.release_dir / AID / "learning_rate.ipynb", as_version=4)
    from tests.sample_class.lesson4_learning_rate import perfect

    nbformat.write(perfect(release), root / "submission" / "learning_rate.ipynb")
    (root / "submission_metadata.json").write_text(
        json.dumps({"users": [{"email": "ana@uni.es", "name": "Ana", "sid": "A1"}]})
    )
    # Gradescope copies run_autograder to /autograder and runs it from there
    shutil.copy2(root / "source" / "run_autograder", root / "run_autograder")
    run = subprocess.run(
        [str(root / "run_autograder")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert run.returncode == 0, run.stderr[-6000:]
    results = json.loads((root / "results" / "results.json").read_text(encoding="utf-8"))
    validate_results(results)
    assert results["score"] == 8, results["output"]
    assert all(t["status"] == "passed" for t in results["tests"]), results["tests"]
    assert [t["name"] for t in results["tests"]][:2] == ["Pregunta 1", "Pregunta 2"]
    assert results["output"].startswith("**Total: 8/8**")
