"""Collect stage: find the submissions of an assignment in nbgrader's ``submitted/`` layout.

Layout: ``<submitted>/<student id>/<assignment id>/<notebook>.ipynb`` (+ ``timestamp.txt``).
A student folder without the released notebook name is reported (nbgrader would skip it
silently): the notebook may have been renamed, and the student deserves to be told.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

STUDENT_ID = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}"
)  # always fullmatch: "$" admits "ana\n"


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path | None  # None: no notebook with the released name
    problem: str | None = None
    timestamp: str | None = None


def find_submissions(
    submitted_dir: str | Path, assignment_id: str, notebook: str, students: list[str] | None = None
) -> list[Submission]:
    """Every student folder holding ``assignment_id``, sorted by student id."""
    root = Path(submitted_dir)
    if not root.is_dir():
        return []
    found = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        student = folder.name
        if students and student not in students:
            continue
        adir = folder / assignment_id
        if not adir.is_dir():
            continue
        if not STUDENT_ID.fullmatch(student):
            found.append(
                Submission(student, None, f"the folder name {student!r} is not a valid student id")
            )
            continue
        stamp = adir / "timestamp.txt"
        timestamp = (
            stamp.read_text(encoding="utf-8", errors="replace").strip()[:64]
            if stamp.is_file()
            else None
        )
        path = adir / notebook
        if path.is_file() and not path.is_symlink():
            found.append(Submission(student, path, None, timestamp))
            continue
        others = sorted(p.name for p in adir.glob("*.ipynb"))
        reason = f"no notebook named {notebook} was submitted" + (
            f" (found {', '.join(others)}: was it renamed?)" if others else ""
        )
        found.append(Submission(student, None, reason, timestamp))
    return found
