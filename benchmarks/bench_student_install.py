"""Benchmark: installing the student wheel (``dist/student/dlcourse-*.whl``) in a fresh venv.

1. ``make student-wheel`` when ``dist/student/`` holds no wheel;
2. a fresh virtualenv (``python -m venv``, no system site packages) and the wall time of
   ``pip install dist/student/*.whl`` in it (pip resolves TensorFlow, pandas, scikit-learn,
   matplotlib, ipywidgets, ipykernel...; from this machine's package indexes, cache as it is);
3. the installed venv's size (``du``);
4. whether the wheel's dependencies resolve for the students' other machines: ``pip install
   --dry-run --only-binary=:all: --platform P --python-version V --target <tmp> <wheel>`` for
   macOS arm64, Linux aarch64 and Windows x86-64 with Python 3.12, plus Python 3.10 and 3.13 on
   one platform each. For Linux aarch64 the older ``manylinux2014`` tag alone is tried first, then
   with the newer manylinux tags. Each exact command and its outcome is recorded. (pip evaluates
   environment markers such as ``sys_platform`` for this machine, not for ``--platform``: a
   resolved dry run says every wheel exists for the platform, not that the marker-selected set
   is exactly what that platform installs.)

Prints the figures and writes ``benchmarks/results/bench_student_install.json``.
Run: ``.venv/bin/python benchmarks/bench_student_install.py`` (a few minutes).
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DIST = ROOT / "dist" / "student"
OUT = ROOT / "benchmarks" / "results" / "bench_student_install.json"
KEY_PACKAGES = (
    "dlcourse",
    "tensorflow",
    "keras",
    "numpy",
    "pandas",
    "scikit-learn",
    "matplotlib",
    "ipywidgets",
    "ipykernel",
    "jinja2",
)
MANYLINUX_AARCH64 = [
    "manylinux_2_17_aarch64",
    "manylinux2014_aarch64",
    "manylinux_2_28_aarch64",
    "manylinux_2_31_aarch64",
    "manylinux_2_34_aarch64",
]
# (label, platform tags, python version); several tags are one attempt
DRY_RUNS = [
    ("macOS arm64, Python 3.12", ["macosx_14_0_arm64"], "3.12"),
    ("Linux aarch64 (manylinux2014 only), Python 3.12", ["manylinux2014_aarch64"], "3.12"),
    ("Linux aarch64 (manylinux2014 + newer tags), Python 3.12", MANYLINUX_AARCH64, "3.12"),
    ("Windows x86-64, Python 3.12", ["win_amd64"], "3.12"),
    ("Windows x86-64, Python 3.10", ["win_amd64"], "3.10"),
    ("macOS arm64, Python 3.13", ["macosx_14_0_arm64"], "3.13"),
]


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env.pop("VIRTUAL_ENV", None)
    return env


def student_wheel() -> Path:
    wheels = sorted(DIST.glob("dlcourse-*.whl"))
    if not wheels:
        print("building the student wheel: make student-wheel")
        subprocess.run(["make", "-C", str(ROOT), "student-wheel"], check=True)
        wheels = sorted(DIST.glob("dlcourse-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one wheel in {DIST}, found {[w.name for w in wheels]}")
    return wheels[0]


def du_bytes(path: Path) -> int:
    out = subprocess.run(["du", "-sb", str(path)], capture_output=True, text=True, check=True)
    return int(out.stdout.split()[0])


def du_human(path: Path) -> str:
    out = subprocess.run(["du", "-sh", str(path)], capture_output=True, text=True, check=True)
    return out.stdout.split()[0]


def pip_version(python: Path | str) -> str:
    out = subprocess.run(
        [str(python), "-m", "pip", "--version"], capture_output=True, text=True, check=True
    )
    return out.stdout.split()[1]


def install(wheel: Path, tmp: Path) -> dict:
    venv = tmp / "venv"
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    venv_seconds = time.perf_counter() - started
    python = venv / "bin" / "python"
    env = clean_env() | {"VIRTUAL_ENV": str(venv)}
    command = [str(python), "-m", "pip", "install", "--quiet", str(wheel)]
    print("$", shlex.join(command))
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    seconds = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"pip install failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    listed = subprocess.run(
        [str(python), "-m", "pip", "list", "--format", "json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    packages = {p["name"].lower(): p["version"] for p in json.loads(listed.stdout)}
    site = next((venv / "lib").glob("python3.*/site-packages"))
    largest = sorted(((du_bytes(p), p.name) for p in site.iterdir() if p.is_dir()), reverse=True)[
        :8
    ]
    return {
        "command": shlex.join(command),
        "python": subprocess.run(
            [str(python), "-c", "import platform; print(platform.python_version())"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip(),
        "pip": pip_version(python),
        "create_venv_seconds": round(venv_seconds, 2),
        "pip_install_seconds": round(seconds, 2),
        "venv_bytes": du_bytes(venv),
        "venv_size": du_human(venv),
        "packages_installed": len(packages),
        "versions": {name: packages.get(name) for name in KEY_PACKAGES},
        "largest_in_site_packages": [
            {"name": name, "mib": round(size / 2**20, 1)} for size, name in largest
        ],
        "stderr_tail": proc.stderr.strip().splitlines()[-5:],
    }


def dry_run(wheel: Path, label: str, platforms: list[str], python_version: str, tmp: Path) -> dict:
    target = tmp / "target"
    report = tmp / "report.json"
    command = [sys.executable, "-m", "pip", "install", "--dry-run", "--only-binary=:all:"]
    for tag in platforms:
        command += ["--platform", tag]
    command += ["--python-version", python_version, "--target", str(target)]
    command += ["--report", str(report), "--quiet", str(wheel)]
    shown = shlex.join(["pip", *command[3:]]).replace(str(wheel), "dist/student/" + wheel.name)
    shown = shown.replace(str(target), "<tmp>").replace(str(report), "<report.json>")
    print("$", shown)
    started = time.perf_counter()
    proc = subprocess.run(command, capture_output=True, text=True, env=clean_env(), check=False)
    seconds = time.perf_counter() - started
    outcome = {
        "label": label,
        "platforms": platforms,
        "python_version": python_version,
        "command": shown,
        "returncode": proc.returncode,
        "resolved": proc.returncode == 0,
        "seconds": round(seconds, 1),
    }
    if proc.returncode == 0 and report.is_file():
        data = json.loads(report.read_text())
        resolved = {
            item["metadata"]["name"].lower(): {
                "version": item["metadata"]["version"],
                "file": item["download_info"]["url"].rsplit("/", 1)[-1],
            }
            for item in data.get("install", [])
        }
        outcome["packages"] = len(resolved)
        outcome["versions"] = {
            name: resolved[name]["version"] for name in KEY_PACKAGES if name in resolved
        }
        outcome["tensorflow_wheel"] = resolved.get("tensorflow", {}).get("file")
    else:
        errors = [line for line in proc.stderr.splitlines() if line.strip()]
        outcome["error"] = errors[-6:]
    print("   ->", "resolved" if outcome["resolved"] else "FAILED", f"({seconds:.0f} s)")
    return outcome


def main() -> dict:
    wheel = student_wheel()
    with tempfile.TemporaryDirectory(prefix="bench-student-") as tmp:
        installed = install(wheel, Path(tmp))
    print(
        f"pip install: {installed['pip_install_seconds']:.1f} s wall "
        f"({installed['packages_installed']} packages, pip {installed['pip']}); "
        f"venv size: {installed['venv_size']} ({installed['venv_bytes']} bytes)"
    )
    runs = []
    for label, platforms, version in DRY_RUNS:
        with tempfile.TemporaryDirectory(prefix="bench-dry-") as tmp:
            runs.append(dry_run(wheel, label, platforms, version, Path(tmp)))
    result = {
        "wheel": {
            "file": f"dist/student/{wheel.name}",
            "bytes": wheel.stat().st_size,
            "sha256": hashlib.sha256(wheel.read_bytes()).hexdigest(),
        },
        "machine": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "dry_run_pip": pip_version(sys.executable),
        },
        "install": installed,
        "dry_runs": runs,
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT.relative_to(ROOT)}")
    return result


if __name__ == "__main__":
    if shutil.which("du") is None:
        raise SystemExit("du is needed")
    main()
