"""Collect stage: find the submissions of an assignment in nbgrader's ``submitted/`` layout.

Layout: ``<submitted>/<student id>/<assignment id>/<notebook>.ipynb`` (+ ``timestamp.txt``).
A student folder without the released notebook name is reported (nbgrader would skip it
silently): the notebook may have been renamed, and the student deserves to be told.

Everything in ``submitted/`` came from students. A folder whose name is not a valid student id
is *refused*: it is listed with its reason (``Scan.refused``) and never becomes a submission, so
it never reaches the gradebook, the results or an export. ``timestamp.txt`` is read bounded and
parsed; free text, a folder or a link in its place leaves the time unknown, with a note.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path

from autograder.results import Note
from autograder.untrusted import UnsafeInput, clean_text, read_bounded
from dlcourse import layout

STUDENT_ID = re.compile(
    r"[A-Za-z0-9][A-Za-z0-9_.@+-]{0,99}"
)  # always fullmatch: "$" admits "ana\n"
TIMESTAMP_FILE = layout.TIMESTAMP_FILE
MAX_TIMESTAMP_BYTES = 256
MAX_FOLDERS = 100_000  # student folders scanned in one submitted/ tree


@dataclass(frozen=True)
class Submission:
    student: str
    path: Path | None  # None: no notebook with the released name
    problem: Note | None = None  # why there is nothing to grade
    timestamp: str | None = None  # nbgrader's format, "2026-11-20 10:00:00.000000 UTC"
    notes: tuple[Note, ...] = ()  # what was wrong around the notebook (its timestamp...)


@dataclass(frozen=True)
class Refusal:
    """A folder in ``submitted/`` that is not a submission, and why (printable text)."""

    folder: str  # the name, escaped: it may hold control characters
    reason: str


@dataclass
class Scan:
    submissions: list[Submission] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)


def scan_submissions(
    submitted_dir: str | Path, assignment_id: str, notebook: str, students: list[str] | None = None
) -> Scan:
    """Every student folder holding ``assignment_id``, sorted by student id, and the folders
    refused (an invalid student id)."""
    root = Path(submitted_dir)
    scan = Scan()
    if not root.is_dir():
        return scan
    folders = sorted(p for p in itertools.islice(root.iterdir(), MAX_FOLDERS) if _is_real_dir(p))
    for folder in folders:
        student = folder.name
        if students and student not in students:
            continue
        adir = folder / assignment_id
        if not _is_real_dir(adir):
            continue
        if not STUDENT_ID.fullmatch(student):
            scan.refused.append(Refusal(ascii(student), Note("collect.invalid_id").text("en")))
            continue
        timestamp, notes = read_timestamp(adir / TIMESTAMP_FILE)
        path = adir / notebook
        if path.is_file() and not path.is_symlink():
            scan.submissions.append(Submission(student, path, None, timestamp, notes))
            continue
        others = [
            clean_text(p.name, 80, one_line=True)
            for p in itertools.islice(sorted(adir.glob("*.ipynb")), 5)
        ]
        reason = Note("submission.no_notebook", {"notebook": notebook, "found": ", ".join(others)})
        scan.submissions.append(Submission(student, None, reason, timestamp, notes))
    return scan


def find_submissions(
    submitted_dir: str | Path, assignment_id: str, notebook: str, students: list[str] | None = None
) -> list[Submission]:
    """The submissions of ``scan_submissions`` (refused folders left out)."""
    return scan_submissions(submitted_dir, assignment_id, notebook, students).submissions


def read_timestamp(path: Path) -> tuple[str | None, tuple[Note, ...]]:
    """The submission time in nbgrader's format, or None with a note saying why."""
    if not path.exists() and not path.is_symlink():
        return None, ()
    try:
        text = read_bounded(path, MAX_TIMESTAMP_BYTES).decode("utf-8").strip()
    except (OSError, UnsafeInput, UnicodeDecodeError):
        return None, (Note("note.timestamp_unreadable"),)
    try:
        from nbgrader.utils import parse_utc

        moment = parse_utc(text)
    except (ValueError, OverflowError, TypeError):
        return None, (Note("note.timestamp_not_a_date"),)
    if not 1970 <= moment.year <= 9999:
        return None, (Note("note.timestamp_impossible"),)
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f UTC"), ()


def _is_real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()
